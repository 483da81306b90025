"""A closed meeting's minutes in Notion (issue 18 item 5): a page per week in the meetings
database, published by a job through the real notion-client to the local fake, idempotent,
an amendment rewriting only what changed, faults mid-publish, a lost create with a lagging
search; without the meetings database nothing is queued and the week page says where the
minutes would go."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, select

from release_notes.notion import NotionPublisher
from service import jobs
from service.demo import seed_demo
from service.jobs.models import Job
from service.meetings import minutes, services
from service.meetings.models import Meeting, MinutesPage
from service.meetings.weeks import Week
from service.models import AuditEvent, User, utcnow
from service.releases.models import App
from service.settings import Settings
from tests.builders import login
from tests.fakes.notion_fake import Fault, NotionFake
from tests.fakes.notion_fixtures import fake_config, instant_limiter
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

CREATE = {"method": "POST", "path": r"/v1/pages$"}
APPEND = {"method": "PATCH", "path": r"/children$"}
BLOCK_PATCH = r"/v1/blocks/[^/]+$"


@pytest.fixture
def notion() -> Iterator[NotionFake]:
    """A local Notion with a meetings database (title "Name" only: the schema is added)."""
    with NotionFake(database_title="Release notes") as fake:
        yield fake


@pytest.fixture
def meetings_db(notion: NotionFake) -> tuple[str, str]:
    db_id, ds_id = notion.add_database("Release meetings", {"Name": {"title": {}}})
    config = replace(fake_config(notion, database_id=db_id), schema=minutes.MINUTES_SCHEMA)
    with NotionPublisher(config, limiter=instant_limiter()) as publisher:
        assert publisher.init_schema().ok
    notion.reset_requests()
    return db_id, ds_id


@pytest.fixture
def settings(settings: Settings, notion: NotionFake, meetings_db: tuple[str, str]) -> Settings:
    return replace(
        settings,
        notion_token=notion.token,
        notion_base_url=notion.base_url,
        notion_meetings_database_id=meetings_db[0],
        notion_create_settle_seconds=60.0,
        base_url="https://relgov.example.com",
    )


@pytest.fixture
def app(app: Flask) -> Flask:
    app.extensions["relgov.notion_limiter"] = instant_limiter()
    app.config["RELGOV_NOTION_TIMEOUT"] = 5.0
    return app


def later(seconds: float) -> Any:
    return utcnow() + timedelta(seconds=seconds)


def held_meeting(
    client: FlaskClient, session: Session, pos: App, people: dict[str, User], week: Week
) -> tuple[dict[str, str], Any]:
    """A meeting opened, decided (a go), with attendees, minutes, an action item; closed."""
    stop = release(session, pos, "3.1.0", "approved", scheduled_for=train(week))
    rm = person(client, people["rm"])
    open_week(client, rm, week)
    assert (
        client.post(
            f"/api/v1/meetings/{week}/decisions",
            json={"release_id": stop.id, "decision": "go", "reason": "crash on start fixed"},
            headers=rm,
        ).status_code
        == 201
    )
    client.put(
        f"/api/v1/meetings/{week}/attendees",
        json={"people": ["qa@example.com"], "guests": ["Tanaka (owner)"]}, headers=rm,
    )  # fmt: skip
    client.put(
        f"/api/v1/meetings/{week}/minutes",
        json={"minutes": "3.1.0 stopped: it crashes on start.\nQA re-tests on Thursday.",
              "revision": 0}, headers=rm,
    )  # fmt: skip
    assert client.post(
        f"/api/v1/meetings/{week}/action-items",
        json={"title": "Find the crash", "owner": "eng@example.com",
              "due_on": week.sunday.isoformat(), "release_id": stop.id}, headers=rm,
    ).status_code == 201  # fmt: skip
    assert client.post(f"/api/v1/meetings/{week}/close", headers=rm).status_code == 200
    return rm, stop


def minutes_jobs(session: Session) -> list[Job]:
    session.expire_all()
    return list(session.exec(select(Job).where(Job.kind == minutes.KIND).order_by(Job.id)).all())


def run(app: Flask, at: float) -> Job:
    job = jobs.run_once(app, now=later(at))
    assert job is not None
    return job


def lines_of(blocks: list[dict[str, Any]]) -> list[str]:
    """Each block's text (its rich text joined), depth first."""
    out = []
    for block in blocks:
        body = block[block["type"]]
        out.append("".join(i["text"]["content"] for i in body.get("rich_text", [])))
        out.extend(lines_of(block.get("children") or body.get("children", [])))
    return out


