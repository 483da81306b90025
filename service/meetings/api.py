"""The weekly meeting in the JSON API: read a week, and every action the meeting page offers
(open, put a release on the agenda, decide, amend, attendees, minutes, action items, close).

The actions are a release manager's (closing an action item: anyone working on releases), so
they act for a person: the logged-in session and the page's CSRF token in ``X-CSRFToken``;
bearer tokens are refused with 403. Who the person is, and whether their role may act, is
checked before the body is read.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from flask import url_for
from pydantic import BaseModel, Field
from sqlmodel import col, select

import utc
from service import db
from service.api.errors import ApiError
from service.api.operations import Routes
from service.api.person_session import require_person
from service.meetings import inbox as inbox_service
from service.meetings import minutes, notifications, services
from service.meetings.models import DECISION_LABELS, ActionItem, Meeting, MeetingDecision
from service.meetings.weeks import WEEK_HELP, Week, parse_week
from service.models import User
from service.publishing.api import JobOut
from service.releases.models import Release

routes = Routes(tag="Meeting")


# --- bodies --------------------------------------------------------------------------------


class DecisionIn(BaseModel):
    release_id: int = Field(ge=1, le=2**31 - 1)
    decision: Literal["go", "go_with_conditions", "no_go", "defer"]
    reason: str = Field(min_length=1, max_length=2000)
    conditions: str = Field(
        default="", max_length=2000, description="required with go_with_conditions, else empty"
    )


class ReleaseRefIn(BaseModel):
    release_id: int = Field(ge=1, le=2**31 - 1)


class AttendeesIn(BaseModel):
    people: list[str] = Field(
        default_factory=list, max_length=200, description="emails of people of the service"
    )
    guests: list[str] = Field(
        default_factory=list, max_length=50, description="names of guests (not people here)"
    )


class MinutesIn(BaseModel):
    minutes: str = Field(max_length=20_000)
    revision: int | None = Field(
        default=None, description="the revision you loaded; refused with 409 if it changed"
    )


class ActionItemIn(BaseModel):
    title: str = Field(min_length=1, max_length=500)
    owner: str = Field(min_length=3, max_length=254, description="the owner's email")
    due_on: date
    release_id: int | None = Field(default=None, ge=1, le=2**31 - 1)


class CloseActionItemIn(BaseModel):
    note: str = Field(default="", max_length=2000)


class ActionItemQuery(BaseModel):
    state: Literal["open", "closed", "all"] = "open"
    owner: str | None = Field(default=None, max_length=254, description="the owner's email")
    limit: int = Field(default=200, ge=1, le=1000)


class MeetingListQuery(BaseModel):
    limit: int = Field(default=52, ge=1, le=520)


# --- answers -------------------------------------------------------------------------------


class SignedOut(BaseModel):
    by: str
    decision: str
    at: datetime | None = None
    comment: str = ""


class ChecklistItemOut(BaseModel):
    title: str
    owner_role: str
    required: bool
    mode: str
    status: str
    blocking: bool
    evidence: str = ""
    signed: SignedOut | None = None
    overridden_by: str | None = None
    override_reason: str | None = None
    waiting_for: list[str] = Field(description="the people who hold the item's role")


class WaitingOut(BaseModel):
    role: str
    people: list[str]


class GateOut(BaseModel):
    key: str
    title: str
    status: str
    evidence: str
    overridden_by: str | None = None


class IncidentOut(BaseModel):
    id: int
    title: str
    score: int
    impact: int
    scope: int
    started_at: datetime | None = None


class PreviousOut(BaseModel):
    version: str | None = None
    day: date | None = None
    devices: int | None = None
    share: float | None = Field(default=None, description="0–1 of the devices on it that day")
    share_or_newer: float | None = None
    note: str | None = None


class SnapshotOut(BaseModel):
    """The release as the meeting saw it (frozen when the meeting opened or decided)."""

    taken_at: datetime | None = None
    state: str | None = None
    halted_from: str | None = None
    scheduled_for: datetime | None = None
    range: str | None = None
    checklist_done: int = 0
    checklist_total: int = 0
    items: list[ChecklistItemOut] = Field(default_factory=list)
    waiting: list[WaitingOut] = Field(default_factory=list)
    gates: list[GateOut] = Field(default_factory=list)
    incidents: list[IncidentOut] = Field(default_factory=list)
    incident_threshold: int | None = None
    previous: PreviousOut | None = None


class DecisionOut(BaseModel):
    id: int
    week: str
    release_id: int
    decision: str
    label: str
    reason: str
    conditions: str
    decided_by: str
    at: datetime
    amendment: bool
    effect: dict[str, Any]


class AgendaItemOut(BaseModel):
    release_id: int
    app: str
    version: str
    kind: str
    reason: str = Field(description="train, hotfix, carried or added")
    detail: str
    status: Literal["bad", "warn", "good"] = Field(description="what stands out, worst first")
    troubles: list[str]
    needs_decision: bool
    decision: DecisionOut | None
    history: list[DecisionOut]
    snapshot: SnapshotOut
    state_now: str
    changed_since_snapshot: str | None
    url: str


class AttendeeOut(BaseModel):
    name: str
    role: str = Field(description="the person's role then; empty for a guest")
    person: bool


class ActionItemOut(BaseModel):
    id: int
    week: str = Field(description="the meeting it was created in")
    release_id: int | None
    title: str
    owner: str = Field(description="the owner's email")
    owner_name: str
    due_on: date
    state: Literal["open", "closed"]
    overdue: bool
    created_by: str
    created_at: datetime
    closed_by: str | None
    closed_at: datetime | None
    close_note: str


class TrainOut(BaseModel):
    app: str
    name: str
    timezone: str
    train: str | None = Field(description="the week's departure in the app's zone")
    at: datetime | None = Field(description="the same, UTC")
    skipped: str | None = Field(description="why the train does not run that week")


class MeetingWeekOut(BaseModel):
    week: str = Field(examples=["2026-W42"])
    monday: date
    sunday: date
    timezone: str
    meeting_at: datetime = Field(description="when the meeting is held (RELGOV_MEETING_TIME)")
    state: Literal["not_opened", "open", "closed"]
    live: bool = Field(description="no meeting: the agenda and snapshots are today's data")
    opened_by: str | None
    opened_at: datetime | None
    closed_by: str | None
    closed_at: datetime | None
    minutes: str
    minutes_revision: int
    attendees: list[AttendeeOut]
    trains: list[TrainOut]
    items: list[AgendaItemOut]
    undecided: list[int] = Field(description="releases still waiting for a decision")
    action_items: list[ActionItemOut]
    url: str


class MinutesOut(BaseModel):
    week: str
    minutes: str
    revision: int


class MeetingSummaryOut(BaseModel):
    week: str
    monday: date
    state: str
    opened_by: str
    opened_at: datetime
    closed_at: datetime | None
    releases: int
    decided: int
    action_items: int
    url: str


# --- helpers -------------------------------------------------------------------------------


def _week(text: str) -> Week:
    return parse_week(text)


def _meeting(week: Week) -> Meeting:
    return services.meeting_or_refuse(db.session(), week)


def _release(release_id: int) -> Release:
    release = db.session().get(Release, release_id)
    if release is None:
        raise ApiError(
            404,
            "not_found",
            f"no release {release_id}",
            [{"field": "release_id", "message": "unknown release", "type": "not_found"}],
        )
    return release


def _decision_out(decision: MeetingDecision, week: str) -> DecisionOut:
    return DecisionOut(
        id=decision.id or 0,
        week=week,
        release_id=decision.release_id,
        decision=decision.decision,
        label=DECISION_LABELS.get(decision.decision, decision.decision),
        reason=decision.reason,
        conditions=decision.conditions,
        decided_by=decision.decided_by,
        at=decision.at,
        amendment=decision.amendment,
        effect=decision.effect,
    )


def _snapshot_out(snapshot: dict[str, Any]) -> SnapshotOut:
    checklist = snapshot.get("checklist") or {}
    return SnapshotOut(
        taken_at=snapshot.get("taken_at"),
        state=snapshot.get("state"),
        halted_from=snapshot.get("halted_from"),
        scheduled_for=snapshot.get("scheduled_for"),
        range=snapshot.get("range"),
        checklist_done=checklist.get("done", 0),
        checklist_total=checklist.get("total", 0),
        items=[
            ChecklistItemOut(
                title=i["title"],
                owner_role=i["owner_role"],
                required=i["required"],
                mode=i["mode"],
                status=i["status"],
                blocking=i["blocking"],
                evidence=i.get("evidence", ""),
                signed=SignedOut.model_validate(i["signed"]) if i.get("signed") else None,
                overridden_by=(i.get("override") or {}).get("by"),
                override_reason=(i.get("override") or {}).get("reason"),
                waiting_for=i.get("waiting_for", []),
            )
            for i in snapshot.get("items", [])
        ],
        waiting=[
            WaitingOut(role=w["role"], people=w["people"]) for w in snapshot.get("waiting", [])
        ],
        gates=[
            GateOut(
                key=g["key"],
                title=g["title"],
                status=g["status"],
                evidence=g["evidence"],
                overridden_by=(g.get("override") or {}).get("by"),
            )
            for g in snapshot.get("gates", [])
        ],
        incidents=[IncidentOut.model_validate(i) for i in snapshot.get("incidents", [])],
        incident_threshold=snapshot.get("incident_threshold"),
        previous=PreviousOut.model_validate(snapshot["previous"])
        if snapshot.get("previous")
        else None,
    )


def _action_out(
    item: ActionItem, weeks: dict[int, str], view: services.WeekView | None
) -> ActionItemOut:
    session = db.session()
    owner = session.get(User, item.owner_id)
    if view is not None:
        closed, overdue = view.closed(item), view.overdue(item)
    else:
        closed = item.closed_at is not None
        overdue = not closed and item.due_on < services.today(session)
    return ActionItemOut(
        id=item.id or 0,
        week=weeks.get(item.meeting_id, ""),
        release_id=item.release_id,
        title=item.title,
        owner=owner.email if owner else "",
        owner_name=item.owner_name,
        due_on=item.due_on,
        state="closed" if closed else "open",
        overdue=overdue,
        created_by=item.created_by,
        created_at=item.created_at,
        closed_by=item.closed_by if closed else None,
        closed_at=item.closed_at if closed else None,
        close_note=item.close_note if closed else "",
    )


def _weeks_of(items: list[ActionItem]) -> dict[int, str]:
    ids = {i.meeting_id for i in items}
    if not ids:
        return {}
    rows = db.session().exec(select(Meeting.id, Meeting.week).where(col(Meeting.id).in_(ids)))
    return {meeting_id: week for meeting_id, week in rows if meeting_id is not None}


def week_out(view: services.WeekView) -> MeetingWeekOut:
    meeting = view.meeting
    week = view.week.label
    items = [
        AgendaItemOut(
            release_id=i.release_id,
            app=i.app_slug,
            version=i.version,
            kind=i.kind,
            reason=i.reason,
            detail=i.detail,
            status=i.assessment.level,
            troubles=[text for level, text in i.assessment.lines if level != "good"],
            needs_decision=i.needs_decision,
            decision=_decision_out(i.decision, week) if i.decision else None,
            history=[_decision_out(d, week) for d in i.history],
            snapshot=_snapshot_out(i.snapshot),
            state_now=i.state_now,
            changed_since_snapshot=i.changed,
            url=f"/releases/{i.release_id}",
        )
        for i in view.items
    ]
    weeks = _weeks_of(view.action_items)
    attendees = [
        AttendeeOut(name=a.name, role=a.role, person=a.user_id is not None) for a in view.attendees
    ]
    return MeetingWeekOut(
        week=week,
        monday=view.week.monday,
        sunday=view.week.sunday,
        timezone=view.zone,
        meeting_at=inbox_service.meeting_at(view.week, view.zone),
        state=meeting.state if meeting else "not_opened",
        live=view.live,
        opened_by=meeting.opened_by if meeting else None,
        opened_at=meeting.opened_at if meeting else None,
        closed_by=meeting.closed_by if meeting else None,
        closed_at=meeting.closed_at if meeting else None,
        minutes=meeting.minutes if meeting else "",
        minutes_revision=meeting.minutes_revision if meeting else 0,
        attendees=attendees,
        trains=[
            TrainOut(
                app=t.slug, name=t.name, timezone=t.zone, train=t.local, at=t.at, skipped=t.skipped
            )
            for t in view.trains
        ],
        items=items,
        undecided=[i.release_id for i in view.undecided],
        action_items=[_action_out(a, weeks, view) for a in view.action_items],
        url=f"/meetings/{week}",
    )


def _view(week: Week) -> MeetingWeekOut:
    return week_out(services.week_view(db.session(), week))


# --- reading -------------------------------------------------------------------------------


@routes.operation(
    "/meetings",
    summary="The meetings held, newest week first",
    query=MeetingListQuery,
    response=list[MeetingSummaryOut],
)
def list_meeting_weeks(query: MeetingListQuery) -> list[MeetingSummaryOut]:
    return [
        MeetingSummaryOut(
            week=s.meeting.week,
            monday=s.meeting.week_start,
            state=s.meeting.state,
            opened_by=s.meeting.opened_by,
            opened_at=s.meeting.opened_at,
            closed_at=s.meeting.closed_at,
            releases=s.releases,
            decided=s.decided,
            action_items=s.action_items,
            url=f"/meetings/{s.meeting.week}",
        )
        for s in services.recent_meetings(db.session(), limit=query.limit)
    ]


@routes.operation(
    "/meetings/<week>",
    summary="One week's meeting: agenda, snapshots, decisions, attendees, minutes, action items",
    response=MeetingWeekOut,
    errors=(422,),
)
def get_meeting_week(week: str) -> MeetingWeekOut:
    """``week`` is an ISO week (``2026-W42``) or any date of it (``2026-10-12``); anything
    else is 422 naming ``week``. A week whose meeting was held reads back as it was decided
    (the snapshots frozen then); a week without one shows its agenda from today's data
    (``live``)."""
    return _view(_week(week))


class RecordAttendeeOut(BaseModel):
    name: str
    role: str
    guest: bool


class RecordOverrideOut(BaseModel):
    what: str
    by: str | None
    reason: str | None


class RecordDecisionOut(BaseModel):
    app: str
    app_name: str
    release_id: int
    version: str
    kind: str
    agenda_reason: str
    decision: str
    label: str
    reason: str
    conditions: str
    decided_by: str
    at: datetime
    amendment: bool
    state_then: str | None
    effect: dict[str, Any]
    troubles: list[str] = Field(default_factory=list)
    overrides: list[RecordOverrideOut] = Field(
        default_factory=list, description="checklist items and gates overridden then"
    )


class RecordUndecidedOut(BaseModel):
    app: str
    release_id: int
    version: str


class RecordActionItemOut(BaseModel):
    id: int
    title: str
    owner: str
    owner_name: str
    due_on: date
    state: Literal["open", "closed"]
    overdue: bool
    created_in: str
    release_id: int | None
    closed_by: str | None
    closed_at: datetime | None
    close_note: str


class MeetingRecordOut(BaseModel):
    week: str
    monday: date
    sunday: date
    timezone: str
    state: Literal["open", "closed"]
    final: bool = Field(description="closed: the record no longer changes (amendments aside)")
    opened_by: str
    opened_at: datetime
    closed_by: str | None
    closed_at: datetime | None
    attendees: list[RecordAttendeeOut]
    decisions: list[RecordDecisionOut] = Field(description="each release's decision")
    amendments: list[RecordDecisionOut] = Field(description="decisions changed after closing")
    undecided: list[RecordUndecidedOut]
    minutes: str
    minutes_revision: int
    action_items: list[RecordActionItemOut]
    digest: str = Field(description="SHA-256 of the record: changes when anything in it does")


class MessageOut(BaseModel):
    id: int = Field(description="the Slack message's id in the outbox (/api/v1/notifications)")
    event: str = Field(
        description="opened, decided, amended, closed, action_item_created, action_item_closed"
    )
    channel: str = Field(description="an app's slug, or `meetings` for the meeting itself")
    destination: str = Field(description="where it goes (or would go) on Slack")
    text: str = Field(description="Slack mrkdwn, mentions as `<@member id>`")
    mentions: list[str] = Field(description="emails of the people it mentions")
    payload: dict[str, Any]
    at: datetime
    state: Literal["queued", "sending", "sent", "failed", "not_configured"] = Field(
        description="its delivery: waiting for the worker, under way, sent, failed for good, "
        "or not sent because Slack is not configured (the demo's history too)"
    )
    attempts: int
    error: str | None = Field(description="why it failed or was not sent")
    sent_at: datetime | None
    release_id: int | None


@routes.operation(
    "/meetings/<week>/record",
    summary="A held meeting's record as data: attendees, decisions, minutes, action items",
    response=MeetingRecordOut,
    errors=(422,),
)
def get_meeting_record(week: str) -> MeetingRecordOut:
    """What a published record of the meeting (minutes to Notion, an archive) is made from;
    ``final`` once the meeting is closed, ``digest`` tells a changed record from one already
    published. 404 for a week whose meeting was never opened."""
    session = db.session()
    return MeetingRecordOut.model_validate(services.meeting_record(session, _meeting(_week(week))))


@routes.operation(
    "/meetings/<week>/messages",
    summary="The Slack messages of the week's meeting, in the order of events, with their delivery",
    response=list[MessageOut],
    errors=(422,),
)
def list_meeting_messages(week: str) -> list[MessageOut]:
    """One per meeting event (opened, decided, amended, action item created or closed,
    closed), written to the Slack outbox in the event's transaction and sent by the job
    worker, with its delivery state."""
    session = db.session()
    return [
        MessageOut.model_validate(m, from_attributes=True)
        for m in notifications.for_meeting(session, _meeting(_week(week)))
    ]


# --- running the meeting (a release manager's session) ----------------------------------------

_RUNNERS = services.RUNNERS
_WRITE_ERRORS = (401, 403, 409, 422)


@routes.operation(
    "/meetings/<week>/open",
    "POST",
    summary="Open the week's meeting: freeze a snapshot of every release on its agenda",
    scope=None,
    response=MeetingWeekOut,
    status=201,
    errors=_WRITE_ERRORS,
)
def open_meeting(week: str) -> tuple[MeetingWeekOut, int]:
    """Release managers, in their session (``X-CSRFToken``). The agenda: releases whose train
    leaves that week, hotfixes, and releases carried over from earlier weeks. 409 when it is
    already open or closed, or the week is more than one week ahead."""
    person = require_person()
    parsed = _week(week)
    services.open_meeting(db.session(), week=parsed, user=person)
    return _view(parsed), 201


@routes.operation(
    "/meetings/<week>/releases",
    "POST",
    summary="Put a release on an open meeting's agenda (e.g. a hotfix registered since)",
    scope=None,
    body=ReleaseRefIn,
    response=MeetingWeekOut,
    status=201,
    errors=_WRITE_ERRORS,
)
def add_meeting_release(week: str, body: ReleaseRefIn) -> tuple[MeetingWeekOut, int]:
    person = require_person()
    parsed = _week(week)
    meeting = _meeting(parsed)
    services.add_release(
        db.session(), meeting=meeting, release=_release(body.release_id), user=person
    )
    return _view(parsed), 201


@routes.operation(
    "/meetings/<week>/decisions",
    "POST",
    summary="Decide a release of an open meeting: go, go with conditions, no-go, defer",
    scope=None,
    body=DecisionIn,
    response=DecisionOut,
    status=201,
    errors=_WRITE_ERRORS,
)
def post_decision(week: str, body: DecisionIn) -> tuple[DecisionOut, int]:
    """Release managers, in their session (``X-CSRFToken``). go approves a release in
    review (409 with the reason when its checklist or separation of duties refuses); no-go
    rejects a release in review or approved; defer moves it to its app's next train (next
    week's agenda). A release past approval keeps its state. Deciding again replaces the
    decision (both are kept)."""
    person = require_person()
    parsed = _week(week)
    meeting = _meeting(parsed)
    row = services.decide(
        db.session(),
        meeting=meeting,
        release=_release(body.release_id),
        user=person,
        decision=body.decision,
        reason=body.reason,
        conditions=body.conditions,
    )
    return _decision_out(row, meeting.week), 201


@routes.operation(
    "/meetings/<week>/amendments",
    "POST",
    summary="Amend a decision of a closed meeting (highlighted in the audit log)",
    scope=None,
    body=DecisionIn,
    response=DecisionOut,
    status=201,
    errors=_WRITE_ERRORS,
)
def post_amendment(week: str, body: DecisionIn) -> tuple[DecisionOut, int]:
    person = require_person()
    parsed = _week(week)
    meeting = _meeting(parsed)
    row = services.decide(
        db.session(),
        meeting=meeting,
        release=_release(body.release_id),
        user=person,
        decision=body.decision,
        reason=body.reason,
        conditions=body.conditions,
        amendment=True,
    )
    return _decision_out(row, meeting.week), 201


@routes.operation(
    "/meetings/<week>/attendees",
    "PUT",
    summary="Who attended an open meeting: people (emails) and guests (names)",
    scope=None,
    body=AttendeesIn,
    response=list[AttendeeOut],
    errors=_WRITE_ERRORS,
)
def put_attendees(week: str, body: AttendeesIn) -> list[AttendeeOut]:
    person = require_person()
    parsed = _week(week)
    rows = services.set_attendees(
        db.session(),
        meeting=_meeting(parsed),
        user=person,
        people=body.people,
        guests=body.guests,
    )
    return [AttendeeOut(name=a.name, role=a.role, person=a.user_id is not None) for a in rows]


@routes.operation(
    "/meetings/<week>/minutes",
    "PUT",
    summary="Save an open meeting's minutes (409 when they changed since the revision sent)",
    scope=None,
    body=MinutesIn,
    response=MinutesOut,
    errors=_WRITE_ERRORS,
)
def put_minutes(week: str, body: MinutesIn) -> MinutesOut:
    person = require_person()
    parsed = _week(week)
    meeting = services.save_minutes(
        db.session(),
        meeting=_meeting(parsed),
        user=person,
        minutes=body.minutes,
        revision=body.revision,
    )
    return MinutesOut(week=meeting.week, minutes=meeting.minutes, revision=meeting.minutes_revision)


@routes.operation(
    "/meetings/<week>/action-items",
    "POST",
    summary="Create an action item in an open meeting: a person, a due date",
    scope=None,
    body=ActionItemIn,
    response=ActionItemOut,
    status=201,
    errors=_WRITE_ERRORS,
)
def post_action_item(week: str, body: ActionItemIn) -> tuple[ActionItemOut, int]:
    person = require_person()
    parsed = _week(week)
    meeting = _meeting(parsed)
    item = services.add_action_item(
        db.session(),
        meeting=meeting,
        user=person,
        title=body.title,
        owner=body.owner,
        due_on=body.due_on,
        release_id=body.release_id,
    )
    return _action_out(item, {meeting.id or 0: meeting.week}, None), 201


@routes.operation(
    "/meetings/<week>/close",
    "POST",
    summary="Close the meeting: read-only from now on (undecided releases carry over)",
    scope=None,
    response=MeetingWeekOut,
    errors=_WRITE_ERRORS,
)
def close_meeting(week: str) -> MeetingWeekOut:
    person = require_person()
    parsed = _week(week)
    services.close_meeting(db.session(), meeting=_meeting(parsed), user=person)
    return _view(parsed)


# --- minutes in Notion ---------------------------------------------------------------------


class MinutesStatusOut(BaseModel):
    week: str
    title: str = Field(description="the Notion page's title, e.g. “Release meeting 2026-W42”")
    configured: bool = Field(
        description="NOTION_TOKEN and RELGOV_NOTION_MEETINGS_DATABASE_ID are set"
    )
    destination: str = Field(description="where the minutes go (or would go), in words")
    closed: bool = Field(description="only a closed meeting's minutes are published")
    state: Literal["none", "queued", "publishing", "published", "failed"]
    notion_url: str | None
    notion_page_id: str | None
    published_at: datetime | None
    up_to_date: bool | None = Field(
        description="the page shows the record as it is now (null: never published)"
    )
    last_error: str | None = Field(description="Notion's message for the last failed attempt")
    job: JobOut | None
    can_publish: bool


def _minutes_status(meeting: Meeting) -> MinutesStatusOut:
    data = minutes.minutes_status(db.session(), meeting)
    return MinutesStatusOut.model_validate(data)


@routes.operation(
    "/meetings/<week>/minutes",
    summary="Where publishing a closed meeting's minutes to Notion stands",
    response=MinutesStatusOut,
    errors=(422,),
)
def get_meeting_minutes(week: str) -> MinutesStatusOut:
    """404 for a week whose meeting was never opened."""
    return _minutes_status(_meeting(_week(week)))


@routes.operation(
    "/meetings/<week>/minutes/publish",
    "POST",
    summary="Publish (again) a closed meeting's minutes to Notion (queues a background job)",
    scope=None,
    response=MinutesStatusOut,
    status=202,
    errors=_WRITE_ERRORS,
)
def publish_meeting_minutes(week: str) -> MinutesStatusOut:
    """Queues the week's minutes job (or moves a queued one to now) and returns at once; poll
    ``GET /meetings/<week>/minutes``. 409 while the meeting is open, or when Notion is not
    configured for minutes (nothing is queued)."""
    person = require_person()
    meeting = _meeting(_week(week))
    minutes.request_minutes(
        db.session(), meeting, actor=person.actor, reason="requested through the API"
    )
    return _minutes_status(meeting)


# --- action items ----------------------------------------------------------------------------


@routes.operation(
    "/action-items",
    summary="Action items of every meeting (open by default), by due date",
    query=ActionItemQuery,
    response=list[ActionItemOut],
)
def list_action_items(query: ActionItemQuery) -> list[ActionItemOut]:
    session = db.session()
    owner = None
    if query.owner:
        owner = session.exec(select(User).where(User.email == query.owner.strip().lower())).first()
        if owner is None:
            raise ApiError(
                422,
                "validation_error",
                f"no person with the email {query.owner!r}",
                [{"field": "owner", "message": "unknown person", "type": "value_error"}],
            )
    rows = services.list_action_items(session, state=query.state, owner=owner, limit=query.limit)
    return [_action_out(a, _weeks_of(rows), None) for a in rows]


@routes.operation(
    "/action-items/<int:action_item_id>/close",
    "POST",
    summary="Close an action item (its owner or anyone working on releases; audited)",
    scope=None,
    body=CloseActionItemIn,
    response=ActionItemOut,
    errors=_WRITE_ERRORS,
)
def close_action_item(action_item_id: int, body: CloseActionItemIn) -> ActionItemOut:
    person = require_person()
    session = db.session()
    item = session.get(ActionItem, action_item_id)
    if item is None:
        raise ApiError(404, "not_found", f"no action item {action_item_id}")
    services.close_action_item(session, item=item, user=person, note=body.note)
    return _action_out(item, _weeks_of([item]), None)


# --- "Waiting for you" -------------------------------------------------------------------------


class InboxEntryOut(BaseModel):
    kind: Literal["decision", "override", "sign_off", "action_item"]
    title: str
    detail: str
    week: str = Field(description="the week of the meeting that needs it")
    meeting_at: datetime = Field(description="when that meeting is held (UTC)")
    app: str | None
    release_id: int | None
    version: str | None
    release_state: str | None
    item_id: int | None = Field(description="the checklist item (sign_off, override)")
    action_item_id: int | None
    due_on: date | None
    overdue: bool
    since: datetime | None = Field(description="when it started waiting")
    url: str = Field(description="the page where it is done")


class NextMeetingOut(BaseModel):
    week: str
    at: datetime
    timezone: str
    state: Literal["not opened", "open", "closed"]
    url: str


class InboxOut(BaseModel):
    person: str
    role: str
    next_meeting: NextMeetingOut
    counts: dict[str, int]
    entries: list[InboxEntryOut]


@routes.operation(
    "/me/inbox",
    summary="Waiting for you: your pending sign-offs, decisions, overrides and action items, "
    "by the time of the meeting that needs them",
    scope=None,
    response=InboxOut,
    errors=(401, 403),
)
def get_my_inbox() -> InboxOut:
    """The logged-in person's inbox (the dashboard's "Waiting for you"): sign-offs their
    role owes on releases in draft or review, blocks waiting for an admin's override,
    releases waiting for the release manager's decision at the next meeting, and the open
    action items they own; each names the meeting that needs it (the week of the release's
    train, else the next meeting), ordered by that meeting's time."""
    person = require_person()
    found = inbox_service.inbox(db.session(), person)
    upcoming = found.next_meeting
    return InboxOut(
        person=person.email,
        role=person.role,
        next_meeting=NextMeetingOut(
            week=upcoming.week.label,
            at=upcoming.at,
            timezone=upcoming.zone,
            state=upcoming.state,
            url=url_for("meetings.week", week=upcoming.week.label),
        ),
        counts={kind: found.count(kind) for kind in inbox_service.KINDS},
        entries=[
            InboxEntryOut(
                kind=e.kind,
                title=e.title,
                detail=e.detail,
                week=e.week.label,
                meeting_at=e.meeting_at,
                app=e.app_slug,
                release_id=e.release_id,
                version=e.version,
                release_state=e.release_state,
                item_id=e.item_id,
                action_item_id=e.action_item_id,
                due_on=e.due_on,
                overdue=e.overdue,
                since=utc.aware(e.since) if e.since else None,
                url=inbox_service.url(e),
            )
            for e in found.entries
        ],
    )


