"""The release calendar: every app's trains, releases, skipped weeks and store freezes, week by
week, from 4 weeks back to 8 ahead (or any window of up to 26 weeks).

A week is named by its Monday. Each app's train, skips and release milestones fall in the week
of that app's own time zone (as :mod:`service.releases.trains` names weeks), so a train that
leaves on Monday 09:00 JST is in the JST week even though it is still Sunday in UTC. A store
freeze belongs to no app: it falls in every week its window overlaps, counted in UTC.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import or_
from sqlmodel import Session, col, select

import utc
from beta.models import Store, StoreFreeze
from service.errors import DomainError
from service.releases.models import App, Release
from service.releases.trains import monday_of, skips_for, train_slots, zone

__all__ = [
    "AHEAD_WEEKS",
    "BACK_WEEKS",
    "MAX_WEEKS",
    "AppWeek",
    "Calendar",
    "CalendarError",
    "FreezeWindow",
    "Milestone",
    "Week",
    "build_calendar",
    "parse_start",
]

BACK_WEEKS = 4
AHEAD_WEEKS = 8
MAX_WEEKS = 26
# A release's milestones, in the order a release goes through them.
MILESTONES = (
    ("scheduled", "scheduled_for", "train"),
    ("approved", "approved_at", "approved"),
    ("beta", "beta_at", "beta"),
    ("rollout", "rollout_started_at", "rollout started"),
    ("released", "released_at", "released"),
)


class CalendarError(DomainError):
    """A refused calendar query; ``field`` names the parameter at fault."""


@dataclass(frozen=True)
class Milestone:
    """A release's step that fell in a week: ``kind`` is one of :data:`MILESTONES`' names."""

    release_id: int
    version: str
    release_kind: str  # weekly | hotfix
    state: str
    kind: str
    label: str
    at: datetime  # aware UTC


@dataclass(frozen=True)
class FreezeWindow:
    """Store freezes that share a window and a reason, with the stores they hold."""

    starts_at: datetime  # aware UTC
    ends_at: datetime
    reason: str
    stores: int
    sample: tuple[str, ...]  # a few store ids, for the page's hover text


@dataclass
class AppWeek:
    """One app in one week: its train (or why it does not run) and its releases' milestones."""

    app: App
    train_at: datetime | None = None  # aware UTC
    train_local: str | None = None  # e.g. "Wed 2026-10-14 14:00 JST"
    skip_reason: str | None = None
    milestones: list[Milestone] = field(default_factory=list)

    @property
    def releases(self) -> list[list[Milestone]]:
        """The milestones grouped by release, each group in time order, releases in the order
        of their first milestone of the week."""
        groups: dict[int, list[Milestone]] = {}
        for milestone in self.milestones:
            groups.setdefault(milestone.release_id, []).append(milestone)
        return list(groups.values())


@dataclass
class Week:
    monday: date
    apps: list[AppWeek]
    freezes: list[FreezeWindow]
    current: bool
    past: bool

    @property
    def label(self) -> str:
        year, number, _ = self.monday.isocalendar()
        return f"{year}-W{number:02d}"


@dataclass(frozen=True)
class Calendar:
    start: date  # the first Monday shown
    weeks: list[Week]

    @property
    def previous_start(self) -> date:
        return self.start - timedelta(weeks=len(self.weeks))

    @property
    def next_start(self) -> date:
        return self.start + timedelta(weeks=len(self.weeks))


def parse_start(text: str | None, *, today: date) -> date:
    """The Monday of the week ``text`` names (``YYYY-MM-DD`` or ``YYYY-Www``), or 4 weeks back
    from ``today`` when it is empty. Anything else is refused, naming ``start``."""
    if not text:
        return monday_of(today) - timedelta(weeks=BACK_WEEKS)
    text = text.strip()
    try:
        if "-W" in text.upper():
            year, week = text.upper().split("-W")
            return date.fromisocalendar(int(year), int(week), 1)
        return monday_of(date.fromisoformat(text))
    except ValueError:
        raise CalendarError(
            f"start must be a date (YYYY-MM-DD) or an ISO week (YYYY-Www), not {text[:40]!r}",
            field="start",
            status=400,
        ) from None


