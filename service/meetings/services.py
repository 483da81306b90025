"""The weekly release meeting: its agenda, opening it (the snapshot), decisions and what they
do to a release, attendees, minutes, action items, closing, amendments, and reading a week
back.

One meeting a week for every app (the same people meet about every train; the page and the
API filter by app). Weeks are ISO weeks in the meeting's time zone
(``RELGOV_MEETING_TIMEZONE``, else the first app's train time zone).

Who may do what: release managers (and admins) run the meeting: open it, put a release on
the agenda, decide, record attendees and minutes, create action items, close it and amend
it. Anyone who works on releases (release managers, engineers, QA, support, admins) may
close an action item: the owner usually does. Every check of the person comes before any
check of the input.

Functions take the session and never commit: the caller commits once, so a refused request
leaves nothing half-written. Each change is audited with its actor, and announced to the
reactions ``service/wiring.py`` installs (:func:`install`), in the same transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import and_, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

import utc
from service import audit, timezones
from service.errors import DomainError
from service.meetings import snapshots
from service.meetings.models import (
    DECISION_LABELS,
    DECISIONS,
    ActionItem,
    Meeting,
    MeetingAttendee,
    MeetingDecision,
    MeetingItem,
)
from service.meetings.weeks import Week, parse_week, week_at, week_of
from service.models import ROLE_LABELS, User, utcnow
from service.releases.lifecycle import transition
from service.releases.models import App, MeetingRecord, Release
from service.releases.services import ACTIVE_STATES, actor_for
from service.releases.trains import next_train_slot, skips_for, train_slots
from versioning import sort_key

RUNNERS = ("release_manager", "admin")
CLOSERS = ("release_manager", "engineer", "qa", "support", "admin")
OWNER_ROLES = ("release_manager", "engineer", "qa", "support", "admin")
GO = ("go", "go_with_conditions")
FINISHED = ("released", "rejected", "cancelled")
REASON_ORDER = {"train": 0, "hotfix": 1, "added": 2, "carried": 3}
MAX_MINUTES = 20_000
MAX_GUESTS = 50


class MeetingError(DomainError):
    """A refused meeting request."""


# --- reactions: who hears about the meeting (Slack, later) -------------------------------


@dataclass(frozen=True)
class MeetingEvent:
    """Something that happened in a meeting, for the reactions ``service/wiring.py`` names.

    ``kind``: opened, release_added, decided, amended, minutes_saved, closed,
    action_item_created, action_item_closed.
    """

    kind: str
    meeting: Meeting
    actor: str
    release: Release | None = None
    decision: MeetingDecision | None = None
    action_item: ActionItem | None = None


Reaction = Callable[[Session, MeetingEvent], None]
_reactions: tuple[Reaction, ...] = ()


def install(reactions: Sequence[Reaction]) -> None:
    """Who hears about every meeting event, in order (``service/wiring.py``)."""
    global _reactions
    _reactions = tuple(reactions)


def _emit(session: Session, event: MeetingEvent) -> None:
    for react in _reactions:
        react(session, event)


# --- the meeting's time zone and weeks ---------------------------------------------------


def meeting_zone_name(session: Session) -> str:
    """``RELGOV_MEETING_TIMEZONE``, else the first app's train time zone, else UTC."""
    configured: str = current_app.config["RELGOV_SETTINGS"].meeting_timezone
    if configured:
        return configured
    first = session.exec(select(App.train_timezone).order_by(col(App.id))).first()
    return first or "UTC"


def current_week(session: Session, *, now: datetime | None = None) -> Week:
    return week_at(now or utcnow(), timezones.zone(meeting_zone_name(session)))


def today(session: Session, *, now: datetime | None = None) -> date:
    """Today's date in the meeting's time zone."""
    return timezones.local(now or utcnow(), meeting_zone_name(session)).date()


def get_meeting(session: Session, week: Week) -> Meeting | None:
    return session.exec(select(Meeting).where(Meeting.week == week.label)).first()


def meeting_or_refuse(session: Session, week: Week) -> Meeting:
    meeting = get_meeting(session, week)
    if meeting is None:
        raise MeetingError(f"the meeting of {week} has not been opened", status=404, field="week")
    return meeting


def _runner(user: User, what: str) -> None:
    if user.role not in RUNNERS:
        raise MeetingError(f"only a release manager may {what}", status=403)


def _open(meeting: Meeting) -> None:
    if meeting.state != "open":
        raise MeetingError(
            f"the meeting of {meeting.week} is closed (read-only); amend a decision instead",
            status=409,
        )


# --- the agenda --------------------------------------------------------------------------


@dataclass
class AgendaEntry:
    release: Release
    app: App
    reason: str  # train | hotfix | carried | added
    detail: str = ""


def _earlier_decisions(
    session: Session, release_ids: Iterable[int], before: date
) -> dict[int, tuple[MeetingDecision, str]]:
    """Each release's latest decision in a meeting of a week before ``before``, and its week."""
    ids = sorted(set(release_ids))
    if not ids:
        return {}
    rows = session.exec(
        select(MeetingDecision, Meeting.week)
        .join(Meeting, col(Meeting.id) == col(MeetingDecision.meeting_id))
        .where(col(MeetingDecision.release_id).in_(ids), col(Meeting.week_start) < before)
        .order_by(col(MeetingDecision.id))
    ).all()
    return {decision.release_id: (decision, week) for decision, week in rows}


def _carried_detail(
    release: Release, earlier: tuple[MeetingDecision, str] | None, zone: ZoneInfo
) -> str:
    if earlier is not None:
        decision, week = earlier
        if decision.decision == "defer":
            return f"deferred in {week}"
        if decision.decision == "no_go":
            return f"no-go in {week}"
        return f"{DECISION_LABELS[decision.decision].lower()} in {week}, now " + (
            release.state.replace("_", " ")
        )
    if release.scheduled_for is not None:
        return f"not decided; its train left in {week_at(release.scheduled_for, zone)}"
    return "not decided"