# --- the per-release meeting record and the agenda, as before weekly meetings ------------------


class MeetingIn(BaseModel):
    held_on: date
    attendees: str = Field(min_length=1, max_length=2000)
    decision: Literal["go", "no_go", "postponed"]
    minutes: str = Field(default="", max_length=20_000)


class MeetingOut(BaseModel):
    id: int
    held_on: date
    week: str
    attendees: str
    decision: Literal["go", "no_go", "postponed"]
    meeting_decision: str = Field(description="the weekly meeting's decision it stands for")
    minutes: str
    recorded_by: str
    at: datetime


_LEGACY = {"go": "go", "go_with_conditions": "go", "no_go": "no_go", "defer": "postponed"}


def _legacy_out(decision: MeetingDecision, meeting: Meeting) -> MeetingOut:
    names = ", ".join(a.name for a in services.attendees(db.session(), meeting))
    minutes = decision.reason + (
        f"\nConditions: {decision.conditions}" if decision.conditions else ""
    )
    return MeetingOut(
        id=decision.id or 0,
        held_on=decision.at.date(),
        week=meeting.week,
        attendees=names,
        decision=_LEGACY[decision.decision],
        meeting_decision=decision.decision,
        minutes=minutes,
        recorded_by=decision.decided_by,
        at=decision.at,
    )


