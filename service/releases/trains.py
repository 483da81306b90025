"""The weekly release train of an app: when it leaves, and the weeks it does not run.

A train leaves on the app's weekday at its local time in its time zone (zoneinfo, so the UTC
instant follows daylight-saving changes). A week is named by its Monday (``week_of``) in the
app's time zone; a :class:`TrainSkip` row says that week's train does not run, and why.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlmodel import Session, col, select

import utc
from service import audit
from service.errors import DomainError
from service.releases.models import App, TrainSkip

__all__ = [
    "WEEKDAYS",
    "TrainError",
    "TrainSlot",
    "monday_of",
    "next_train_slot",
    "parse_train_time",
    "skip_week",
    "skips_for",
    "train_slots",
    "unskip_week",
    "zone",
]

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class TrainError(DomainError):
    """A refused train change; ``field`` names the input at fault."""


@dataclass(frozen=True)
class TrainSlot:
    at: datetime  # aware, UTC
    local: str  # e.g. "Wed 2025-03-12 14:00 JST"
    week_of: date  # the Monday of the slot's week, in the app's time zone
    skipped: TrainSkip | None = None


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TrainError(f"unknown time zone {name!r}", field="train_timezone") from None


def parse_train_time(text: str) -> time:
    try:
        hours, minutes = text.strip().split(":")
        if len(hours) > 2 or len(minutes) != 2:
            raise ValueError
        return time(int(hours), int(minutes))
    except ValueError:
        raise TrainError(
            f"train time must be HH:MM (24-hour), not {text!r}", field="train_time"
        ) from None


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def train_slots(
    app: App, *, start: datetime, weeks: int, skips: Iterable[TrainSkip] = ()
) -> list[TrainSlot]:
    """The next ``weeks`` departures at or after ``start``, each marked if its week is skipped."""
    tz = zone(app.train_timezone)
    leaves = parse_train_time(app.train_time)
    skipped = {s.week_of: s for s in skips}
    local_start = utc.aware(start).astimezone(tz)
    day = local_start.date() + timedelta(days=(app.train_weekday - local_start.weekday()) % 7)
    slots: list[TrainSlot] = []
    while len(slots) < weeks:
        # A wall time that falls in a spring-forward gap resolves to the same instant a
        # clock would show an hour later; the UTC instant is what the train keys on.
        local = datetime.combine(day, leaves, tzinfo=tz)
        at = local.astimezone(UTC)
        if at >= utc.aware(start):
            shown = at.astimezone(tz)
            week = monday_of(day)
            slots.append(
                TrainSlot(
                    at=at,
                    local=f"{shown:%a %Y-%m-%d %H:%M} {shown.tzname()}",
                    week_of=week,
                    skipped=skipped.get(week),
                )
            )
        day += timedelta(days=7)
    return slots


def skips_for(session: Session, app: App, *, since: date | None = None) -> list[TrainSkip]:
    query = select(TrainSkip).where(TrainSkip.app_id == app.id)
    if since is not None:
        query = query.where(TrainSkip.week_of >= since)
    return list(session.exec(query.order_by(col(TrainSkip.week_of))).all())


def next_train_slot(
    session: Session, app: App, *, after: datetime, horizon_weeks: int = 52
) -> TrainSlot | None:
    """The first departure after ``after`` whose week is not skipped (None within a year)."""
    since = monday_of(utc.aware(after).astimezone(zone(app.train_timezone)).date())
    skips = skips_for(session, app, since=since)
    for slot in train_slots(app, start=after, weeks=horizon_weeks, skips=skips):
        if slot.skipped is None:
            return slot
    return None


def skip_week(session: Session, *, app: App, week_of: date, reason: str, actor: str) -> TrainSkip:
    """Record that ``app``'s train does not run in the week of ``week_of`` (any day of it)."""
    reason = reason.strip()
    if not reason:
        raise TrainError("say why the train does not run that week", field="reason")
    week = monday_of(week_of)
    existing = session.exec(
        select(TrainSkip).where(TrainSkip.app_id == app.id, TrainSkip.week_of == week)
    ).first()
    if existing is not None:
        raise TrainError(
            f"the week of {week} is already skipped ({existing.reason})", field="week_of"
        )
    skip = TrainSkip(app_id=app.id or 0, week_of=week, reason=reason[:1000], actor=actor)
    session.add(skip)
    session.flush()
    _audit_week(
        session,
        app,
        actor,
        skipped=True,
        before={"week_of": week, "skipped": False},
        after={"week_of": week, "skipped": True, "reason": skip.reason},
        summary=f"no train in the week of {week} ({skip.reason})",
    )
    return skip


def unskip_week(session: Session, *, app: App, week_of: date, actor: str, reason: str = "") -> None:
    """Let ``app``'s train run again in the week of ``week_of``."""
    week = monday_of(week_of)
    existing = session.exec(
        select(TrainSkip).where(TrainSkip.app_id == app.id, TrainSkip.week_of == week)
    ).first()
    if existing is None:
        raise TrainError(f"the week of {week} is not skipped", field="week_of")
    before = {"week_of": week, "skipped": True, "reason": existing.reason}
    session.delete(existing)
    session.flush()
    _audit_week(
        session,
        app,
        actor,
        skipped=False,
        before=before,
        after={"week_of": week, "skipped": False, **({"reason": reason} if reason else {})},
        summary=f"the train runs again in the week of {week}"
        + (f" ({reason.strip()})" if reason.strip() else ""),
    )


def _audit_week(
    session: Session,
    app: App,
    actor: str,
    *,
    skipped: bool,
    before: dict[str, object],
    after: dict[str, object],
    summary: str,
) -> None:
    audit.record(
        session,
        actor=actor,
        action="train.skip" if skipped else "train.unskip",
        subject_type="app",
        subject_id=app.slug,
        before=before,
        after=after,
        summary=f"{app.slug}: {summary}",
    )
