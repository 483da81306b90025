"""gunicorn settings for the service: ``gunicorn -c python:service.ops.gunicorn_conf wsgi:app``.

Every value can still be overridden on the command line or with ``GUNICORN_CMD_ARGS``.
With ``PROMETHEUS_MULTIPROC_DIR`` set (an empty folder, emptied at each start), each worker
writes its metrics there and ``/metrics`` sums them; a worker that exits is marked dead so
its live gauges drop out.
"""

from __future__ import annotations

import os
from typing import Any

bind = os.environ.get("RELGOV_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
# The service logs each request itself (JSON with the request id); gunicorn's access log
# would repeat it.
accesslog = None
errorlog = "-"
# Behind a reverse proxy that sets X-Forwarded-For / -Proto; list its address here.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
timeout = 60
graceful_timeout = 30


def child_exit(_server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
