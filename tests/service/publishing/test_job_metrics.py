"""/metrics shows the job queue (by kind and state, retry wait, oldest due job, dead leases)
and the circuit breakers, read from the database; and the worker's own counters move."""

import re
from datetime import timedelta

import pytest

from service import db, jobs
from service.jobs import breaker
from service.jobs.models import Job
from service.models import utcnow


def _retry_soon(ctx: jobs.JobContext) -> str:
    raise jobs.RetryJob("Notion is busy", retry_after=120)


@pytest.fixture(autouse=True)
def _kinds(app) -> None:
    jobs.kinds_of(app).handler("test_metrics_retry", _retry_soon)
    jobs.kinds_of(app).handler("test_metrics_ok", lambda ctx: "fine")


def sample(body: str, metric: str, **labels: str) -> float | None:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{re.escape(metric)}{re.escape('{' + wanted + '}') if labels else ''} (\S+)$"
    match = re.search(pattern, body, re.M)
    return float(match.group(1)) if match else None


def test_queue_gauges_appear_and_move(app, client):
    with app.app_context(), db.session_scope() as session:
        for _ in range(2):
            jobs.enqueue(session, "test_metrics_ok", run_at=utcnow() - timedelta(minutes=5))
        jobs.enqueue(session, "test_metrics_retry")
    body = client.get("/metrics").get_data(as_text=True)
    assert sample(body, "relgov_jobs_by_kind", kind="test_metrics_ok", state="queued") == 2
    assert sample(body, "relgov_jobs_by_kind", kind="test_metrics_ok", state="running") == 0
    oldest = sample(body, "relgov_jobs_oldest_due_seconds")
    assert oldest is not None and oldest >= 299
    assert sample(body, "relgov_jobs_next_retry_seconds", kind="test_metrics_retry") == 0

    while jobs.run_once(app, worker_id="metrics") is not None:
        pass
    body = client.get("/metrics").get_data(as_text=True)
    assert sample(body, "relgov_jobs_by_kind", kind="test_metrics_ok", state="queued") == 0
    assert sample(body, "relgov_jobs_retrying", kind="test_metrics_retry") == 1
    wait = sample(body, "relgov_jobs_next_retry_seconds", kind="test_metrics_retry")
    assert wait is not None and 60 < wait <= 120
    assert sample(body, "relgov_jobs_oldest_due_seconds") == 0
    runs = sample(body, "relgov_job_runs_total", kind="test_metrics_ok", state="succeeded")
    assert runs is not None and runs >= 2
    assert 'relgov_job_duration_seconds_count{kind="test_metrics_ok"}' in body


def test_a_dead_workers_lease_and_the_breaker_state_show(app, client):
    past = utcnow() - timedelta(minutes=1)
    with app.app_context(), db.session_scope() as session:
        job = jobs.enqueue(session, "test_metrics_ok")
        job.state, job.locked_by, job.locked_until = "running", "gone:1:1", past
        session.add(job)
        breaker.record_failure(session, "notion", "Notion answered 503")
    body = client.get("/metrics").get_data(as_text=True)
    assert sample(body, "relgov_jobs_expired_leases") == 1
    assert sample(body, "relgov_circuit_breaker_state", name="notion", state="closed") == 1
    assert sample(body, "relgov_circuit_breaker_state", name="notion", state="open") == 0
    assert sample(body, "relgov_circuit_breaker_failures", name="notion") == 1
    # The dead worker's job is taken over and finished.
    assert jobs.run_once(app, worker_id="alive") is not None
    with app.app_context(), db.session_scope() as session:
        assert session.get(Job, job.id).state == "succeeded"
    body = client.get("/metrics").get_data(as_text=True)
    assert sample(body, "relgov_jobs_expired_leases") == 0
