"""gunicorn settings for the service: ``gunicorn -c python:service.ops.gunicorn_conf wsgi:app``.

Every value can still be overridden on the command line or with ``GUNICORN_CMD_ARGS``.
With ``PROMETHEUS_MULTIPROC_DIR`` set (an empty folder, emptied at each start), each worker
writes its metrics there and ``/metrics`` sums them; a worker that exits is marked dead so
its live gauges drop out.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import multiprocess

from service.settings import Settings

# RELGOV_BIND, WEB_CONCURRENCY, FORWARDED_ALLOW_IPS, PROMETHEUS_MULTIPROC_DIR (the README).
_settings = Settings.from_env()
bind = _settings.bind
workers = _settings.web_concurrency
# The service logs each request itself (JSON with the request id); gunicorn's access log
# would repeat it.
accesslog = None
errorlog = "-"
# Behind a reverse proxy that sets X-Forwarded-For / -Proto; list its address here.
forwarded_allow_ips = _settings.forwarded_allow_ips
timeout = 60
graceful_timeout = 30


def child_exit(_server: Any, worker: Any) -> None:
    if _settings.metrics_dir:
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