def agenda(
    session: Session, week: Week, zone: ZoneInfo, *, now: datetime | None = None
) -> list[AgendaEntry]:
    """The week's agenda: the releases whose train leaves that week, hotfixes registered that
    week, and every release carried over (registered earlier and not finished when the week
    began: not decided, deferred, no-go but still open, or decided and still rolling out).
    A release finished (released, rejected, cancelled) before the week began is not on it."""
    start, end = week.bounds(zone)
    rows = session.exec(
        select(Release, App)
        .join(App, col(App.id) == col(Release.app_id))
        .where(
            col(Release.created_at) < end,
            or_(
                and_(col(Release.scheduled_for) >= start, col(Release.scheduled_for) < end),
                col(Release.state).in_(ACTIVE_STATES),
                and_(col(Release.state) == "released", col(Release.released_at) >= start),
                and_(
                    col(Release.state).in_(("rejected", "cancelled")),
                    col(Release.updated_at) >= start,
                ),
            ),
        )
    ).all()
    earlier = _earlier_decisions(session, (r.id or 0 for r, _ in rows), week.monday)
    entries = []
    for release, app in rows:
        scheduled = utc.aware(release.scheduled_for) if release.scheduled_for else None
        created = utc.aware(release.created_at)
        if (
            release.state == "released"
            and release.released_at
            and utc.aware(release.released_at) < start
        ):
            continue
        if release.state in ("rejected", "cancelled") and utc.aware(release.updated_at) < start:
            continue
        released_now = bool(release.released_at and start <= utc.aware(release.released_at) < end)
        before = earlier.get(release.id or 0)
        if scheduled is not None and start <= scheduled < end:
            reason = "hotfix" if release.kind == "hotfix" else "train"
            history = _carried_detail(release, before, zone) if before else ""
        elif release.kind == "hotfix" and start <= created < end:
            reason, history = "hotfix", ""
        elif scheduled is not None and scheduled >= end:
            continue  # its train leaves in a later week
        else:
            reason, history = "carried", _carried_detail(release, before, zone)
        detail = "; ".join(part for part in (history, released_now * "released this week") if part)
        entries.append(AgendaEntry(release, app, reason, detail))
    # Per app, by why they are there, the newest version first.
    entries.sort(key=lambda e: sort_key(e.release.version), reverse=True)
    entries.sort(key=lambda e: (e.app.name, REASON_ORDER[e.reason]))
    return entries


def waiting_for_decision(
    session: Session,
    week: Week,
    zone: ZoneInfo,
    meeting: Meeting | None,
    *,
    now: datetime | None = None,
) -> list[AgendaEntry]:
    """The releases on ``week``'s agenda that still wait for a decision: none from an earlier
    meeting said go, and ``meeting`` (that week's, when open) has not decided them yet."""
    entries = agenda(session, week, zone, now=now)
    earlier = _earlier_decisions(session, (e.release.id or 0 for e in entries), week.monday)
    decided: set[int] = set()
    if meeting is not None:
        decided = set(
            session.exec(
                select(MeetingDecision.release_id).where(MeetingDecision.meeting_id == meeting.id)
            ).all()
        )
    return [
        e
        for e in entries
        if needs_decision(e.release, earlier.get(e.release.id or 0))
        and (e.release.id or 0) not in decided
    ]


def needs_decision(release: Release, earlier: tuple[MeetingDecision, str] | None) -> bool:
    """A release waits for a decision unless an earlier meeting said go or it is finished."""
    if release.state in FINISHED:
        return False
    return earlier is None or earlier[0].decision not in GO


# --- opening -----------------------------------------------------------------------------


def open_meeting(
    session: Session, *, week: Week, user: User, now: datetime | None = None
) -> Meeting:
    """Open the week's meeting: freeze a snapshot of every release on its agenda."""
    _runner(user, "open the meeting")
    moment = utc.aware(now or utcnow())
    zone_name = meeting_zone_name(session)
    zone = timezones.zone(zone_name)
    this_week = week_at(moment, zone)
    if week > this_week.shifted(1):
        raise MeetingError(
            f"{week} is more than a week ahead: open a meeting in its week or the week before",
            status=409,
            field="week",
        )
    existing = get_meeting(session, week)
    if existing is not None:
        raise MeetingError(
            f"the meeting of {week} is already {existing.state} (opened by {existing.opened_by})",
            status=409,
            field="week",
        )
    meeting = Meeting(
        week=week.label,
        week_start=week.monday,
        timezone=zone_name,
        opened_by=user.actor,
        opened_at=moment,
    )
    try:
        with session.begin_nested():
            session.add(meeting)
            session.flush()
    except IntegrityError:
        raise MeetingError(
            f"someone opened the meeting of {week} a moment ago; reload the page",
            status=409,
            field="week",
        ) from None
    people = snapshots.people_by_role(session)
    entries = agenda(session, week, zone, now=moment)
    for position, entry in enumerate(entries, start=1):
        session.add(
            MeetingItem(
                meeting_id=meeting.id or 0,
                release_id=entry.release.id or 0,
                position=position,
                reason=entry.reason,
                reason_detail=entry.detail[:300],
                snapshot=snapshots.take(
                    session, entry.release, entry.app, now=moment, people=people
                ),
                snapshot_at=moment,
                added_by=user.actor,
            )
        )
    session.add(
        MeetingAttendee(
            meeting_id=meeting.id or 0,
            user_id=user.id,
            name=user.name or user.email,
            role=user.role,
        )
    )
    session.flush()
    late = week < this_week
    audit.record(
        session,
        actor=user.actor,
        action="meeting.open",
        subject_type="meeting",
        subject_id=week.label,
        after={
            "week": week.label,
            "timezone": zone_name,
            "agenda": [f"{e.app.slug} {e.release.version} ({e.reason})" for e in entries],
            "late": late,
        },
        summary=f"opened the meeting of {week} with {len(entries)} release(s)"
        + (" after the week had ended" if late else ""),
    )
    _emit(session, MeetingEvent("opened", meeting, user.actor))
    return meeting


