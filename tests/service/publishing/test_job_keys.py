"""One running job per key: a dead worker's job taken over and the job queued for its key
meanwhile never run together, and the database refuses a second running job of a key.

The race needs PostgreSQL's concurrent claims (``SKIP LOCKED``) to happen; on SQLite the
claims are serialized by the write lock and the test checks the same outcome in sequence.
Run it on both (``RELGOV_TEST_DATABASE_URL``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from service import db, jobs, migrate
from service.jobs.models import Job
from service.models import utcnow
from tests.conftest import PG_URL, pg_database
from tests.service.publishing.conftest import later

KIND = "test_slow_keyed"
_lock = threading.Lock()
_active: dict[str, set[int]] = {}
_overlaps: list[list[int]] = []
_started: list[tuple[int, str]] = []  # (job id, worker id), in the order handlers started
_release = threading.Event()


def _slow(ctx: jobs.JobContext) -> str:
    """A slowed worker: holds its job until the test lets it go, noting who runs alongside."""
    key, job_id = ctx.job.key or "", ctx.job.id or 0
    with _lock:
        _active.setdefault(key, set()).add(job_id)
        if len(_active[key]) > 1:
            _overlaps.append(sorted(_active[key]))
        _started.append((job_id, ctx.worker_id))
    try:
        _release.wait(timeout=60)
    finally:
        with _lock:
            _active[key].discard(job_id)
    return "done"


@pytest.fixture(autouse=True)
def _kind(app) -> Iterator[None]:
    _active.clear()
    _overlaps.clear()
    _started.clear()
    _release.clear()
    jobs.kinds_of(app).handler(KIND, _slow)
    yield
    _release.set()


def _wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
    return value


def _started_by(worker_id: str) -> bool:
    with _lock:
        return any(worker == worker_id for _, worker in _started)


def _running(session: Session, key: str) -> list[int]:
    session.expire_all()
    stmt = select(Job.id).where(Job.key == key, Job.state == "running").order_by(col(Job.id))
    return [job_id for job_id in session.exec(stmt).all() if job_id is not None]


def test_a_taken_over_job_and_the_job_queued_for_its_key_never_run_together(app, session):
    """A worker died running ``release:1``; work for the key was queued meanwhile. Once the
    lease has run out, worker 1 takes the dead worker's job over while worker 2 polls at the
    same moment: worker 2 must not start the queued job, which runs after the other ends."""
    key = "release:1"
    with app.app_context(), db.session_scope() as s:
        dead = jobs.enqueue(s, KIND, key=key)
    with app.app_context(), db.session_scope() as s:
        assert jobs.claim(s, "dead-worker").id == dead.id  # and its worker never comes back
    with app.app_context(), db.session_scope() as s:
        queued = jobs.enqueue(s, KIND, key=key)
    assert queued.id != dead.id
    takeover = later(jobs.LEASE.total_seconds() + 60)

    engine = app.extensions["relgov.engine"]
    postgres = engine.dialect.name == "postgresql"
    # Worker 1 is slowed between choosing the dead worker's job (locked FOR UPDATE on
    # PostgreSQL) and claiming it, so worker 2's claim runs inside that window. SQLite
    # serializes the two claims on its write lock: there worker 1 is not held.
    chosen, go = threading.Event(), threading.Event()

    def hold_worker_1(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if (
            postgres
            and threading.current_thread().name == "w1"
            and statement.startswith("UPDATE job SET state")
            and not chosen.is_set()
        ):
            chosen.set()
            go.wait(timeout=30)

    results: dict[str, Job | None] = {}

    def work(worker_id: str) -> None:
        results[worker_id] = jobs.run_once(app, worker_id=worker_id, now=takeover)

    event.listen(engine, "before_cursor_execute", hold_worker_1)
    w1 = threading.Thread(target=work, args=("w1",), name="w1")
    w2 = threading.Thread(target=work, args=("w2",), name="w2")
    try:
        w1.start()
        if postgres:
            _wait_for(chosen.is_set, "worker 1 to choose the dead worker's job")
        else:
            _wait_for(lambda: _started_by("w1"), "worker 1 to take the job over")
        w2.start()
        _wait_for(lambda: not w2.is_alive() or _started_by("w2"), "worker 2's claim")
        go.set()
        _wait_for(lambda: not w1.is_alive() or _started_by("w1"), "worker 1's claim")

        assert _running(session, key) == [dead.id]
        assert [job_id for job_id, _ in _started] == [dead.id]
        assert results.get("w2", "running") is None  # worker 2 found nothing it may run
    finally:
        go.set()
        _release.set()
        w1.join(timeout=30)
        w2.join(timeout=30)
        event.remove(engine, "before_cursor_execute", hold_worker_1)

    assert results["w1"] is not None and results["w1"].id == dead.id
    assert results["w1"].state == "succeeded" and results["w1"].attempts == 2
    after = jobs.run_once(app, worker_id="w2", now=takeover)
    assert after is not None and after.id == queued.id and after.state == "succeeded"
    assert [job_id for job_id, _ in _started] == [dead.id, queued.id]
    assert _overlaps == []


def test_the_database_refuses_a_second_running_job_for_a_key(session):
    lease = utcnow() + timedelta(minutes=10)

    def running(key: str | None, worker: str) -> Job:
        return Job(kind=KIND, key=key, state="running", locked_by=worker, locked_until=lease)

    session.add(running("release:9", "w1"))
    session.commit()
    session.add(running("release:9", "w2"))
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()
    # Other keys and keyless jobs run side by side; finished jobs of the key do not count.
    session.add_all([running("release:10", "w3"), running(None, "w4"), running(None, "w5")])
    session.add(Job(kind=KIND, key="release:9", state="succeeded"))
    session.commit()


@pytest.fixture
def fresh_database_url(tmp_path) -> Iterator[str]:
    if not PG_URL:
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    with pg_database(f"relgov_job_keys_{os.getpid()}") as url:
        yield url


def test_upgrading_to_0005_leaves_one_running_job_per_key(fresh_database_url):
    """Jobs two workers ran at once before 0005: the oldest keeps running, the newest goes
    back to the queue, any other is cancelled; other keys are left alone."""
    from alembic import command

    engine = db.make_engine(fresh_database_url)
    migrate.upgrade(engine, "0003")
    lease = utcnow() + timedelta(minutes=10)
    with Session(engine) as s:
        for worker, key in [("a", "k"), ("b", "k"), ("c", "k"), ("d", "other"), ("e", None)]:
            s.add(Job(kind=KIND, key=key, state="running", locked_by=worker, locked_until=lease))
        s.commit()
    migrate.upgrade(engine)
    assert migrate.pending_differences(engine) == []
    with Session(engine) as s:
        states = {j.locked_by or j.id: j.state for j in s.exec(select(Job)).all()}
    assert states == {"a": "running", 3: "queued", 2: "cancelled", "d": "running", "e": "running"}
    with engine.begin() as connection:
        command.downgrade(migrate.alembic_config(connection=connection), "0003")
    with engine.connect() as connection:
        names = {i["name"] for i in sa.inspect(connection).get_indexes("job")}
    assert "uq_job_running_key" not in names
    engine.dispose()
