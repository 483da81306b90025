"""One run through the worker against the fake: approve, reject, halt, a serious incident, a
Notion publish failure, a reminder, the digest and a weekly meeting (opened, two decisions,
an action item, closed), each arriving once, in order, through the one outbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service import jobs
from service.jobs.models import Job
from service.meetings import services as meetings
from service.notifications import events
from service.notifications.models import SlackUser
from service.publishing import notion_publish
from service.releases.models import ReleaseItem, ReleaseNote
from tests.service.notifications import test_reminders_digest_meeting as fixtures
from tests.service.notifications.conftest import make_release, move, run_due
from tests.service.notifications.test_slack_delivery import record_incident

straggling = fixtures.straggling


def test_every_event_reaches_slack_once(app, session, people, slack, straggling):
    session.add(SlackUser(email="qa@example.com", slack_user_id="U0QUINN001", updated_by="test"))
    session.commit()
    with app.app_context():
        pos = straggling
        approved = move(session, make_release(session, pos, "3.12.0"), "submit", "approve")
        rejected = make_release(session, pos, "3.12.1")
        move(session, rejected, "submit")
        move(session, rejected, "reject", reason="kitchen tickets out of order")
        rolling = make_release(session, pos, "3.11.0", state="rolling_out", stage_percent=10)
        move(session, rolling, "halt", reason="split bill totals wrong")
        record_incident(session, pos, impact=5, stores=2, release=rolling)
        session.add(ReleaseNote(release_id=approved.id, generated_markdown="# 3.12.0"))
        job = Job(
            kind=notion_publish.KIND, key="e2e", payload={"release_id": approved.id}, state="failed"
        )
        session.add(job)
        session.commit()
        notion_publish.on_publish_error(session, job, "Notion answered 401 unauthorized", True)
        session.commit()
        waiting = make_release(session, pos, "3.13.0", state="in_review")
        session.add(
            ReleaseItem(release_id=waiting.id, position=0, title="QA pass", owner_role="qa")
        )
        session.commit()
        # A reminder window longer than a week: whenever this runs, the next meeting is in it.
        events.queue_meeting_reminders(session, hours_before=24 * 8)
        monday = datetime.now(UTC) - timedelta(days=datetime.now(UTC).weekday())
        events.queue_digest(session, pos, now=monday.replace(hour=3))
        session.commit()
        # The weekly meeting: opened, a decision on each release of its agenda, an action
        # item for Quinn, closed.
        rm = people["rm"]
        week = meetings.current_week(session)
        carried = make_release(session, pos, "3.14.0", state="approved")
        meeting = meetings.open_meeting(session, week=week, user=rm)
        meetings.decide(
            session,
            meeting=meeting,
            release=carried,
            user=rm,
            decision="go_with_conditions",
            reason="printer fix verified on 3 stores",
            conditions="only after the <printer> fix",
        )
        meetings.decide(
            session,
            meeting=meeting,
            release=waiting,
            user=rm,
            decision="defer",
            reason="QA pass still missing",
        )
        meetings.add_action_item(
            session,
            meeting=meeting,
            user=rm,
            title="Re-run the QA pass on 3.13.0",
            owner="qa@example.com",
            due_on=(datetime.now(UTC) + timedelta(days=7)).date(),
            release_id=waiting.id,
        )
        meetings.close_meeting(session, meeting=meeting, user=rm)
        session.commit()
    done = run_due(app)
    assert [j.state for j in done] == ["succeeded"] * 12
    assert jobs.run_once(app) is None
    # In the order the events happened (the worker takes the most overdue first).
    posted = sorted(slack.posted, key=lambda p: p.metadata["event_payload"]["notification_id"])
    texts = [p.text for p in posted]
    for text in texts:
        print(text.replace("\n", " ⏎ "))
    assert [t.split(" ", 1)[0] for t in texts] == [
        ":white_check_mark:",
        ":x:",
        ":octagonal_sign:",
        ":rotating_light:",
        ":warning:",
        ":alarm_clock:",
        ":turtle:",
        ":clipboard:",
        ":ballot_box_with_check:",
        ":next_track_button:",
        ":memo:",
        ":checkered_flag:",
    ]
    assert posted[5].channel == "D0QUINN001"
    assert len(set(texts)) == 12
    # The meeting's own messages in the meetings channel, its releases' in the app's; the
    # people by their Slack member (Rita is not mapped: her name; Quinn is).
    assert [p.channel for p in posted[7:]] == [
        "C0MEETING1",
        "C0POS00001",
        "C0POS00001",
        "C0POS00001",
        "C0MEETING1",
    ]
    assert "by Rita Manager" in texts[8] and "only after the &lt;printer&gt; fix" in texts[8]
    assert "New action item for <@U0QUINN001>" in texts[10]
    assert "1 go with conditions, 1 defer" in texts[11].lower()
    week_page = f"https://relgov.example.com/meetings/{week.label}"
    assert all(f"<{week_page}" in t for t in texts[7:])
    states = [m["state"] for m in meeting_messages(app, session, meeting)]
    assert states == ["sent"] * 5


def meeting_messages(app, session, meeting) -> list[dict]:
    from service.meetings import notifications as meeting_notifications

    session.expire_all()
    return [vars(m) for m in meeting_notifications.for_meeting(session, meeting)]