def add_release(
    session: Session,
    *,
    meeting: Meeting,
    release: Release,
    user: User,
    now: datetime | None = None,
) -> MeetingItem:
    """Put a release on an open meeting's agenda (a hotfix registered after it opened)."""
    _runner(user, "change the agenda")
    _open(meeting)
    if _item_of(session, meeting, release) is not None:
        raise MeetingError(
            f"this release is already on the agenda of {meeting.week}",
            status=409,
            field="release_id",
        )
    if release.state in FINISHED:
        raise MeetingError(
            f"the release is {release.state}: there is nothing left to decide",
            status=409,
            field="release_id",
        )
    app = session.get(App, release.app_id)
    assert app is not None
    moment = utc.aware(now or utcnow())
    last = session.exec(
        select(MeetingItem.position)
        .where(MeetingItem.meeting_id == meeting.id)
        .order_by(col(MeetingItem.position).desc())
    ).first()
    item = MeetingItem(
        meeting_id=meeting.id or 0,
        release_id=release.id or 0,
        position=(last or 0) + 1,
        reason="hotfix" if release.kind == "hotfix" else "added",
        reason_detail=f"added by {user.name or user.email}",
        snapshot=snapshots.take(session, release, app, now=moment),
        snapshot_at=moment,
        added_by=user.actor,
    )
    session.add(item)
    session.flush()
    audit.record(
        session,
        actor=user.actor,
        action="meeting.add_release",
        subject_type="meeting",
        subject_id=meeting.week,
        after={"release": release.id, "app": app.slug, "version": release.version},
        summary=f"added {app.slug} {release.version} to the agenda of {meeting.week}",
    )
    _emit(session, MeetingEvent("release_added", meeting, user.actor, release=release))
    return item


def on_agenda(session: Session, meeting: Meeting, release: Release) -> bool:
    return _item_of(session, meeting, release) is not None


def _item_of(session: Session, meeting: Meeting, release: Release) -> MeetingItem | None:
    return session.exec(
        select(MeetingItem).where(
            MeetingItem.meeting_id == meeting.id, MeetingItem.release_id == release.id
        )
    ).first()


# --- decisions ---------------------------------------------------------------------------


def current_decision(
    session: Session, meeting: Meeting, release: Release
) -> MeetingDecision | None:
    return session.exec(
        select(MeetingDecision)
        .where(MeetingDecision.meeting_id == meeting.id, MeetingDecision.release_id == release.id)
        .order_by(col(MeetingDecision.id).desc())
    ).first()


def decide(
    session: Session,
    *,
    meeting: Meeting,
    release: Release,
    user: User,
    decision: str,
    reason: str,
    conditions: str = "",
    amendment: bool = False,
    now: datetime | None = None,
) -> MeetingDecision:
    """Record the meeting's decision on ``release`` and do what it means:

    - go / go with conditions: a release in review is approved (the approval's guards apply:
      every required item approved, separation of duties); a draft must be submitted first;
      a release past approval keeps its state (the decision is recorded).
    - no-go: a release in review or approved is rejected with the reason; a release already
      in stores keeps its state (halting stays a separate, deliberate action).
    - defer: the release moves to the next train (its app's next departure after this week),
      so it is on next week's agenda.

    A later decision in the same meeting replaces an earlier one (both are kept); replacing
    a defer puts the train back. After the meeting is closed, ``amendment`` records a
    correction, highlighted in the audit log.
    """
    _runner(user, "amend the meeting" if amendment else "record the meeting's decisions")
    if amendment:
        if meeting.state != "closed":
            raise MeetingError(
                "the meeting is still open: record the decision itself, not an amendment",
                status=409,
            )
    else:
        _open(meeting)
    item = _item_of(session, meeting, release)
    if item is None:
        raise MeetingError(
            f"release {release.id} is not on the agenda of {meeting.week}; add it first",
            field="release_id",
        )
    if decision not in DECISIONS:
        raise MeetingError(f"decision must be one of {', '.join(DECISIONS)}", field="decision")
    reason = reason.strip()
    if not reason:
        raise MeetingError("say why: a decision needs a reason", field="reason")
    if len(reason) > 2000:
        raise MeetingError("the reason is longer than 2,000 characters", field="reason")
    conditions = conditions.strip()
    if decision == "go_with_conditions" and not conditions:
        raise MeetingError("list the conditions of the go", field="conditions")
    if decision != "go_with_conditions" and conditions:
        raise MeetingError("conditions go with “go with conditions” only", field="conditions")
    if len(conditions) > 2000:
        raise MeetingError("the conditions are longer than 2,000 characters", field="conditions")
    app = session.get(App, release.app_id)
    assert app is not None
    moment = utc.aware(now or utcnow())
    seen = snapshots.take(session, release, app, now=moment)
    previous = current_decision(session, meeting, release)
    effect: dict[str, Any] = {}
    if previous is not None and previous.decision == "defer" and decision != "defer":
        effect.update(_undo_defer(session, release, previous))
    effect.update(_apply(session, meeting, release, app, user, decision, reason))
    effect["lock_version"] = release.lock_version  # after its own move
    row = MeetingDecision(
        meeting_id=meeting.id or 0,
        release_id=release.id or 0,
        decision=decision,
        reason=reason,
        conditions=conditions,
        decided_by=user.actor,
        at=moment,
        amendment=amendment,
        effect=_jsonable(effect),
        snapshot=seen,
    )
    session.add(row)
    session.flush()
    label = DECISION_LABELS[decision]
    audit.record(
        session,
        actor=user.actor,
        action="meeting.amend" if amendment else "meeting.decide",
        subject_type="release",
        subject_id=release.id,
        before=({"decision": previous.decision, "reason": previous.reason} if previous else None),
        after={
            "week": meeting.week,
            "decision": decision,
            "reason": reason,
            "conditions": conditions,
            "effect": row.effect,
        },
        summary=("AMENDED " if amendment else "")
        + f"{meeting.week} {app.slug} {release.version}: {label.lower()} ({reason})"
        + (f"; conditions: {conditions}" if conditions else ""),
        highlight=amendment,
    )
    _emit(
        session,
        MeetingEvent(
            "amended" if amendment else "decided",
            meeting,
            user.actor,
            release=release,
            decision=row,
        ),
    )
    return row


