"""Refusals and failures, mapped once: to the JSON envelope under ``/api/``, to a page or a
flashed message elsewhere.

Services refuse a request by raising :class:`DomainError` (or one of ``beta.errors``, which
carry the same ``message``, ``status`` and ``field``). Nothing catches them to translate:
the API answers with the envelope (``service.api.errors``), and a page form declared with
:func:`refusal_goes_back` flashes the message and returns to where the form was.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, ParamSpec

from flask import Flask, flash, g, redirect, render_template, request
from flask_wtf.csrf import CSRFError
from markupsafe import escape
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from beta.errors import BetaError
from service import db, metrics
from service.api.errors import (
    ApiError,
    error_response,
    http_error_as_json,
    refusal_response,
)

MESSAGES = {
    400: "The request could not be understood.",
    403: "Your role does not allow this. Ask an admin if you need it.",
    404: "There is nothing at this address.",
    405: "This page does not accept that kind of request.",
    409: "That conflicts with the current state.",
    413: "The upload is larger than the service accepts.",
    500: "Something went wrong on our side and nothing was saved. Please try again.",
}
_log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5
UNAVAILABLE = "The database cannot be reached right now; nothing was saved. Try again shortly."
# 507 Insufficient Storage (RFC 4918): the server cannot store what the request needs. Not
# 503 with Retry-After: a full disk does not pass in seconds, it needs an operator.
DISK_FULL_STATUS = 507
DISK_FULL = (
    "The database's disk is full, so nothing was saved. Pages can still be read; saving "
    "works again once an operator has freed disk space."
)
P = ParamSpec("P")


class DomainError(Exception):
    """A request a service refuses: ``message`` for people, ``status`` the HTTP status to
    answer with (422 unless the subclass or the call says otherwise), ``field`` the input
    it is about (None when no single input is)."""

    status = 422
    code: str | None = None  # the API's error code; None: the one of the status

    def __init__(self, message: str, *, status: int | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field or None
        if status is not None:
            self.status = status


Refusal = DomainError | BetaError


def init_app(app: Flask) -> None:
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(DBAPIError, _database_error)
    app.register_error_handler(OSError, _os_error)
    app.register_error_handler(500, _internal_error)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(DomainError, _refused)
    app.register_error_handler(BetaError, _refused)


def _is_api() -> bool:
    return request.path.startswith("/api/")


def _api_error(exc: ApiError) -> Response:
    db.session().rollback()
    return error_response(exc)


def _refused(exc: Refusal) -> tuple[str, int] | Response:
    """A refusal no page form handled: the API's envelope, or an error page."""
    db.session().rollback()
    if _is_api():
        return refusal_response(exc.status, exc.message, exc.field, getattr(exc, "code", None))
    status = exc.status if exc.status in MESSAGES else 422
    return render_template(
        "error.html", status=status, title="Not done", message=_sentence(exc.message)
    ), status


def refusal_goes_back(
    failure: str | Callable[[], str], back: Callable[..., str]
) -> Callable[[Callable[P, Any]], Callable[P, Any]]:
    """For a page form: a refusal rolls back, is flashed as ``"<failure>: <message>"``
    (``failure`` may be a function of the request) and redirects to ``back(**view_args)``,
    the page the form sits on."""

    def decorator(view: Callable[P, Any]) -> Callable[P, Any]:
        @functools.wraps(view)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> Any:
            try:
                return view(*args, **kwargs)
            except (DomainError, BetaError) as exc:
                db.session().rollback()
                what = failure() if callable(failure) else failure
                flash(f"{what}: {exc.message}", "error")
                return redirect(back(**kwargs))

        return wrapped

    return decorator


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:]


def _internal_error(exc: HTTPException) -> tuple[str, int] | Response:
    """An unexpected error: the request's transaction is rolled back, so nothing was saved.

    Flask has logged the traceback (with the request id) before this runs.
    """
    db_session = g.get("db_session")
    if db_session is not None:
        db_session.rollback()  # kept open: the page's layout still reads the logged-in user
    request_id = g.get("request_id") or "-"
    message = f"{MESSAGES[500]} If it happens again, quote request id {request_id}."
    if _is_api():
        return error_response(ApiError(500, "internal_error", message))
    return render_template("error.html", status=500, title="Internal error", message=message), 500


def _database_error(exc: DBAPIError) -> Response:
    """The database went away (or refused a connection): 503 with ``Retry-After``, not 500.

    The pool checks connections before use (``pool_pre_ping``) and drops the ones a
    disconnect invalidated, so the next request after the database is back succeeds.
    A full disk is not an outage: :func:`_disk_full` answers 507.
    Other database errors (a bug, a constraint) are still 500s.
    """
    if db.is_disk_full(exc):
        return _disk_full(exc)
    if not (isinstance(exc, OperationalError) or exc.connection_invalidated):
        raise exc
    _log.warning("database unavailable: %s", type(exc.orig).__name__ if exc.orig else exc)
    _discard_session()
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if _is_api():
        return error_response(ApiError(503, "database_unavailable", UNAVAILABLE, headers=headers))
    return _plain_page(503, "Service unavailable", UNAVAILABLE, headers)


def _os_error(exc: OSError) -> Response:
    """No space left on the device (or over a quota) while handling a request: 507, as for
    the database; any other OSError is an unexpected error (500)."""
    if not db.is_disk_full(exc):
        raise exc
    return _disk_full(exc)


def _disk_full(exc: BaseException) -> Response:
    """Out of disk space: 507 saying so (``disk_full``), counted on /metrics, and /healthz
    reports the database degraded for a while (``service/metrics.py``)."""
    orig = getattr(exc, "orig", None)
    _log.error("disk full, nothing was saved: %s", f"{type(orig or exc).__name__}: {orig or exc}")
    metrics.note_disk_full()
    _discard_session()
    if _is_api():
        return error_response(ApiError(DISK_FULL_STATUS, "disk_full", DISK_FULL))
    return _plain_page(DISK_FULL_STATUS, "Disk full", DISK_FULL, {})


def _plain_page(status: int, title: str, message: str, headers: dict[str, str]) -> Response:
    """An error page without the site layout, which would need the database itself (the
    logged-in user)."""
    request_id = escape(g.get("request_id") or "")
    body = (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>{title}</title>"
        f"<h1>{status} · {title}</h1><p>{message}</p>"
        f"<p><small>Request {request_id}</small></p></html>"
    )
    return Response(body, status, headers, mimetype="text/html")


def _discard_session() -> None:
    db_session = g.pop("db_session", None)
    if db_session is None:
        return
    try:
        db_session.rollback()
        db_session.close()
    except Exception:  # its connection is already gone
        _log.debug("closing the session of a failed request failed", exc_info=True)


def _csrf_error(exc: CSRFError) -> tuple[str, int] | Response:
    if _is_api():
        return error_response(ApiError(400, "csrf", exc.description or "CSRF check failed"))
    db.session().rollback()
    if request.path == "/login":
        flash("Your login form had expired. Please try again.", "warning")
        return redirect(request.path)
    return render_template(
        "error.html",
        status=400,
        title="Form expired",
        message=(
            "This form is missing its security token or the token has expired "
            "(for example after a log out in another tab). Nothing was saved. "
            "Go back, reload the page and submit again."
        ),
    ), 400


def _http_error(exc: HTTPException) -> tuple[str, int] | Response:
    if _is_api():
        return http_error_as_json(exc)
    status = exc.code or 500
    return render_template(
        "error.html",
        status=status,
        title=exc.name,
        message=MESSAGES.get(status, exc.description or exc.name),
    ), status
