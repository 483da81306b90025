"""One run through the worker against the fake: approve, reject, halt, a serious incident, a
Notion publish failure, a reminder and the digest, each arriving once, in order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service import jobs
from service.jobs.models import Job
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
        meeting = datetime.now(UTC) + timedelta(hours=5)
        events.queue_meeting_reminders(
            session,
            meeting_at=meeting,
            meeting_local="Wed 14:00 JST",
            releases=[waiting],
        )
        monday = datetime.now(UTC) - timedelta(days=datetime.now(UTC).weekday())
        events.queue_digest(session, pos, now=monday.replace(hour=3))
        session.commit()
    done = run_due(app)
    assert [j.state for j in done] == ["succeeded"] * 7
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
    ]
    assert posted[5].channel == "D0QUINN001"
    assert len(set(texts)) == 7
