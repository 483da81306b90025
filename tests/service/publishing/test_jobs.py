"""The job queue itself: atomic claims, leases, coalescing, supersession, periodic tasks."""

import threading
import time
from datetime import timedelta

import pytest

from service import db, jobs
from service.jobs.models import Job
from tests.service.publishing.conftest import later

CALLS: list[int] = []


def _count(ctx: jobs.JobContext) -> str:
    CALLS.append(ctx.job.id or 0)
    time.sleep(0.05)  # long enough for the other worker to try the same job
    return "counted"


def _flaky(ctx: jobs.JobContext) -> str:
    raise jobs.RetryJob("try later", retry_after=30)


def _broken(ctx: jobs.JobContext) -> str:
    raise jobs.PermanentJobError("cannot ever work")


@pytest.fixture(autouse=True)
def _kinds(app) -> None:
    CALLS.clear()
    kinds = jobs.kinds_of(app)
    kinds.handler("test_count", _count)
    kinds.handler("test_flaky", _flaky)
    kinds.handler("test_broken", _broken)


def add(app, kind="test_count", key=None, **kwargs) -> Job:
    with app.app_context(), db.session_scope() as session:
        return jobs.enqueue(session, kind, key=key, **kwargs)


def test_two_workers_racing_run_a_job_once(app):
    job = add(app)
    barrier = threading.Barrier(4)
    results: list[Job | None] = []

    def work(n: int) -> None:
        barrier.wait()
        results.append(jobs.run_once(app, worker_id=f"w{n}"))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [job.id] == CALLS
    assert sorted(r.state for r in results if r is not None) == ["succeeded"]


def test_a_crashed_workers_job_is_claimed_again_after_its_lease(app):
    job = add(app)
    with app.app_context(), db.session_scope() as session:
        assert jobs.claim(session, "dead-worker").id == job.id  # and never finishes
    assert jobs.run_once(app, worker_id="w2") is None  # still leased
    done = jobs.run_once(app, worker_id="w2", now=later(jobs.LEASE.total_seconds() + 1))
    assert done.id == job.id and done.state == "succeeded" and done.attempts == 2


def test_a_key_runs_one_job_at_a_time_and_work_queued_meanwhile_follows(app):
    first = add(app, key="release:1")
    with app.app_context(), db.session_scope() as session:
        assert jobs.claim(session, "w1").id == first.id
    second = add(app, key="release:1")  # enqueued while the first runs: a new job
    assert second.id != first.id
    assert jobs.run_once(app, worker_id="w2") is None  # its key is busy
    with app.app_context(), db.session_scope() as session:
        session.get(Job, first.id).state = "succeeded"
    assert jobs.run_once(app, worker_id="w2").id == second.id


def test_one_queued_job_per_key(app):
    a = add(app, key="release:7", payload={"n": 1})
    b = add(app, key="release:7", payload={"n": 2})
    assert a.id == b.id and b.payload == {"n": 2}
    with app.app_context(), db.session_scope() as session:
        session.add(Job(kind="test_count", key="release:7"))
        with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
            session.flush()
        session.rollback()


def test_retry_honours_retry_after_and_records_the_error(app):
    add(app, kind="test_flaky")
    now = later()
    done = jobs.run_once(app, now=now)
    assert done.state == "queued" and done.attempts == 1 and done.last_error == "try later"
    assert done.next_run_at >= now + timedelta(seconds=30)


def test_permanent_error_fails_at_once(app):
    add(app, kind="test_broken")
    done = jobs.run_once(app)
    assert (done.state, done.attempts, done.last_error) == ("failed", 1, "cannot ever work")


def test_a_failed_attempt_hands_over_to_work_queued_meanwhile(app):
    with app.app_context(), db.session_scope() as session:
        first = jobs.enqueue(session, "test_flaky", key="k")
    with app.app_context(), db.session_scope() as session:
        claimed = jobs.claim(session, "w1")
    second = add(app, kind="test_flaky", key="k")
    with app.app_context():
        outcome = jobs._execute(app, claimed, "w1", None)
    assert outcome.id == first.id and outcome.state == "cancelled"
    with app.app_context(), db.session_scope() as session:
        carried = session.get(Job, second.id)
        assert carried.state == "queued" and carried.attempts == 1
        assert carried.next_run_at >= later(29)


def test_unknown_kind_fails_with_a_message(app):
    add(app, kind="nobody_handles_this")
    done = jobs.run_once(app)
    assert done.state == "failed" and "no handler" in done.last_error


def test_backoff_doubles_with_jitter_and_a_cap():
    assert jobs.backoff_seconds(1, rng=lambda: 0.5) == 15
    assert jobs.backoff_seconds(3, rng=lambda: 0.5) == 60
    assert jobs.backoff_seconds(30, rng=lambda: 0.5) == jobs.BACKOFF_CAP_SECONDS
    assert jobs.backoff_seconds(1, rng=lambda: 0.0) == pytest.approx(12)
    assert jobs.backoff_seconds(1, rng=lambda: 1.0) == pytest.approx(18)


def test_periodic_task_runs_once_per_period(app):
    runs: list[str] = []
    kinds = jobs.kinds_of(app)
    kinds.every("test_tick", 3600, lambda ctx: runs.append("tick") or "ticked")
    stats = jobs.run_worker(app, once=True)
    # Other features' periodic tasks (the adoption rollup) run in the same pass.
    assert runs == ["tick"] and stats.runs == len(kinds.periodic)
    jobs.run_worker(app, once=True)
    assert runs == ["tick"]  # next run is an hour away
    with app.app_context(), db.session_scope() as session:
        (queued,) = [
            j
            for j in jobs.recent_jobs(session)
            if j.state == "queued" and j.key == "periodic:test_tick"
        ]
        assert queued.next_run_at >= later(3590)


def test_run_worker_stops_on_the_event(app):
    stop = threading.Event()
    add(app)
    thread = threading.Thread(
        target=jobs.run_worker, args=(app,), kwargs={"poll_seconds": 0.01, "stop_event": stop}
    )
    thread.start()
    deadline = time.monotonic() + 5
    while not CALLS and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive() and len(CALLS) == 1