def build_calendar(
    session: Session,
    *,
    start: date,
    weeks: int = BACK_WEEKS + 1 + AHEAD_WEEKS,
    app_slug: str | None = None,
    now: datetime | None = None,
) -> Calendar:
    """``weeks`` weeks from the Monday of ``start``, for every app (or the one named)."""
    if not 1 <= weeks <= MAX_WEEKS:
        raise CalendarError(f"weeks must be between 1 and {MAX_WEEKS}", field="weeks", status=400)
    first = monday_of(start)
    last = first + timedelta(weeks=weeks)  # exclusive
    moment = utc.aware(now) if now is not None else utc.now()
    this_week = monday_of(moment.date())
    apps = _apps(session, app_slug)
    window = (
        datetime.combine(first - timedelta(days=1), time(), tzinfo=UTC),
        datetime.combine(last + timedelta(days=1), time(), tzinfo=UTC),
    )
    by_week: dict[date, list[AppWeek]] = {first + timedelta(weeks=i): [] for i in range(weeks)}
    for app in apps:
        cells = {monday: AppWeek(app=app) for monday in by_week}
        _place_trains(session, app, cells, first, weeks)
        _place_milestones(session, app, cells, window)
        for monday, cell in cells.items():
            by_week[monday].append(cell)
    freezes = _freezes(session, first, last)
    return Calendar(
        start=first,
        weeks=[
            Week(
                monday=monday,
                apps=cells,
                freezes=freezes.get(monday, []),
                current=monday == this_week,
                past=monday < this_week,
            )
            for monday, cells in by_week.items()
        ],
    )


def _apps(session: Session, slug: str | None) -> list[App]:
    query = select(App).order_by(col(App.name))
    if slug:
        query = query.where(App.slug == slug)
    apps = list(session.exec(query).all())
    if slug and not apps:
        raise CalendarError(f"no app {slug[:40]!r}", status=404, field="app")
    return apps


def _place_trains(
    session: Session, app: App, cells: dict[date, AppWeek], first: date, weeks: int
) -> None:
    tz = zone(app.train_timezone)
    begin = datetime.combine(first, time(), tzinfo=tz)
    skips = skips_for(session, app, since=first)
    for slot in train_slots(app, start=begin, weeks=weeks + 1, skips=skips):
        cell = cells.get(slot.week_of)
        if cell is None:
            continue
        cell.train_at = slot.at
        cell.train_local = slot.local
        cell.skip_reason = slot.skipped.reason if slot.skipped is not None else None


def _place_milestones(
    session: Session, app: App, cells: dict[date, AppWeek], window: tuple[datetime, datetime]
) -> None:
    tz = zone(app.train_timezone)
    low, high = window
    moments = [getattr(Release, column) for _, column, _ in MILESTONES]
    in_window = [(m >= low) & (m < high) for m in moments]
    query = select(Release).where(Release.app_id == app.id)
    for release in session.exec(query.where(or_(*in_window)).order_by(col(Release.id))).all():
        for kind, column, label in MILESTONES:
            at = getattr(release, column)
            if at is None:
                continue
            moment = utc.aware(at)
            cell = cells.get(monday_of(moment.astimezone(tz).date()))
            if cell is None:
                continue
            cell.milestones.append(
                Milestone(
                    release_id=release.id or 0,
                    version=release.version,
                    release_kind=release.kind,
                    state=release.state,
                    kind=kind,
                    label=label,
                    at=moment,
                )
            )
    for cell in cells.values():
        cell.milestones.sort(key=lambda m: m.at)


def _freezes(session: Session, first: date, last: date) -> dict[date, list[FreezeWindow]]:
    low = datetime.combine(first, time(), tzinfo=UTC)
    high = datetime.combine(last, time(), tzinfo=UTC)
    rows = session.exec(
        select(StoreFreeze, Store.external_id)
        .join(Store, col(Store.id) == StoreFreeze.store_id)
        .where(
            col(StoreFreeze.lifted_at).is_(None),
            StoreFreeze.starts_at < high,
            StoreFreeze.ends_at > low,
        )
        .order_by(col(StoreFreeze.starts_at), col(Store.external_id))
    ).all()
    groups: dict[tuple[datetime, datetime, str], list[str]] = defaultdict(list)
    for freeze, code in rows:
        groups[(freeze.starts_at, freeze.ends_at, freeze.reason)].append(code)
    weeks: dict[date, list[FreezeWindow]] = defaultdict(list)
    for (starts, ends, reason), codes in groups.items():
        window = FreezeWindow(
            starts_at=utc.aware(starts),
            ends_at=utc.aware(ends),
            reason=reason,
            stores=len(codes),
            sample=tuple(codes[:5]),
        )
        monday = max(monday_of(window.starts_at.date()), first)
        while monday < last and datetime.combine(monday, time(), tzinfo=UTC) < window.ends_at:
            weeks[monday].append(window)
            monday += timedelta(weeks=1)
    return weeks