def text_of(notion: NotionFake, page_id: str) -> str:
    return "\n".join(lines_of(notion.block_tree(page_id)))


def test_closing_a_meeting_publishes_its_minutes_page(
    app: Flask,
    client: FlaskClient,
    session: Session,
    pos: App,
    people: dict[str, User],
    week: Week,
    notion: NotionFake,
    meetings_db: tuple[str, str],
) -> None:
    held_meeting(client, session, pos, people, week)
    (queued,) = minutes_jobs(session)
    assert queued.key == f"minutes:{week}" and queued.state == "queued"
    assert client.get(f"/api/v1/meetings/{week}/minutes").json["state"] == "queued"

    job = run(app, 5)
    assert job.state == "succeeded", job.last_error
    assert job.result.startswith("created")
    (page,) = notion.live_pages(meetings_db[1])
    assert notion.live_pages() == []  # not in the release-notes database
    props = page["properties"]
    assert props["Meeting"]["title"][0]["plain_text"] == f"Release meeting {week}"
    assert props["Week"]["rich_text"][0]["plain_text"] == week.label
    assert props["Date"]["date"]["start"] == week.monday.isoformat()
    assert props["Decisions"]["number"] == 1
    assert props["Status"]["select"]["name"] == "Published"
    body = text_of(notion, page["id"])
    for expected in (
        "Qa Person (qa)",
        "Tanaka (owner) (guest)",
        "POS register 3.1.0 — Go",
        "Reason: crash on start fixed",
        "Decided by rm@example.com",
        "3.1.0 stopped: it crashes on start.",
        "QA re-tests on Thursday.",
        "Find the crash",
        f"Eng Person, due {week.sunday.isoformat()} (open)",
        "No overrides.",
    ):
        assert expected in body, expected
    assert any(b["type"] == "to_do" for b in notion.block_tree(page["id"]))

    status = client.get(f"/api/v1/meetings/{week}/minutes").json
    assert status["state"] == "published" and status["up_to_date"] is True
    assert status["notion_url"] == page["url"]
    html = client.get(f"/meetings/{week}").get_data(as_text=True)
    assert 'data-minutes-state="published"' in html and page["url"] in html
    actions = [
        e.action
        for e in session.exec(select(AuditEvent).where(AuditEvent.subject_id == week.label))
    ]
    assert "minutes.publish_queued" in actions and "minutes.published" in actions


def test_publishing_again_writes_nothing_when_nothing_changed(
    app: Flask,
    client: FlaskClient,
    session: Session,
    pos: App,
    people: dict[str, User],
    week: Week,
    notion: NotionFake,
    meetings_db: tuple[str, str],
) -> None:
    rm, _ = held_meeting(client, session, pos, people, week)
    assert run(app, 5).state == "succeeded"
    notion.reset_requests()

    again = client.post(f"/api/v1/meetings/{week}/minutes/publish", headers=rm)
    assert again.status_code == 202, again.json
    assert again.json["state"] == "queued"
    job = run(app, 10)
    assert job.state == "succeeded" and job.result.startswith("skipped"), job.result
    assert len(notion.live_pages(meetings_db[1])) == 1
    assert notion.count("POST") == 0  # no page created, nothing appended
    assert notion.count("PATCH") == 0 and notion.count("DELETE") == 0
    assert notion.count() <= 1  # the page read that confirms it is unchanged
    session.expire_all()
    meeting = session.exec(select(Meeting).where(Meeting.week == week.label)).one()
    row = session.get(MinutesPage, meeting.id)
    assert row is not None and row.publish_state == "published"
    queued = session.exec(
        select(AuditEvent).where(AuditEvent.action == "minutes.publish_queued")
    ).all()
    assert [e.actor for e in queued] == ["user:rm@example.com", "user:rm@example.com"]