def _jsonable(effect: dict[str, Any]) -> dict[str, Any]:
    return {
        key: [v.isoformat() if isinstance(v, datetime) else v for v in value]
        if isinstance(value, list)
        else value
        for key, value in effect.items()
    }


def _undo_defer(session: Session, release: Release, deferred: MeetingDecision) -> dict[str, Any]:
    moved = deferred.effect.get("scheduled_for")
    if not moved or release.scheduled_for is None:
        return {}
    before, after = moved
    if utc.aware(release.scheduled_for).isoformat() != after:
        return {}  # the train was changed since; leave it
    release.scheduled_for = datetime.fromisoformat(before) if before else None
    session.add(release)
    return {"train_restored": [after, before]}


def _apply(
    session: Session,
    meeting: Meeting,
    release: Release,
    app: App,
    user: User,
    decision: str,
    reason: str,
) -> dict[str, Any]:
    state = release.state
    actor = actor_for(user)
    shown = state.replace("_", " ")
    if decision in GO:
        if state == "draft":
            raise MeetingError(
                "the release is a draft: it must be submitted for review before a go",
                status=409,
                field="decision",
            )
        if state in ("rejected", "cancelled"):
            raise MeetingError(
                f"the release is {shown}: reopen it before deciding go",
                status=409,
                field="decision",
            )
        if state == "in_review":
            with audit.told_elsewhere(session, "release", release.id):
                transition(session, release, "approve", actor=actor)
            return {"transition": "approve", "state": [state, release.state]}
        return {"note": f"recorded; the release was already {shown}"}
    if decision == "no_go":
        if state in FINISHED:
            raise MeetingError(
                f"the release is {shown}: there is nothing to stop", status=409, field="decision"
            )
        if state in ("in_review", "approved"):
            with audit.told_elsewhere(session, "release", release.id):
                transition(
                    session,
                    release,
                    "reject",
                    actor=actor,
                    reason=f"no-go in the meeting of {meeting.week}: {reason}",
                )
            return {"transition": "reject", "state": [state, release.state]}
        return {"note": f"recorded; the release stays {shown}"}
    # defer
    if state in FINISHED:
        raise MeetingError(
            f"the release is {shown}: there is nothing to defer", status=409, field="decision"
        )
    _, week_end = parse_week(meeting.week).bounds(timezones.zone(meeting.timezone))
    slot = next_train_slot(session, app, after=week_end)
    before = utc.aware(release.scheduled_for) if release.scheduled_for else None
    if slot is None:
        return {"note": "recorded; the app has no train within a year"}
    release.scheduled_for = slot.at
    session.add(release)
    return {"scheduled_for": [before, slot.at], "train": slot.local}


# --- attendees, minutes ------------------------------------------------------------------


def attendees(session: Session, meeting: Meeting) -> list[MeetingAttendee]:
    return list(
        session.exec(
            select(MeetingAttendee)
            .where(MeetingAttendee.meeting_id == meeting.id)
            .order_by(col(MeetingAttendee.id))
        ).all()
    )


def set_attendees(
    session: Session,
    *,
    meeting: Meeting,
    user: User,
    people: Sequence[str],
    guests: Sequence[str] = (),
) -> list[MeetingAttendee]:
    """Who attended: people of the service (by email) and guests (by name)."""
    _runner(user, "record who attended")
    _open(meeting)
    emails = list(dict.fromkeys(e.strip().lower() for e in people if e.strip()))
    found = (
        {
            u.email.lower(): u
            for u in session.exec(select(User).where(col(User.email).in_(emails))).all()
            if u.active
        }
        if emails
        else {}
    )
    unknown = [e for e in emails if e not in found]
    if unknown:
        raise MeetingError(
            f"no active person with the email {', '.join(unknown[:5])}", field="people"
        )
    names = list(dict.fromkeys(" ".join(g.split()) for g in guests if g.strip()))
    if len(names) > MAX_GUESTS:
        raise MeetingError(f"at most {MAX_GUESTS} guests", field="guests")
    if any(len(n) > 200 for n in names):
        raise MeetingError("a guest's name is longer than 200 characters", field="guests")
    if not emails and not names:
        raise MeetingError("list who attended", field="people")
    old = attendees(session, meeting)
    before = [a.name for a in old]
    for row in old:
        session.delete(row)
    session.flush()
    rows = [
        MeetingAttendee(
            meeting_id=meeting.id or 0, user_id=u.id, name=u.name or u.email, role=u.role
        )
        for u in (found[e] for e in emails)
    ] + [MeetingAttendee(meeting_id=meeting.id or 0, name=n) for n in names]
    for row in rows:
        session.add(row)
    session.flush()
    after = [a.name for a in rows]
    audit.record(
        session,
        actor=user.actor,
        action="meeting.attendees",
        subject_type="meeting",
        subject_id=meeting.week,
        before={"attendees": before},
        after={"attendees": after},
        summary=f"{meeting.week} attendees: {', '.join(after)}",
    )
    return rows


