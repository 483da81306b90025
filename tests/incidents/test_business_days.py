"""Business days for the beta soak: weekends and holidays do not count."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from incidents.business_days import (
    UnknownCalendar,
    add_business_days,
    business_days_between,
    check_calendar,
    local_date,
    skipped_days,
)

# 2025-01-10 is a Friday; 11/12 the weekend; Monday 2025-01-13 is Coming of Age Day in Japan.
FRI = date(2025, 1, 10)


@pytest.mark.parametrize(
    ("start", "end", "calendar", "days"),
    [
        (date(2025, 1, 8), date(2025, 1, 8), "JP", 0),  # same day
        (date(2025, 1, 8), date(2025, 1, 9), "JP", 1),  # Wed → Thu
        (date(2025, 1, 8), date(2025, 1, 10), "JP", 2),  # Wed → Fri
        (FRI, date(2025, 1, 11), "JP", 0),  # Saturday
        (FRI, date(2025, 1, 12), "JP", 0),  # Sunday
        (FRI, date(2025, 1, 13), "JP", 0),  # the holiday Monday
        (FRI, date(2025, 1, 13), "none", 1),  # without a holiday calendar Monday counts
        (FRI, date(2025, 1, 13), "US", 1),  # not a US holiday
        (FRI, date(2025, 1, 14), "JP", 1),  # across a weekend and a holiday
        (FRI, date(2025, 1, 15), "JP", 2),
        (FRI, date(2025, 1, 14), "none", 2),
        (date(2025, 1, 10), date(2025, 1, 9), "JP", 0),  # end before start
        (date(2025, 4, 28), date(2025, 5, 7), "JP", 4),  # Golden Week: 4/30, 5/1, 5/2, 5/7
    ],
)
def test_business_days_between(start: date, end: date, calendar: str, days: int) -> None:
    assert business_days_between(start, end, calendar) == days


def test_soak_complete_day_skips_weekend_and_holiday() -> None:
    assert add_business_days(FRI, 2, "JP") == date(2025, 1, 15)
    assert add_business_days(FRI, 2, "none") == date(2025, 1, 14)
    assert add_business_days(FRI, 0, "JP") == FRI


def test_skipped_days_say_why() -> None:
    assert skipped_days(FRI, date(2025, 1, 14), "JP") == [
        (date(2025, 1, 11), "weekend"),
        (date(2025, 1, 12), "weekend"),
        (date(2025, 1, 13), "Coming of Age Day"),
    ]


def test_local_date_uses_the_trains_time_zone() -> None:
    late_utc = datetime(2025, 1, 9, 16, 0, tzinfo=UTC)  # Friday 01:00 in Tokyo
    assert local_date(late_utc, "Asia/Tokyo") == FRI
    assert local_date(late_utc.replace(tzinfo=None), "UTC") == date(2025, 1, 9)


@pytest.mark.parametrize(
    ("code", "normal"),
    [("jp", "JP"), ("JP", "JP"), (" none ", "none"), ("", "none"), ("us-ca", "US-CA")],
)
def test_calendar_codes(code: str, normal: str) -> None:
    assert check_calendar(code) == normal


@pytest.mark.parametrize("code", ["XX", "Japan", "JP-99"])
def test_unknown_calendar(code: str) -> None:
    with pytest.raises(UnknownCalendar):
        check_calendar(code)
