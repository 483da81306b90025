""" "Waiting for you": each person's pending sign-offs, decisions, overrides and action items,
on the dashboard and in ``GET /api/v1/me/inbox``, ordered by the meeting that needs them."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session

from service.meetings.inbox import meeting_at, next_meeting
from service.meetings.models import ActionItem, Meeting
from service.meetings.weeks import Week, week_at
from service.models import User, utcnow
from service.releases.models import App, Release, ReleaseItem, SignOff
from service.settings import Settings, SettingsError
from tests.builders import add_release, csrf_header, login, make_token
from tests.service.meetings.test_meetings import people, pos, train  # the same fixtures

TOKYO = ZoneInfo("Asia/Tokyo")


__all__ = ["people", "pos"]  # fixtures


@pytest.fixture
def meets_today(app: Flask) -> None:
    """The meeting is held today at 23:30 (Tokyo), so this week's meeting is the next one
    whatever day the test runs."""
    today = datetime.now(TOKYO).strftime("%a")
    settings = app.config["RELGOV_SETTINGS"]
    app.config["RELGOV_SETTINGS"] = dataclasses.replace(settings, meeting_time=f"{today} 23:30")


def meeting_time(week: Week) -> str:
    """That meeting time in ``week``, as the API writes it (UTC)."""
    day = week.monday + timedelta(days=datetime.now(TOKYO).weekday())
    moment = datetime.combine(day, time(23, 30), tzinfo=TOKYO)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def with_items(session: Session, release: Release, *items: tuple[str, str, str | None]) -> dict:
    """Manual checklist items (title, owner role, decision so far or None)."""
    made = {}
    for position, (title, role, decision) in enumerate(items):
        item = ReleaseItem(
            release_id=release.id or 0, position=position, title=title, owner_role=role
        )
        session.add(item)
        session.flush()
        if decision:
            session.add(
                SignOff(
                    item_id=item.id or 0, release_id=release.id or 0, user_id=1,
                    user_email=f"{role}@example.com", role=role, decision=decision,
                    comment="the lab rig is down" if decision == "block" else "",
                )
            )  # fmt: skip
        made[title] = item
    session.commit()
    return made


def as_person(app: Flask, user: User) -> FlaskClient:
    client = app.test_client()
    assert login(client, user.email).status_code == 302
    return client


def inbox(app: Flask, user: User) -> dict[str, Any]:
    response = as_person(app, user).get("/api/v1/me/inbox")
    assert response.status_code == 200, response.json
    return response.json  # type: ignore[no-any-return]


def entries(body: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(e["kind"], e["week"], e["title"]) for e in body["entries"]]


def test_each_person_sees_what_waits_for_them_by_the_meeting_that_needs_it(
    app: Flask, session: Session, pos: App, people: dict[str, User], meets_today: None
) -> None:
    week = week_at(utcnow(), TOKYO)
    nxt = week.shifted(1)
    month_ago = utcnow() - timedelta(days=30)
    later = add_release(
        session, pos, "3.3.0", "in_review", scheduled_for=train(nxt), created_at=month_ago
    )
    now = add_release(
        session, pos, "3.2.0", "in_review", scheduled_for=train(week), created_at=month_ago
    )
    approved = add_release(session, pos, "3.1.0", "approved", created_at=month_ago)
    with_items(
        session, later, ("Regression pass", "qa", None), ("Store review", "support", "block")
    )
    with_items(
        session, now, ("Regression pass", "qa", None), ("Rollback plan", "engineer", "approve")
    )
    with_items(session, approved, ("Regression pass", "qa", None))  # sign-offs closed: not asked
    meeting = Meeting(
        week=week.shifted(-1).label, week_start=week.shifted(-1).monday, timezone="Asia/Tokyo",
        opened_by="user:rm@example.com", state="closed", closed_at=utcnow(),
        closed_by="user:rm@example.com",
    )  # fmt: skip
    session.add(meeting)
    session.flush()
    session.add_all(
        [
            ActionItem(
                meeting_id=meeting.id or 0, title="Fix the rig", owner_id=people["qa"].id or 0,
                owner_name="Qa Person", due_on=date(2020, 1, 1), created_by="user:rm@example.com",
                release_id=later.id,
            ),
            ActionItem(
                meeting_id=meeting.id or 0, title="Done already", owner_id=people["qa"].id or 0,
                owner_name="Qa Person", due_on=date(2020, 1, 1), created_by="user:rm@example.com",
                closed_at=utcnow(), closed_by="user:qa@example.com",
            ),
        ]
    )  # fmt: skip
    session.commit()

    qa = inbox(app, people["qa"])
    assert qa["next_meeting"]["week"] == week.label
    assert qa["next_meeting"]["at"] == meeting_time(week)
    assert qa["next_meeting"]["state"] == "not opened"
    # This week's meeting first (its sign-off, then the action item), then next week's.
    assert entries(qa) == [
        ("sign_off", week.label, "POS register 3.2.0: Regression pass"),
        ("action_item", week.label, "Fix the rig"),
        ("sign_off", nxt.label, "POS register 3.3.0: Regression pass"),
    ]
    assert [e["meeting_at"] for e in qa["entries"]] == [meeting_time(week)] * 2 + [
        meeting_time(nxt)
    ]
    overdue = qa["entries"][1]
    assert overdue["overdue"] is True and overdue["version"] == "3.3.0"
    assert overdue["url"] == f"/meetings/{week}#actions"
    assert qa["entries"][0]["url"] == f"/releases/{now.id}#item-{qa['entries'][0]['item_id']}"
    assert qa["counts"] == {"decision": 0, "override": 0, "sign_off": 2, "action_item": 1}

    eng = inbox(app, people["eng"])
    assert entries(eng) == []  # the rollback plan is signed
    support = inbox(app, people["support"])
    assert entries(support) == []  # support blocked its item: an admin's turn now
    admin = inbox(app, people["admin"])
    assert entries(admin) == [("override", nxt.label, "POS register 3.3.0: Store review")]
    assert "blocked by support@example.com: the lab rig is down" in admin["entries"][0]["detail"]
    assert entries(inbox(app, people["viewer"])) == []

    rm = inbox(app, people["rm"])
    assert entries(rm) == [
        ("decision", week.label, "POS register 3.1.0"),  # carried: never decided
        ("decision", week.label, "POS register 3.2.0"),  # its train leaves this week
    ]
    assert rm["entries"][1]["url"] == f"/meetings/{week}#release-{now.id}"

    # The meeting opens and defers 3.2.0: the release manager's decision is done, and QA's
    # sign-off now waits for next week's meeting.
    client = as_person(app, people["rm"])
    headers = csrf_header(client)
    assert client.post(f"/api/v1/meetings/{week}/open", headers=headers).status_code == 201
    deferred = client.post(
        f"/api/v1/meetings/{week}/decisions",
        json={"release_id": now.id, "decision": "defer", "reason": "QA has not run it"},
        headers=headers,
    )
    assert deferred.status_code in (200, 201), deferred.json
    rm = inbox(app, people["rm"])
    assert rm["next_meeting"]["state"] == "open"
    assert entries(rm) == [("decision", week.label, "POS register 3.1.0")]
    assert ("sign_off", nxt.label, "POS register 3.2.0: Regression pass") in entries(
        inbox(app, people["qa"])
    )

    # Closed: the next meeting is next week's, where the open action item is read out.
    closed = client.post(f"/api/v1/meetings/{week}/close", headers=headers)
    assert closed.status_code == 200, closed.json
    qa = inbox(app, people["qa"])
    assert qa["next_meeting"]["week"] == nxt.label
    assert ("action_item", nxt.label, "Fix the rig") in entries(qa)


def test_the_dashboard_shows_waiting_for_you(
    app: Flask,
    client: FlaskClient,
    session: Session,
    pos: App,
    people: dict[str, User],
    meets_today: None,
) -> None:
    week = week_at(utcnow(), TOKYO)
    release = add_release(
        session, pos, "3.2.0", "in_review", scheduled_for=train(week),
        created_at=utcnow() - timedelta(days=3),
    )  # fmt: skip
    with_items(session, release, ("Regression pass", "qa", None))
    assert login(client, people["qa"].email).status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert "Waiting for you" in page
    assert "POS register 3.2.0: Regression pass" in page
    assert f"For the meeting of {week.label}" in page
    viewer = as_person(app, people["viewer"])
    assert "Nothing waits for you" in viewer.get("/").get_data(as_text=True)


def test_the_inbox_is_a_persons_and_refuses_tokens(
    client: FlaskClient, session: Session, people: dict[str, User]
) -> None:
    assert client.get("/api/v1/me/inbox").status_code == 401
    token = make_token(session, creator=people["admin"], scopes=["read"])
    refused = client.get("/api/v1/me/inbox", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 403


def test_the_meeting_time_is_a_setting(
    app: Flask, session: Session, pos: App, people: dict[str, User]
) -> None:
    assert Settings.from_env({}).meeting_time == "Wed 12:00"
    assert Settings.from_env({"RELGOV_MEETING_TIME": "thu  09:30"}).meeting_time == "Thu 09:30"
    for bad in ("Wed 25:00", "Someday 10:00", "12:00", "Wed"):
        with pytest.raises(SettingsError, match="RELGOV_MEETING_TIME"):
            Settings.from_env({"RELGOV_MEETING_TIME": bad})
    settings = app.config["RELGOV_SETTINGS"]
    app.config["RELGOV_SETTINGS"] = dataclasses.replace(settings, meeting_time="Thu 09:30")
    with app.app_context():
        at = meeting_at(Week(2026, 42), "Asia/Tokyo")
    assert at == datetime(2026, 10, 15, 0, 30, tzinfo=UTC)  # Thursday 09:30 JST
    viewer = as_person(app, people["viewer"])
    week = viewer.get("/api/v1/meetings/2026-W42").json
    assert week["meeting_at"] == "2026-10-15T00:30:00Z"
    page = viewer.get("/meetings/2026-W42").get_data(as_text=True)
    assert re.search(r"meeting <time [^>]*>Thu 2026-10-15 09:30 JST</time>", page)


def test_the_next_meeting_is_this_weeks_until_it_is_closed_or_its_day_is_over(
    app: Flask, session: Session, pos: App
) -> None:
    wednesday = datetime(2026, 10, 14, 15, 0, tzinfo=TOKYO)  # W42, after the 12:00 meeting
    sunday = datetime(2026, 10, 18, 10, 0, tzinfo=TOKYO)
    with app.app_context():
        assert next_meeting(session, now=wednesday).week == Week(2026, 42)  # it may open late
        assert next_meeting(session, now=sunday).week == Week(2026, 43)  # never opened: over
        held = Meeting(
            week="2026-W42", week_start=date(2026, 10, 12), timezone="Asia/Tokyo",
            opened_by="user:rm@example.com",
        )  # fmt: skip
        session.add(held)
        session.commit()
        assert next_meeting(session, now=sunday).week == Week(2026, 42)  # open: still on
        held.state = "closed"
        session.add(held)
        session.commit()
        upcoming = next_meeting(session, now=wednesday)
    assert upcoming.week == Week(2026, 43)
    assert upcoming.at == datetime(2026, 10, 21, 3, 0, tzinfo=UTC)  # Wed 12:00 JST
