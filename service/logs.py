"""Logs: one line per request, every line with the request id, JSON in production.

``RELGOV_LOG_FORMAT`` picks ``json`` (the default in production: one JSON object per line on
stderr) or ``text`` (the default elsewhere); ``RELGOV_LOG_LEVEL`` the level (``INFO``). Under
``RELGOV_ENV=test`` nothing is configured unless ``RELGOV_LOG_FORMAT`` is set, so pytest's
own capture stays in charge.

Each request gets an id: the caller's ``X-Request-ID`` when it is short and made of safe
characters, else a new random one. It is returned in the ``X-Request-ID`` response header,
added to every log record written while the request runs (``request_id``), and the request
itself is logged once when it ends by the ``relgov.access`` logger (method, path, endpoint,
status, duration in ms, actor, remote address). A background job logs with ``job-<id>`` as
its request id (see :func:`job_context`).

The hooks are kept cheap (the heartbeat endpoint is benchmarked): no database access, the
access line is only built when the ``relgov.access`` logger is enabled for INFO.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from flask import Flask, g, has_request_context, request
from werkzeug.wrappers import Response

from service.settings import Settings

HEADER = "X-Request-ID"
_VALID_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}")
_access = logging.getLogger("relgov.access")
# The request id outside a request (a background job); inside one it lives on ``g``.
_context_id: ContextVar[str | None] = ContextVar("relgov_request_id", default=None)
_extra: ContextVar[dict[str, Any] | None] = ContextVar("relgov_log_extra", default=None)


def current_request_id() -> str | None:
    if has_request_context():
        value: str | None = g.get("request_id")
        return value
    return _context_id.get()


@contextmanager
def job_context(job_id: int | None, kind: str) -> Iterator[None]:
    """Log records written inside carry ``request_id=job-<id>``, ``job_id`` and ``job_kind``."""
    id_token = _context_id.set(f"job-{job_id}")
    extra_token = _extra.set({"job_id": job_id, "job_kind": kind})
    try:
        yield
    finally:
        _context_id.reset(id_token)
        _extra.reset(extra_token)


# --- formatting ------------------------------------------------------------------------------


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (and a job's id and kind) to every record the handler writes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id() or "-"
        extra = _extra.get()
        if extra:
            for name, value in extra.items():
                if not hasattr(record, name):
                    setattr(record, name, value)
        return True


# LogRecord attributes that are not the caller's ``extra`` fields.
_RECORD_FIELDS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request id, ``extra`` fields.

    Plain stdlib ``json`` rather than python-json-logger: this runs for every request, and
    building the object directly costs a third as much.
    """

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS:
                out[key] = value
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc_info"] = record.exc_text
        if record.stack_info:
            out["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def log_format(settings: Settings) -> str | None:
    """``json``, ``text``, or None (leave logging alone: tests without an explicit choice)."""
    chosen = settings.log_format
    if chosen:
        return chosen
    if settings.env == "test":
        return None
    return "json" if settings.env == "production" else "text"


def configure(fmt: str, level: str = "INFO", stream: Any = None) -> logging.Handler:
    """Install the service's one handler on the root logger (replacing an earlier one)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_relgov", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._relgov = True  # type: ignore[attr-defined]
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler


# --- per-request hooks -----------------------------------------------------------------------


def init_app(app: Flask) -> None:
    settings: Settings = app.config["RELGOV_SETTINGS"]
    fmt = log_format(settings)
    if fmt is not None:
        configure(fmt, settings.log_level)
    app.before_request(_begin)
    app.after_request(_end)


def request_id_of(environ: dict[str, Any]) -> str:
    """The request's id: a safe ``X-Request-ID`` it came with, else a new random one."""
    incoming = environ.get("HTTP_X_REQUEST_ID")
    if incoming and len(incoming) <= 64 and _VALID_ID.fullmatch(incoming):
        return str(incoming)
    return os.urandom(8).hex()


def _begin() -> None:
    # Straight from the WSGI environ and the real ``g``: each proxy lookup costs a microsecond.
    g._get_current_object().request_id = request_id_of(request.environ)


def _end(response: Response) -> Response:
    ctx_g = g._get_current_object()
    request_id = ctx_g.get("request_id")
    if request_id is None:
        return response
    response.headers[HEADER] = request_id
    log_request(ctx_g, request._get_current_object(), response, request_id)  # type: ignore[attr-defined]
    return response


def log_request(ctx_g: Any, req: Any, response: Any, request_id: str) -> None:
    """The access line of one request (nothing when the access log is off). ``ctx_g`` is
    the request's ``g`` or a mapping with ``request_started`` and ``api_token``; ``req``
    gives method, path, endpoint and remote_addr, ``response`` its status_code."""
    if not _access.isEnabledFor(logging.INFO):
        return
    started = ctx_g.get("request_started")  # set by service.metrics
    duration = round((time.perf_counter() - started) * 1000, 2) if started is not None else None
    method, path, status = req.method, req.path, response.status_code
    _access.info(
        "%s %s %s",
        method,
        path,
        status,
        extra={
            "method": method,
            "path": path,
            "endpoint": req.endpoint,
            "status": status,
            "duration_ms": duration,
            "actor": _actor(ctx_g),
            "remote_addr": req.remote_addr,
            "request_id": request_id,
        },
    )


def _actor(ctx_g: Any) -> str:
    """Who made the request, from what the request already loaded (no database access)."""
    token = ctx_g.get("api_token")
    if token is not None:
        return str(token.actor)
    user = ctx_g.get("_login_user")
    if user is not None and getattr(user, "is_authenticated", False):
        return str(user.actor)
    return "anonymous"
