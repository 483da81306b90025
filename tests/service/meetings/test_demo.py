"""The demo's meetings: six past weeks and more, lived in (a no-go, a defer, a go after an
admin's override, conditions, open, overdue and closed action items), and this week left to
open; the pages of every week render."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, col, select

from service.demo import seed_demo
from service.meetings.models import ActionItem, Meeting, MeetingDecision
from service.meetings.services import current_week
from service.notifications.models import Notification
from service.releases.models import SignOff
from tests.builders import login


def test_the_demo_has_a_lived_in_meeting_history(
    app: Flask, session: Session, client: FlaskClient
) -> None:
    report = "\n".join(seed_demo(app))
    assert "meetings:" in report
    meetings = session.exec(select(Meeting).order_by(col(Meeting.week_start))).all()
    assert len(meetings) >= 6 and all(m.state == "closed" for m in meetings)
    with app.app_context():
        this_week = current_week(session)
    assert this_week.label not in {m.week for m in meetings}  # left for the visitor to open
    decisions = {d.decision for d in session.exec(select(MeetingDecision)).all()}
    assert decisions == {"go", "go_with_conditions", "no_go", "defer"}
    assert session.exec(select(SignOff).where(SignOff.override == True)).first()  # noqa: E712
    items = session.exec(select(ActionItem)).all()
    assert any(i.closed_at for i in items) and any(i.closed_at is None for i in items)
    snapshots = [d.snapshot for d in session.exec(select(MeetingDecision)).all()]
    assert any("share" in (s.get("previous") or {}) for s in snapshots)  # adoption read back
    # The Slack messages the meetings would have sent: in the outbox, never to be sent.
    messages = session.exec(
        select(Notification).where(col(Notification.meeting_id).is_not(None))
    ).all()
    assert messages and {m.state for m in messages} == {"not_configured"}
    texts = [m.text for m in messages if m.event == "meeting_decided"]
    assert any("*No-go*" in t for t in texts) and any(
        "*Defer to the next train*" in t for t in texts
    )
    assert {m.event for m in messages} >= {
        "meeting_opened",
        "meeting_decided",
        "meeting_action_item_created",
        "meeting_closed",
    }
    assert "demo Slack messages kept unsent (history)" in report
    assert login(client, "rm@example.com", "demo-password").status_code == 302
    for week in [m.week for m in meetings] + [this_week.label]:
        page = client.get(f"/meetings/{week}")
        assert page.status_code == 200, week
    live = client.get(f"/meetings/{this_week.label}").get_data(as_text=True)
    assert "Open the meeting" in live and "halted" in live and "overdue" in live
