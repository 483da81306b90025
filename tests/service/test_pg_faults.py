"""PostgreSQL under faults, end to end: the service under gunicorn with its production
configuration and ``relgov worker`` processes on a PostgreSQL database of the test's own,
with heartbeats sent all along.

- A web worker and a job worker SIGKILLed under load: every heartbeat answered 200 or 202
  is stored, and the job the killed worker held is taken over and done once.
- The PostgreSQL server restarted under heartbeat load (``pg_ctlcluster VERSION NAME
  restart``): while it is down the service answers a clear 503 (``database_unavailable``,
  ``Retry-After``), it recovers without a restart of its own, and no answered heartbeat is
  lost.

They run only with ``RELGOV_TEST_DATABASE_URL`` (what ``.ci/run`` sets for its second run);
the restart also needs the URL's server to be a local cluster this process may restart
(root, ``pg_ctlcluster``), and skips with the reason otherwise, or fails with
``RELGOV_TEST_REQUIRE_PG_RESTART`` set (``.ci/run`` sets it: CI cannot skip it quietly).
The restart briefly breaks every other client of that server; the test starts the cluster
again whatever happens.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from service.jobs.models import Job
from tests import builders
from tests.conftest import PG_URL
from tests.fakes.notion_fake import Fault, NotionFake
from tests.fakes.notion_fixtures import fake_publisher
from tests.live_server import (
    Gunicorn,
    HeartbeatLoad,
    Probe,
    all_stored,
    production_env,
    relgov_worker,
    wait_for,
)
from tests.service.adoption.conftest import make_app, make_fleet
from tests.service.publishing.conftest import approve, make_release

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason="needs RELGOV_TEST_DATABASE_URL (PostgreSQL)"),
]

STORES = ["S001", "S002", "S003", "S004", "S005", "S006"]
LONG_NOTE = "# 3.12.0\n\n## Fixes\n\n" + "".join(
    f"- Fix number {n} keeps the receipts right\n" for n in range(1, 181)
)


@pytest.fixture
def token(session: Session, admin: builders.User) -> str:
    make_app(session, "pos")
    make_fleet(session, stores=len(STORES), beta=2)
    return builders.make_token(session, creator=admin, scopes=["heartbeats:write"], name="fleet")


@pytest.fixture
def notion() -> Iterator[NotionFake]:
    with NotionFake() as fake:
        with fake_publisher(fake) as publisher:
            assert publisher.init_schema().ok
        fake.reset_requests()
        yield fake


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return production_env(database_url, tmp_path)


@pytest.fixture
def server(env: dict[str, str], tmp_path: Path) -> Iterator[Gunicorn]:
    web = Gunicorn(env, tmp_path)
    try:
        yield web
    finally:
        web.stop()


@pytest.fixture
def job_workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)


def test_a_web_worker_and_a_job_worker_killed_under_load_lose_nothing(
    server, env, token, session, notion, job_workers, database_url, tmp_path
):
    worker_env = env | {
        "RELGOV_JOB_LEASE_SECONDS": "2",
        "RELGOV_BASE_URL": "https://relgov.example.com",
        "NOTION_TOKEN": notion.token,
        "NOTION_DATABASE_ID": notion.database_id,
        "NOTION_BASE_URL": notion.base_url,
    }
    release = make_release(session, markdown=LONG_NOTE)
    # The first block append is held after Notion applied it: a job worker is mid-publish.
    notion.inject(Fault.slow(120, apply=True, method="PATCH", path=r"/v1/blocks/.+/children"))
    for n in (1, 2):  # they start while gunicorn does
        job_workers.append(relgov_worker(worker_env, tmp_path / f"worker{n}.log"))
    server.start()
    with HeartbeatLoad(server.port, token, STORES) as load:
        wait_for(lambda: load.count >= 100, 30, "100 answered heartbeats")
        approve(session, release)
        [job] = session.exec(select(Job).where(Job.key == f"release:{release.id}")).all()
        wait_for(
            lambda: any(r.fault == "slow" for r in list(notion.requests)), 60, "the held append"
        )
        session.expire_all()
        holder = session.get(Job, job.id)
        assert holder is not None and holder.state == "running" and holder.locked_by
        [busy] = [w for w in job_workers if str(w.pid) in holder.locked_by]
        server.kill_worker()
        busy.send_signal(signal.SIGKILL)
        assert busy.wait(timeout=10) == -signal.SIGKILL
        answered_at_kill = load.count
        wait_for(lambda: load.count >= answered_at_kill + 200, 30, "200 more answered heartbeats")

        def finished() -> Job | None:
            session.expire_all()
            current = session.get(Job, job.id)
            return current if current and current.state in ("succeeded", "failed") else None

        # The other job worker takes the job over once the killed one's lease (2 s) is out.
        done = wait_for(finished, 60, "the other job worker to finish the publish job")
    assert done.state == "succeeded" and done.attempts == 2, done.last_error
    [page] = notion.live_pages()
    bullets = [
        "".join(part["plain_text"] for part in block["bulleted_list_item"]["rich_text"])
        for block in notion.block_tree(page["id"])
        if block["type"] == "bulleted_list_item"
    ]
    assert bullets == [f"Fix number {n} keeps the receipts right" for n in range(1, 181)]
    assert set(load.statuses) <= {200, 202}, (load.statuses, load.refusals)
    missing = all_stored(database_url, load.answered, timeout=30)
    assert missing == [], f"{len(missing)} of {load.count} answered heartbeats were lost"


# --- the PostgreSQL restart ------------------------------------------------------------


def _local_cluster() -> tuple[str, str] | str:
    """(version, name) of the local cluster serving ``PG_URL`` when this process may
    restart it, else why not."""
    if not PG_URL:
        return "needs RELGOV_TEST_DATABASE_URL (PostgreSQL)"
    url = make_url(PG_URL)
    if url.host not in ("127.0.0.1", "localhost", "::1"):
        return f"the test server {url.host} is not on this machine"
    if not shutil.which("pg_ctlcluster") or not shutil.which("pg_lsclusters"):
        return "pg_ctlcluster / pg_lsclusters (Debian's postgresql-common) not installed"
    if os.geteuid() != 0:
        return "restarting the PostgreSQL cluster needs root (pg_ctlcluster)"
    listed = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=False)
    for line in listed.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] == str(url.port or 5432) and fields[3] == "online":
            return fields[0], fields[1]
    return f"no online local cluster listens on port {url.port or 5432} (pg_lsclusters)"


def _ready(port: int) -> bool:
    command = ["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port)]
    return subprocess.run(command, check=False).returncode == 0


@pytest.fixture
def cluster() -> Iterator[tuple[str, str]]:
    """The local cluster, running again after the test whatever happened."""
    found = _local_cluster()
    if isinstance(found, str):
        if os.environ.get("RELGOV_TEST_REQUIRE_PG_RESTART"):  # .ci/run: never skipped there
            pytest.fail(f"RELGOV_TEST_REQUIRE_PG_RESTART is set but: {found}")
        pytest.skip(f"cannot restart PostgreSQL here: {found}")
    port = make_url(PG_URL).port or 5432
    try:
        yield found
    finally:
        if not _ready(port):
            subprocess.run(["pg_ctlcluster", *found, "start"], check=False, timeout=120)
        wait_for(lambda: _ready(port), 60, "PostgreSQL to accept connections again", every=0.2)


@pytest.mark.pg_restart
def test_a_postgresql_restart_under_heartbeat_load_is_a_clear_503_then_recovers_losing_nothing(
    server, token, cluster, database_url
):
    server.start()
    pids = sorted(server.workers())
    singles = HeartbeatLoad(server.port, token, STORES, threads=3, prefix="single")
    # Batches of 100 or more are written by their request: they meet the outage.
    batches = HeartbeatLoad(server.port, token, STORES, threads=1, batch=100, prefix="batch")
    with singles, batches, Probe(server, "/healthz") as health:
        wait_for(lambda: singles.count >= 200 and batches.count >= 300, 30, "heartbeats")
        restart = subprocess.run(
            ["pg_ctlcluster", *cluster, "restart"], capture_output=True, text=True, timeout=120
        )
        assert restart.returncode == 0, restart.stderr
        restarted = time.monotonic()
        # Back on their own: the same processes answer again once the server is up.
        wait_for(lambda: health.statuses(restarted)[200] >= 3, 30, "/healthz to answer 200")
        counts = singles.count, batches.count
        wait_for(
            lambda: singles.count > counts[0] + 100 and batches.count > counts[1] + 300,
            30,
            "heartbeats answered after the restart",
        )
    assert sorted(server.workers()) == pids, "a web worker was replaced"
    assert health.statuses()[503] > 0, "the outage was never seen"
    assert set(health.statuses()) <= {200, 503}, health.statuses()
    for load in (singles, batches):
        assert set(load.statuses) <= {200, 202, 503}, (load.statuses, load.refusals)
        assert load.unanswered == 0
        for status, retry_after, body in load.refusals:
            assert status == 503 and retry_after == "5", (status, body)
            assert json.loads(body)["error"]["code"] == "database_unavailable", body
    assert batches.statuses[503] > 0, "no write met the outage"
    answered = singles.answered | batches.answered
    missing = all_stored(database_url, answered, timeout=30)
    assert missing == [], f"{len(missing)} of {len(answered)} answered heartbeats were lost"
    # The queued heartbeats' writers pause between attempts (doubling up to 5 s) instead of
    # every request trying, and logging, a write while the server is down.
    failed_writes = server.log().count("writing queued heartbeats failed")
    assert failed_writes <= 20, failed_writes