def _release_or_404(release_id: int) -> Release:
    release = db.session().get(Release, release_id)
    if release is None:
        raise ApiError(404, "not_found", f"no release {release_id}")
    return release


@routes.operation(
    "/releases/<int:release_id>/meetings",
    summary="The meeting decisions on a release, newest first (see /meetings/{week})",
    response=list[MeetingOut],
)
def list_meetings(release_id: int) -> list[MeetingOut]:
    """Each weekly-meeting decision on the release, in the shape of the older per-release
    record: ``go`` (also for go with conditions), ``no_go``, ``postponed`` (defer)."""
    release = _release_or_404(release_id)
    return [_legacy_out(d, m) for d, m in services.decisions_for_release(db.session(), release)]


@routes.operation(
    "/releases/<int:release_id>/meetings",
    "POST",
    summary="Record a release's meeting decision in the week of held_on (release managers)",
    scope=None,
    body=MeetingIn,
    response=MeetingOut,
    status=201,
    errors=_WRITE_ERRORS,
)
def post_meeting(release_id: int, body: MeetingIn) -> tuple[MeetingOut, int]:
    """Kept for older callers; prefer ``POST /meetings/{week}/decisions``. The decision goes
    to the weekly meeting of ``held_on`` (opened if need be, the release put on its agenda):
    ``postponed`` is a defer, and the decision does what a meeting decision does (go
    approves a release in review). 409 when that week's meeting is closed."""
    person = require_person()
    release = _release_or_404(release_id)
    session = db.session()
    row = services.record_for_release(
        session,
        release=release,
        user=person,
        held_on=body.held_on,
        attendees_text=body.attendees,
        decision=body.decision,
        minutes=body.minutes,
    )
    meeting = session.get(Meeting, row.meeting_id)
    assert meeting is not None
    return _legacy_out(row, meeting), 201


