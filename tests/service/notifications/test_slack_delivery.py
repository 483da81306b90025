"""Slack messages through the real slack_sdk against the local fake: events, texts, retries,
the breaker, timeouts, and no duplicate after an attempt whose outcome is unknown."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlmodel import select

from incidents.scoring import ScopeThresholds
from service import jobs
from service.app import create_app
from service.incidents import services as incidents
from service.jobs import breaker
from service.jobs.models import CircuitBreaker, Job
from service.models import AuditEvent
from service.notifications import outbox
from service.notifications import slack as slack_api
from service.notifications.models import SlackUser
from service.publishing import notion_publish
from service.releases.models import ReleaseNote
from tests import builders
from tests.fakes.slack_fake import Fault
from tests.service.notifications.conftest import (
    later,
    make_app,
    make_release,
    messages,
    move,
    run_due,
    send_jobs,
)


def approved_release(session, channel="#pos-releases"):
    app = make_app(session, channel=channel)
    release = make_release(session, app)
    return move(session, release, "submit", "approve")


def test_approval_is_recorded_with_the_decision_and_sent_by_the_worker(app, session, slack, people):
    release = approved_release(session)
    (row,) = messages(session)
    # Written in the decision's transaction; nothing has talked to Slack yet.
    assert (row.event, row.state, row.via, row.channel) == (
        "approved",
        "queued",
        "bot",
        "#pos-releases",
    )
    assert slack.requests == []
    (job,) = send_jobs(session)
    assert job.key == f"notification:{row.id}"

    (done,) = run_due(app)
    assert done.state == "succeeded", done.last_error
    (posted,) = slack.posted
    assert posted.channel == "C0POS00001"
    assert posted.text == (
        ":white_check_mark: *POS register 3.12.0* was approved by Rita Manager. "
        f"<https://relgov.example.com/releases/{release.id}|Open the release>"
    )
    assert posted.metadata == {
        "event_type": "relgov_notification",
        "event_payload": {"notification_id": row.id},
    }
    (row,) = messages(session)
    assert row.state == "sent" and row.slack_ts == posted.ts and row.attempts == 1


def test_mapped_people_are_mentioned_and_reasons_escaped(app, session, slack, people):
    session.add(SlackUser(email="rm@example.com", slack_user_id="U0RITA0001", updated_by="test"))
    session.commit()
    app_row = make_app(session, channel="C0POS00001")
    release = make_release(session, app_row)
    move(session, release, "submit")
    move(session, release, "reject", reason="crashes on <!channel> & split bill > 3")
    run_due(app)
    (posted,) = slack.posted
    assert posted.text.startswith(
        ":x: *POS register 3.12.0* was rejected by <@U0RITA0001>: "
        "crashes on &lt;!channel&gt; &amp; split bill &gt; 3."
    )


def test_halt_names_the_stage_and_reason(app, session, slack, people):
    app_row = make_app(session, channel="#pos-releases")
    release = make_release(session, app_row, state="rolling_out", stage_percent=50)
    move(session, release, "halt", reason="receipts print twice")
    run_due(app)
    (text,) = slack.texts()
    assert text.startswith(
        ":octagonal_sign: *POS register 3.12.0* was halted in the staged rollout at 50 % of "
        "stores by Rita Manager: receipts print twice."
    )


def test_without_a_channel_the_bot_uses_the_default_channel(app, session, slack, people):
    approved_release(session, channel=None)
    (row,) = messages(session)
    assert row.channel == "#releases"
    run_due(app)
    assert slack.posted[0].channel == "C0RELEASES"


def test_a_request_never_waits_for_slack(app, client, session, slack, people):
    """Approving through the API while Slack hangs: the answer comes without any call."""
    slack.inject(Fault.hang(30))
    app_row = make_app(session, channel="#pos-releases")
    release = make_release(session, app_row, state="in_review")
    builders_login(client, "rm@example.com")
    response = client.post(
        f"/api/v1/releases/{release.id}/transitions",
        json={"action": "approve"},
        headers=csrf(client),
    )
    assert response.status_code == 200, response.json
    assert slack.requests == []
    assert [m.state for m in messages(session)] == ["queued"]


def builders_login(client, email):
    assert builders.login(client, email).status_code == 302


def csrf(client):
    return builders.csrf_header(client)


# --- faults ---------------------------------------------------------------------------------


def test_429_is_retried_after_retry_after(app, session, slack, people):
    approved_release(session)
    slack.inject(Fault.rate_limited(retry_after=120))
    now = later(1)
    (job,) = run_due(app, now=now)
    assert job.state == "queued" and "429 rate limited" in job.last_error
    assert job.next_run_at >= now + timedelta(seconds=120)
    (row,) = messages(session)
    assert row.state == "queued" and "429" in row.last_error
    assert run_due(app, now=now + timedelta(seconds=119)) == []
    (job,) = run_due(app, now=job.next_run_at + timedelta(seconds=1))
    assert job.state == "succeeded"
    assert len(slack.posted) == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried_with_backoff(app, session, slack, people, status):
    approved_release(session)
    slack.inject(Fault.http(status))
    now = later(1)
    (job,) = run_due(app, now=now)
    assert job.state == "queued" and f"Slack answered {status}" in job.last_error
    assert now + timedelta(seconds=11) <= job.next_run_at <= now + timedelta(seconds=19)
    (job,) = run_due(app, now=job.next_run_at + timedelta(seconds=1))
    assert job.state == "succeeded"
    assert len(slack.posted) == 1


@pytest.mark.parametrize(
    ("channel", "error", "hint"),
    [
        ("#nowhere", "channel_not_found", "invite the bot"),
        ("C0ARCHIVED", "is_archived", "archived"),
        ("C0NOTMEMBR", "not_in_channel", "invite the bot"),
    ],
)
def test_slack_refusals_fail_at_once_and_are_audited(
    app, session, slack, people, channel, error, hint
):
    approved_release(session, channel=channel)
    (job,) = run_due(app)
    assert job.state == "failed" and job.attempts == 1
    (row,) = messages(session)
    assert row.state == "failed"
    assert f"Slack refused the message: {error}" in row.last_error and hint in row.last_error
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "notification.failed")).one()
    assert event.highlight and error in event.summary
    # Slack answered: that is not an outage.
    assert breaker.current(session, outbox.BREAKER).failures == 0


def test_invalid_auth_fails_naming_the_setting(app, session, slack, people):
    approved_release(session)
    slack.token = "xoxb-another"
    (job,) = run_due(app)
    assert job.state == "failed"
    assert "invalid_auth (check SLACK_BOT_TOKEN)" in messages(session)[0].last_error


def test_a_hanging_slack_times_out_and_nothing_is_sent_twice(app, settings, slack, people, session):
    """Slack took the message but answered too late: the next attempt finds it in the
    channel's history by its metadata and records it, without posting again."""
    quick = create_app(replace(settings, slack_timeout_seconds=1.0))
    approved_release(session, channel="C0POS00001")
    slack.inject(Fault.hang(3.0, apply=True))
    now = later(1)
    (job,) = run_due(quick, now=now)
    assert job.state == "queued"
    assert "timed out after the message was sent; it may have arrived" in job.last_error
    assert len(slack.posted) == 1
    (job,) = run_due(quick, now=job.next_run_at + timedelta(seconds=1))
    assert job.state == "succeeded", job.last_error
    assert job.result.startswith("found in the channel, not sent again")
    assert len(slack.posted) == 1
    quick.extensions["relgov.engine"].dispose()