def save_minutes(
    session: Session, *, meeting: Meeting, user: User, minutes: str, revision: int | None
) -> Meeting:
    """Replace the minutes; ``revision`` (the one the editor loaded) guards a parallel edit."""
    _runner(user, "write the minutes")
    _open(meeting)
    if revision is not None and revision != meeting.minutes_revision:
        raise MeetingError(
            "the minutes changed since you loaded them; reload, then add your text again",
            status=409,
            field="revision",
        )
    text = minutes.replace("\r\n", "\n").strip()
    if len(text) > MAX_MINUTES:
        raise MeetingError(
            f"the minutes are longer than {MAX_MINUTES:,} characters", field="minutes"
        )
    before = meeting.minutes_revision
    meeting.minutes = text
    meeting.minutes_revision += 1
    session.add(meeting)
    audit.record(
        session,
        actor=user.actor,
        action="meeting.minutes",
        subject_type="meeting",
        subject_id=meeting.week,
        before={"revision": before},
        after={"revision": meeting.minutes_revision, "minutes": text},
        summary=f"{meeting.week} minutes saved ({len(text):,} characters)",
    )
    _emit(session, MeetingEvent("minutes_saved", meeting, user.actor))
    return meeting


# --- action items ------------------------------------------------------------------------


def add_action_item(
    session: Session,
    *,
    meeting: Meeting,
    user: User,
    title: str,
    owner: str,
    due_on: date | None,
    release_id: int | None = None,
    now: datetime | None = None,
) -> ActionItem:
    """An action item of the meeting: a person does something by a date."""
    _runner(user, "create action items")
    _open(meeting)
    title = " ".join(title.split())
    if not title:
        raise MeetingError("say what is to be done", field="title")
    if len(title) > 500:
        raise MeetingError("the action item is longer than 500 characters", field="title")
    person = session.exec(select(User).where(col(User.email) == owner.strip().lower())).first()
    if person is None or not person.active:
        raise MeetingError("the owner must be an active person (their email)", field="owner")
    if person.role not in OWNER_ROLES:
        raise MeetingError(
            f"{person.name or person.email} is a {ROLE_LABELS.get(person.role, person.role)} and "
            "cannot own an action item",
            field="owner",
        )
    if due_on is None:
        raise MeetingError("give a due date (YYYY-MM-DD)", field="due_on")
    if due_on < meeting.week_start:
        raise MeetingError(
            f"the due date is before the week of the meeting ({meeting.week_start})",
            field="due_on",
        )
    if due_on > meeting.week_start + timedelta(days=366):
        raise MeetingError("the due date is more than a year away", field="due_on")
    release = None
    if release_id is not None:
        release = session.get(Release, release_id)
        if release is None:
            raise MeetingError(f"no release {release_id}", status=404, field="release_id")
    item = ActionItem(
        meeting_id=meeting.id or 0,
        release_id=release.id if release else None,
        title=title,
        owner_id=person.id or 0,
        owner_name=person.name or person.email,
        due_on=due_on,
        created_by=user.actor,
        created_at=utc.aware(now or utcnow()),
    )
    session.add(item)
    session.flush()
    audit.record(
        session,
        actor=user.actor,
        action="action_item.create",
        subject_type="meeting",
        subject_id=meeting.week,
        after={"id": item.id, "title": title, "owner": person.email, "due_on": due_on},
        summary=f"action item #{item.id} for {item.owner_name}, due {due_on}: {title}",
    )
    _emit(session, MeetingEvent("action_item_created", meeting, user.actor, action_item=item))
    return item


def close_action_item(
    session: Session, *, item: ActionItem, user: User, note: str = "", now: datetime | None = None
) -> ActionItem:
    """Close an action item (any meeting week): the owner or anyone working on releases."""
    if user.role not in CLOSERS:
        raise MeetingError("your role may read action items but not close them", status=403)
    if item.closed_at is not None:
        raise MeetingError(
            f"action item #{item.id} was already closed by {item.closed_by}", status=409
        )
    note = note.strip()
    if len(note) > 2000:
        raise MeetingError("the note is longer than 2,000 characters", field="note")
    item.closed_at = utc.aware(now or utcnow())
    item.closed_by = user.actor
    item.close_note = note
    session.add(item)
    meeting = session.get(Meeting, item.meeting_id)
    assert meeting is not None
    audit.record(
        session,
        actor=user.actor,
        action="action_item.close",
        subject_type="action_item",
        subject_id=item.id,
        before={"state": "open"},
        after={"state": "closed", "note": note},
        summary=f"closed action item #{item.id} ({item.title})" + (f": {note}" if note else ""),
    )
    _emit(session, MeetingEvent("action_item_closed", meeting, user.actor, action_item=item))
    return item


def list_action_items(
    session: Session, *, state: str = "open", owner: User | None = None, limit: int = 200
) -> list[ActionItem]:
    stmt = select(ActionItem)
    if state == "open":
        stmt = stmt.where(col(ActionItem.closed_at).is_(None))
    elif state == "closed":
        stmt = stmt.where(col(ActionItem.closed_at).is_not(None))
    if owner is not None:
        stmt = stmt.where(ActionItem.owner_id == owner.id)
    return list(
        session.exec(stmt.order_by(col(ActionItem.due_on), col(ActionItem.id)).limit(limit)).all()
    )


