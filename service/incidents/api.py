"""Incidents in the JSON API: record (``incidents:write``), list, read, resolve, the weekly
trend per app, and a release's promotion gates."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field
from sqlmodel import Session, select

import utc
from service import db
from service.api.errors import ApiError, field_error
from service.api.operations import Routes
from service.api.person_session import require_person
from service.auth import current_actor
from service.incidents import services
from service.incidents.models import Incident
from service.releases.lifecycle import Actor
from service.releases.models import App, Release

TAG = "Incidents"
routes = Routes(tag=TAG)
WRITE = "incidents:write"


class IncidentIn(BaseModel):
    app: str = Field(min_length=1, max_length=32, description="app slug, e.g. pos")
    title: str = Field(min_length=1, max_length=300)
    impact: Literal[1, 3, 5] = Field(
        description="1 store work inconvenienced, 3 hampered (a workaround exists), "
        "5 impossible (no workaround)"
    )
    stores: list[str] | None = Field(
        default=None, max_length=100_000, description="affected stores' external ids"
    )
    store_count: int | None = Field(
        default=None, ge=1, description="the number of affected stores, when not listed"
    )
    beta_store_count: int | None = Field(
        default=None, ge=0, description="with store_count: how many of them are beta stores"
    )
    started_at: datetime = Field(description="ISO 8601; without an offset it is taken as UTC")
    resolved_at: datetime | None = None
    postmortem_url: str = Field(default="", max_length=1000)
    release: str | None = Field(
        default=None,
        max_length=128,
        description="the release's version; omitted = suggested from the versions the "
        "listed stores' devices ran when it started",
    )
    suggest_release: bool = True


class IncidentPatch(BaseModel):
    title: str | None = Field(default=None, min_length=1, max_length=300)
    impact: Literal[1, 3, 5] | None = None
    release: str | None = Field(default=None, max_length=128, description="version, or null")
    resolved_at: datetime | None = Field(default=None, description="set to resolve")
    postmortem_url: str | None = Field(default=None, max_length=1000)


class IncidentOut(BaseModel):
    id: int
    app: str
    release: str | None
    release_suggested: bool
    title: str
    impact: int
    scope: int
    score: int
    derivation: str
    store_count: int
    beta_store_count: int
    active_stores: int
    active_basis: str
    stores: list[str] | None
    started_at: datetime
    resolved_at: datetime | None
    postmortem_url: str
    created_by: str
    created_at: datetime
    url: str


class IncidentQuery(BaseModel):
    app: str | None = None
    release: str | None = Field(default=None, description="a version; needs app")
    open: bool = False
    limit: int = Field(default=100, ge=1, le=1000)


class TrendQuery(BaseModel):
    weeks: int = Field(default=26, ge=1, le=260)


class TrendWeek(BaseModel):
    week_start: date
    total: int
    by_release: dict[str, int] = Field(description="score per release version ('' = none)")
    incidents: list[int]


class TrendOut(BaseModel):
    app: str
    releases: list[str]
    weeks: list[TrendWeek]


class GateOut(BaseModel):
    gate: str
    title: str
    status: str
    ok: bool
    evidence: str
    details: list[str]
    overridden_by: str | None
    override_reason: str | None


class GatesOut(BaseModel):
    release_id: int
    enforced: bool
    gates: list[GateOut]


def _app(session: Session, slug: str, *, status: int = 422) -> App:
    app = session.exec(select(App).where(App.slug == slug)).first()
    if app is None:
        if status == 404:
            raise ApiError(404, "not_found", f"no app {slug!r}")
        raise field_error("app", f"unknown app {slug!r}")
    return app


def _out(incident: Incident, *, with_stores: bool = False) -> IncidentOut:
    session = db.session()
    app = session.get(App, incident.app_id)
    release = session.get(Release, incident.release_id) if incident.release_id else None
    stores = None
    if with_stores and incident.stores_listed:
        stores = [s.external_id for s, _ in services.incident_stores(session, incident)]
    return IncidentOut(
        id=incident.id or 0,
        app=app.slug if app else "",
        release=release.version if release else None,
        release_suggested=incident.release_suggested,
        title=incident.title,
        impact=incident.impact,
        scope=incident.scope,
        score=incident.score,
        derivation=services.derivation(incident).derivation,
        store_count=incident.store_count,
        beta_store_count=incident.beta_store_count,
        active_stores=incident.active_stores,
        active_basis=incident.active_basis,
        stores=stores,
        started_at=utc.aware(incident.started_at),
        resolved_at=utc.aware(incident.resolved_at) if incident.resolved_at else None,
        postmortem_url=incident.postmortem_url,
        created_by=incident.created_by,
        created_at=utc.aware(incident.created_at),
        url=f"/incidents/{incident.id}",
    )


@routes.operation(
    "/incidents",
    "POST",
    summary="Record an incident; the score is computed (impact × scope)",
    scope=WRITE,
    body=IncidentIn,
    response=IncidentOut,
    status=201,
    errors=(401, 403, 422),
)
def create_incident(body: IncidentIn) -> IncidentOut:
    """Give the affected ``stores`` (external ids) or a ``store_count``. Without ``release``
    the release most of the listed stores' devices ran at ``started_at`` is filled in."""
    session = db.session()
    app = _app(session, body.app)
    release = None
    if body.release:
        release = services.find_release(session, app, body.release)
    incident = services.record_incident(
        session,
        thresholds=services.scope_thresholds(),
        app=app,
        title=body.title,
        impact=body.impact,
        started_at=body.started_at,
        resolved_at=body.resolved_at,
        actor=current_actor(),
        stores=body.stores or (),
        store_count=body.store_count,
        beta_store_count=body.beta_store_count,
        postmortem_url=body.postmortem_url,
        release=release,
        suggest=body.suggest_release,
    )
    return _out(incident, with_stores=True)