def test_a_history_outage_after_a_timeout_still_posts_nothing_twice(
    app, settings, slack, people, session
):
    quick = create_app(replace(settings, slack_timeout_seconds=1.0))
    approved_release(session, channel="C0POS00001")
    slack.inject(Fault.hang(3.0, apply=True))
    (job,) = run_due(quick, now=later(1))
    assert "may have arrived" in job.last_error
    slack.inject(Fault.http(503, path="conversations.history"))
    (job,) = run_due(quick, now=job.next_run_at + timedelta(seconds=1))
    assert job.state == "queued" and "503" in job.last_error
    assert messages(session)[0].state == "sending"  # still unknown: look again next time
    (job,) = run_due(quick, now=job.next_run_at + timedelta(seconds=1))
    assert job.state == "succeeded" and job.result.startswith("found in the channel")
    assert len(slack.posted) == 1 and job.attempts == 3
    quick.extensions["relgov.engine"].dispose()


def test_a_hang_before_slack_took_it_is_sent_once_on_retry(app, settings, slack, people, session):
    quick = create_app(replace(settings, slack_timeout_seconds=1.0))
    approved_release(session, channel="C0POS00001")
    slack.inject(Fault.hang(3.0, apply=False, path="chat.postMessage"))
    (job,) = run_due(quick, now=later(1))
    assert job.state == "queued" and "timed out" in job.last_error
    (job,) = run_due(quick, now=job.next_run_at + timedelta(seconds=1))
    assert job.state == "succeeded"
    assert len(slack.posted) == 1  # looked up first (not there), then sent once
    paths = [r["path"] for r in slack.requests]
    assert paths == ["/api/chat.postMessage", "/api/conversations.history", "/api/chat.postMessage"]
    quick.extensions["relgov.engine"].dispose()


