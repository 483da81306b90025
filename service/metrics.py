"""``/metrics`` (Prometheus text format) and ``/healthz``.

Under gunicorn with several workers set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder;
each worker then writes its samples there and a scrape of any worker sums them all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any
from wsgiref.simple_server import WSGIServer

from flask import Blueprint, Flask, Response, current_app, g, request
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
from sqlalchemy import text

from service import db

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


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    started = time.perf_counter()
    try:
        with db.engine().connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to reach the database means unhealthy
        body = {"status": "error", "database": "unreachable", "detail": type(exc).__name__}
        return body, 503, {"Retry-After": "5"}
    elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
    return {"status": "ok", "database": "ok", "database_ms": elapsed_ms}, 200