def test_an_amendment_rewrites_only_what_changed(
    app: Flask,
    client: FlaskClient,
    session: Session,
    pos: App,
    people: dict[str, User],
    week: Week,
    notion: NotionFake,
    meetings_db: tuple[str, str],
) -> None:
    rm, stop = held_meeting(client, session, pos, people, week)
    assert run(app, 5).state == "succeeded"
    (page,) = notion.live_pages(meetings_db[1])
    before = {b["id"] for b in notion.block_tree(page["id"])}
    notion.reset_requests()

    amended = client.post(
        f"/api/v1/meetings/{week}/amendments",
        json={"release_id": stop.id, "decision": "go_with_conditions",
              "reason": "crash on start fixed", "conditions": "QA re-tests on two devices"},
        headers=rm,
    )  # fmt: skip
    assert amended.status_code == 201, amended.json
    assert minutes_jobs(session)[-1].state == "queued"  # the amendment queued it
    assert client.get(f"/api/v1/meetings/{week}/minutes").json["up_to_date"] is False
    job = run(app, 10)
    assert job.state == "succeeded" and job.result.startswith("updated"), job.last_error
    assert notion.live_pages(meetings_db[1])[0]["id"] == page["id"]
    after = notion.block_tree(page["id"])
    body = text_of(notion, page["id"])
    assert "POS register 3.1.0 — Go with conditions" in body
    assert "Conditions: QA re-tests on two devices" in body
    assert "amended after the meeting" in body and "Amendments" in body
    assert notion.live_pages(meetings_db[1])[0]["properties"]["Amendments"]["number"] == 1
    # The unchanged blocks stay: only the decision (its children changed: replaced) and
    # the new "Amendments" section are written, and the page's properties.
    kept = before & {b["id"] for b in after}
    assert len(kept) == len(before) - 1
    assert notion.count("DELETE") == 1
    assert notion.count() <= 8, [(r.method, r.path) for r in notion.requests]


def test_a_429_and_a_500_mid_publish_end_in_one_complete_page(
    app: Flask,
    client: FlaskClient,
    session: Session,
    pos: App,
    people: dict[str, User],
    week: Week,
    notion: NotionFake,
    meetings_db: tuple[str, str],
) -> None:
    held_meeting(client, session, pos, people, week)
    # A 429 asking to wait 0 s is waited out within the attempt; a 500 on the last step
    # (the page's properties, after the blocks) ends it.
    notion.inject(
        Fault.rate_limited(0, **APPEND), Fault.http(500, method="PATCH", path=r"/v1/pages/")
    )
    job = run(app, 5)
    assert job.state == "queued" and job.attempts == 1
    assert "500" in (job.last_error or "")
    status = client.get(f"/api/v1/meetings/{week}/minutes").json
    assert status["state"] == "queued" and "500" in status["last_error"]
    html = client.get(f"/meetings/{week}").get_data(as_text=True)
    assert "Last attempt failed, will retry" in html

    job = run(app, 120)
    assert job.state == "succeeded", job.last_error
    (page,) = notion.live_pages(meetings_db[1])
    tree = notion.block_tree(page["id"])
    headings = [b["type"] for b in tree if b["type"].startswith("heading")]
    assert headings.count("heading_2") == 5  # attendees, decisions, minutes, actions, overrides
    assert text_of(notion, page["id"]).count("Find the crash") == 1  # nothing appended twice
    assert notion.count("POST", r"/v1/pages$") == 1