class Crash(BaseException):
    """The worker process dies (SIGKILL) right after Slack took the message."""


def test_a_worker_dying_mid_send_does_not_post_twice(app, session, slack, people, monkeypatch):
    """The channel is given by name: its id is known from the message that went before."""
    approved_release(session)
    run_due(app)
    release = make_release(session, make_app(session), "3.13.0")
    move(session, release, "submit", "approve")
    original = slack_api.send

    def send_then_die(settings, out):
        original(settings, out)
        raise Crash

    monkeypatch.setattr(slack_api, "send", send_then_die)
    with pytest.raises(Crash):
        jobs.run_once(app, now=later(1))
    monkeypatch.undo()
    row = messages(session)[-1]
    assert row.state == "sending" and len(slack.posted) == 2
    # Another worker takes the job over once the dead worker's lease has run out.
    (job,) = run_due(app, now=later(1) + jobs.lease_of(app) + timedelta(seconds=1))
    assert job.state == "succeeded" and job.attempts == 2
    assert job.result.startswith("found in the channel")
    assert len(slack.posted) == 2
    row = messages(session)[-1]
    assert row.state == "sent" and row.slack_ts == slack.posted[1].ts


def test_breaker_opens_after_five_outages_holds_messages_and_closes_on_a_probe(
    app, session, slack, people
):
    for n in range(6):
        release = make_release(session, make_app(session, channel="#pos-releases"), f"3.{n}.0")
        move(session, release, "submit", "approve")
    slack.inject(Fault.http(503, times=5))
    now = later(1)
    ended = [jobs.run_once(app, now=now) for _ in range(5)]
    assert [j.state for j in ended] == ["queued"] * 5
    session.expire_all()
    state = session.get(CircuitBreaker, outbox.BREAKER)
    assert state.state == "open" and state.failures == 5
    # The sixth message waits for the breaker without an attempt, and without a call.
    calls = len(slack.requests)
    sixth = jobs.run_once(app, now=now)
    assert sixth.state == "queued" and "circuit breaker is open" in sixth.last_error
    assert len(slack.requests) == calls
    assert breaker_audit(session, "breaker.open")
    # After the cool-down one probe goes through, closes the breaker, and the rest follow.
    after = now + breaker.COOL_DOWN + timedelta(minutes=31)
    done = run_due(app, now=after)
    assert all(j.state == "succeeded" for j in done) and len(done) == 6
    assert len(slack.posted) == 6
    session.expire_all()
    assert session.get(CircuitBreaker, outbox.BREAKER).state == "closed"
    assert breaker_audit(session, "breaker.close")


def breaker_audit(session, action):
    return session.exec(
        select(AuditEvent).where(AuditEvent.action == action, AuditEvent.subject_id == "slack")
    ).first()


# --- the webhook ---------------------------------------------------------------------------


@pytest.fixture
def webhook_only(settings, slack):
    return replace(settings, slack_bot_token="", slack_webhook_url=slack.webhook_url)


def test_webhook_carries_messages_to_its_channel(webhook_only, slack, people, session):
    hook = create_app(webhook_only)
    with hook.app_context():
        approved_release(session, channel="#pos-releases")
    (row,) = messages(session)
    assert (row.via, row.destination) == ("webhook", "the incoming webhook's channel")
    (job,) = run_due(hook)
    assert job.state == "succeeded"
    (posted,) = slack.posted
    assert posted.via == "webhook" and "approved by Rita Manager" in posted.text
    hook.extensions["relgov.engine"].dispose()