def items_of_week(
    session: Session, meeting: Meeting | None, week: Week, zone: ZoneInfo, now: datetime
) -> tuple[list[ActionItem], datetime]:
    """The action items a week's meeting shows, and the moment their state is read at: the
    items created in it, and those still open from earlier meetings when it opened (or, for
    a week without a meeting, those open at its end or now)."""
    if meeting is not None:
        since = utc.aware(meeting.opened_at)
        at = utc.aware(meeting.closed_at) if meeting.closed_at else now
        stmt = select(ActionItem).where(
            or_(
                col(ActionItem.meeting_id) == meeting.id,
                and_(
                    col(ActionItem.created_at) < since,
                    or_(col(ActionItem.closed_at).is_(None), col(ActionItem.closed_at) > since),
                ),
            )
        )
    else:
        at = min(now, week.bounds(zone)[1])
        stmt = select(ActionItem).where(
            col(ActionItem.created_at) <= at,
            or_(col(ActionItem.closed_at).is_(None), col(ActionItem.closed_at) > at),
        )
    rows = list(session.exec(stmt).all())
    rows.sort(key=lambda a: (is_closed(a, at), a.due_on, a.id or 0))
    return rows, at


def is_closed(item: ActionItem, at: datetime) -> bool:
    return item.closed_at is not None and utc.aware(item.closed_at) <= at


def is_overdue(item: ActionItem, at: datetime, zone: ZoneInfo) -> bool:
    return not is_closed(item, at) and item.due_on < utc.aware(at).astimezone(zone).date()


# --- closing -----------------------------------------------------------------------------


def close_meeting(
    session: Session, *, meeting: Meeting, user: User, now: datetime | None = None
) -> Meeting:
    """Close the meeting: from now on it is read-only (amendments aside). Releases left
    without a decision are carried over to the next week."""
    _runner(user, "close the meeting")
    _open(meeting)
    view = week_view(session, parse_week(meeting.week), now=now)
    undecided = [
        f"{i.app_slug} {i.version}" for i in view.items if i.needs_decision and not i.decision
    ]
    meeting.state = "closed"
    meeting.closed_at = utc.aware(now or utcnow())
    meeting.closed_by = user.actor
    session.add(meeting)
    audit.record(
        session,
        actor=user.actor,
        action="meeting.close",
        subject_type="meeting",
        subject_id=meeting.week,
        before={"state": "open"},
        after={"state": "closed", "undecided": undecided},
        summary=f"closed the meeting of {meeting.week}"
        + (f"; carried over undecided: {', '.join(undecided)}" if undecided else ""),
    )
    _emit(session, MeetingEvent("closed", meeting, user.actor))
    return meeting


# --- reading a week back -----------------------------------------------------------------


@dataclass
class ItemView:
    """One release of a week's agenda as its page and its API show it."""

    release_id: int
    app_slug: str
    app_name: str
    version: str
    kind: str
    reason: str
    detail: str
    snapshot: dict[str, Any]
    assessment: snapshots.Assessment
    decision: MeetingDecision | None = None
    history: list[MeetingDecision] = field(default_factory=list)
    needs_decision: bool = True
    changed: str | None = None  # how the live release differs from the snapshot
    state_now: str = ""


@dataclass
class AppTrain:
    slug: str
    name: str
    zone: str
    local: str | None  # e.g. "Wed 2026-10-14 14:00 JST"
    at: datetime | None
    skipped: str | None
    items: list[ItemView] = field(default_factory=list)


@dataclass
class WeekView:
    week: Week
    zone: str
    meeting: Meeting | None
    items: list[ItemView]
    trains: list[AppTrain]
    attendees: list[MeetingAttendee]
    action_items: list[ActionItem]
    action_items_at: datetime
    now: datetime
    this_week: Week

    @property
    def live(self) -> bool:
        """No meeting: the agenda is computed from today's data."""
        return self.meeting is None

    @property
    def past(self) -> bool:
        return self.week < self.this_week

    @property
    def openable(self) -> bool:
        return self.meeting is None and self.week <= self.this_week.shifted(1)

    @property
    def undecided(self) -> list[ItemView]:
        return [i for i in self.items if i.needs_decision and i.decision is None]

    def overdue(self, item: ActionItem) -> bool:
        return is_overdue(item, self.action_items_at, timezones.zone(self.zone))

    def closed(self, item: ActionItem) -> bool:
        return is_closed(item, self.action_items_at)