def test_a_final_failure_shows_the_reason_and_a_retry_button(
    app: Flask,
    client: FlaskClient,
    session: Session,
    pos: App,
    people: dict[str, User],
    week: Week,
    notion: NotionFake,
) -> None:
    rm, _ = held_meeting(client, session, pos, people, week)
    rm_token = rm["X-CSRFToken"]
    notion.inject(Fault.http(400, **CREATE))
    job = run(app, 5)
    assert job.state == "failed"
    html = client.get(f"/meetings/{week}").get_data(as_text=True)
    assert 'data-minutes-state="failed"' in html and "Publishing failed" in html
    assert "Injected validation error" in html and ">Retry</button>" in html
    failed = session.exec(
        select(AuditEvent).where(AuditEvent.action == "minutes.publish_failed")
    ).one()
    assert failed.highlight
    retried = client.post(f"/meetings/{week}/minutes/publish", data={"csrf_token": rm_token})
    assert retried.status_code == 302
    assert run(app, 10).state == "succeeded"
    assert client.get(f"/api/v1/meetings/{week}/minutes").json["state"] == "published"


def test_a_lost_create_with_a_lagging_search_makes_one_page(
    app: Flask,
    client: FlaskClient,
    session: Session,
    pos: App,
    people: dict[str, User],
    week: Week,
    notion: NotionFake,
    meetings_db: tuple[str, str],
) -> None:
    held_meeting(client, session, pos, people, week)
    clock = [later(5)]
    notion.clock = lambda: clock[0]
    notion.query_lag = timedelta(seconds=45)
    notion.inject(Fault.lost_response(**CREATE))
    job = jobs.run_once(app, now=clock[0])
    assert job is not None and job.state == "queued"
    assert len(notion.live_pages(meetings_db[1])) == 1  # made, but the answer was lost

    clock[0] = job.next_run_at + timedelta(seconds=1)  # the search does not show it yet
    job = jobs.run_once(app, now=clock[0])
    assert job is not None and job.state == "queued" and "unconfirmed" in (job.last_error or "")
    assert notion.count("POST", r"/v1/pages$") == 1

    clock[0] = job.next_run_at + timedelta(seconds=1)  # now it does
    job = jobs.run_once(app, now=clock[0])
    assert job is not None and job.state == "succeeded", job.last_error
    (page,) = notion.live_pages(meetings_db[1])
    assert page["properties"]["Status"]["select"]["name"] == "Published"
    assert "Find the crash" in text_of(notion, page["id"])
    assert notion.count("POST", r"/v1/pages$") == 1


def test_without_a_meetings_database_nothing_is_queued_and_the_page_says_where(
    app: Flask,
    client: FlaskClient,
    session: Session,
    pos: App,
    people: dict[str, User],
    week: Week,
    settings: Settings,
) -> None:
    app.config["RELGOV_SETTINGS"] = replace(settings, notion_meetings_database_id="")
    rm, _ = held_meeting(client, session, pos, people, week)
    assert minutes_jobs(session) == []
    html = client.get(f"/meetings/{week}").get_data(as_text=True)
    assert 'data-minutes-state="not-configured"' in html
    assert "RELGOV_NOTION_MEETINGS_DATABASE_ID" in html and "publish-minutes" not in html
    refused = client.post(f"/api/v1/meetings/{week}/minutes/publish", headers=rm)
    assert refused.status_code == 409
    assert "RELGOV_NOTION_MEETINGS_DATABASE_ID" in refused.json["error"]["message"]
    assert minutes_jobs(session) == []
    status = client.get(f"/api/v1/meetings/{week}/minutes").json
    assert status["configured"] is False and status["state"] == "none"


