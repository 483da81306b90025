"""Business days for the beta soak: weekends and a country's public holidays are not counted.
Pure: takes dates and a calendar code, reads no database or settings.

A calendar is a ``holidays`` country code with an optional subdivision (``"JP"``,
``"US-CA"``), or ``"none"`` for weekends only.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

NO_HOLIDAYS = "none"


class UnknownCalendar(ValueError):
    """The calendar code names no country (or subdivision) the ``holidays`` package knows."""


def check_calendar(code: str) -> str:
    """``code`` normalised (``"jp"`` → ``"JP"``), or :class:`UnknownCalendar`."""
    code = code.strip()
    if code.lower() in (NO_HOLIDAYS, ""):
        return NO_HOLIDAYS
    country, _, subdiv = code.upper().partition("-")
    supported = holidays.list_supported_countries()
    if country not in supported:
        raise UnknownCalendar(
            f"unknown holiday calendar {code!r}: use a country code such as JP or US, or 'none'"
        )
    if subdiv and subdiv not in supported[country]:
        raise UnknownCalendar(f"{country} has no subdivision {subdiv!r}")
    return f"{country}-{subdiv}" if subdiv else country


@lru_cache(maxsize=64)
def _calendar(code: str, year: int) -> frozenset[date]:
    if code == NO_HOLIDAYS:
        return frozenset()
    country, _, subdiv = code.partition("-")
    return frozenset(holidays.country_holidays(country, subdiv=subdiv or None, years=year))


def holiday_name(day: date, calendar: str) -> str | None:
    code = check_calendar(calendar)
    if code == NO_HOLIDAYS:
        return None
    country, _, subdiv = code.partition("-")
    name = holidays.country_holidays(country, subdiv=subdiv or None, years=day.year).get(day)
    return str(name) if name else None


def is_business_day(day: date, calendar: str) -> bool:
    return day.weekday() < 5 and day not in _calendar(check_calendar(calendar), day.year)


def business_days_between(start: date, end: date, calendar: str) -> int:
    """Business days after ``start`` up to and including ``end`` (0 when ``end <= start``).

    A beta that started on Wednesday has soaked 2 business days on Friday.
    """
    count = 0
    day = start + timedelta(days=1)
    while day <= end:
        if is_business_day(day, calendar):
            count += 1
        day += timedelta(days=1)
    return count


def add_business_days(start: date, days: int, calendar: str) -> date:
    """The day on which ``days`` business days after ``start`` have passed."""
    day = start
    left = days
    while left > 0:
        day += timedelta(days=1)
        if is_business_day(day, calendar):
            left -= 1
    return day


def skipped_days(start: date, end: date, calendar: str) -> list[tuple[date, str]]:
    """The days after ``start`` up to ``end`` that did not count, and why."""
    out = []
    day = start + timedelta(days=1)
    while day <= end:
        if day.weekday() >= 5:
            out.append((day, "weekend"))
        else:
            name = holiday_name(day, calendar)
            if name:
                out.append((day, name))
        day += timedelta(days=1)
    return out


def local_date(moment: datetime, timezone: str) -> date:
    """``moment`` (aware, or naive UTC) as a date in ``timezone``."""
    from datetime import UTC

    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(ZoneInfo(timezone)).date()
