"""ISO weeks: the unit of the release meeting.

A week is named ``2026-W42`` (ISO 8601: weeks start on Monday; week 1 holds the year's first
Thursday). Where a week is asked for, a date (``2026-10-12``) also names the week it falls
in. A week's bounds are its Monday 00:00 to the next Monday 00:00 in a time zone (the
meeting's), as aware UTC instants.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import utc
from service.errors import DomainError

_ISO_WEEK = re.compile(r"^(\d{4})-?W(\d{2})$", re.IGNORECASE)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
WEEK_HELP = "an ISO week such as 2026-W42, or a date such as 2026-10-12 (its week)"
YEARS = range(2000, 3000)  # the weeks a meeting can be about


class WeekError(DomainError):
    """A week that cannot be read (422 naming ``week``)."""


@dataclass(frozen=True, order=True)
class Week:
    year: int
    number: int

    @property
    def label(self) -> str:
        return f"{self.year}-W{self.number:02d}"

    def __str__(self) -> str:
        return self.label

    @property
    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.number, 1)

    @property
    def sunday(self) -> date:
        return self.monday + timedelta(days=6)

    def bounds(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """Monday 00:00 to the next Monday 00:00 in ``zone``, as aware UTC."""
        start = datetime.combine(self.monday, time(), tzinfo=zone).astimezone(UTC)
        end = datetime.combine(self.monday + timedelta(days=7), time(), tzinfo=zone)
        return start, end.astimezone(UTC)

    def shifted(self, weeks: int) -> Week:
        return week_of(self.monday + timedelta(weeks=weeks))

    def contains(self, moment: datetime | None, zone: ZoneInfo) -> bool:
        if moment is None:
            return False
        start, end = self.bounds(zone)
        return start <= utc.aware(moment) < end


def week_of(day: date) -> Week:
    year, number, _ = day.isocalendar()
    return Week(year, number)


def week_at(moment: datetime, zone: ZoneInfo) -> Week:
    """The week ``moment`` falls in, in ``zone``."""
    return week_of(utc.aware(moment).astimezone(zone).date())


def parse_week(text: str | None) -> Week:
    """``2026-W42`` or a date of that week; anything else is refused naming ``week``."""
    value = (text or "").strip()
    if not value:
        raise WeekError(f"give the week: {WEEK_HELP}", field="week")
    found = _ISO_WEEK.match(value)
    if found:
        year, number = int(found.group(1)), int(found.group(2))
        try:
            date.fromisocalendar(year, number, 1)
        except ValueError:
            raise WeekError(
                f"{value!r} is not a week: {year} has no week {number}", field="week"
            ) from None
        week = Week(year, number)
    elif _ISO_DATE.match(value):
        try:
            week = week_of(date.fromisoformat(value))
        except ValueError:
            raise WeekError(f"{value!r} is not a date of the calendar", field="week") from None
    else:
        raise WeekError(f"{value[:40]!r} is not a week: give {WEEK_HELP}", field="week")
    if week.year not in YEARS:
        raise WeekError(
            f"{value!r} is out of range: weeks from {YEARS.start} to {YEARS.stop - 1}",
            field="week",
        )
    return week