def test_an_open_meeting_is_not_published_and_only_release_managers_ask(
    app: Flask,
    client: FlaskClient,
    session: Session,
    pos: App,
    people: dict[str, User],
    week: Week,
) -> None:
    rm = person(client, people["rm"])
    open_week(client, rm, week)
    refused = client.post(f"/api/v1/meetings/{week}/minutes/publish", headers=rm)
    assert refused.status_code == 409 and "still open" in refused.json["error"]["message"]
    other = app.test_client()
    qa = person(other, people["qa"])
    assert other.post(f"/api/v1/meetings/{week}/minutes/publish", headers=qa).status_code == 403
    assert minutes_jobs(session) == []


def test_the_page_lists_overrides_from_the_decisions_snapshot() -> None:
    record: dict[str, Any] = {
        "week": "2026-W42", "monday": "2026-10-12", "sunday": "2026-10-18",
        "timezone": "Asia/Tokyo", "opened_by": "user:rm@example.com",
        "opened_at": "2026-10-14T05:00:00+00:00", "closed_by": "user:rm@example.com",
        "closed_at": "2026-10-14T06:00:00+00:00", "attendees": [], "undecided": [],
        "minutes": "", "action_items": [], "amendments": [],
        "decisions": [{
            "app_name": "KDS", "version": "1.12.0", "label": "Go", "reason": "ok",
            "conditions": "", "decided_by": "user:rm@example.com",
            "at": "2026-10-14T05:30:00+00:00", "amendment": False,
            "overrides": [{"what": "“Bump-bar regression”", "by": "admin@example.com",
                           "reason": "rig broken; manual pass"}],
        }],
    }  # fmt: skip
    body = str(minutes.minutes_blocks(record, None))
    assert (
        "KDS 1.12.0: “Bump-bar regression” overridden by admin@example.com: rig broken; "
        "manual pass" in body
    )
    assert "No overrides." not in body


def test_the_demos_closed_weeks_say_where_their_minutes_would_go(
    app: Flask, session: Session, client: FlaskClient, settings: Settings
) -> None:
    app.config["RELGOV_SETTINGS"] = replace(settings, notion_meetings_database_id="")
    seed_demo(app)
    assert minutes_jobs(session) == []  # no network in the demo: nothing queued
    closed = session.exec(select(Meeting).where(Meeting.state == "closed")).all()
    assert len(closed) >= 6
    assert login(client, "rm@example.com", "demo-password").status_code == 302
    for meeting in closed:
        html = client.get(f"/meetings/{meeting.week}").get_data(as_text=True)
        assert 'data-minutes-state="not-configured"' in html, meeting.week
        assert f"Release meeting {meeting.week}" in html
    # What the pages would say, the demo's override included.
    with app.test_request_context():
        bodies = [
            "\n".join(
                lines_of(
                    minutes.minutes_content(
                        services.meeting_record(session, m), settings
                    ).to_blocks()
                )
            )
            for m in closed
        ]
    assert any("overridden by" in body for body in bodies)
    assert any("No-go" in body for body in bodies) and any("Defer" in body for body in bodies)


def test_a_meetings_database_with_only_a_title_gets_its_properties_on_the_first_publish(
    app: Flask,
    client: FlaskClient,
    session: Session,
    pos: App,
    people: dict[str, User],
    week: Week,
    notion: NotionFake,
    settings: Settings,
) -> None:
    db_id, ds_id = notion.add_database("New meetings", {"Name": {"title": {}}})
    app.config["RELGOV_SETTINGS"] = replace(settings, notion_meetings_database_id=db_id)
    held_meeting(client, session, pos, people, week)
    job = run(app, 5)
    assert job.state == "succeeded", job.last_error
    schema = notion.data_sources[ds_id].properties
    assert {n: p["type"] for n, p in schema.items()} == dict(minutes.MINUTES_SCHEMA.properties)
    (page,) = notion.live_pages(ds_id)
    assert page["properties"]["Meeting"]["title"][0]["plain_text"] == f"Release meeting {week}"
