"""Notion faults through the real notion-client: retries, the breaker, permanent errors."""

from dataclasses import replace
from datetime import timedelta

import pytest

from service import jobs
from service.app import create_app
from service.jobs import breaker
from service.publishing import notion_publish
from tests.fakes.notion_fake import Fault
from tests.service.publishing.conftest import approve, jobs_of, later, make_release, note_of

CREATE = {"method": "POST", "path": r"/v1/pages$"}


def due(job):
    return job.next_run_at + timedelta(seconds=1)


def one_complete_page(notion):
    (page,) = notion.live_pages()
    assert page["properties"]["Status"]["select"]["name"] == "Published"
    assert "Kitchen tickets keep their order" in str(notion.block_tree(page["id"]))
    return page


def test_429_reschedules_honouring_retry_after(app, session, notion, release):
    approve(session, release)
    notion.inject(Fault.rate_limited(retry_after=600, **CREATE))
    now = later(10)
    job = jobs.run_once(app, now=now)
    assert job.state == "queued" and job.attempts == 1
    assert job.next_run_at >= now + timedelta(seconds=600)
    assert "429 rate_limited" in job.last_error
    note = note_of(session, release)
    assert note.publish_state == "queued"
    assert "rate limited" in note.last_publish_error
    assert jobs.run_once(app, now=now + timedelta(seconds=599)) is None

    job = jobs.run_once(app, now=due(job))
    assert job.state == "succeeded" and job.attempts == 2
    one_complete_page(notion)
    assert note_of(session, release).last_publish_error is None


@pytest.mark.parametrize("status", [500, 502, 504, 529])
def test_server_errors_are_retried_with_backoff(app, session, notion, release, status):
    approve(session, release)
    notion.inject(Fault.http(status, **CREATE))
    now = later(10)
    job = jobs.run_once(app, now=now)
    assert job.state == "queued"
    # 15 s ± 20 % for the first retry
    assert now + timedelta(seconds=11) <= job.next_run_at <= now + timedelta(seconds=19)
    assert jobs.run_once(app, now=due(job)).state == "succeeded"
    one_complete_page(notion)


def test_lost_create_response_ends_with_exactly_one_page(app, session, notion, release):
    approve(session, release)
    notion.inject(Fault.lost_response(**CREATE))
    job = jobs.run_once(app, now=later(10))
    assert job.state == "queued"
    assert len(notion.live_pages()) == 1  # the page was made; its response was lost
    job = jobs.run_once(app, now=due(job))
    assert job.state == "succeeded" and job.result.startswith("updated")
    one_complete_page(notion)


def test_timeout_on_create_is_retried_without_a_duplicate(app, session, notion, release):
    # Generous, so that only the injected delay times out on a loaded machine.
    app.config["RELGOV_NOTION_TIMEOUT"] = 1.5
    approve(session, release)
    notion.inject(Fault.slow(4.0, apply=True, **CREATE))
    job = jobs.run_once(app, now=later(10))
    assert job.state == "queued" and "timeout" in job.last_error
    job = jobs.run_once(app, now=due(job))
    assert job.state == "succeeded", job.last_error
    one_complete_page(notion)


def test_gives_up_after_max_attempts(app, session, notion, release):
    approve(session, release)
    (job,) = jobs_of(session, release)
    job.max_attempts = 2
    session.add(job)
    session.commit()
    notion.inject(Fault.http(502, times=2, **CREATE))
    job = jobs.run_once(app, now=later(10))
    job = jobs.run_once(app, now=due(job))
    assert job.state == "failed"
    assert job.last_error.startswith("gave up after 2 attempts")
    assert note_of(session, release).publish_state == "failed"


def test_breaker_opens_jobs_wait_and_a_probe_closes_it(app, client, session, notion):
    first = make_release(session, version="3.12.0")
    second = make_release(session, version="3.13.0")
    approve(session, first)
    notion.inject(Fault.http(503, times=100, **CREATE))
    now = later(10)
    for _ in range(breaker.THRESHOLD):
        job = jobs.run_once(app, now=now)
        assert job is not None and job.id == jobs_of(session, first)[0].id
        now = due(job)
    state = breaker_row(session)
    assert state.state == "open" and state.failures == breaker.THRESHOLD
    retry_at = state.retry_at
    assert "relgov_notion_circuit_open 1.0" in client.get("/metrics").get_data(as_text=True)

    # Another release's job waits for the breaker without using an attempt.
    approve(session, second)
    (waiting,) = jobs_of(session, second)
    waited = jobs.run_once(app, now=due(waiting))
    assert waited.id == waiting.id
    assert waited.state == "queued" and waited.attempts == 0
    assert waited.next_run_at == retry_at
    assert "circuit breaker is open" in waited.last_error
    (held,) = [j for j in jobs_of(session, first) if j.state == "queued"]
    assert held.next_run_at >= retry_at  # every waiting publish waits with it

    # After the cool-down one job probes; Notion is back, the breaker closes.
    notion.faults.clear()
    probe = jobs.run_once(app, now=retry_at + timedelta(seconds=1))
    assert probe.state == "succeeded"
    assert breaker_row(session).state == "closed"
    other = jobs.run_once(app, now=due(held))
    assert other.id == held.id and other.state == "succeeded"
    assert len(notion.live_pages()) == 2
    assert "relgov_notion_circuit_open 0.0" in client.get("/metrics").get_data(as_text=True)


def test_failed_probe_opens_the_breaker_again(app, session, notion, release):
    approve(session, release)
    notion.inject(Fault.http(503, times=100, **CREATE))
    now = later(10)
    for _ in range(breaker.THRESHOLD):
        now = due(jobs.run_once(app, now=now))
    opened_until = breaker_row(session).retry_at
    assert now > opened_until  # the 5th backoff outlasts the cool-down: this run probes
    job = jobs.run_once(app, now=now)
    assert job.state == "queued" and job.attempts == breaker.THRESHOLD + 1
    again = breaker_row(session)
    assert again.state == "open" and again.retry_at > opened_until


def breaker_row(session):
    session.expire_all()
    return breaker.current(session, notion_publish.BREAKER)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault.http(401, method="GET", path="/databases/"), "API token is invalid."),
        (Fault.http(403, **CREATE), "Insufficient permissions for this endpoint."),
        (Fault.http(400, **CREATE), "Injected validation error."),
    ],
)
def test_permanent_errors_fail_at_once_with_notions_message(
    app, session, notion, release, fault, message
):
    approve(session, release)
    notion.inject(fault)
    job = jobs.run_once(app, now=later(10))
    assert job.state == "failed" and job.attempts == 1
    assert message in job.last_error
    note = note_of(session, release)
    assert note.publish_state == "failed"
    assert message in note.last_publish_error
    assert breaker_row(session).state == "closed"


def test_without_notion_configured_jobs_fail_saying_so(settings, session, notion):
    app = create_app(replace(settings, notion_token="", notion_database_id=""))
    try:
        release = make_release(session)
        with app.app_context():
            approve(session, release)
        assert jobs_of(session, release) == []  # nothing to auto-publish to
        notion_publish.request_publish(session, release, actor="user:rm@example.com")
        session.commit()
        job = jobs.run_once(app)
        assert job.state == "failed"
        assert job.last_error == notion_publish.NOT_CONFIGURED
        assert note_of(session, release).last_publish_error == notion_publish.NOT_CONFIGURED
        assert notion.count() == 0
    finally:
        app.extensions["relgov.engine"].dispose()
