"""Faults: the database going away (503, then recovery without a restart); whole-or-nothing
sign-offs and approvals.

The outage test starts its own PostgreSQL cluster (initdb + pg_ctl into a temporary folder,
on a free port) and stops it; it never touches the shared server. It is skipped where the
PostgreSQL server binaries are not installed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool
from sqlmodel import Session

from service import db, migrate
from service.app import create_app
from service.settings import Settings
from tests import builders

PG_BIN = Path(os.environ.get("RELGOV_PG_BIN", "/usr/lib/postgresql/15/bin"))


class PrivatePostgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1:<free port>, run as a non-root user."""

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists() or not (PG_BIN / "pg_ctl").exists():
            pytest.skip(f"PostgreSQL server binaries not found in {PG_BIN} (set RELGOV_PG_BIN)")
        self.folder = Path(tempfile.mkdtemp(prefix="relgov-pg-"))
        self.data = self.folder / "data"
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            # initdb refuses to run as root: run the cluster as the postgres user.
            try:
                shutil.chown(self.folder, user="postgres", group="postgres")
            except (LookupError, OSError) as exc:
                pytest.skip(f"running as root and no usable postgres user: {exc}")
            self.prefix = ["runuser", "-u", "postgres", "--"]
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self._run("initdb", "-D", str(self.data), "-U", "relgov", "--auth=trust", "--no-sync")
        self.url = f"postgresql+psycopg://relgov@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self.prefix, str(PG_BIN / tool), *args], check=True, capture_output=True, timeout=120
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.folder / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


def _until(check, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_database_outage_is_503_json_then_recovers_without_restart(private_postgres, tmp_path):
    engine = db.make_engine(private_postgres.url)
    migrate.upgrade(engine)
    engine.dispose()
    settings = Settings(
        env="test",
        instance_path=tmp_path / "instance",
        database_url=private_postgres.url,
        secret_key="test-secret-key-that-is-long-enough-0123456789",
        repo_cache=tmp_path / "repos",
    )
    app = create_app(settings)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # what production does with an unexpected error
    setup = create_engine(private_postgres.url, poolclass=NullPool)
    with Session(setup) as session:
        admin = builders.make_user(session, email="admin@example.com", role="admin")
        token = builders.make_token(session, creator=admin, scopes=["read"])
    setup.dispose()
    api = {"Authorization": f"Bearer {token}"}
    people = app.test_client()
    assert builders.login(people, "admin@example.com").status_code == 302
    anyone = app.test_client()

    assert anyone.get("/healthz").status_code == 200
    assert anyone.get("/api/v1/releases", headers=api).status_code == 200
    assert people.get("/").status_code == 200

    private_postgres.stop()
    try:
        health = anyone.get("/healthz")
        assert health.status_code == 503 and health.json["status"] == "error"
        assert health.headers["Retry-After"]
        down = anyone.get("/api/v1/releases", headers=api)
        assert down.status_code == 503, down.get_data(as_text=True)
        assert down.json["error"]["code"] == "database_unavailable"
        assert down.headers["Retry-After"] == "5"
        assert down.headers["X-Request-ID"]
        page = people.get("/")
        assert page.status_code == 503
        assert page.mimetype == "text/html"
        assert "cannot be reached" in page.get_data(as_text=True)
        assert "relgov_up" in anyone.get("/metrics").get_data(as_text=True)
    finally:
        private_postgres.start()

    # The same app, no restart: stale pooled connections are replaced on first use.
    assert _until(lambda: anyone.get("/healthz").status_code == 200)
    assert anyone.get("/api/v1/releases", headers=api).status_code == 200
    assert people.get("/").status_code == 200
    app.extensions["relgov.engine"].dispose()
