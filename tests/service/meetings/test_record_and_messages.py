"""A held meeting's record as data (what minutes to Notion are made from) and the chat
messages each meeting event records for Slack, in the event's transaction."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, col, select

from service.meetings import notifications, services
from service.meetings.models import Meeting
from service.meetings.weeks import Week
from service.models import AuditEvent, User
from service.notifications.models import Notification
from service.releases.models import App
from tests.service.meetings.test_meetings import (  # the same fixtures and helpers
    open_week,
    people,
    person,
    pos,
    release,
    train,
    week,
)

__all__ = ["people", "pos", "week"]  # fixtures


def test_a_closed_meeting_reads_back_as_structured_minutes_and_chat_messages(
    app: Flask,
    client: FlaskClient,
    session: Session,
    pos: App,
    people: dict[str, User],
    week: Week,
) -> None:
    go = release(session, pos, "3.2.0", "in_review", scheduled_for=train(week))
    stop = release(session, pos, "3.1.0", "approved", scheduled_for=train(week))
    rm = person(client, people["rm"])
    open_week(client, rm, week)
    assert client.get(f"/api/v1/meetings/{week.shifted(1)}/record").status_code == 404
    assert (
        client.get("/api/v1/meetings/2026-W99/record").json["error"]["fields"][0]["field"] == "week"
    )
    no_go = client.post(
        f"/api/v1/meetings/{week}/decisions",
        json={"release_id": stop.id, "decision": "no_go", "reason": "crash on start"},
        headers=rm,
    )
    assert no_go.status_code == 201, no_go.json
    client.put(
        f"/api/v1/meetings/{week}/attendees",
        json={"people": ["qa@example.com"], "guests": ["Tanaka (owner)"]},
        headers=rm,
    )
    client.put(
        f"/api/v1/meetings/{week}/minutes", json={"minutes": "3.1.0 stopped.", "revision": 0},
        headers=rm,
    )  # fmt: skip
    created = client.post(
        f"/api/v1/meetings/{week}/action-items",
        json={"title": "Find the crash", "owner": "eng@example.com",
              "due_on": week.sunday.isoformat(), "release_id": stop.id},
        headers=rm,
    )  # fmt: skip
    assert created.status_code == 201, created.json
    assert client.post(f"/api/v1/meetings/{week}/close", headers=rm).status_code == 200

    record = client.get(f"/api/v1/meetings/{week}/record").json
    assert record["final"] is True and record["state"] == "closed"
    assert [(d["version"], d["decision"], d["reason"], d["state_then"]) for d in
            record["decisions"]] == [("3.1.0", "no_go", "crash on start", "approved")]  # fmt: skip
    assert record["decisions"][0]["decided_by"] == "user:rm@example.com"
    assert record["undecided"] == [{"app": "pos", "release_id": go.id, "version": "3.2.0"}]
    assert record["minutes"] == "3.1.0 stopped."
    assert [(a["name"], a["guest"]) for a in record["attendees"]] == [
        ("Qa Person", False), ("Tanaka (owner)", True)
    ]  # fmt: skip
    assert [(a["title"], a["owner"], a["state"], a["created_in"]) for a in record[
        "action_items"]] == [("Find the crash", "eng@example.com", "open", week.label)]  # fmt: skip
    first = record["digest"]
    assert client.get(f"/api/v1/meetings/{week}/record").json["digest"] == first  # stable

    amended = client.post(
        f"/api/v1/meetings/{week}/amendments",
        json={"release_id": go.id, "decision": "defer", "reason": "owner asked"},
        headers=rm,
    )
    assert amended.status_code == 201, amended.json
    again = client.get(f"/api/v1/meetings/{week}/record").json
    assert again["digest"] != first
    assert [(d["version"], d["decision"]) for d in again["amendments"]] == [("3.2.0", "defer")]

    # Each decision is in the audit log with its actor, reason and effect.
    decided = session.exec(
        select(AuditEvent).where(AuditEvent.action.in_(["meeting.decide", "meeting.amend"]))  # type: ignore[attr-defined]
    ).all()
    assert sorted((e.action, e.actor, e.after["decision"]) for e in decided) == [
        ("meeting.amend", "user:rm@example.com", "defer"),
        ("meeting.decide", "user:rm@example.com", "no_go"),
    ]

    messages = client.get(f"/api/v1/meetings/{week}/messages").json
    assert [(m["event"], m["channel"], m["state"]) for m in messages] == [
        ("opened", "meetings", "not_configured"),
        ("decided", "pos", "not_configured"),
        ("action_item_created", "pos", "not_configured"),
        ("closed", "meetings", "not_configured"),
        ("amended", "pos", "not_configured"),
    ]  # Slack is not configured in these tests: recorded in the outbox, not sent
    assert all(m["error"].startswith("Slack is not configured") for m in messages)
    assert "*POS register 3.1.0*: *No-go*" in messages[1]["text"]
    assert "Reason: crash on start" in messages[1]["text"]
    assert messages[1]["payload"]["path"] == f"/meetings/{week}#release-{stop.id}"
    assert messages[1]["mentions"] == ["rm@example.com"]
    assert messages[2]["mentions"] == ["eng@example.com"]
    assert "1 no-go" in messages[3]["text"]
    page = client.get(f"/meetings/{week}").get_data(as_text=True)
    assert "Slack messages" in page and "#pos" in page and "Not configured" in page

    # The same event twice records one message.
    meeting = session.exec(select(Meeting).where(Meeting.week == week.label)).one()
    with app.test_request_context():
        notifications.record(session, services.MeetingEvent("closed", meeting, "user:x"))
    session.commit()
    assert (
        len(
            session.exec(
                select(Notification).where(col(Notification.meeting_id).is_not(None))
            ).all()
        )
        == 5
    )
