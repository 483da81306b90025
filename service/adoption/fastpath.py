"""The common heartbeat request, answered in front of Flask.

``POST /api/v1/heartbeats`` is by far the most frequent request: store devices send one
heartbeat each, every few minutes. Flask's request machinery (request and app contexts,
the before/after hooks, the ORM session) costs several times the database's own work for
it. :class:`HeartbeatFastPath` wraps the app's WSGI callable and answers such a request
itself when, and only when, it is the well-formed common case:

* JSON body of known length within ``MAX_CONTENT_LENGTH``, no query string, no NUL escape;
* a bearer token found in the per-process token cache (:func:`service.api.tokens.
  usable_cached`; current: the token generation, read at most every 0.5 s, has not moved
  since it was cached), not revoked, suspended or expired, holding ``heartbeats:write``,
  whose last use needs no recording yet;
* one heartbeat object or a list of them whose apps are in the per-process cache, and
  every item valid (stores from the same cache as the view's, under the fleet counter);
* the rate limit not reached.

Everything else (errors, rejections, unknown stores, a cold cache, a database error) goes
to the normal Flask view with the body restored, after the fast path's transaction was
rolled back: error answers, and their status, body and headers, come from one place. The
answer itself is built by the view's own pipeline (:func:`service.adoption.heartbeats.
accept` on the request's one transaction), and the request gets what the hooks give every
request: a request id and ``X-Request-ID``, the access log line, the request metrics, the
security headers and ``Cache-Control: no-store`` (a token-authenticated answer).

With a flush interval (``RELGOV_HEARTBEAT_FLUSH_MS``), a request of fewer than
:data:`QUEUED_ITEMS` heartbeats whose stores are all in the cache is not written here: its
valid heartbeats go to the process's queue (:mod:`service.adoption.queue`), which keeps
them in its spool file until written (:mod:`service.adoption.spool`), the answer is
``202`` with ``queued``, and once the server has sent it (the body's ``close()``) this thread
writes what the queue holds when that is due.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from flask import Flask
from sqlalchemy import Connection, Engine, event
from sqlmodel import Session
from werkzeug.middleware.proxy_fix import ProxyFix

from service import logs, metrics, security
from service.adoption import heartbeat_metrics, heartbeats, ratelimit, services
from service.adoption.queue import HeartbeatQueue, queue_of
from service.adoption.queue import start as start_queue
from service.api.operations import json_text
from service.api.tokens import usable_cached
from service.models import ApiToken
from version_monitor.ingest import validate_batch

__all__ = ["PATH", "HeartbeatFastPath", "install"]

PATH = "/api/v1/heartbeats"
ENDPOINT = "api.adoption_post_heartbeats"
SCOPE = "heartbeats:write"
_log = logging.getLogger(__name__)
# Requests of fewer heartbeats are queued (when the queue is on). A larger batch is a
# transaction's worth of its own: queueing it would save nothing, and written at once it
# gets the full answer (registrations, version changes, stale ones).
QUEUED_ITEMS = 100

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _Fallback(Exception):
    """Not the common case: the Flask view answers."""


class _Connected:
    """What :mod:`version_monitor.ingest` and :mod:`service.beta.answers` ask of a session,
    on one connection: the fast path has no ORM session."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def connection(self) -> Connection:
        return self._connection

    def get_bind(self) -> Connection:
        return self._connection

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        return self._connection.execute(*args, **kwargs)


