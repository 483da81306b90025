"""``/metrics`` (Prometheus text format) and ``/healthz``.

Under gunicorn with several workers set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder;
each worker then writes its samples there and a scrape of any worker sums them all.

``/healthz`` also checks that the database can still write (:func:`check_writes`): a
probe write that is rolled back, and whether a write of this process failed for lack of
space within the last minute. ``relgov_database_writable`` shows the same answer.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

from flask import Blueprint, Flask, Response, current_app, g, has_app_context, request
from flask.typing import ResponseReturnValue
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from sqlalchemy import Connection, text

from service import db
from service.models import HealthProbe

bp = Blueprint("ops", __name__)
_log = logging.getLogger(__name__)

REQUESTS = Counter(
    "relgov_http_requests_total",
    "HTTP requests by endpoint name, method and status class (2xx, 4xx, ...)",
    ["endpoint", "method", "status"],
)
LATENCY = Histogram(
    "relgov_http_request_duration_seconds",
    "HTTP request latency by endpoint name and method",
    ["endpoint", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
INFO = Gauge("relgov_up", "1 while the service answers", multiprocess_mode="max")
DISK_FULL_ERRORS = Counter(
    "relgov_database_disk_full_errors_total",
    "Writes of this process (requests, jobs) refused because the disk is full (SQLite "
    "SQLITE_FULL, PostgreSQL disk_full 53100, ENOSPC)",
)
WRITABLE = Gauge(
    "relgov_database_writable",
    "1 when the database takes a probe write and no write of this process failed for lack "
    "of space within the last minute, else 0 (checked by /healthz and each /metrics scrape)",
    multiprocess_mode="livemostrecent",
)
# Gauges that features set from the database when /metrics is scraped (service/wiring.py
# names them). Under gunicorn only the scraped worker runs them, so such gauges use
# multiprocess_mode="livemostrecent" or "mostrecent".
Collector = Callable[[], None]
_COLLECTORS_KEY = "relgov.gauge_collectors"


def init_app(app: Flask) -> None:
    app.before_request(_start_timer)
    app.after_request(_count)
    app.register_blueprint(bp)
    app.extensions.setdefault(_COLLECTORS_KEY, ())
    INFO.set(1)


def collect_on_scrape(app: Flask, collectors: Sequence[Collector]) -> None:
    """The functions that set ``app``'s database gauges when ``/metrics`` is scraped."""
    app.extensions[_COLLECTORS_KEY] = tuple(collectors)


def _start_timer() -> None:
    g.request_started = time.perf_counter()


# The labelled children per (endpoint, method, status): resolving labels takes a lock and
# builds a key on every call; the set of combinations is small and fixed per route.
_CHILDREN: dict[tuple[str | None, str, int], tuple[Any, Any]] = {}
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _count(response: Response) -> Response:
    started = g.get("request_started")
    if started is None:
        return response
    observe(request.endpoint, request.method, response.status_code, started)
    return response


def observe(endpoint: str | None, method: str, status_code: int, started: float) -> None:
    """Count a request and its latency since ``started`` (``time.perf_counter()``)."""
    key = (endpoint, method, status_code)
    children = _CHILDREN.get(key)
    if children is None:
        if method not in _METHODS:  # a made-up method must not add label values
            key = (endpoint, "other", status_code)
        label, method = key[0] or "unmatched", key[1]
        status = f"{status_code // 100}xx"
        children = _CHILDREN.setdefault(
            key, (REQUESTS.labels(label, method, status), LATENCY.labels(label, method))
        )
    children[0].inc()
    children[1].observe(time.perf_counter() - started)


def serve(registry: CollectorRegistry, address: str, port: int) -> WSGIServer:
    """Serve ``registry`` as Prometheus text on ``address:port`` from a daemon thread, for a
    process without a web app (``relgov worker``). ``port`` 0 takes any free port (the
    server's ``server_port``). Stop it with ``shutdown()`` then ``server_close()``."""
    server, _thread = start_http_server(port, addr=address, registry=registry)
    return server


@bp.get("/metrics")
def metrics() -> Response:
    for collect in current_app.extensions[_COLLECTORS_KEY]:
        try:
            collect()
        except Exception:  # e.g. the database is down: still answer with what this process has
            _log.warning("metrics collector %s failed", collect.__qualname__, exc_info=True)
    if current_app.config["RELGOV_SETTINGS"].metrics_dir:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        payload = generate_latest(registry)
    else:
        payload = generate_latest()
    return Response(payload, mimetype=CONTENT_TYPE_LATEST)


# --- can the database write? -----------------------------------------------------------------

