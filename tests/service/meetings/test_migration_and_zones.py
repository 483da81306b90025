"""Migration 0007 copies the per-release meeting records into weekly meetings; the meeting's
time zone is a checked setting; pages show times in a zone, its abbreviation, UTC on hover."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from flask import Flask, render_template_string
from flask.testing import FlaskClient
from sqlmodel import Session, col, select

from service import db, migrate
from service.meetings.models import Meeting, MeetingAttendee, MeetingDecision, MeetingItem
from service.releases.models import App, MeetingRecord, Release
from service.settings import Settings, SettingsError
from tests.conftest import PG_URL, pg_database


@pytest.fixture
def empty_database_url(tmp_path: Path) -> Iterator[str]:
    if not PG_URL:
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    with pg_database(f"relgov_meetings_upgrade_{os.getpid()}") as url:
        yield url


def test_0007_copies_the_per_release_records_into_weekly_meetings(empty_database_url: str) -> None:
    engine = db.make_engine(empty_database_url)
    migrate.upgrade(engine, "0005")
    at = datetime(2026, 10, 14, 4, 30, tzinfo=UTC)
    with Session(engine) as session:
        app = App(slug="pos", name="POS", train_timezone="Asia/Tokyo")
        session.add(app)
        session.flush()
        one = Release(app_id=app.id or 0, version="3.10.0", created_by="ci")
        two = Release(app_id=app.id or 0, version="3.10.1", created_by="ci")
        session.add_all([one, two])
        session.flush()
        session.add_all(
            [
                MeetingRecord(
                    release_id=one.id or 0, held_on=date(2026, 10, 14), attendees="Ren, Kenji",
                    decision="go", minutes="all green", recorded_by="user:rm@example.com", at=at,
                ),
                MeetingRecord(
                    release_id=two.id or 0, held_on=date(2026, 10, 16), attendees="Ren, Quinn",
                    decision="postponed", minutes="", recorded_by="user:rm@example.com", at=at,
                ),
            ]
        )  # fmt: skip
        session.commit()
    migrate.upgrade(engine)
    assert migrate.pending_differences(engine) == []
    with Session(engine) as session:
        (meeting,) = session.exec(select(Meeting)).all()
        assert (meeting.week, meeting.state, meeting.imported) == ("2026-W42", "closed", True)
        assert meeting.timezone == "Asia/Tokyo" and "3.10.0" in meeting.minutes
        decisions = session.exec(select(MeetingDecision).order_by(col(MeetingDecision.id))).all()
        assert [d.decision for d in decisions] == ["go", "defer"]
        assert [d.reason for d in decisions] == ["all green", "recorded on the release page"]
        assert len(session.exec(select(MeetingItem)).all()) == 2
        names = [a.name for a in session.exec(select(MeetingAttendee)).all()]
        assert names == ["Ren", "Kenji", "Quinn"]
    engine.dispose()


def test_the_meeting_time_zone_is_a_checked_setting() -> None:
    assert Settings.from_env({"RELGOV_MEETING_TIMEZONE": "Europe/Paris"}).meeting_timezone == (
        "Europe/Paris"
    )
    assert Settings.from_env({}).meeting_timezone == ""
    with pytest.raises(SettingsError, match="RELGOV_MEETING_TIMEZONE"):
        Settings.from_env({"RELGOV_MEETING_TIMEZONE": "Mars/Olympus"})


def test_times_show_in_a_zone_with_utc_on_hover(app: Flask, session: Session) -> None:
    session.add(App(slug="pos", name="POS", train_timezone="Asia/Tokyo"))
    session.commit()
    moment = datetime(2026, 10, 14, 5, 0, tzinfo=UTC)
    with app.test_request_context():
        shown = render_template_string(
            "{{ m | when('America/Los_Angeles') }}|{{ m | when }}|{{ m | when(none, 'day') }}",
            m=moment,
        )
    app_zone, display_zone, train = shown.split("|")
    assert app_zone == (
        '<time datetime="2026-10-14T05:00:00+00:00" title="2026-10-14 05:00:00 UTC">'
        "2026-10-13 22:00 PDT</time>"
    )
    # Pages about no one app use the meeting's zone: here the first app's train zone.
    assert ">2026-10-14 14:00 JST<" in display_zone and ">Wed 2026-10-14 14:00 JST<" in train


def test_the_release_page_shows_the_train_in_the_apps_zone(
    app: Flask, session: Session, client: FlaskClient
) -> None:
    from tests.builders import add_release, login, make_user

    pos = App(slug="pos", name="POS", train_timezone="Asia/Tokyo")
    session.add(pos)
    session.commit()
    release = add_release(
        session, pos, "3.2.0", "in_review", scheduled_for=datetime(2026, 10, 14, 5, tzinfo=UTC)
    )
    make_user(session, email="viewer@example.com", role="viewer")
    assert login(client, "viewer@example.com").status_code == 302
    page = client.get(f"/releases/{release.id}").get_data(as_text=True)
    assert 'title="2026-10-14 05:00:00 UTC">Wed 2026-10-14 14:00 JST</time>' in page
    assert "05:00 UTC" not in page.replace("05:00:00 UTC", "")
    audit = client.get("/audit").get_data(as_text=True)
    assert 'type="date"' not in audit and 'pattern="\\d{4}-\\d{2}-\\d{2}"' in audit


def test_the_meeting_weeks_follow_the_apps_zone_not_tokyo(
    app: Flask, session: Session, client: FlaskClient
) -> None:
    """Sunday 20:00 in Los Angeles is Monday 13:00 in Tokyo: with an app on Pacific time
    (and no RELGOV_MEETING_TIMEZONE), the release is on the earlier week's agenda."""
    from tests.builders import add_release, login, make_user

    kiosk = App(slug="kiosk", name="Kiosk", train_timezone="America/Los_Angeles")
    session.add(kiosk)
    session.commit()
    sunday_evening = datetime(2026, 10, 18, 20, tzinfo=ZoneInfo("America/Los_Angeles"))
    add_release(session, kiosk, "1.0.0", "in_review", scheduled_for=sunday_evening,
                created_at=sunday_evening - timedelta(days=3))  # fmt: skip
    make_user(session, email="viewer@example.com", role="viewer")
    assert login(client, "viewer@example.com").status_code == 302
    week42 = client.get("/api/v1/meetings/2026-W42").json
    assert week42["timezone"] == "America/Los_Angeles"
    assert [i["version"] for i in week42["items"]] == ["1.0.0"]
    week43 = client.get("/api/v1/meetings/2026-W43").json
    assert [i["reason"] for i in week43["items"]] == ["carried"]
