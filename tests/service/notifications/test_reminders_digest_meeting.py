"""Reminders before the meeting, the weekly straggler digest, and the meeting's decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session

from service import jobs
from service.notifications import events
from service.notifications.events import MeetingDecision, notify_meeting_decisions
from service.notifications.models import SlackUser
from service.releases.models import ReleaseItem
from tests.service.notifications.conftest import make_app, make_release, messages, run_due

# Wednesday 2026-12-09 14:00 in Tokyo is 05:00 UTC: the default train of an app.
MEETING = datetime(2026, 12, 9, 5, 0, tzinfo=UTC)


def items(session: Session, release, *specs: tuple[str, str]) -> None:
    for position, (title, role) in enumerate(specs):
        session.add(
            ReleaseItem(release_id=release.id, position=position, title=title, owner_role=role)
        )
    session.commit()


@pytest.fixture
def agenda(session, people):
    app = make_app(session, channel="#pos-releases")
    first = make_release(session, app, "3.12.0", state="in_review")
    items(session, first, ("QA regression pass", "qa"), ("Support reviewed notes", "support"))
    second = make_release(session, app, "3.12.1", state="draft")
    items(session, second, ("QA smoke test", "qa"), ("Engineering sign-off", "engineer"))
    return app, first, second


def test_reminder_is_due_within_the_hours_before_the_meeting():
    assert not events.reminder_due(MEETING, MEETING - timedelta(hours=25), 24)
    assert events.reminder_due(MEETING, MEETING - timedelta(hours=24), 24)
    assert events.reminder_due(MEETING, MEETING - timedelta(minutes=1), 24)
    assert not events.reminder_due(MEETING, MEETING, 24)


def test_one_reminder_per_person_with_a_pending_sign_off(app, session, agenda, slack):
    _, first, second = agenda
    session.add(SlackUser(email="qa@example.com", slack_user_id="U0QUINN001", updated_by="test"))
    session.commit()
    queued = events.queue_meeting_reminders(
        session,
        meeting_at=MEETING,
        meeting_local="Wed 2026-12-09 14:00 JST",
        releases=[first, second],
        now=MEETING - timedelta(hours=3),
    )
    session.commit()
    # Quinn (QA, mapped): a direct message; Eli (engineer, unmapped): the app's channel.
    # Support has nobody: no message. Admins do not sign.
    by = {row.recipient: row for row in queued}
    assert set(by) == {"qa@example.com", "eng@example.com"}
    assert by["qa@example.com"].channel == "U0QUINN001"
    assert by["qa@example.com"].destination == "direct message to <@U0QUINN001>"
    assert by["eng@example.com"].channel == "#pos-releases"
    assert by["qa@example.com"].text == (
        ":alarm_clock: <@U0QUINN001>, the release meeting is in 3 hours "
        "(Wed 2026-12-09 14:00 JST). Your sign-off is still missing on:\n"
        f"• <https://relgov.example.com/releases/{first.id}|POS register 3.12.0>: "
        "QA regression pass\n"
        f"• <https://relgov.example.com/releases/{second.id}|POS register 3.12.1>: QA smoke test"
    )
    assert by["eng@example.com"].text.startswith(
        ":alarm_clock: Eli Eng, the release meeting is in 3 hours"
    )
    # Asked again (every ten minutes): nothing more.
    again = events.queue_meeting_reminders(
        session,
        meeting_at=MEETING,
        meeting_local="x",
        releases=[first, second],
        now=MEETING - timedelta(hours=2),
    )
    assert again == []
    run_due(app, now=MEETING - timedelta(hours=2))
    assert {p.channel for p in slack.posted} == {"D0QUINN001", "C0POS00001"}


def test_no_reminder_before_the_window(session, agenda):
    _, first, _ = agenda
    assert (
        events.queue_meeting_reminders(
            session,
            meeting_at=MEETING,
            meeting_local="x",
            releases=[first],
            now=MEETING - timedelta(hours=30),
        )
        == []
    )


def test_the_periodic_job_uses_each_apps_next_train(app, session, agenda):
    # The app's train: Wednesdays 14:00 Asia/Tokyo, i.e. MEETING; the job runs at 07:00 JST.
    job = jobs.enqueue(session, "periodic:slack-reminders", key="periodic:slack-reminders")
    session.commit()
    ended = jobs.run_once(app, now=MEETING - timedelta(hours=7))
    assert ended.state == "succeeded", ended.last_error
    assert ended.result == "2 reminders queued"
    texts = [m.text for m in messages(session) if m.event == "reminder"]
    assert all("(Wed 2026-12-09 14:00 JST)" in t for t in texts) and len(texts) == 2
    assert job.id == ended.id


# --- the digest ---------------------------------------------------------------------------------


@pytest.fixture
def straggling(session, client, admin):
    """An app whose minimum supported version is 3.1.0, a store still on 3.0.0."""
    from tests import builders
    from tests.service.adoption.conftest import make_fleet

    app = make_app(session, channel="#pos-releases", min_supported_version="3.1.0")
    make_fleet(session, stores=2, beta=0, per_store=1)
    token = builders.make_token(session, creator=admin, scopes=["heartbeats:write"])
    sent = datetime.now(UTC) - timedelta(minutes=5)
    for store, version in (("S001", "3.0.0"), ("S002", "3.1.0")):
        response = client.post(
            "/api/v1/heartbeats",
            json={
                "device_id": f"{store}-pos-0",
                "store_id": store,
                "app": "pos",
                "version": version,
                "device_kind": "pos",
                "sent_at": sent.isoformat(),
            },
            headers=builders.bearer(token),
        )
        assert response.status_code == 200, response.json
    return app


def test_the_weekly_digest_lists_the_stragglers_once_a_week(app, session, straggling):
    monday = datetime.now(UTC)
    monday = (monday - timedelta(days=monday.weekday())).replace(hour=3, minute=0)  # 12:00 JST
    with app.app_context():
        assert events.queue_digest(session, straggling, now=monday - timedelta(hours=4)) is None
        row = events.queue_digest(session, straggling, now=monday)
        session.commit()
        assert row is not None and row.event == "digest"
        week = f"{monday.isocalendar()[0]}-W{monday.isocalendar()[1]:02d}"
        assert row.text.startswith(
            f":turtle: Weekly straggler digest for *POS register* ({week}): 1 store with a "
            "device below the minimum supported 3.1.0"
        )
        assert "• Restaurant 1 (S001): 3.0.0 (below minimum), last seen" in row.text
        assert row.text.endswith(
            "<https://relgov.example.com/adoption/pos|Open the stragglers report>"
        )
        assert events.queue_digest(session, straggling, now=monday + timedelta(days=2)) is None


# --- the meeting's decisions ----------------------------------------------------------------------


def test_meeting_decisions_one_message_per_app(app, session, people, slack):
    pos = make_app(session, channel="#pos-releases")
    kds = make_app(session, "kds", name="Kitchen display", channel="#releases")
    a = make_release(session, pos, "3.12.0")
    b = make_release(session, pos, "3.12.1")
    c = make_release(session, kds, "1.12.0")
    session.add(SlackUser(email="rm@example.com", slack_user_id="U0RITA0001", updated_by="test"))
    session.commit()
    decisions = [
        MeetingDecision(a.id, "go", "", "user:rm@example.com"),
        MeetingDecision(b.id, "go_with_conditions", "only after the printer fix", "rm@example.com"),
        MeetingDecision(c.id, "no_go", "tickets lose <order>", "user:eng@example.com"),
    ]
    rows = notify_meeting_decisions(
        session,
        meeting="week of 2026-12-07",
        decisions=decisions,
        actor="user:rm@example.com",
        meeting_url="https://relgov.example.com/meeting?week=2026-12-07",
    )
    session.commit()
    assert [r.channel for r in rows] == ["#pos-releases", "#releases"]
    assert rows[0].text == (
        ":clipboard: Release meeting week of 2026-12-07: decisions for *POS register*\n"
        f"• :large_green_circle: <https://relgov.example.com/releases/{a.id}|3.12.0> go "
        "(decided by <@U0RITA0001>)\n"
        f"• :large_yellow_circle: <https://relgov.example.com/releases/{b.id}|3.12.1> go with "
        "conditions: only after the printer fix (decided by <@U0RITA0001>)\n"
        "<https://relgov.example.com/meeting?week=2026-12-07|Open the meeting>"
    )
    assert "no-go: tickets lose &lt;order&gt; (decided by Eli Eng)" in rows[1].text
    # The same decisions again: nothing new.
    assert (
        notify_meeting_decisions(
            session,
            meeting="week of 2026-12-07",
            decisions=decisions,
            actor="user:rm@example.com",
            meeting_url="https://relgov.example.com/meeting?week=2026-12-07",
        )
        == []
    )
    run_due(app)
    assert len(slack.posted) == 2


def test_meeting_decisions_refuse_unknown_input(session, people):
    from service.notifications.outbox import NotificationError

    with pytest.raises(NotificationError) as refused:
        notify_meeting_decisions(
            session, meeting="w", decisions=[MeetingDecision(999, "go", "", "x")], actor="a"
        )
    assert refused.value.field == "release_id"
    app = make_app(session)
    release = make_release(session, app)
    with pytest.raises(NotificationError) as refused:
        notify_meeting_decisions(
            session,
            meeting="w",
            decisions=[MeetingDecision(release.id, "maybe", "", "x")],
            actor="a",
        )
    assert refused.value.field == "decision"
