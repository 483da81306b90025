""" "Waiting for you": what each person has to do before a weekly meeting.

A person's inbox holds, for the releases still being decided (draft, in review) and the
meetings ahead:

- **sign_off**: a manual checklist item their role owns that nobody has signed yet;
- **override**: (admins) a checklist item blocked or rejected and not overridden;
- **decision**: (release managers) a release on the next meeting's agenda waiting for its
  decision;
- **action_item**: an open action item they own (overdue ones say so).

Each entry names the meeting that needs it: the week of the release's train, or the next
meeting when the train has left or there is none (an action item: the next meeting, where
it is read out until closed). The next meeting is this week's unless it is closed, or was
never opened and its day is over.
Entries are ordered by that meeting's time (``RELGOV_MEETING_TIME`` in the meeting's zone),
then decisions, overrides, sign-offs, action items, then the oldest first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app, url_for
from sqlmodel import Session, col, select

import utc
from service import timezones
from service.meetings import services
from service.meetings.models import Meeting
from service.meetings.weeks import Week, week_at
from service.models import User, utcnow
from service.releases.models import App, Release, ReleaseItem, SignOff
from service.settings import meeting_time_parts

KINDS = ("decision", "override", "sign_off", "action_item")
KIND_LABELS = {
    "decision": "Decide",
    "override": "Override or resolve",
    "sign_off": "Sign",
    "action_item": "Action item",
}
SIGNING_STATES = ("draft", "in_review")
DECIDERS = ("release_manager",)
OVERRIDERS = ("admin",)


@dataclass(frozen=True)
class NextMeeting:
    week: Week
    at: datetime  # aware UTC
    zone: str
    meeting: Meeting | None

    @property
    def state(self) -> str:
        return self.meeting.state if self.meeting else "not opened"


@dataclass(frozen=True)
class InboxEntry:
    kind: str
    title: str
    detail: str
    week: Week  # the meeting that needs it
    meeting_at: datetime
    app_slug: str | None = None
    app_name: str | None = None
    release_id: int | None = None
    version: str | None = None
    release_state: str | None = None
    item_id: int | None = None
    action_item_id: int | None = None
    due_on: date | None = None
    overdue: bool = False
    since: datetime | None = None  # when it started waiting

    @property
    def label(self) -> str:
        return KIND_LABELS[self.kind]


@dataclass(frozen=True)
class Inbox:
    user: User
    next_meeting: NextMeeting
    entries: list[InboxEntry]

    def count(self, kind: str) -> int:
        return sum(1 for e in self.entries if e.kind == kind)


def meeting_at(week: Week, zone_name: str) -> datetime:
    """When ``week``'s meeting is held (``RELGOV_MEETING_TIME`` in ``zone_name``), as UTC."""
    weekday, hour, minute = meeting_time_parts(current_app.config["RELGOV_SETTINGS"].meeting_time)
    day = week.monday + timedelta(days=weekday - 1)
    local = datetime.combine(day, time(hour, minute), tzinfo=timezones.zone(zone_name))
    return utc.aware(local)


def next_meeting(session: Session, *, now: datetime | None = None) -> NextMeeting:
    """This week's meeting, unless it is closed, or it was never opened and its day is over
    (what it did not decide is carried to next week's); then next week's."""
    moment = utc.aware(now or utcnow())
    zone_name = services.meeting_zone_name(session)
    zone = timezones.zone(zone_name)
    week = week_at(moment, zone)
    meeting = services.get_meeting(session, week)
    day_over = meeting_at(week, zone_name).astimezone(zone).date() < moment.astimezone(zone).date()
    if (meeting is not None and meeting.state == "closed") or (meeting is None and day_over):
        week = week.shifted(1)
        meeting = services.get_meeting(session, week)
    zone_name = meeting.timezone if meeting else zone_name
    return NextMeeting(week, meeting_at(week, zone_name), zone_name, meeting)


def inbox(session: Session, user: User, *, now: datetime | None = None) -> Inbox:
    """What waits for ``user``, ordered by the meeting that needs it."""
    moment = utc.aware(now or utcnow())
    upcoming = next_meeting(session, now=moment)
    zone = timezones.zone(upcoming.zone)
    apps = {a.id: a for a in session.exec(select(App)).all()}

    def needed_at(release: Release) -> tuple[Week, datetime]:
        week = upcoming.week
        if release.scheduled_for is not None:
            week = max(week, week_at(release.scheduled_for, zone))
        if week == upcoming.week:
            return week, upcoming.at
        return week, meeting_at(week, upcoming.zone)

    entries: list[InboxEntry] = []
    if user.active:
        entries += _checklist_entries(session, user, apps, needed_at)
        if user.role in DECIDERS:
            entries += _decision_entries(session, upcoming, zone, moment)
        entries += _action_entries(session, user, apps, upcoming, zone, moment)
    entries.sort(
        key=lambda e: (
            e.meeting_at,
            KINDS.index(e.kind),
            e.due_on or date.max,
            utc.aware(e.since) if e.since else moment,
            e.app_name or "",
            e.version or "",
            e.action_item_id or e.item_id or 0,
        )
    )
    return Inbox(user=user, next_meeting=upcoming, entries=entries)