def week_view(session: Session, week: Week, *, now: datetime | None = None) -> WeekView:
    """The week as its meeting saw it (the snapshots, the decisions, the action items as
    they stood when it closed), or, without a meeting, its agenda computed from today's data."""
    moment = utc.aware(now or utcnow())
    meeting = get_meeting(session, week)
    zone_name = meeting.timezone if meeting else meeting_zone_name(session)
    zone = timezones.zone(zone_name)
    apps = {a.id: a for a in session.exec(select(App).order_by(App.name)).all()}
    items: list[ItemView] = []
    if meeting is not None:
        rows = session.exec(
            select(MeetingItem, Release)
            .join(Release, col(Release.id) == col(MeetingItem.release_id))
            .where(MeetingItem.meeting_id == meeting.id)
            .order_by(col(MeetingItem.position))
        ).all()
        decided: dict[int, list[MeetingDecision]] = {}
        for d in session.exec(
            select(MeetingDecision)
            .where(MeetingDecision.meeting_id == meeting.id)
            .order_by(col(MeetingDecision.id))
        ).all():
            decided.setdefault(d.release_id, []).append(d)
        earlier = _earlier_decisions(session, (r.id or 0 for _, r in rows), week.monday)
        for item, release in rows:
            app = apps[release.app_id]
            history = decided.get(release.id or 0, [])
            current = history[-1] if history else None
            seen = current.snapshot if current and current.snapshot else item.snapshot
            items.append(
                ItemView(
                    release_id=release.id or 0,
                    app_slug=app.slug,
                    app_name=app.name,
                    version=release.version,
                    kind=release.kind,
                    reason=item.reason,
                    detail=item.reason_detail,
                    snapshot=seen,
                    assessment=snapshots.assess(seen),
                    decision=current,
                    history=history,
                    needs_decision=_needed(seen, earlier.get(release.id or 0)),
                    changed=snapshots.changed_since(
                        seen,
                        release,
                        lock_version=current.effect.get("lock_version") if current else None,
                    )
                    if meeting.state == "open"
                    else None,
                    state_now=release.state,
                )
            )
    else:
        people = snapshots.people_by_role(session)
        entries = agenda(session, week, zone, now=moment)
        earlier = _earlier_decisions(session, (e.release.id or 0 for e in entries), week.monday)
        for entry in entries:
            seen = snapshots.take(session, entry.release, entry.app, now=moment, people=people)
            items.append(
                ItemView(
                    release_id=entry.release.id or 0,
                    app_slug=entry.app.slug,
                    app_name=entry.app.name,
                    version=entry.release.version,
                    kind=entry.release.kind,
                    reason=entry.reason,
                    detail=entry.detail,
                    snapshot=seen,
                    assessment=snapshots.assess(seen),
                    needs_decision=needs_decision(
                        entry.release, earlier.get(entry.release.id or 0)
                    ),
                    state_now=entry.release.state,
                )
            )
    trains = _trains(session, week, list(apps.values()), items)
    actions, actions_at = items_of_week(session, meeting, week, zone, moment)
    return WeekView(
        week=week,
        zone=zone_name,
        meeting=meeting,
        items=items,
        trains=trains,
        attendees=attendees(session, meeting) if meeting else [],
        action_items=actions,
        action_items_at=actions_at,
        now=moment,
        this_week=week_at(moment, zone),
    )


def _needed(snapshot: dict[str, Any], earlier: tuple[MeetingDecision, str] | None) -> bool:
    if snapshot.get("state") in FINISHED:
        return False
    return earlier is None or earlier[0].decision not in GO


def _trains(
    session: Session, week: Week, apps: Sequence[App], items: Sequence[ItemView]
) -> list[AppTrain]:
    """Each app's train of the week (in its own zone) and its releases on the agenda."""
    out = []
    for app in sorted(apps, key=lambda a: a.name):
        zone = timezones.zone(app.train_timezone)
        start, _ = week.bounds(zone)
        try:
            slots = train_slots(
                app, start=start, weeks=1, skips=skips_for(session, app, since=week.monday)
            )
        except DomainError:  # an app whose train settings no longer parse
            slots = []
        slot = slots[0] if slots and slots[0].week_of == week.monday else None
        out.append(
            AppTrain(
                slug=app.slug,
                name=app.name,
                zone=app.train_timezone,
                local=slot.local if slot else None,
                at=slot.at if slot else None,
                skipped=slot.skipped.reason if slot and slot.skipped else None,
                items=[i for i in items if i.app_slug == app.slug],
            )
        )
    return out


@dataclass
class MeetingSummary:
    meeting: Meeting
    releases: int
    decided: int
    action_items: int


def recent_meetings(session: Session, *, limit: int = 52) -> list[MeetingSummary]:
    """The meetings, newest week first, with how many releases, decisions and action items."""
    meetings = list(
        session.exec(select(Meeting).order_by(col(Meeting.week_start).desc()).limit(limit)).all()
    )
    ids = [m.id for m in meetings]
    releases: dict[int, int] = {}
    decided: dict[int, set[int]] = {}
    actions: dict[int, int] = {}
    if ids:
        for meeting_id in session.exec(
            select(MeetingItem.meeting_id).where(col(MeetingItem.meeting_id).in_(ids))
        ).all():
            releases[meeting_id] = releases.get(meeting_id, 0) + 1
        for meeting_id, release_id in session.exec(
            select(MeetingDecision.meeting_id, MeetingDecision.release_id).where(
                col(MeetingDecision.meeting_id).in_(ids)
            )
        ).all():
            decided.setdefault(meeting_id, set()).add(release_id)
        for meeting_id in session.exec(
            select(ActionItem.meeting_id).where(col(ActionItem.meeting_id).in_(ids))
        ).all():
            actions[meeting_id] = actions.get(meeting_id, 0) + 1
    return [
        MeetingSummary(
            meeting=m,
            releases=releases.get(m.id or 0, 0),
            decided=len(decided.get(m.id or 0, ())),
            action_items=actions.get(m.id or 0, 0),
        )
        for m in meetings
    ]


def decisions_for_release(
    session: Session, release: Release
) -> list[tuple[MeetingDecision, Meeting]]:
    """Every meeting decision on ``release``, newest first, with its meeting."""
    rows = session.exec(
        select(MeetingDecision, Meeting)
        .join(Meeting, col(Meeting.id) == col(MeetingDecision.meeting_id))
        .where(MeetingDecision.release_id == release.id)
        .order_by(col(MeetingDecision.id).desc())
    ).all()
    return [(d, m) for d, m in rows]


# --- the per-release meeting record (the API before weekly meetings) ---------------------

LEGACY_DECISIONS = {"go": "go", "no_go": "no_go", "postponed": "defer"}


