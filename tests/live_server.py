"""Real processes for the fault tests: the service under gunicorn with its production
configuration (``service/ops/gunicorn_conf.py``) on loopback, ``relgov worker`` processes,
and heartbeat load sent from threads of the test process.

Nothing here is timed: the tests kill processes while the load runs and then check in the
database that every heartbeat answered 200 or 202 was stored.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SECRET = "test-secret-key-that-is-long-enough-0123456789"
ANSWERED = (200, 202)


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    """``check()``'s first true value; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def production_env(database_url: str, folder: Path, **extra: str) -> dict[str, str]:
    """The environment of a production deployment on ``database_url``, its instance folder
    (and so its heartbeat spool) and metrics folder under ``folder``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RELGOV_", "NOTION_", "PROMETHEUS_", "WEB_CONCURRENCY"))
    }
    env |= {
        "RELGOV_ENV": "production",
        "RELGOV_SECRET_KEY": SECRET,
        "RELGOV_DATABASE_URL": database_url,
        "RELGOV_INSTANCE_PATH": str(folder / "instance"),
        "PROMETHEUS_MULTIPROC_DIR": str(folder / "metrics"),
        "RELGOV_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    return env | extra


class Gunicorn:
    """``gunicorn -c python:service.ops.gunicorn_conf wsgi:app`` with 2 workers on a free
    loopback port, in its own process group; its output goes to ``folder/gunicorn.log``."""

    def __init__(self, env: dict[str, str], folder: Path, workers: int = 2) -> None:
        self.port = free_port()
        self.env = env | {"RELGOV_BIND": f"127.0.0.1:{self.port}", "WEB_CONCURRENCY": str(workers)}
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = folder / "gunicorn.log"

    def start(self, timeout: float = 60) -> None:
        """Start (the metrics folder emptied first, as the README asks) and wait until
        ``/healthz`` answers 200."""
        metrics = Path(self.env["PROMETHEUS_MULTIPROC_DIR"])
        shutil.rmtree(metrics, ignore_errors=True)
        metrics.mkdir(parents=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(BIN / "gunicorn"), "-c", "python:service.ops.gunicorn_conf", "wsgi:app"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(lambda: self.get("/healthz")[0] == 200, timeout, "gunicorn to answer /healthz")

    def get(self, path: str) -> tuple[int, bytes]:
        """A GET on a new connection; (0, b"") when nothing answers."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            return 0, b""
        finally:
            conn.close()

    def workers(self) -> list[int]:
        """The pids of the master's live worker processes."""
        assert self.process is not None
        pid = self.process.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return []
        return [int(child) for child in children]

    def kill_worker(self) -> int:
        """SIGKILL one web worker (gunicorn's master starts another); its pid."""
        victim = self.workers()[0]
        os.kill(victim, signal.SIGKILL)
        return victim

    def kill(self) -> None:
        """SIGKILL the master and every worker at once (a machine's processes lost)."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """A normal stop (SIGTERM); SIGKILL if that takes over 30 s."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class HeartbeatLoad:
    """Threads posting heartbeats back to back until stopped, each from a device never seen
    before (so each one registers a device and writes its first state): ``answered`` maps
    every device whose heartbeat was answered 200 or 202 to its ``sent_at``."""

    def __init__(
        self,
        port: int,
        token: str,
        stores: list[str],
        *,
        threads: int = 4,
        batch: int = 1,
        prefix: str = "load",
    ) -> None:
        self.port, self.token, self.stores = port, token, stores
        self.batch, self.prefix = batch, prefix
        self.answered: dict[str, str] = {}
        self.statuses: Counter[int] = Counter()
        # The first answers of other statuses: (status, Retry-After, body).
        self.refusals: list[tuple[int, str | None, bytes]] = []
        self.unanswered = 0  # requests that got no answer (a worker killed, a reset)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._drive, args=(n,), daemon=True) for n in range(threads)
        ]

    def __enter__(self) -> HeartbeatLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.answered)

    def _drive(self, thread: int) -> None:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"}
        base = datetime.now(UTC) - timedelta(minutes=2)
        n = 0
        while not self._stop.is_set():
            body = []
            for _ in range(self.batch):
                n += 1
                body.append(
                    {
                        "device_id": f"{self.prefix}-{thread}-{n}",
                        "store_id": self.stores[n % len(self.stores)],
                        "app": "pos",
                        "version": f"3.{n % 5}.0",
                        "device_kind": "pos",
                        "sent_at": (base + timedelta(microseconds=n)).isoformat(),
                    }
                )
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                conn.request("POST", "/api/v1/heartbeats", json.dumps(body), headers)
                response = conn.getresponse()
                content = response.read()
                status = response.status
                retry_after = response.getheader("Retry-After")
            except (OSError, http.client.HTTPException):
                with self._lock:
                    self.unanswered += 1
                time.sleep(0.01)
                continue
            finally:
                conn.close()
            with self._lock:
                self.statuses[status] += 1
                if status in ANSWERED:
                    for item in body:
                        self.answered[str(item["device_id"])] = str(item["sent_at"])
                elif len(self.refusals) < 100:
                    self.refusals.append((status, retry_after, content))


class Probe:
    """A thread sending ``GET path`` every ``every`` seconds until stopped: ``seen`` holds
    (time.monotonic(), status), status 0 for no answer."""

    def __init__(self, server: Gunicorn, path: str, every: float = 0.05) -> None:
        self.server, self.path, self.every = server, path, every
        self.seen: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.seen.append((time.monotonic(), self.server.get(self.path)[0]))
            time.sleep(self.every)

    def statuses(self, since: float = 0.0) -> Counter[int]:
        return Counter(status for moment, status in list(self.seen) if moment >= since)


def relgov_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A ``relgov worker`` process (polling every 0.1 s), its output in ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(BIN / "relgov"), "worker", "--poll", "0.1"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def not_stored(database_url: str, answered: dict[str, str]) -> list[str]:
    """The devices of ``answered`` whose stored state is not that heartbeat (sorted)."""
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT device.device_id, device_state.last_sent_at FROM device_state "
                    "JOIN device ON device.id = device_state.device_id "
                    "WHERE device_state.app = 'pos'"
                )
            ).all()
    finally:
        engine.dispose()
    stored = {
        device: (
            moment if isinstance(moment, datetime) else datetime.fromisoformat(moment)
        ).replace(tzinfo=UTC)
        for device, moment in rows
    }
    return sorted(
        device
        for device, moment in answered.items()
        if stored.get(device) != datetime.fromisoformat(moment)
    )


def all_stored(database_url: str, answered: dict[str, str], timeout: float) -> list[str]:
    """Wait up to ``timeout`` s for every answered heartbeat to be stored; those still
    missing then (empty: none lost)."""
    deadline = time.monotonic() + timeout
    while True:
        missing = not_stored(database_url, answered)
        if not missing or time.monotonic() > deadline:
            return missing
        time.sleep(0.25)