@routes.operation(
    "/incidents",
    summary="List incidents, newest first",
    query=IncidentQuery,
    response=list[IncidentOut],
    errors=(404,),
)
def list_incidents(query: IncidentQuery) -> list[IncidentOut]:
    session = db.session()
    app = _app(session, query.app, status=404) if query.app else None
    release = None
    if query.release:
        if app is None:
            raise field_error("release", "filter by release together with app")
        release = services.find_release(session, app, query.release, missing=404)
    rows = services.list_incidents(
        session, app=app, release=release, open_only=query.open, limit=query.limit
    )
    return [_out(i) for i in rows]


def _get(incident_id: int) -> Incident:
    incident = db.session().get(Incident, incident_id)
    if incident is None:
        raise ApiError(404, "not_found", f"no incident {incident_id}")
    return incident


@routes.operation(
    "/incidents/<int:incident_id>",
    summary="One incident with its stores and how its score was derived",
    response=IncidentOut,
)
def get_incident(incident_id: int) -> IncidentOut:
    return _out(_get(incident_id), with_stores=True)


@routes.operation(
    "/incidents/<int:incident_id>",
    "PATCH",
    summary="Resolve an incident, link its postmortem, or correct its title, impact, release",
    scope=WRITE,
    body=IncidentPatch,
    response=IncidentOut,
    errors=(401, 403, 422),
)
def patch_incident(incident_id: int, body: IncidentPatch) -> IncidentOut:
    session = db.session()
    incident = _get(incident_id)
    given = body.model_fields_set
    for name in ("title", "impact", "postmortem_url"):
        if name in given and getattr(body, name) is None:
            raise field_error(name, "cannot be null")
    changes = {name: getattr(body, name) for name in given}
    services.update_incident(session, incident, actor=current_actor(), changes=changes)
    return _out(incident, with_stores=True)


@routes.operation(
    "/apps/<slug>/incident-trend",
    summary="Incident score summed per week (Monday, UTC) and per release",
    query=TrendQuery,
    response=TrendOut,
)
def incident_trend(slug: str, query: TrendQuery) -> TrendOut:
    session = db.session()
    app = _app(session, slug, status=404)
    data = services.incident_trend(session, app, weeks=query.weeks)
    return TrendOut(
        app=app.slug,
        releases=data["releases"],
        weeks=[
            TrendWeek(
                week_start=w["week_start"],
                total=w["total"],
                by_release=w["by_release"],
                incidents=[i.id for i in w["incidents"]],
            )
            for w in data["weeks"]
        ],
    )


@routes.operation(
    "/releases/<int:release_id>/gates",
    summary="A release's promotion gates: beta soak, beta adoption, beta incidents",
    response=GatesOut,
)
def release_gates(release_id: int) -> GatesOut:
    session = db.session()
    release = session.get(Release, release_id)
    if release is None:
        raise ApiError(404, "not_found", f"no release {release_id}")
    return _gates_out(session, release)


class GateOverrideIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, description="why the gate may pass")


@routes.operation(
    "/releases/<int:release_id>/gates/<gate>/override",
    "POST",
    summary="Let a failing promotion gate pass for this release (admins; highlighted)",
    scope=None,
    body=GateOverrideIn,
    response=GatesOut,
    status=201,
    errors=(401, 403, 404, 409),
)
def override_gate(release_id: int, gate: str, body: GateOverrideIn) -> tuple[GatesOut, int]:
    """An admin's session (``X-CSRFToken``); a token is refused. The override, its reason
    and the gate's state at the time land in the audit log, highlighted. ``gate`` is
    ``beta_soak``, ``beta_adoption`` or ``incident_score``."""
    user = require_person()
    session = db.session()
    release = session.get(Release, release_id)
    if release is None:
        raise ApiError(404, "not_found", f"no release {release_id}")
    services.override_gate(
        session,
        release=release,
        gate=gate,
        reason=body.reason,
        actor=Actor(name=user.actor, user_id=user.id, role=user.role),
    )
    return _gates_out(session, release), 201


def _gates_out(session: Session, release: Release) -> GatesOut:
    release_id = release.id or 0
    app = session.get(App, release.app_id)
    gates = services.evaluate_gates(session, release)
    return GatesOut(
        release_id=release_id,
        enforced=bool(app and app.promotion_gates),
        gates=[
            GateOut(
                gate=g.key,
                title=g.title,
                status=g.status,
                ok=g.ok,
                evidence=g.evidence,
                details=g.details,
                overridden_by=g.override.actor if g.override else None,
                override_reason=g.override.reason if g.override else None,
            )
            for g in gates
        ],
    )
