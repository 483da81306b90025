"""ISO weeks: what names a week, what is refused, and where a week starts in a zone."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from service.meetings.weeks import Week, WeekError, parse_week, week_at

WEEKS = [  # text, the week it names
    ("2026-W42", Week(2026, 42)),
    ("2026-w42", Week(2026, 42)),
    ("2026W42", Week(2026, 42)),
    (" 2026-W42 ", Week(2026, 42)),
    ("2026-10-12", Week(2026, 42)),  # its Monday
    ("2026-10-18", Week(2026, 42)),  # its Sunday
    ("2027-01-01", Week(2026, 53)),  # 2026 has 53 ISO weeks
    ("2026-W53", Week(2026, 53)),
    ("2027-W01", Week(2027, 1)),
]
REFUSED = [  # text, what the message says
    ("", "give the week"),
    ("soon", "is not a week"),
    ("2026-W54", "2026 has no week 54"),
    ("2025-W53", "2025 has no week 53"),
    ("2026-W00", "has no week 0"),
    ("2026-02-30", "not a date of the calendar"),
    ("10/12/2026", "is not a week"),
    ("1999-W10", "out of range"),
    ("2026-W4", "is not a week"),
]


@pytest.mark.parametrize(("text", "week"), WEEKS)
def test_a_week_is_named_by_its_iso_week_or_a_date_of_it(text: str, week: Week) -> None:
    assert parse_week(text) == week


@pytest.mark.parametrize(("text", "message"), REFUSED)
def test_anything_else_is_refused_naming_week(text: str, message: str) -> None:
    with pytest.raises(WeekError, match=message) as refused:
        parse_week(text)
    assert refused.value.field == "week" and refused.value.status == 422


def test_a_week_is_monday_to_monday_in_the_meeting_zone() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    start, end = Week(2026, 42).bounds(tokyo)
    assert start == datetime(2026, 10, 11, 15, tzinfo=UTC)  # Monday 00:00 JST
    assert end == datetime(2026, 10, 18, 15, tzinfo=UTC)
    # Sunday 23:30 in Tokyo is still week 42 there, though it is Sunday 14:30 UTC...
    assert week_at(datetime(2026, 10, 18, 14, 30, tzinfo=UTC), tokyo) == Week(2026, 42)
    # ...and Monday 00:30 in Tokyo is week 43, while UTC still says Sunday.
    assert week_at(datetime(2026, 10, 18, 15, 30, tzinfo=UTC), tokyo) == Week(2026, 43)
    assert week_at(datetime(2026, 10, 18, 15, 30, tzinfo=UTC), ZoneInfo("UTC")) == Week(2026, 42)
    assert Week(2026, 53).shifted(1) == Week(2027, 1) and Week(2026, 42).sunday == date(
        2026, 10, 18
    )