class AgendaQuery(BaseModel):
    week: str | None = Field(
        default=None, max_length=40, description=f"{WEEK_HELP} (default: this week)"
    )


class AgendaRelease(BaseModel):
    id: int
    version: str
    kind: str
    state: str
    range: str
    checklist_done: int
    checklist_total: int
    percent: int
    blocking: list[str]
    waiting_for_roles: list[str]
    url: str


class AgendaTrain(BaseModel):
    app: str
    name: str
    train: str | None
    skipped: str | None = Field(description="the reason when this week's train is skipped")
    releases: list[AgendaRelease]


class Agenda(BaseModel):
    week_of: date
    week: str
    trains: list[AgendaTrain]


@routes.operation(
    "/meeting",
    summary="A week's agenda per train (the shorter form of /meetings/{week})",
    query=AgendaQuery,
    response=Agenda,
)
def get_meeting(query: AgendaQuery) -> Agenda:
    """The releases of the week's agenda per train, with checklist progress, what blocks and
    the roles that still have to sign. ``week``: an ISO week or any date of it; a value that
    is neither is refused with 422 naming ``week`` (it is no longer read as "this week")."""
    session = db.session()
    week = parse_week(query.week) if query.week is not None else services.current_week(session)
    view = services.week_view(session, week)
    trains = []
    for train in view.trains:
        releases = []
        for i in train.items:
            snap = i.snapshot
            checklist = snap.get("checklist") or {}
            releases.append(
                AgendaRelease(
                    id=i.release_id,
                    version=i.version,
                    kind=i.kind,
                    state=snap.get("state") or i.state_now,
                    range=snap.get("range") or "",
                    checklist_done=checklist.get("done", 0),
                    checklist_total=checklist.get("total", 0),
                    percent=checklist.get("percent", 100),
                    blocking=[x["title"] for x in snap.get("items", []) if x["blocking"]],
                    waiting_for_roles=[w["role"] for w in snap.get("waiting", [])],
                    url=f"/releases/{i.release_id}",
                )
            )
        trains.append(
            AgendaTrain(
                app=train.slug,
                name=train.name,
                train=train.local,
                skipped=train.skipped,
                releases=releases,
            )
        )
    return Agenda(week_of=week.monday, week=week.label, trains=trains)
