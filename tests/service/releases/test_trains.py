"""Train departures in the app's time zone (DST-correct), skipped weeks, audit."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlmodel import Session, select

from service.models import AuditEvent
from service.releases.models import App, TrainSkip
from service.releases.trains import (
    TrainError,
    next_train_slot,
    skip_week,
    train_slots,
    unskip_week,
)


def _app(**fields: object) -> App:
    return App(slug="pos", name="POS", **fields)  # type: ignore[arg-type]


@pytest.fixture
def pos(session: Session) -> App:
    app = _app(train_weekday=2, train_time="14:00", train_timezone="Asia/Tokyo")
    session.add(app)
    session.commit()
    return app


def test_tokyo_wednesday_14_00_is_05_00_utc_all_year() -> None:
    app = _app(train_weekday=2, train_time="14:00", train_timezone="Asia/Tokyo")
    slots = train_slots(app, start=datetime(2025, 3, 1, tzinfo=UTC), weeks=8)
    assert [s.at for s in slots[:2]] == [
        datetime(2025, 3, 5, 5, 0, tzinfo=UTC),
        datetime(2025, 3, 12, 5, 0, tzinfo=UTC),
    ]
    assert all(s.at.hour == 5 and s.at.weekday() == 2 for s in slots)
    assert slots[0].local == "Wed 2025-03-05 14:00 JST"
    assert slots[0].week_of == date(2025, 3, 3)
    assert all(s.at.tzinfo is UTC for s in slots)


def test_los_angeles_follows_daylight_saving() -> None:
    # DST starts Sunday 2025-03-09 and ends Sunday 2025-11-02 in America/Los_Angeles.
    app = _app(train_weekday=0, train_time="09:30", train_timezone="America/Los_Angeles")
    spring = train_slots(app, start=datetime(2025, 3, 1, tzinfo=UTC), weeks=2)
    assert [s.at for s in spring] == [
        datetime(2025, 3, 3, 17, 30, tzinfo=UTC),  # PST, UTC-8
        datetime(2025, 3, 10, 16, 30, tzinfo=UTC),  # PDT, UTC-7
    ]
    assert [s.local for s in spring] == ["Mon 2025-03-03 09:30 PST", "Mon 2025-03-10 09:30 PDT"]
    autumn = train_slots(app, start=datetime(2025, 10, 25, tzinfo=UTC), weeks=2)
    assert [s.at for s in autumn] == [
        datetime(2025, 10, 27, 16, 30, tzinfo=UTC),
        datetime(2025, 11, 3, 17, 30, tzinfo=UTC),
    ]


def test_a_train_in_the_spring_gap_leaves_at_the_instant_the_clock_jumps_to() -> None:
    # 02:30 on 2025-03-09 does not exist in Los Angeles; the train still leaves once.
    app = _app(train_weekday=6, train_time="02:30", train_timezone="America/Los_Angeles")
    slots = train_slots(app, start=datetime(2025, 3, 1, tzinfo=UTC), weeks=3)
    assert [s.at for s in slots] == [
        datetime(2025, 3, 2, 10, 30, tzinfo=UTC),
        datetime(2025, 3, 9, 10, 30, tzinfo=UTC),
        datetime(2025, 3, 16, 9, 30, tzinfo=UTC),
    ]
    assert slots[1].local == "Sun 2025-03-09 03:30 PDT"


def test_start_after_this_weeks_departure_moves_to_next_week() -> None:
    app = _app(train_weekday=2, train_time="14:00", train_timezone="Asia/Tokyo")
    just_after = datetime(2025, 3, 5, 5, 1, tzinfo=UTC)
    assert train_slots(app, start=just_after, weeks=1)[0].at == datetime(
        2025, 3, 12, 5, 0, tzinfo=UTC
    )
    exactly = datetime(2025, 3, 5, 5, 0, tzinfo=UTC)
    assert train_slots(app, start=exactly, weeks=1)[0].at == exactly


def test_local_weekday_not_utc_weekday_decides() -> None:
    # Monday 08:00 in Tokyo is Sunday 23:00 UTC.
    app = _app(train_weekday=0, train_time="08:00", train_timezone="Asia/Tokyo")
    slot = train_slots(app, start=datetime(2025, 6, 1, 0, 0, tzinfo=UTC), weeks=1)[0]
    assert slot.at == datetime(2025, 6, 1, 23, 0, tzinfo=UTC)
    assert slot.week_of == date(2025, 6, 2)


def test_skip_needs_a_reason_and_is_audited(session: Session, pos: App) -> None:
    with pytest.raises(TrainError) as info:
        skip_week(session, app=pos, week_of=date(2025, 12, 31), reason="  ", actor="user:a")
    assert info.value.field == "reason"
    skip = skip_week(
        session, app=pos, week_of=date(2025, 12, 31), reason="year-end freeze", actor="user:a"
    )
    session.commit()
    assert skip.week_of == date(2025, 12, 29)  # the Monday of that week
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "train.skip")).one()
    assert event.after == {"week_of": "2025-12-29", "skipped": True, "reason": "year-end freeze"}
    with pytest.raises(TrainError, match="already skipped"):
        skip_week(session, app=pos, week_of=date(2026, 1, 2), reason="again", actor="user:a")


def test_next_slot_skips_skipped_weeks_and_unskip_restores(session: Session, pos: App) -> None:
    after = datetime(2025, 12, 20, tzinfo=UTC)
    assert next_train_slot(session, pos, after=after).at == datetime(  # type: ignore[union-attr]
        2025, 12, 24, 5, 0, tzinfo=UTC
    )
    skip_week(session, app=pos, week_of=date(2025, 12, 22), reason="holiday", actor="user:a")
    skip_week(session, app=pos, week_of=date(2025, 12, 29), reason="freeze", actor="user:a")
    session.commit()
    slots = train_slots(pos, start=after, weeks=3, skips=session.exec(select(TrainSkip)).all())
    assert [s.skipped.reason if s.skipped else None for s in slots] == ["holiday", "freeze", None]
    assert next_train_slot(session, pos, after=after).at == datetime(  # type: ignore[union-attr]
        2026, 1, 7, 5, 0, tzinfo=UTC
    )
    unskip_week(session, app=pos, week_of=date(2025, 12, 24), actor="user:b", reason="ship it")
    session.commit()
    assert next_train_slot(session, pos, after=after).at == datetime(  # type: ignore[union-attr]
        2025, 12, 24, 5, 0, tzinfo=UTC
    )
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "train.unskip")).one()
    assert event.before["reason"] == "holiday"  # type: ignore[index]
    assert event.actor == "user:b"
    with pytest.raises(TrainError, match="not skipped"):
        unskip_week(session, app=pos, week_of=date(2025, 12, 24), actor="user:b")


def test_bad_time_zone_and_time_name_the_field() -> None:
    with pytest.raises(TrainError) as info:
        train_slots(_app(train_timezone="Mars/Olympus"), start=datetime.now(UTC), weeks=1)
    assert info.value.field == "train_timezone"
    with pytest.raises(TrainError) as info:
        train_slots(_app(train_time="25:99"), start=datetime.now(UTC), weeks=1)
    assert info.value.field == "train_time"