def record_for_release(
    session: Session,
    *,
    release: Release,
    user: User,
    held_on: date,
    attendees_text: str,
    decision: str,
    minutes: str,
) -> MeetingDecision:
    """``POST /api/v1/releases/{id}/meetings``, kept for its callers: the decision goes to the
    meeting of ``held_on``'s week (opened if need be, the release put on its agenda), the
    attendees join it as guests, the minutes are appended to its minutes. It also keeps
    writing the old per-release record while processes that read it may still run."""
    _runner(user, "record the meeting")
    if decision not in LEGACY_DECISIONS:
        raise MeetingError("decision must be go, no_go or postponed", field="decision")
    names = [n.strip() for n in attendees_text.split(",") if n.strip()]
    if not names:
        raise MeetingError("list who attended", field="attendees")
    week = week_of(held_on)
    meeting = get_meeting(session, week) or open_meeting(session, week=week, user=user)
    _open(meeting)
    if _item_of(session, meeting, release) is None:
        add_release(session, meeting=meeting, release=release, user=user)
    present = {a.name for a in attendees(session, meeting)}
    for name in names:
        if name not in present:
            session.add(MeetingAttendee(meeting_id=meeting.id or 0, name=name[:200]))
    app = session.get(App, release.app_id)
    assert app is not None
    text = minutes.strip()
    if text:
        joined = (meeting.minutes + "\n\n" if meeting.minutes else "") + (
            f"{app.slug} {release.version}: {text}"
        )
        save_minutes(
            session, meeting=meeting, user=user, minutes=joined, revision=meeting.minutes_revision
        )
    row = decide(
        session,
        meeting=meeting,
        release=release,
        user=user,
        decision=LEGACY_DECISIONS[decision],
        reason=text[:2000] or "recorded on the release's meeting record",
    )
    session.add(
        MeetingRecord(
            release_id=release.id or 0,
            held_on=held_on,
            attendees=", ".join(names)[:2000],
            decision=decision,
            minutes=text,
            recorded_by=user.actor,
        )
    )
    return row


# --- the meeting's record, as data (minutes to Notion, chat, archives) --------------------


def overrides(snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    """The checklist items and gates overridden in a release's snapshot: what, by whom, why."""
    found = [
        {"what": f"“{i['title']}”", **{k: i["override"].get(k) for k in ("by", "reason")}}
        for i in snapshot.get("items", [])
        if i.get("override")
    ]
    found += [
        {"what": f"gate {g['title']}", **{k: g["override"].get(k) for k in ("by", "reason")}}
        for g in snapshot.get("gates", [])
        if g.get("override")
    ]
    return found


def meeting_record(session: Session, meeting: Meeting) -> dict[str, Any]:
    """A held meeting as plain JSON-able data: who attended, each release's decision (with
    its reason, conditions, who and when, and the release's state and troubles as the
    meeting saw it), amendments, the releases left undecided, the minutes and the action
    items as they stood when it closed. ``final`` once closed; ``digest`` (SHA-256 of the
    rest) changes whenever anything in it does, so a publisher can tell a record it already
    published from a changed one."""
    view = week_view(session, parse_week(meeting.week))
    zone = timezones.zone(view.zone)
    owners = {
        u.id: u.email
        for u in session.exec(
            select(User).where(col(User.id).in_({a.owner_id for a in view.action_items}))
        ).all()
    }
    created_in = {
        m.id: m.week
        for m in session.exec(
            select(Meeting).where(col(Meeting.id).in_({a.meeting_id for a in view.action_items}))
        ).all()
    }

    def iso(moment: datetime | None) -> str | None:
        return utc.aware(moment).isoformat() if moment else None

    def decision(item: ItemView, d: MeetingDecision) -> dict[str, Any]:
        return {
            "app": item.app_slug,
            "app_name": item.app_name,
            "release_id": item.release_id,
            "version": item.version,
            "kind": item.kind,
            "agenda_reason": item.reason,
            "decision": d.decision,
            "label": DECISION_LABELS[d.decision],
            "reason": d.reason,
            "conditions": d.conditions,
            "decided_by": d.decided_by,
            "at": iso(d.at),
            "amendment": d.amendment,
            "state_then": (d.snapshot or item.snapshot).get("state"),
            "effect": d.effect,
            "overrides": overrides(d.snapshot or item.snapshot),
        }

    record: dict[str, Any] = {
        "week": meeting.week,
        "monday": view.week.monday.isoformat(),
        "sunday": view.week.sunday.isoformat(),
        "timezone": view.zone,
        "state": meeting.state,
        "final": meeting.state == "closed",
        "opened_by": meeting.opened_by,
        "opened_at": iso(meeting.opened_at),
        "closed_by": meeting.closed_by,
        "closed_at": iso(meeting.closed_at),
        "attendees": [
            {"name": a.name, "role": a.role, "guest": a.user_id is None} for a in view.attendees
        ],
        "decisions": [
            {
                **decision(i, i.decision),
                "troubles": [text for level, text in i.assessment.lines if level != "good"],
            }
            for i in view.items
            if i.decision is not None
        ],
        "amendments": [decision(i, d) for i in view.items for d in i.history if d.amendment],
        "undecided": [
            {"app": i.app_slug, "release_id": i.release_id, "version": i.version}
            for i in view.undecided
        ],
        "minutes": meeting.minutes,
        "minutes_revision": meeting.minutes_revision,
        "action_items": [
            {
                "id": a.id,
                "title": a.title,
                "owner": owners.get(a.owner_id, ""),
                "owner_name": a.owner_name,
                "due_on": a.due_on.isoformat(),
                "state": "closed" if view.closed(a) else "open",
                "overdue": is_overdue(a, view.action_items_at, zone),
                "created_in": created_in.get(a.meeting_id, ""),
                "release_id": a.release_id,
                "closed_by": a.closed_by if view.closed(a) else None,
                "closed_at": iso(a.closed_at) if view.closed(a) else None,
                "close_note": a.close_note if view.closed(a) else "",
            }
            for a in view.action_items
        ],
    }
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
    record["digest"] = hashlib.sha256(canonical.encode()).hexdigest()
    return record