def _checklist_entries(
    session: Session,
    user: User,
    apps: dict[int | None, App],
    needed_at: Callable[[Release], tuple[Week, datetime]],
) -> list[InboxEntry]:
    """Sign-offs the person's role owes, and (admins) blocks waiting for an override."""
    overrider = user.role in OVERRIDERS
    releases = {
        r.id: r
        for r in session.exec(select(Release).where(col(Release.state).in_(SIGNING_STATES))).all()
    }
    if not releases:
        return []
    stmt = select(ReleaseItem).where(
        col(ReleaseItem.release_id).in_(list(releases)), ReleaseItem.mode == "manual"
    )
    if not overrider:
        stmt = stmt.where(ReleaseItem.owner_role == user.role)
    items = list(session.exec(stmt.order_by(col(ReleaseItem.id))).all())
    if not items:
        return []
    history: dict[int, list[SignOff]] = {}
    for signoff in session.exec(
        select(SignOff)
        .where(col(SignOff.item_id).in_([i.id for i in items]))
        .order_by(col(SignOff.id))
    ).all():
        history.setdefault(signoff.item_id, []).append(signoff)
    found = []
    for item in items:
        release = releases[item.release_id]
        app = apps[release.app_id]
        signs = history.get(item.id or 0, [])
        manual = [s for s in signs if not s.override]
        overridden = any(s.override for s in signs)
        latest = manual[-1] if manual else None
        week, at = needed_at(release)
        common = InboxEntry(
            kind="sign_off",
            title=f"{app.name} {release.version}: {item.title}",
            detail="",
            week=week,
            meeting_at=at,
            app_slug=app.slug,
            app_name=app.name,
            release_id=release.id,
            version=release.version,
            release_state=release.state,
            item_id=item.id,
        )
        if latest is None and not overridden and item.owner_role == user.role:
            found.append(
                replace(
                    common,
                    detail=("required" if item.required else "optional")
                    + f"; release {release.state.replace('_', ' ')}",
                    since=release.created_at,
                )
            )
        elif (
            overrider
            and latest is not None
            and latest.decision in ("block", "reject")
            and not overridden
        ):
            found.append(
                replace(
                    common,
                    kind="override",
                    detail=f"{latest.decision}ed by {latest.user_email}"
                    + (f": {latest.comment}" if latest.comment else ""),
                    since=latest.at,
                )
            )
    return found


def _decision_entries(
    session: Session, upcoming: NextMeeting, zone: ZoneInfo, now: datetime
) -> list[InboxEntry]:
    """The releases on the next meeting's agenda that still wait for its decision."""
    found = []
    for entry in services.waiting_for_decision(
        session, upcoming.week, zone, upcoming.meeting, now=now
    ):
        release = entry.release
        found.append(
            InboxEntry(
                kind="decision",
                title=f"{entry.app.name} {release.version}",
                detail="; ".join(
                    part
                    for part in (
                        {"train": "its train leaves this week", "hotfix": "hotfix"}.get(
                            entry.reason, entry.reason
                        ),
                        entry.detail,
                        release.state.replace("_", " "),
                    )
                    if part
                ),
                week=upcoming.week,
                meeting_at=upcoming.at,
                app_slug=entry.app.slug,
                app_name=entry.app.name,
                release_id=release.id,
                version=release.version,
                release_state=release.state,
                since=release.scheduled_for or release.created_at,
            )
        )
    return found


def _action_entries(
    session: Session,
    user: User,
    apps: dict[int | None, App],
    upcoming: NextMeeting,
    zone: ZoneInfo,
    now: datetime,
) -> list[InboxEntry]:
    items = services.list_action_items(session, state="open", owner=user, limit=500)
    ids = {i.release_id for i in items if i.release_id}
    releases = (
        {r.id: r for r in session.exec(select(Release).where(col(Release.id).in_(ids))).all()}
        if ids
        else {}
    )
    found = []
    for item in items:
        release = releases.get(item.release_id)
        app = apps.get(release.app_id) if release else None
        found.append(
            InboxEntry(
                kind="action_item",
                title=item.title,
                detail=f"due {item.due_on.isoformat()}",
                week=upcoming.week,
                meeting_at=upcoming.at,
                app_slug=app.slug if app else None,
                app_name=app.name if app else None,
                release_id=item.release_id,
                version=release.version if release else None,
                release_state=release.state if release else None,
                action_item_id=item.id,
                due_on=item.due_on,
                overdue=services.is_overdue(item, now, zone),
                since=item.created_at,
            )
        )
    return found


def url(entry: InboxEntry) -> str:
    """The page where an inbox entry is done."""
    if entry.kind == "action_item":
        return url_for("meetings.week", week=entry.week.label, _anchor="actions")
    if entry.kind == "decision":
        return url_for(
            "meetings.week", week=entry.week.label, _anchor=f"release-{entry.release_id}"
        )
    return url_for("releases.release_detail", release_id=entry.release_id or 0) + (
        f"#item-{entry.item_id}" if entry.item_id else ""
    )