def test_webhook_faults(webhook_only, slack, people, session):
    hook = create_app(webhook_only)
    with hook.app_context():
        approved_release(session)
    slack.inject(Fault(status=429, body="rate_limited", headers={"Retry-After": "45"}))
    now = later(1)
    (job,) = run_due(hook, now=now)
    assert job.state == "queued" and job.next_run_at >= now + timedelta(seconds=45)
    slack.webhook_archived = True
    (job,) = run_due(hook, now=job.next_run_at + timedelta(seconds=1))
    assert job.state == "failed"
    assert "410: channel_is_archived (the webhook's channel is archived)" in job.last_error
    hook.extensions["relgov.engine"].dispose()


def test_a_removed_webhook_says_so(webhook_only, slack, people, session):
    hook = create_app(replace(webhook_only, slack_webhook_url=slack.webhook_url + "x"))
    with hook.app_context():
        approved_release(session)
    (job,) = run_due(hook)
    assert job.state == "failed" and "404: no_service" in job.last_error
    hook.extensions["relgov.engine"].dispose()


# --- other events ------------------------------------------------------------------------------


def record_incident(session, app_row, impact, stores, release=None):
    incident = incidents.record_incident(
        session,
        app=app_row,
        title="Orders vanish <b>",
        impact=impact,
        started_at=later(-600),
        actor="user:qa@example.com",
        store_count=stores,
        release=release,
        thresholds=ScopeThresholds(),
    )
    session.commit()
    return incident


def test_incidents_at_or_above_the_score_are_announced(app, session, slack, people):
    app_row = make_app(session, channel="#pos-releases")
    release = make_release(session, app_row, state="beta")
    record_incident(session, app_row, impact=1, stores=5, release=release)  # 1 × 3
    assert messages(session) == []
    serious = record_incident(session, app_row, impact=5, stores=5000, release=release)  # 15
    run_due(app)
    (text,) = slack.texts()
    assert text.startswith(
        f":rotating_light: Incident #{serious.id} on *POS register 3.12.0*, score 15 "
        "(impact 5 × scope 3, half to all stores; announced from 9): Orders vanish &lt;b&gt;. "
        "Recorded by Quinn QA."
    )


def test_an_incident_rescored_over_the_threshold_is_announced_once(app, session, slack, people):
    app_row = make_app(session, channel="#pos-releases")
    incident = record_incident(session, app_row, impact=1, stores=5000)  # 1 × 3 = 3
    incidents.update_incident(session, incident, actor="user:qa@example.com", changes={"impact": 5})
    session.commit()
    incidents.update_incident(session, incident, actor="user:qa@example.com", changes={"impact": 3})
    session.commit()
    assert [m.event for m in messages(session)] == ["incident"]


def test_the_app_threshold_overrides_the_setting(app, session, slack, people, admin_client):
    app_row = make_app(session, channel="#pos-releases")
    with app.app_context():
        record_incident(session, app_row, impact=1, stores=5)  # 1 × 3 = 3 < 9
    assert messages(session) == []
    response = admin_client.put(
        "/api/v1/apps/pos/notifications",
        json={"channel": "#pos-releases", "incident_min_score": 3},
        headers=csrf(admin_client),
    )
    assert response.status_code == 200, response.json
    assert response.json["incident_min_score"] == 3 and response.json["own_threshold"]
    with app.app_context():
        record_incident(session, app_row, impact=1, stores=5)
    assert [m.event for m in messages(session)] == ["incident"]


def test_a_notion_publish_failure_is_announced(app, session, slack, people):
    app_row = make_app(session, channel="#pos-releases")
    release = make_release(session, app_row, state="approved")
    session.add(
        ReleaseNote(release_id=release.id, generated_markdown="# x", publish_state="queued")
    )
    job = Job(
        kind=notion_publish.KIND, key=f"release:{release.id}", payload={"release_id": release.id}
    )
    session.add(job)
    session.commit()
    notion_publish.on_publish_error(
        session, job, "Notion answered 404 object_not_found: no database", True
    )
    session.commit()
    run_due(app)
    (text,) = slack.texts()
    assert text.startswith(
        ":warning: Publishing the notes of *POS register 3.12.0* to Notion failed: Notion "
        "answered 404 object_not_found: no database."
    )


def test_find_sent_cannot_look_up_a_channel_given_by_name(settings, slack):
    """A name (not an id) cannot be read back: such a message is sent again (at least once)."""
    out = slack_api.Outgoing(notification_id=1, via="bot", channel="#releases", text="x")
    assert slack_api.find_sent(settings, out, later(-5)) is None
    assert slack.requests == []
