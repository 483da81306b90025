"""Apps, their trains and checklist templates in the JSON API (changes: admins)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import func
from sqlmodel import col, select

from service import db
from service.api.errors import ApiError, field_error
from service.api.operations import Routes
from service.api.person_session import require_person
from service.models import User, utcnow
from service.releases.apps import (
    create_app_record,
    current_template,
    save_template,
    template_items,
    template_versions,
    update_app_record,
)
from service.releases.calendar import MAX_WEEKS, build_calendar, parse_start
from service.releases.models import RELEASE_KINDS, App, Release
from service.releases.trains import skip_week, skips_for, train_slots, unskip_week

routes = Routes(tag="Apps")


class AppOut(BaseModel):
    slug: str
    name: str
    repo_url: str
    default_branch: str
    version_scheme: str
    area_map: dict[str, str]
    pr_url_template: str
    train_weekday: int = Field(description="Monday = 0")
    train_time: str
    train_timezone: str
    min_supported_version: str | None
    rollout_stages: list[int]
    beta_adoption_target: float
    beta_stall_hours: int
    beta_soak_days: int
    incident_score_threshold: int
    separation_of_duties: bool
    auto_publish: bool


class AppCreate(BaseModel):
    slug: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=200)
    settings: dict[str, Any] = Field(
        default_factory=dict, description="any of the AppOut fields other than slug"
    )


class AppPatch(BaseModel):
    settings: dict[str, Any] = Field(description="the AppOut fields to change")


class TrainSlotOut(BaseModel):
    at: datetime
    local: str
    week_of: date
    skipped: bool
    skip_reason: str | None


class TrainQuery(BaseModel):
    weeks: int = Field(default=6, ge=1, le=52)


class CalendarQuery(BaseModel):
    start: str | None = Field(
        default=None,
        description="the first week: a date of it (YYYY-MM-DD) or an ISO week (YYYY-Www);"
        " default 4 weeks before today",
    )
    weeks: int = Field(default=13, ge=1, le=MAX_WEEKS)
    app: str | None = Field(default=None, description="one app's slug; default every app")


class CalendarMilestoneOut(BaseModel):
    release_id: int
    version: str
    release_kind: str = Field(description="weekly | hotfix")
    state: str = Field(description="the release's state now")
    kind: str = Field(description="scheduled | approved | beta | rollout | released")
    at: datetime


class CalendarAppWeekOut(BaseModel):
    app: str
    train_at: datetime | None
    train_local: str | None = Field(description="the departure in the app's train time zone")
    skipped: bool
    skip_reason: str | None
    milestones: list[CalendarMilestoneOut]


class CalendarFreezeOut(BaseModel):
    starts_at: datetime
    ends_at: datetime
    reason: str
    stores: int


class CalendarWeekOut(BaseModel):
    week: str = Field(description="ISO week, e.g. 2026-W42")
    monday: date
    current: bool
    apps: list[CalendarAppWeekOut]
    freezes: list[CalendarFreezeOut]


class SkipIn(BaseModel):
    week_of: date = Field(description="any day of the week to skip")
    reason: str = Field(min_length=1, max_length=1000)


class TemplateItemIO(BaseModel):
    title: str
    help: str = ""
    owner_role: str
    required: bool = True
    mode: Literal["manual", "automatic"] = "manual"
    rule: str | None = None


class TemplateOut(BaseModel):
    kind: str
    version: int
    created_by: str
    created_at: datetime
    items: list[TemplateItemIO]


class TemplateIn(BaseModel):
    items: list[TemplateItemIO] = Field(min_length=1)


def _admin() -> User:
    """The admin making the change (the operation's policy line let only admins through)."""
    return require_person()


def _app(slug: str) -> App:
    app = db.session().exec(select(App).where(App.slug == slug)).first()
    if app is None:
        raise ApiError(404, "not_found", f"unknown app {slug!r}")
    return app


@routes.operation("/apps", summary="Every app", response=list[AppOut])
def list_apps() -> list[AppOut]:
    rows = db.session().exec(select(App).order_by(App.name))
    return [AppOut.model_validate(a, from_attributes=True) for a in rows]


@routes.operation("/apps/<slug>", summary="One app's settings", response=AppOut)
def get_app(slug: str) -> AppOut:
    return AppOut.model_validate(_app(slug), from_attributes=True)


@routes.operation(
    "/apps",
    "POST",
    summary="Register an app with default weekly and hotfix checklists (admins)",
    scope=None,
    body=AppCreate,
    response=AppOut,
    status=201,
    errors=(401, 403),
)
def post_app(body: AppCreate) -> AppOut:
    """Acts for a person: a logged-in admin session with ``X-CSRFToken``."""
    admin = _admin()
    app = create_app_record(
        db.session(), slug=body.slug, name=body.name, actor=admin.actor, **body.settings
    )
    return AppOut.model_validate(app, from_attributes=True)


@routes.operation(
    "/apps/<slug>",
    "PATCH",
    summary="Change an app's settings (admins)",
    scope=None,
    body=AppPatch,
    response=AppOut,
    errors=(401, 403),
)
def patch_app(slug: str, body: AppPatch) -> AppOut:
    """Acts for a person: a logged-in admin session with ``X-CSRFToken``."""
    admin = _admin()
    app = _app(slug)
    update_app_record(db.session(), app=app, actor=admin.actor, **body.settings)
    return AppOut.model_validate(app, from_attributes=True)


@routes.operation(
    "/apps/<slug>/trains",
    summary="The coming departures of the app's weekly train",
    query=TrainQuery,
    response=list[TrainSlotOut],
)
def get_trains(slug: str, query: TrainQuery) -> list[TrainSlotOut]:
    app = _app(slug)
    slots = train_slots(app, start=utcnow(), weeks=query.weeks, skips=skips_for(db.session(), app))
    return [
        TrainSlotOut(
            at=s.at,
            local=s.local,
            week_of=s.week_of,
            skipped=s.skipped is not None,
            skip_reason=s.skipped.reason if s.skipped else None,
        )
        for s in slots
    ]


@routes.operation(
    "/calendar",
    summary="Trains, releases, skipped weeks and store freezes of every app, week by week",
    query=CalendarQuery,
    response=list[CalendarWeekOut],
    errors=(400, 404),
)
def get_calendar(query: CalendarQuery) -> list[CalendarWeekOut]:
    session = db.session()
    start = parse_start(query.start, today=utcnow().date())
    shown = build_calendar(session, start=start, weeks=query.weeks, app_slug=query.app)
    return [
        CalendarWeekOut(
            week=week.label,
            monday=week.monday,
            current=week.current,
            apps=[
                CalendarAppWeekOut(
                    app=cell.app.slug,
                    train_at=cell.train_at,
                    train_local=cell.train_local,
                    skipped=cell.skip_reason is not None,
                    skip_reason=cell.skip_reason,
                    milestones=[
                        CalendarMilestoneOut(
                            release_id=m.release_id,
                            version=m.version,
                            release_kind=m.release_kind,
                            state=m.state,
                            kind=m.kind,
                            at=m.at,
                        )
                        for m in cell.milestones
                    ],
                )
                for cell in week.apps
            ],
            freezes=[
                CalendarFreezeOut(
                    starts_at=f.starts_at, ends_at=f.ends_at, reason=f.reason, stores=f.stores
                )
                for f in week.freezes
            ],
        )
        for week in shown.weeks
    ]


@routes.operation(
    "/apps/<slug>/trains/skips",
    "POST",
    summary="Skip a week's train with a reason (admins)",
    scope=None,
    body=SkipIn,
    status=201,
    errors=(401, 403),
)
def post_skip(slug: str, body: SkipIn) -> dict[str, str]:
    admin = _admin()
    app = _app(slug)
    skip = skip_week(
        db.session(), app=app, week_of=body.week_of, reason=body.reason, actor=admin.actor
    )
    return {"week_of": skip.week_of.isoformat(), "reason": skip.reason}


@routes.operation(
    "/apps/<slug>/trains/skips/<week_of>",
    "DELETE",
    summary="Run a skipped week's train after all (admins)",
    scope=None,
    errors=(400, 401, 403, 422),
)
def delete_skip(slug: str, week_of: str) -> tuple[dict[str, str], int]:
    admin = _admin()
    app = _app(slug)
    try:
        day = date.fromisoformat(week_of)
    except ValueError:
        raise field_error("week_of", "must be a date (YYYY-MM-DD)") from None
    unskip_week(db.session(), app=app, week_of=day, actor=admin.actor)
    return {"week_of": day.isoformat(), "state": "runs"}, 200


@routes.operation(
    "/apps/<slug>/checklists/<kind>",
    summary="The current checklist template of an app for a release kind",
    response=TemplateOut,
)
def get_template(slug: str, kind: str) -> TemplateOut:
    return _template_out(_app(slug), kind)


class TemplateVersionOut(BaseModel):
    version: int
    created_by: str
    created_at: datetime
    items: list[TemplateItemIO]
    releases: int = Field(description="how many releases were registered with this version")


@routes.operation(
    "/apps/<slug>/checklists/<kind>/versions",
    summary="Every version of an app's checklist for a release kind, newest first",
    response=list[TemplateVersionOut],
)
def list_template_versions(slug: str, kind: str) -> list[TemplateVersionOut]:
    """Editing a checklist saves a new version; releases keep the version they were
    registered with (``releases`` counts them)."""
    app = _app(slug)
    if kind not in RELEASE_KINDS:
        raise field_error("kind", f"must be one of {', '.join(RELEASE_KINDS)}")
    session = db.session()
    versions = template_versions(session, app, kind)
    used = dict(
        session.exec(
            select(Release.template_id, func.count())
            .where(col(Release.template_id).in_([v.id for v in versions]))
            .group_by(col(Release.template_id))
        ).all()
    )
    return [
        TemplateVersionOut(
            version=v.version,
            created_by=v.created_by,
            created_at=v.created_at,
            items=[
                TemplateItemIO.model_validate(i, from_attributes=True)
                for i in template_items(session, v)
            ],
            releases=int(used.get(v.id, 0)),
        )
        for v in versions
    ]


def _template_out(app: App, kind: str) -> TemplateOut:
    slug = app.slug
    template = current_template(db.session(), app, kind)
    if template is None:
        raise ApiError(404, "not_found", f"{slug} has no {kind!r} checklist")
    items = template_items(db.session(), template)
    return TemplateOut(
        kind=template.kind,
        version=template.version,
        created_by=template.created_by,
        created_at=template.created_at,
        items=[TemplateItemIO.model_validate(i, from_attributes=True) for i in items],
    )


@routes.operation(
    "/apps/<slug>/checklists/<kind>",
    "PUT",
    summary="Save a new version of the checklist (admins; releases keep their own version)",
    scope=None,
    body=TemplateIn,
    response=TemplateOut,
    errors=(401, 403),
)
def put_template(slug: str, kind: str, body: TemplateIn) -> TemplateOut:
    admin = _admin()
    app = _app(slug)
    save_template(
        db.session(),
        app=app,
        kind=kind,
        items=[item.model_dump() for item in body.items],
        actor=admin.actor,
    )
    return _template_out(app, kind)