class HeartbeatFastPath:
    def __init__(self, app: Flask, inner: WsgiApp) -> None:
        self.app = app
        self.inner = inner
        # A token-authenticated answer: the security headers and Cache-Control: no-store.
        self._headers = [*security.response_headers(app).items(), security.NO_STORE]
        self._held: dict[int, Connection] = {}  # per thread, on PostgreSQL (see _connection)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_queue(self.app)  # at the process's first request: replay the spool of dead ones
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.inner(environ, start_response)
        started = time.perf_counter()
        token = self._token(environ)
        raw = self._body(environ) if token is not None else None
        if raw is None or token is None:
            return self.inner(environ, start_response)
        try:
            answer = self._answer(raw, token)
        except _Fallback:
            answer = None
        except Exception:  # e.g. the database went away: the view answers and reports it
            _log.warning("heartbeat fast path failed; the view answers", exc_info=True)
            answer = None
        if answer is None:
            environ["wsgi.input"] = io.BytesIO(raw)
            return self.inner(environ, start_response)
        return self._respond(environ, start_response, answer, token, started)

    @contextmanager
    def _connection(self, engine: Engine) -> Iterator[Connection]:
        """A connection for one transaction, rolled back unless committed.

        On PostgreSQL each thread keeps its connection between requests: the pool pings
        every connection it hands out (``pool_pre_ping``), one more round trip per
        heartbeat. A connection that fails is dropped (closed); the view, which answers
        then, gets a pinged one from the pool, and so does the next heartbeat.
        """
        if engine.dialect.name != "postgresql":
            with engine.connect() as connection:
                yield connection
            return
        thread = threading.get_ident()
        held = self._held.get(thread)
        if held is None or held.engine is not engine or held.invalidated:
            self._drop(thread)
            held = engine.connect()
            if not self._held:
                event.listen(engine, "engine_disposed", self._drop_all, once=True)
            self._held[thread] = held
        try:
            yield held
        except _Fallback:
            held.rollback()
            raise
        except BaseException:
            self._drop(thread)
            raise
        if held.in_transaction():
            held.rollback()

    def _drop(self, thread: int, *, invalidate: bool = False) -> None:
        connection = self._held.pop(thread, None)
        if connection is None:
            return
        try:
            if invalidate:  # the pool it came from was disposed: really close it
                connection.invalidate()
            connection.close()
        except Exception:  # already broken: closing it is all that is left to do
            _log.debug("closing a heartbeat connection failed", exc_info=True)

    def _drop_all(self, _engine: Engine) -> None:
        for thread in list(self._held):
            self._drop(thread, invalidate=True)

    # --- what qualifies -------------------------------------------------------------

    def _token(self, environ: dict[str, Any]) -> ApiToken | None:
        """The caller's token when it is cached, usable for heartbeats and needs no touch."""
        return usable_cached(self.app, environ.get("HTTP_AUTHORIZATION", ""), SCOPE)

    def _body(self, environ: dict[str, Any]) -> bytes | None:
        """The JSON body, read, when nothing about the request is unusual; else None (and
        the body is left unread)."""
        if environ.get("QUERY_STRING") or "HTTP_TRANSFER_ENCODING" in environ:
            return None
        mimetype = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
        if mimetype != "application/json":
            return None
        length = environ.get("CONTENT_LENGTH", "")
        limit = self.app.config.get("MAX_CONTENT_LENGTH")
        if not length.isdigit() or not 0 < int(length) <= (limit or int(length)):
            return None
        raw: bytes = environ["wsgi.input"].read(int(length))
        return raw

    # --- the answer -----------------------------------------------------------------

    def _answer(self, raw: bytes, token: ApiToken) -> dict[str, object] | None:
        if b"\\u0000" in raw:  # service.security refuses NUL characters
            return None
        try:
            items = heartbeats.items_of(raw)
        except heartbeats.BadBody:
            return None
        beats = [item for item in items if isinstance(item, dict)]
        if len(beats) != len(items):
            return None
        apps = services.known_apps.cached(b["app"] for b in beats if isinstance(b.get("app"), str))
        if apps is None:
            return None
        ids = services.ingest_ids(self.app)
        limit = self.app.config["RELGOV_SETTINGS"].heartbeat_rate_limit
        queue = queue_of(self.app)
        if queue is not None:
            queued = self._queued(queue, items, apps, ids, token.id or 0, limit)
            if queued is not None:
                return queued
        engine: Engine = self.app.extensions["relgov.engine"]
        with self._connection(engine) as connection:
            try:
                accepted = heartbeats.accept(
                    cast(Session, _Connected(connection)),
                    items,
                    apps=apps,
                    ids=ids,
                    token_id=token.id or 0,
                    limit=limit,
                    every_item_valid=True,
                )
            except heartbeats.Uncommon:
                raise _Fallback from None
            connection.commit()
        heartbeat_metrics.ACCEPTED.inc(accepted.result.accepted)
        return accepted.result.as_dict()

    def _queued(
        self,
        queue: HeartbeatQueue,
        items: list[object],
        apps: frozenset[str],
        ids: services.IngestIds,
        token_id: int,
        limit: int,
    ) -> dict[str, object] | None:
        """The answer when the heartbeats were queued (:mod:`service.adoption.queue`); None
        when this request writes them itself: it is a batch of its own (``QUEUED_ITEMS`` or
        more), the store cache is cold or misses one of them, an item is invalid, the token
        may be near its limit, or the queue is full."""
        version = ids.version
        if version is None or len(items) >= QUEUED_ITEMS:
            return None
        valid, rejected = validate_batch(
            items, known_apps=apps, stores=ids.stores, now=services.now_naive()
        )
        if rejected:
            return None
        window = ratelimit.window_of(time.time())
        if limit > 0 and not queue.within_limit(token_id, window, len(valid), limit):
            return None
        if not queue.offer(valid, token_id=token_id, window=window, fleet_version=version):
            return None
        heartbeat_metrics.ACCEPTED.inc(len(valid))
        return {"accepted": len(valid), "rejected": [], "queued": len(valid)}

    def _respond(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        answer: dict[str, object],
        token: ApiToken,
        started: float,
    ) -> Iterable[bytes]:
        request_id = logs.request_id_of(environ)
        body = json_text(answer).encode()
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            (logs.HEADER, request_id),
            *self._headers,
        ]
        queued = "queued" in answer
        metrics.observe(ENDPOINT, "POST", 202 if queued else 200, started)
        logs.log_request(
            {"request_started": started, "api_token": token},
            _Logged(environ),
            _Logged.ACCEPTED if queued else _Logged.OK,
            request_id,
        )
        start_response("202 Accepted" if queued else "200 OK", headers)
        if queued:
            queue = queue_of(self.app)
            if queue is not None:
                return _ThenWrite(body, queue)
        return [body]


class _ThenWrite(list[bytes]):
    """The body of a queued answer: once the server has sent it, it calls ``close()`` (WSGI),
    and this thread writes what the queue holds when that is due."""

    def __init__(self, body: bytes, queue: HeartbeatQueue) -> None:
        super().__init__([body])
        self._queue = queue

    def close(self) -> None:
        self._queue.after_response()


class _Logged:
    """What the access log line reads of a request and its response."""

    OK: Any = None  # set below: a response with status 200
    ACCEPTED: Any = None  # and 202
    method = "POST"
    path = PATH
    endpoint = ENDPOINT

    def __init__(self, environ: dict[str, Any]) -> None:
        self.remote_addr = environ.get("REMOTE_ADDR")


class _Status:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


_Logged.OK = _Status(200)
_Logged.ACCEPTED = _Status(202)


def install(app: Flask) -> None:
    """Put the fast path in front of the Flask app (inside ``ProxyFix`` when there is one,
    so the client's address is the one the proxies saw)."""
    outer = app.wsgi_app
    if isinstance(outer, ProxyFix):
        outer.app = HeartbeatFastPath(app, outer.app)
    else:
        app.wsgi_app = HeartbeatFastPath(app, outer)  # type: ignore[method-assign]
