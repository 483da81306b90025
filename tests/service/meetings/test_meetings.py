"""The weekly meeting through its API and pages: the agenda of a week, the frozen snapshot,
decisions and what they do to a release, action items carried over, closing, amendments,
who may do what (before any input is read), and bad weeks refused."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, col, select

from service.incidents.models import Incident
from service.meetings import services
from service.meetings.models import ActionItem, MeetingDecision
from service.meetings.weeks import Week, week_at
from service.models import AuditEvent, User, utcnow
from service.releases.models import App, Release
from tests.builders import add_release, csrf_header, login, make_token, make_user, post_form

TOKYO = ZoneInfo("Asia/Tokyo")


@pytest.fixture
def people(session: Session) -> dict[str, User]:
    roles = {
        "rm": "release_manager",
        "eng": "engineer",
        "qa": "qa",
        "support": "support",
        "viewer": "viewer",
        "admin": "admin",
    }
    return {
        key: make_user(session, email=f"{key}@example.com", role=role, name=f"{key.title()} Person")
        for key, role in roles.items()
    }


@pytest.fixture
def pos(session: Session) -> App:
    app = App(slug="pos", name="POS register", train_weekday=2, train_time="14:00")
    session.add(app)
    session.commit()
    return app


@pytest.fixture
def week() -> Week:
    return week_at(utcnow(), TOKYO)


def train(week: Week, hour: int = 14) -> datetime:
    """The Wednesday train of ``week`` (Tokyo)."""
    return datetime.combine(week.monday + timedelta(days=2), time(hour), tzinfo=TOKYO)


def release(session: Session, app: App, version: str, state: str, **fields: Any) -> Release:
    fields.setdefault("created_at", utcnow() - timedelta(days=30))
    return add_release(session, app, version, state, **fields)


def person(client: FlaskClient, user: User) -> dict[str, str]:
    assert login(client, user.email).status_code == 302
    return csrf_header(client)


def items(client: FlaskClient, week: Week) -> dict[str, dict[str, Any]]:
    body = client.get(f"/api/v1/meetings/{week}").json
    return {i["version"]: i for i in body["items"]}


def open_week(client: FlaskClient, headers: dict[str, str], week: Week) -> dict[str, Any]:
    response = client.post(f"/api/v1/meetings/{week}/open", headers=headers)
    assert response.status_code == 201, response.json
    return response.json  # type: ignore[no-any-return]


def decide(
    client: FlaskClient, headers: dict[str, str], week: Week, release_id: int, **body: Any
) -> Any:
    return client.post(
        f"/api/v1/meetings/{week}/decisions",
        json={"release_id": release_id, "reason": "checked", **body},
        headers=headers,
    )


def test_the_agenda_is_the_week_not_whatever_is_active(
    client: FlaskClient, session: Session, pos: App, people: dict[str, User], week: Week
) -> None:
    last = week.shifted(-1)
    on_train = release(session, pos, "3.2.0", "in_review", scheduled_for=train(week))
    next_train = release(session, pos, "3.3.0", "draft", scheduled_for=train(week.shifted(1)))
    left_over = release(session, pos, "3.1.0", "beta", scheduled_for=train(last))
    released_then = release(
        session, pos, "3.0.0", "released", scheduled_for=train(last.shifted(-1)),
        released_at=train(last) + timedelta(days=1),
    )  # fmt: skip
    hotfix = release(
        session,
        pos,
        "3.1.1",
        "in_review",
        kind="hotfix",
        created_at=train(week) - timedelta(days=1),
    )
    client.get("/")  # the viewer reads
    person(client, people["viewer"])
    now = {v: i["reason"] for v, i in items(client, week).items()}
    assert now == {"3.2.0": "train", "3.1.0": "carried", "3.1.1": "hotfix"}
    before = items(client, last)
    assert set(before) == {"3.0.0", "3.1.0"}  # released during that week: on it
    assert "released this week" in before["3.0.0"]["detail"]
    assert set(items(client, week.shifted(1))) == {"3.3.0", "3.2.0", "3.1.0", "3.1.1"}
    assert not {on_train.id, next_train.id, left_over.id, released_then.id, hotfix.id} - {
        r.id for r in session.exec(select(Release)).all()
    }


def test_opening_freezes_a_snapshot_and_a_past_week_reads_back_as_decided(
    client: FlaskClient, session: Session, pos: App, people: dict[str, User], week: Week
) -> None:
    candidate = release(session, pos, "3.2.0", "in_review", scheduled_for=train(week))
    rm = person(client, people["rm"])
    opened = open_week(client, rm, week)
    assert opened["state"] == "open" and not opened["live"]
    assert [i["snapshot"]["state"] for i in opened["items"]] == ["in_review"]
    assert [a["name"] for a in opened["attendees"]] == ["Rm Person"]
    assert decide(client, rm, week, candidate.id, decision="go").status_code == 201
    assert items(client, week)["3.2.0"]["changed_since_snapshot"] is None  # its own move
    session.refresh(candidate)
    candidate.lock_version += 1  # someone moves it elsewhere while the meeting is open
    session.add(candidate)
    session.commit()
    assert items(client, week)["3.2.0"]["changed_since_snapshot"] == "now approved (was in review)"
    assert client.post(f"/api/v1/meetings/{week}/close", headers=rm).status_code == 200
    # The release moves on; the week still shows what the meeting saw and decided.
    session.refresh(candidate)
    assert candidate.state == "approved"
    candidate.state = "released"
    session.add(candidate)
    session.commit()
    item = items(client, week)["3.2.0"]
    assert item["snapshot"]["state"] == "in_review" and item["state_now"] == "released"
    assert item["decision"]["decision"] == "go"
    assert item["decision"]["effect"]["transition"] == "approve"
    again = client.post(f"/api/v1/meetings/{week}/open", headers=rm)
    assert again.status_code == 409 and "already closed" in again.json["error"]["message"]


def test_a_halted_release_with_an_open_incident_is_trouble_not_green(
    client: FlaskClient, session: Session, pos: App, people: dict[str, User], week: Week
) -> None:
    halted = release(
        session,
        pos,
        "2.6.0",
        "halted",
        halted_from="rolling_out",
        scheduled_for=train(week.shifted(-2)),
        beta_at=utcnow() - timedelta(days=10),
    )
    session.add(
        Incident(
            app_id=pos.id or 0, release_id=halted.id, title="Payments time out", impact=3,
            store_count=200, active_stores=300, active_basis="test", few_below=100,
            most_share=0.5, scope=3, score=9, started_at=utcnow() - timedelta(days=2),
            created_by="test",
        )
    )  # fmt: skip
    session.commit()
    person(client, people["viewer"])
    item = items(client, week)["2.6.0"]
    assert item["status"] == "bad"
    assert any("halted" in t for t in item["troubles"])
    assert any("score 9" in t for t in item["troubles"])
    page = client.get(f"/meetings/{week}").get_data(as_text=True)
    assert "nothing blocks" not in page and "open incident #" in page


def test_decisions_do_what_they_say(
    client: FlaskClient, session: Session, pos: App, people: dict[str, User], week: Week
) -> None:
    go = release(session, pos, "3.2.0", "in_review", scheduled_for=train(week))
    nogo = release(session, pos, "3.1.5", "approved", scheduled_for=train(week))
    later = release(session, pos, "3.1.4", "in_review", scheduled_for=train(week))
    rm = person(client, people["rm"])
    open_week(client, rm, week)

    missing = decide(client, rm, week, go.id, decision="go_with_conditions")
    assert (
        missing.status_code == 422 and missing.json["error"]["fields"][0]["field"] == "conditions"
    )
    ok = decide(
        client, rm, week, go.id, decision="go_with_conditions", conditions="halt at 1 timeout"
    )
    assert ok.status_code == 201 and ok.json["effect"]["state"] == ["in_review", "approved"]
    no = decide(client, rm, week, nogo.id, decision="no_go", reason="duplicate tickets")
    assert no.status_code == 201
    session.refresh(nogo)
    assert nogo.state == "rejected" and "duplicate tickets" in (nogo.rejected_reason or "")

    deferred = decide(client, rm, week, later.id, decision="defer", reason="owners not asked")
    assert deferred.status_code == 201
    session.refresh(later)
    assert week_at(later.scheduled_for, TOKYO) == week.shifted(1)  # type: ignore[arg-type]
    nxt = items(client, week.shifted(1))["3.1.4"]
    assert nxt["reason"] == "train" and nxt["detail"] == f"deferred in {week}"
    # Changing one's mind in the meeting puts the train back.
    assert decide(client, rm, week, later.id, decision="no_go").status_code == 201
    session.refresh(later)
    assert week_at(later.scheduled_for, TOKYO) == week  # type: ignore[arg-type]
    history = items(client, week)["3.1.4"]["history"]
    assert [d["decision"] for d in history] == ["defer", "no_go"]

    events = session.exec(
        select(AuditEvent).where(AuditEvent.action.in_(["meeting.decide", "release.approve"]))  # type: ignore[attr-defined]
    ).all()
    assert {e.actor for e in events} == {"user:rm@example.com"}
    assert len(events) == 5  # four decisions (one replaced) and the approval


def test_a_go_keeps_the_approval_guards(
    client: FlaskClient, session: Session, pos: App, people: dict[str, User], week: Week
) -> None:
    mine = release(session, pos, "3.2.0", "in_review", scheduled_for=train(week))
    mine.created_by = people["rm"].actor  # separation of duties: they registered it
    draft = release(session, pos, "3.3.0", "draft", scheduled_for=train(week))
    session.add(mine)
    session.commit()
    rm = person(client, people["rm"])
    open_week(client, rm, week)
    refused = decide(client, rm, week, mine.id, decision="go")
    assert refused.status_code == 409 and "separation of duties" in refused.json["error"]["message"]
    not_yet = decide(client, rm, week, draft.id, decision="go")
    assert not_yet.status_code == 409 and "submitted for review" in not_yet.json["error"]["message"]
    assert session.exec(select(MeetingDecision)).all() == []  # nothing half-written


def test_permission_comes_before_the_input(
    client: FlaskClient, session: Session, pos: App, people: dict[str, User], week: Week
) -> None:
    release(session, pos, "3.2.0", "in_review", scheduled_for=train(week))
    garbage = {"release_id": "x", "decision": "maybe"}
    paths = [
        f"/api/v1/meetings/{week}/decisions",
        f"/api/v1/meetings/{week}/action-items",
        f"/api/v1/meetings/{week}/amendments",
    ]
    for user in ("eng", "qa", "viewer"):
        browser = client.application.test_client()
        headers = person(browser, people[user])
        for path in paths:
            response = browser.post(path, json=garbage, headers=headers)
            assert response.status_code == 403, (user, path, response.json)
        assert browser.post(f"/api/v1/meetings/{week}/open", headers=headers).status_code == 403
    token = make_token(session, creator=people["admin"], scopes=["read", "releases:write"])
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.post(paths[0], json=garbage, headers=bearer).status_code == 403
    fresh = client.application.test_client()
    assert fresh.post(paths[0], json=garbage).status_code == 401


def test_bad_weeks_are_refused_not_replaced(
    client: FlaskClient, people: dict[str, User], pos: App
) -> None:
    person(client, people["viewer"])
    for bad in ("soon", "2026-W54", "2026-13-01"):
        api = client.get(f"/api/v1/meetings/{bad}")
        assert api.status_code == 422 and api.json["error"]["fields"][0]["field"] == "week"
        page = client.get(f"/meeting?week={bad}")
        assert page.status_code == 400 and "is not a" in page.get_data(as_text=True)
        assert client.get(f"/meetings/{bad}").status_code == 400
    legacy = client.get("/api/v1/meeting?week=soon")
    assert legacy.status_code == 422 and legacy.json["error"]["fields"][0]["field"] == "week"
    dated = client.get("/meetings/2026-10-12")
    assert dated.status_code == 302 and dated.headers["Location"].endswith("/meetings/2026-W42")
    assert client.get("/meeting?week=2026-W42").headers["Location"].endswith("/meetings/2026-W42")
    assert client.get("/api/v1/meetings/2026-10-12").json["week"] == "2026-W42"


def test_action_items_carry_over_until_someone_closes_them(
    client: FlaskClient, session: Session, pos: App, people: dict[str, User], week: Week
) -> None:
    rm = person(client, people["rm"])
    open_week(client, rm, week)
    url = f"/api/v1/meetings/{week}/action-items"
    due = week.monday + timedelta(days=3)
    wrong_owner = {"title": "Read the notes", "owner": "viewer@example.com", "due_on": str(due)}
    refused = client.post(url, json=wrong_owner, headers=rm)
    assert refused.status_code == 422 and refused.json["error"]["fields"][0]["field"] == "owner"
    too_early = {
        **wrong_owner,
        "owner": "eng@example.com",
        "due_on": str(week.monday - timedelta(1)),
    }
    refused = client.post(url, json=too_early, headers=rm)
    assert refused.status_code == 422 and refused.json["error"]["fields"][0]["field"] == "due_on"
    made = client.post(url, json={**too_early, "due_on": str(due)}, headers=rm)
    assert made.status_code == 201 and made.json["owner"] == "eng@example.com"
    item_id = made.json["id"]
    assert client.post(f"/api/v1/meetings/{week}/close", headers=rm).status_code == 200
    # Next week's meeting shows it (open) until it is closed.
    nxt = client.get(f"/api/v1/meetings/{week.shifted(1)}").json
    assert [a["id"] for a in nxt["action_items"]] == [item_id]
    viewer_client = client.application.test_client()
    viewer = person(viewer_client, people["viewer"])
    close_url = f"/api/v1/action-items/{item_id}/close"
    assert viewer_client.post(close_url, json={}, headers=viewer).status_code == 403
    client = client.application.test_client()
    eng = person(client, people["eng"])
    closed = client.post(
        f"/api/v1/action-items/{item_id}/close", json={"note": "done"}, headers=eng
    )
    assert closed.status_code == 200 and closed.json["state"] == "closed"
    twice = client.post(f"/api/v1/action-items/{item_id}/close", json={}, headers=eng)
    assert twice.status_code == 409
    # The closed meeting still shows it open, as it stood then; next week no longer lists it.
    assert client.get(f"/api/v1/meetings/{week}").json["action_items"][0]["state"] == "open"
    assert client.get(f"/api/v1/meetings/{week.shifted(1)}").json["action_items"] == []
    audit = session.exec(select(AuditEvent).where(AuditEvent.action == "action_item.close")).one()
    assert audit.actor == "user:eng@example.com" and audit.after == {
        "state": "closed",
        "note": "done",
    }
    assert (
        client.get("/api/v1/action-items?state=closed").json[0]["closed_by"]
        == "user:eng@example.com"
    )


def test_an_overdue_action_item_stands_out(
    session: Session,
    app: Flask,
    client: FlaskClient,
    pos: App,
    people: dict[str, User],
    week: Week,
) -> None:
    with app.app_context():
        last = week.shifted(-1)
        meeting = services.open_meeting(session, week=last, user=people["rm"])
        item = services.add_action_item(
            session,
            meeting=meeting,
            user=people["rm"],
            title="Postmortem",
            owner="eng@example.com",
            due_on=last.monday,
        )
        session.commit()
        view = services.week_view(session, week)
    assert [a.id for a in view.action_items] == [item.id] and view.overdue(item)
    person(client, people["viewer"])
    page = client.get(f"/meetings/{week}").get_data(as_text=True)
    summary = page[page.index('class="week-summary"') :]
    assert re.search(r'href="#actions"[^>]*><strong>1</strong> overdue action item<', summary)


def test_a_closed_meeting_is_read_only_but_can_be_amended(
    client: FlaskClient, session: Session, pos: App, people: dict[str, User], week: Week
) -> None:
    candidate = release(session, pos, "3.2.0", "in_review", scheduled_for=train(week))
    rm = person(client, people["rm"])
    open_week(client, rm, week)
    early = client.post(
        f"/api/v1/meetings/{week}/amendments",
        json={"release_id": candidate.id, "decision": "go", "reason": "x"},
        headers=rm,
    )
    assert early.status_code == 409  # amendments are for a closed meeting
    assert client.post(f"/api/v1/meetings/{week}/close", headers=rm).status_code == 200
    for path, method, body in [
        ("decisions", "post", {"release_id": candidate.id, "decision": "go", "reason": "x"}),
        ("minutes", "put", {"minutes": "late"}),
        ("attendees", "put", {"people": ["eng@example.com"]}),
        (
            "action-items",
            "post",
            {"title": "x", "owner": "eng@example.com", "due_on": "2030-01-01"},
        ),
        ("close", "post", None),
    ]:
        response = client.open(
            f"/api/v1/meetings/{week}/{path}", method=method, json=body, headers=rm
        )
        assert response.status_code == 409, (path, response.json)
    amended = client.post(
        f"/api/v1/meetings/{week}/amendments",
        json={"release_id": candidate.id, "decision": "no_go", "reason": "lab found a crash"},
        headers=rm,
    )
    assert amended.status_code == 201 and amended.json["amendment"] is True
    session.refresh(candidate)
    assert candidate.state == "rejected"
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "meeting.amend")).one()
    assert event.highlight and event.actor == "user:rm@example.com"


def test_minutes_and_attendees(
    client: FlaskClient, session: Session, pos: App, people: dict[str, User], week: Week
) -> None:
    rm = person(client, people["rm"])
    open_week(client, rm, week)
    url = f"/api/v1/meetings/{week}/minutes"
    saved = client.put(url, json={"minutes": "Walked the checklist.", "revision": 0}, headers=rm)
    assert saved.status_code == 200 and saved.json["revision"] == 1
    stale = client.put(url, json={"minutes": "Other text", "revision": 0}, headers=rm)
    assert stale.status_code == 409 and stale.json["error"]["fields"][0]["field"] == "revision"
    attendees = client.put(
        f"/api/v1/meetings/{week}/attendees",
        json={"people": ["eng@example.com", "QA@example.com"], "guests": ["Tanaka (owner)"]},
        headers=rm,
    )
    assert attendees.status_code == 200
    assert [(a["name"], a["person"]) for a in attendees.json] == [
        ("Eng Person", True), ("Qa Person", True), ("Tanaka (owner)", False)
    ]  # fmt: skip
    unknown = client.put(
        f"/api/v1/meetings/{week}/attendees", json={"people": ["nobody@example.com"]}, headers=rm
    )
    assert unknown.status_code == 422 and unknown.json["error"]["fields"][0]["field"] == "people"


def test_the_pages_run_the_meeting(
    client: FlaskClient, session: Session, pos: App, people: dict[str, User], week: Week
) -> None:
    candidate = release(session, pos, "3.2.0", "in_review", scheduled_for=train(week))
    person(client, people["rm"])
    page = f"/meetings/{week}"
    assert "Open the meeting" in client.get(page).get_data(as_text=True)
    assert post_form(client, f"{page}/open", {}, page=page).status_code == 302
    refused = post_form(
        client, f"{page}/decisions", {"release_id": candidate.id, "decision": "go_with_conditions",
                                      "reason": "ok"}, page=page
    )  # fmt: skip
    assert refused.status_code == 302
    assert "Not decided: list the conditions" in client.get(page).get_data(as_text=True)
    decided = post_form(
        client,
        f"{page}/decisions",
        {"release_id": candidate.id, "decision": "go_with_conditions", "reason": "ok",
         "conditions": "support briefs the beta stores"},
        page=page,
    )  # fmt: skip
    assert decided.status_code == 302
    html = client.get(page).get_data(as_text=True)
    assert "It is now approved" in html and "support briefs the beta stores" in html
    bad_date = post_form(
        client, f"{page}/action-items", {"title": "x", "owner": "eng@example.com",
                                         "due_on": "12/10/2026"}, page=page
    )  # fmt: skip
    assert bad_date.status_code == 302
    assert "is not a date: write it as YYYY-MM-DD" in client.get(page).get_data(as_text=True)
    assert client.post(f"{page}/close", data={}).status_code == 400  # no CSRF token
    assert post_form(client, f"{page}/close", {}, page=page).status_code == 302
    closed = client.get(page).get_data(as_text=True)
    assert "This is the record as decided then" in closed and "Record the decision" not in closed
    release_page = client.get(f"/releases/{candidate.id}").get_data(as_text=True)
    assert f"{week}</a> — Go with conditions" in release_page


def test_every_change_reaches_the_reactions(
    app: Flask, session: Session, pos: App, people: dict[str, User], week: Week
) -> None:
    heard: list[str] = []
    try:
        services.install([lambda _session, event: heard.append(event.kind)])
        candidate = release(session, pos, "3.2.0", "in_review", scheduled_for=train(week))
        with app.app_context():
            meeting = services.open_meeting(session, week=week, user=people["rm"])
            services.decide(
                session, meeting=meeting, release=candidate, user=people["rm"],
                decision="defer", reason="not ready",
            )  # fmt: skip
            item = services.add_action_item(
                session, meeting=meeting, user=people["rm"], title="Ask", owner="qa@example.com",
                due_on=week.sunday,
            )  # fmt: skip
            services.close_action_item(session, item=item, user=people["qa"])
            services.close_meeting(session, meeting=meeting, user=people["rm"])
    finally:
        services.install(())
    assert heard == [
        "opened", "decided", "action_item_created", "action_item_closed", "closed"
    ]  # fmt: skip


def test_the_older_per_release_record_goes_to_the_weekly_meeting(
    client: FlaskClient, session: Session, pos: App, people: dict[str, User], week: Week
) -> None:
    candidate = release(session, pos, "3.2.0", "approved", scheduled_for=train(week))
    rm = person(client, people["rm"])
    recorded = client.post(
        f"/api/v1/releases/{candidate.id}/meetings",
        json={
            "held_on": str(week.monday),
            "attendees": "Ren, Kenji",
            "decision": "postponed",
            "minutes": "waiting for the owners",
        },
        headers=rm,
    )
    assert recorded.status_code == 201, recorded.json
    assert recorded.json["decision"] == "postponed" and recorded.json["week"] == str(week)
    body = client.get(f"/api/v1/meetings/{week}").json
    assert body["state"] == "open"
    assert body["items"][0]["decision"]["decision"] == "defer"
    assert "Kenji" in [a["name"] for a in body["attendees"]]
    assert "waiting for the owners" in body["minutes"]
    assert (
        client.get(f"/api/v1/releases/{candidate.id}/meetings").json[0]["decision"] == "postponed"
    )
    items_ = session.exec(select(ActionItem)).all()
    assert items_ == []
    assert session.exec(select(col(MeetingDecision.decision))).all() == ["defer"]
