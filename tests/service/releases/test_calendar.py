"""The release calendar: trains, releases, skips and freezes of every app, week by week."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlmodel import Session

from beta.models import Store
from service.releases.calendar import CalendarError, build_calendar, parse_start
from service.releases.models import App
from service.releases.trains import skip_week
from tests.builders import add_release
from tests.fleet_builders import freeze

NOW = datetime(2026, 10, 14, 3, 0, tzinfo=UTC)  # Wednesday 12:00 JST, week 2026-W42


@pytest.fixture
def apps(session: Session) -> tuple[App, App]:
    pos = App(slug="pos", name="POS register", train_weekday=2, train_time="14:00")
    # A Monday 08:00 JST train leaves on Sunday in UTC: its week is the JST one.
    kds = App(
        slug="kds",
        name="Kitchen display",
        train_weekday=0,
        train_time="08:00",
        train_timezone="Asia/Tokyo",
    )
    session.add(pos)
    session.add(kds)
    session.commit()
    return pos, kds


def test_a_default_start_is_four_weeks_back_and_a_bad_one_names_start() -> None:
    assert parse_start(None, today=date(2026, 10, 14)) == date(2026, 9, 14)
    assert parse_start("2026-10-15", today=date(2026, 1, 1)) == date(2026, 10, 12)
    assert parse_start("2026-W42", today=date(2026, 1, 1)) == date(2026, 10, 12)
    for bad in ("2026-13-01", "next week", "2026-W60"):
        with pytest.raises(CalendarError) as refused:
            parse_start(bad, today=date(2026, 1, 1))
        assert refused.value.field == "start"
        assert refused.value.status == 400


def test_thirteen_weeks_of_trains_each_in_its_apps_week(
    session: Session, apps: tuple[App, App]
) -> None:
    shown = build_calendar(session, start=parse_start(None, today=NOW.date()), now=NOW)
    assert [w.label for w in shown.weeks][:1] == ["2026-W38"]
    assert len(shown.weeks) == 13 and shown.weeks[-1].label == "2026-W50"
    assert [w.label for w in shown.weeks if w.current] == ["2026-W42"]
    current = next(w for w in shown.weeks if w.current)
    by_app = {cell.app.slug: cell for cell in current.apps}
    assert by_app["pos"].train_local == "Wed 2026-10-14 14:00 JST"
    # Monday 08:00 JST is Sunday 23:00 UTC, yet it is the train of the JST week of the 12th.
    assert by_app["kds"].train_at == datetime(2026, 10, 11, 23, 0, tzinfo=UTC)
    assert by_app["kds"].train_local == "Mon 2026-10-12 08:00 JST"


def test_a_release_appears_in_the_weeks_its_steps_happened(
    session: Session, apps: tuple[App, App]
) -> None:
    pos, _ = apps
    add_release(
        session,
        pos,
        "3.12.0",
        "released",
        scheduled_for=datetime(2026, 9, 30, 5, 0, tzinfo=UTC),
        approved_at=datetime(2026, 9, 30, 6, 0, tzinfo=UTC),
        beta_at=datetime(2026, 10, 1, 1, 0, tzinfo=UTC),
        released_at=datetime(2026, 10, 7, 2, 0, tzinfo=UTC),
    )
    add_release(
        session,
        pos,
        "3.12.1",
        "halted",
        kind="hotfix",
        approved_at=datetime(2026, 10, 8, 2, 0, tzinfo=UTC),
    )
    add_release(session, pos, "2.0.0", "released", released_at=datetime(2025, 1, 1, tzinfo=UTC))
    shown = build_calendar(session, start=date(2026, 9, 28), weeks=3, app_slug="pos", now=NOW)
    steps = {w.label: [(m.version, m.kind) for m in w.apps[0].milestones] for w in shown.weeks}
    assert steps == {
        "2026-W40": [("3.12.0", "scheduled"), ("3.12.0", "approved"), ("3.12.0", "beta")],
        "2026-W41": [("3.12.0", "released"), ("3.12.1", "approved")],
        "2026-W42": [],
    }
    week41 = shown.weeks[1].apps[0]
    assert [[m.kind for m in group] for group in week41.releases] == [["released"], ["approved"]]
    assert week41.releases[1][0].release_kind == "hotfix"


def test_skipped_weeks_and_freezes_show_with_reasons_and_store_counts(
    session: Session, apps: tuple[App, App]
) -> None:
    pos, _ = apps
    skip_week(session, app=pos, week_of=date(2026, 10, 21), reason="Year-end rush", actor="rm")
    stores = [
        Store(external_id=f"S-{n}", name=f"Store {n}", created_at=NOW, updated_at=NOW)
        for n in range(3)
    ]
    session.add_all(stores)
    session.commit()
    start = datetime(2026, 10, 16, 1, 0, tzinfo=UTC)
    for store in stores[:2]:
        freeze(session, store, start, reason="Grand reopening", days=5)
    lifted = freeze(session, stores[2], start, reason="Lifted later", days=5)
    lifted.freeze.lifted_at = start
    lifted.freeze.lifted_by = "rm"
    session.commit()
    shown = build_calendar(session, start=date(2026, 10, 12), weeks=3, now=NOW)
    pos_cells = [next(c for c in w.apps if c.app.slug == "pos") for w in shown.weeks]
    assert [c.skip_reason for c in pos_cells] == [None, "Year-end rush", None]
    frozen = [[(f.reason, f.stores) for f in w.freezes] for w in shown.weeks]
    assert frozen == [[("Grand reopening", 2)], [("Grand reopening", 2)], []]


def test_the_page_shows_the_weeks_and_refuses_a_bad_start(
    admin_client: FlaskClient, session: Session, apps: tuple[App, App]
) -> None:
    pos, _ = apps
    add_release(
        session, pos, "3.17.0", "in_review", scheduled_for=datetime.now(UTC) + timedelta(days=7)
    )
    page = admin_client.get("/calendar")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Release calendar" in text and "POS register" in text and "Kitchen display" in text
    assert "3.17.0" in text and 'aria-current="date"' in text
    assert text.count("<tr class=") == 13
    bad = admin_client.get("/calendar?start=tomorrow")
    assert bad.status_code == 400
    assert "start must be a date" in bad.get_data(as_text=True)
    assert admin_client.get("/calendar?app=nope").status_code == 404
    only = admin_client.get("/calendar?app=kds&start=2026-W42").get_data(as_text=True)
    assert "Kitchen display" in only and "POS register</th>" not in only
    assert "2026-W42" in only


def test_the_api_gives_the_weeks_to_a_read_token(
    client: FlaskClient, reader: dict[str, str], session: Session, apps: tuple[App, App]
) -> None:
    pos, _ = apps
    add_release(
        session, pos, "3.12.0", "released", released_at=datetime(2026, 10, 7, 2, tzinfo=UTC)
    )
    answer = client.get("/api/v1/calendar?start=2026-10-05&weeks=2&app=pos", headers=reader)
    assert answer.status_code == 200, answer.get_json()
    weeks = answer.get_json()
    assert [w["week"] for w in weeks] == ["2026-W41", "2026-W42"]
    (cell,) = weeks[0]["apps"]
    assert cell["app"] == "pos" and cell["train_local"] == "Wed 2026-10-07 14:00 JST"
    assert [(m["version"], m["kind"]) for m in cell["milestones"]] == [("3.12.0", "released")]
    refused = client.get("/api/v1/calendar?start=soon", headers=reader)
    assert refused.status_code == 400
    assert refused.get_json()["error"]["fields"][0]["field"] == "start"
    too_many = client.get("/api/v1/calendar?weeks=200", headers=reader)
    assert too_many.status_code in (400, 422)
    assert too_many.get_json()["error"]["fields"][0]["field"] == "weeks"
    unknown = client.get("/api/v1/calendar?app=nope", headers=reader)
    assert unknown.status_code == 404
    assert client.get("/api/v1/calendar").status_code == 401