# A write that failed for lack of space keeps /healthz degraded this long after it.
DISK_FULL_WINDOW_SECONDS = 60.0
_DISK_FULL_AT = "relgov.disk_full_at"
# Larger than a page (SQLite's are 4 KiB): the probe row needs pages of its own, so a
# database that cannot grow refuses it, not only one that cannot write at all.
PROBE_PAYLOAD = bytes(6000)
PROBE_TIMEOUT_MS = 2000
SQLITE_BUSY_TIMEOUT_MS = 30000  # the engine's own (service/db.py), put back after the probe
DETAILS = {
    "disk_full": "the database's disk is full: nothing can be saved until space is freed",
    "read_only": "the database is read-only: nothing can be saved",
    "not_writable": "the database refused a write",
}


def note_disk_full() -> None:
    """Count a request or job that failed because the disk is full; /healthz then says so."""
    DISK_FULL_ERRORS.inc()
    if has_app_context():
        current_app.extensions[_DISK_FULL_AT] = time.monotonic()


@dataclass(frozen=True)
class WriteCheck:
    state: str  # ok | busy (no answer within the probe's timeout) | disk_full | read_only | ...
    detail: str = ""

    @property
    def writable(self) -> bool:
        return self.state in ("ok", "busy")


def check_writes(conn: Connection) -> WriteCheck:
    """Whether the database can write, on ``conn`` (no transaction open): a probe row
    inserted into ``health_probe`` and rolled back (nothing is left behind; on SQLite it
    needs new pages, on PostgreSQL it meets a read-only server), and no write of this
    process refused for lack of space in the last :data:`DISK_FULL_WINDOW_SECONDS` (a full
    disk often fails only at commit, which a rolled-back probe never reaches). Sets
    ``relgov_database_writable``."""
    try:
        _probe(conn)
        check = WriteCheck("ok")
    except Exception as exc:  # the state says which failure; anything else is not writable
        state = db.write_failure(exc) or "not_writable"
        check = WriteCheck(state, "" if state == "busy" else f"{DETAILS[state]} ({_name(exc)})")
    seen = current_app.extensions.get(_DISK_FULL_AT)
    if check.writable and seen is not None:
        ago = time.monotonic() - seen
        if ago < DISK_FULL_WINDOW_SECONDS:
            detail = f"{DETAILS['disk_full']} (a write failed for lack of space {ago:.0f} s ago)"
            check = WriteCheck("disk_full", detail)
    if check.state != "busy":  # busy says nothing either way: keep the last answer
        WRITABLE.set(1 if check.writable else 0)
    return check


def _name(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return type(orig or exc).__name__


def _probe(conn: Connection) -> None:
    sqlite = conn.dialect.name == "sqlite"
    # Set on the driver's connection: a statement through SQLAlchemy would begin.
    raw: Any = conn.connection.dbapi_connection
    if sqlite:
        raw.execute(f"PRAGMA busy_timeout = {PROBE_TIMEOUT_MS}")
    try:
        with conn.begin() as transaction:
            if not sqlite:
                conn.execute(_PG_TIMEOUTS, {"ms": str(PROBE_TIMEOUT_MS)})
            row = {"id": random.randrange(1, 2**31), "payload": PROBE_PAYLOAD}
            conn.execute(HealthProbe.__table__.insert().values(**row))  # type: ignore[attr-defined]
            transaction.rollback()
    finally:
        if sqlite:
            raw.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")


# For this transaction only; one round trip.
_PG_TIMEOUTS = text(
    "SELECT set_config('lock_timeout', :ms, true), set_config('statement_timeout', :ms, true)"
)


def collect_database_writable() -> None:
    """A ``/metrics`` collector: ``relgov_database_writable`` (see :func:`check_writes`)."""
    try:
        conn = db.engine().connect()
    except Exception:
        WRITABLE.set(0)  # cannot even connect
        raise
    with conn:
        check_writes(conn)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        try:
            conn = stack.enter_context(db.engine().connect())
            conn.execute(text("SELECT 1"))
            conn.rollback()
        except Exception as exc:  # any failure to reach the database means unhealthy
            body = {"status": "error", "database": "unreachable", "detail": type(exc).__name__}
            return body, 503, {"Retry-After": "5"}
        elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
        writes = check_writes(conn)
    if not writes.writable:
        # Degraded: reads work, writes do not. Not a Retry-After: it needs an operator.
        body = {"status": "degraded", "database": writes.state, "writes": writes.state}
        return {**body, "detail": writes.detail, "database_ms": elapsed_ms}, 503
    ok = {"status": "ok", "database": "ok", "writes": writes.state, "database_ms": elapsed_ms}
    return ok, 200
