"""The fleet's JSON API: stores, devices, the beta cohort, freezes, CSV import, update answer.

Reads need the ``read`` scope, changes ``fleet:write``. The update answer accepts a token
with ``heartbeats:write`` (what store devices hold) or ``read``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from flask import Response, current_app, request
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    Field,
    ValidationError,
    field_validator,
)
from sqlalchemy import func
from sqlmodel import select

from beta import store as beta_store
from beta.csv_import import ImportHasErrors, ImportReport, preview_import
from beta.models import Device, Store, StoreFreeze
from beta.validation import device_id_field
from service import db
from service.api.errors import ApiError, field_error, validation_error
from service.api.operations import Routes, read_json_body
from service.api.person_session import require_person
from service.auth import current_actor
from service.beta import services
from service.beta.answers import current_snapshot
from service.beta.stages import advance_stage, rollout_summary
from service.models import utcnow
from service.releases.models import Release
from versioning import InvalidVersion, parse_version

TAG = "Fleet"
routes = Routes(tag=TAG)
WRITE = "fleet:write"


# --- models ------------------------------------------------------------------------------


class DeviceOut(BaseModel):
    device_id: str
    store_id: str = Field(description="the store's external id")
    kind: str
    label: str
    created_at: datetime


class StoreOut(BaseModel):
    external_id: str
    name: str
    region: str
    timezone: str
    tags: list[str]
    update_window_start: str
    update_window_end: str
    in_beta: bool
    beta_pinned: bool = Field(description="a manual cohort decision that wins over the hash")
    device_count: int
    created_at: datetime
    updated_at: datetime


class FreezeOut(BaseModel):
    id: int
    store_id: str
    starts_at: datetime
    ends_at: datetime
    reason: str
    actor: str
    created_at: datetime
    lifted_at: datetime | None
    lifted_by: str | None


class CohortEventOut(BaseModel):
    at: datetime
    store_id: str
    store_name: str
    action: str
    source: str = Field(description="manual or fill")
    reason: str
    actor: str


class StoreDetail(StoreOut):
    devices: list[DeviceOut]
    freezes: list[FreezeOut]
    cohort_history: list[CohortEventOut]


class StorePage(BaseModel):
    items: list[StoreOut]
    total: int
    page: int
    per_page: int


class StoreQuery(BaseModel):
    q: str = Field(default="", max_length=200, description="substring of the id or name")
    region: str = Field(default="", max_length=64)
    tag: str = Field(default="", max_length=64)
    in_beta: bool | None = None
    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=50, ge=1, le=500)


class StoreIn(BaseModel):
    external_id: str = Field(max_length=64)
    name: str = Field(max_length=200)
    region: str = Field(default="", max_length=64)
    timezone: str = Field(default="Asia/Tokyo", max_length=64)
    tags: list[str] = Field(default_factory=list, max_length=32)
    update_window_start: str = Field(default="02:00", max_length=5)
    update_window_end: str = Field(default="05:00", max_length=5)


class StorePatch(BaseModel):
    name: str | None = Field(default=None, max_length=200)
    region: str | None = Field(default=None, max_length=64)
    timezone: str | None = Field(default=None, max_length=64)
    tags: list[str] | None = Field(default=None, max_length=32)
    update_window_start: str | None = Field(default=None, max_length=5)
    update_window_end: str | None = Field(default=None, max_length=5)


class DeviceIn(BaseModel):
    device_id: str = Field(max_length=128)
    kind: Literal["pos", "handy", "kds", "kiosk"]
    label: str = Field(default="", max_length=200)


class DevicePatch(BaseModel):
    kind: Literal["pos", "handy", "kds", "kiosk"] | None = None
    label: str | None = Field(default=None, max_length=200)
    store_id: str | None = Field(default=None, max_length=64, description="move to this store")


class CohortActionIn(BaseModel):
    action: Literal["enrol", "remove", "unpin"]
    reason: str = Field(min_length=1, max_length=1000)


class CohortChangeOut(BaseModel):
    store: StoreOut
    event: CohortEventOut


class CohortMember(BaseModel):
    external_id: str
    name: str
    region: str
    tags: list[str]
    device_count: int
    pinned: bool
    since: datetime | None


class CohortOut(BaseModel):
    size: int
    store_count: int
    members: list[CohortMember]
    history: list[CohortEventOut]


class FillIn(BaseModel):
    target_count: int | None = Field(default=None, ge=0)
    target_percent: float | None = Field(default=None, ge=0, le=100)
    regions: list[str] = Field(default_factory=list)
    tags_any: list[str] = Field(default_factory=list)
    tags_all: list[str] = Field(default_factory=list)
    exclude_ids: list[str] = Field(default_factory=list)
    preview: bool = Field(default=True, description="true: only say what would change")
    reason: str = Field(default="", max_length=1000, description="required to apply")
    plan_digest: str | None = Field(
        default=None, description="from a preview: apply only if the change is still exactly it"
    )


class FillOut(BaseModel):
    applied: bool
    plan_digest: str
    target_size: int
    cohort_size: int
    eligible_count: int
    shortfall: int
    add: list[str]
    remove: list[str]
    removal_reasons: dict[str, str] = Field(
        description="why each store in remove leaves: not_eligible (outside the fill's regions "
        "or tags), excluded (by this fill), removed_by_hand, or target_shrinks"
    )
    keep: list[str]


class FreezeIn(BaseModel):
    starts_at: AwareDatetime | None = Field(default=None, description="default: now")
    ends_at: AwareDatetime
    reason: str = Field(min_length=1, max_length=1000)


class ImportIn(BaseModel):
    csv: str = Field(description="the file's text, header line first")
    accept_valid: bool = Field(default=False, description="apply the valid lines anyway")
    preview: bool = Field(default=False, description="only report; change nothing")


class ImportOut(BaseModel):
    applied: bool
    report: dict[str, Any]
    created: list[str] = Field(default_factory=list)
    updated: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)


class UpdateQuery(BaseModel):
    store_id: str = Field(min_length=1, max_length=64)
    device_id: Annotated[str, AfterValidator(device_id_field)] | None = Field(
        default=None, max_length=128
    )
    current_version: str = Field(min_length=1, max_length=128)

    @field_validator("current_version")
    @classmethod
    def _version(cls, value: str) -> str:
        try:
            parse_version(value)
        except InvalidVersion as error:
            raise ValueError(str(error)) from None
        return value


class InstallWindowOut(BaseModel):
    starts_at: str
    ends_at: str
    timezone: str
    local_start: str
    local_end: str


class UpdateAnswerOut(BaseModel):
    app: str
    store_id: str
    current_version: str
    target_version: str
    channel: Literal["beta", "stable"]
    reason: Literal["cohort", "stage", "stable", "freeze", "halt", "up_to_date"]
    action: Literal["install", "none", "rollback"]
    mandatory: bool
    install_window: InstallWindowOut
    in_beta_cohort: bool
    frozen_until: str | None
    message: str


# --- helpers -----------------------------------------------------------------------------


def _store(external_id: str) -> Store:
    return beta_store.require_store(session=db.session(), external_id=external_id)


def _store_out(store: Store, device_count: int) -> StoreOut:
    return StoreOut.model_validate(
        {**store.model_dump(), "device_count": device_count}, from_attributes=False
    )


def _device_out(device: Device, store: Store) -> DeviceOut:
    return DeviceOut(
        device_id=device.device_id,
        store_id=store.external_id,
        kind=device.kind,
        label=device.label,
        created_at=device.created_at,
    )


def _freeze_out(row: StoreFreeze, store: Store) -> FreezeOut:
    return FreezeOut.model_validate({**row.model_dump(), "store_id": store.external_id})


def _history_out(entry: beta_store.CohortHistoryEntry) -> CohortEventOut:
    return CohortEventOut(
        at=entry.at,
        store_id=entry.store,
        store_name=entry.store_name,
        action=entry.action,
        source=entry.source,
        reason=entry.reason,
        actor=entry.actor,
    )


def _detail(store: Store) -> StoreDetail:
    session = db.session()
    devices = beta_store.list_devices(session=session, store=store)
    return StoreDetail(
        **_store_out(store, len(devices)).model_dump(),
        devices=[_device_out(d, store) for d in devices],
        freezes=[
            _freeze_out(f, store) for f in beta_store.list_freezes(session=session, store=store)
        ],
        cohort_history=[
            _history_out(e)
            for e in beta_store.cohort_history(session=session, store=store, limit=100)
        ],
    )


def _fields_given(body: BaseModel) -> dict[str, Any]:
    values = {}
    for name in body.model_fields_set:
        value = getattr(body, name)
        if value is None:
            raise ApiError(
                422,
                "validation_error",
                f"{name}: may not be null (leave it out to keep the current value)",
                [{"field": name, "message": "may not be null", "type": "value_error"}],
            )
        values[name] = value
    return values


# --- stores ------------------------------------------------------------------------------


@routes.operation(
    "/stores", summary="List stores (paginated)", query=StoreQuery, response=StorePage
)
def list_stores(query: StoreQuery) -> StorePage:
    session = db.session()
    stores, total = services.search_stores(
        session,
        q=query.q,
        region=query.region,
        tag=query.tag,
        in_beta=query.in_beta,
        page=query.page,
        per_page=query.per_page,
    )
    counts = services.device_counts(session, [s.id for s in stores if s.id is not None])
    return StorePage(
        items=[_store_out(s, counts.get(s.id or 0, 0)) for s in stores],
        total=total,
        page=query.page,
        per_page=query.per_page,
    )


@routes.operation(
    "/stores",
    "POST",
    summary="Create a store",
    scope=WRITE,
    body=StoreIn,
    response=StoreDetail,
    status=201,
    errors=(409,),
)
def create_store(body: StoreIn) -> StoreDetail:
    session = db.session()
    store = services.create_store(session, actor=current_actor(), **body.model_dump())
    return _detail(store)


@routes.operation(
    "/stores/<external_id>",
    summary="A store with its devices, freezes and cohort history",
    response=StoreDetail,
)
def get_store(external_id: str) -> StoreDetail:
    return _detail(_store(external_id))


@routes.operation(
    "/stores/<external_id>",
    "PATCH",
    summary="Edit a store (only the fields given)",
    scope=WRITE,
    body=StorePatch,
    response=StoreDetail,
)
def patch_store(external_id: str, body: StorePatch) -> StoreDetail:
    session = db.session()
    store = _store(external_id)
    values = _fields_given(body)
    services.update_store(session, store, actor=current_actor(), **values)
    return _detail(store)


# --- devices -----------------------------------------------------------------------------


@routes.operation(
    "/stores/<external_id>/devices",
    "POST",
    summary="Add a device to a store",
    scope=WRITE,
    body=DeviceIn,
    response=DeviceOut,
    status=201,
    errors=(409,),
)
def create_device(external_id: str, body: DeviceIn) -> DeviceOut:
    session = db.session()
    store = _store(external_id)
    device = services.create_device(session, store, actor=current_actor(), **body.model_dump())
    return _device_out(device, store)


@routes.operation(
    "/devices/<device_id>",
    "PATCH",
    summary="Edit a device or move it to another store",
    scope=WRITE,
    body=DevicePatch,
    response=DeviceOut,
)
def patch_device(device_id: str, body: DevicePatch) -> DeviceOut:
    session = db.session()
    device = services.require_device(session, device_id)
    values = _fields_given(body)
    if "store_id" in values:
        values["store"] = _store(values.pop("store_id"))
    services.update_device(session, device, actor=current_actor(), **values)
    store = session.get(Store, device.store_id)
    assert store is not None
    return _device_out(device, store)


@routes.operation(
    "/devices/<device_id>",
    "DELETE",
    summary="Delete a device",
    scope=WRITE,
    status=204,
)
def delete_device(device_id: str) -> Response:
    session = db.session()
    device = services.require_device(session, device_id)
    services.delete_device(session, device, actor=current_actor())
    return current_app.response_class(status=204)


# --- the cohort --------------------------------------------------------------------------


@routes.operation(
    "/stores/<external_id>/cohort",
    "POST",
    summary="Enrol, remove or unpin a store (with a reason)",
    scope=WRITE,
    body=CohortActionIn,
    response=CohortChangeOut,
    errors=(409,),
)
def change_cohort(external_id: str, body: CohortActionIn) -> CohortChangeOut:
    """``enrol`` and ``remove`` are manual decisions that every later fill respects;
    ``unpin`` hands the store back to the hash without changing its membership now."""
    session = db.session()
    store = _store(external_id)
    change = services.change_cohort(
        session, store, action=body.action, reason=body.reason, actor=current_actor()
    )
    counts = services.device_counts(session, [store.id or 0])
    return CohortChangeOut(
        store=_store_out(store, counts.get(store.id or 0, 0)),
        event=CohortEventOut(
            at=change.event.at,
            store_id=store.external_id,
            store_name=store.name,
            action=change.event.action,
            source=change.event.source,
            reason=change.event.reason,
            actor=change.event.actor,
        ),
    )


@routes.operation("/cohort", summary="The beta cohort and its recent history", response=CohortOut)
def get_cohort() -> CohortOut:
    session = db.session()
    members = beta_store.list_stores(session=session, in_beta=True)
    ids = [s.id or 0 for s in members]
    counts = services.device_counts(session, ids)
    since = services.member_since(session, ids)
    total = session.exec(select(func.count()).select_from(Store)).one()
    return CohortOut(
        size=len(members),
        store_count=total,
        members=[
            CohortMember(
                external_id=s.external_id,
                name=s.name,
                region=s.region,
                tags=s.tags,
                device_count=counts.get(s.id or 0, 0),
                pinned=s.beta_pinned,
                since=since.get(s.id or 0),
            )
            for s in members
        ],
        history=[_history_out(e) for e in beta_store.cohort_history(session=session, limit=100)],
    )


@routes.operation(
    "/cohort/fill",
    "POST",
    summary="Fill the cohort to a target size or percentage (preview first)",
    scope=WRITE,
    body=FillIn,
    response=FillOut,
    errors=(409,),
)
def fill_cohort(body: FillIn) -> FillOut:
    """With ``preview: true`` (the default) nothing changes and the answer lists exactly
    the stores to add and remove. Apply with ``preview: false`` and a ``reason``; pass the
    preview's ``plan_digest`` to refuse (409) if the cohort changed in between. Manual
    enrolments and removals always win over the hash."""
    session = db.session()
    request_ = services.fill_request(
        target_count=body.target_count,
        target_percent=body.target_percent,
        regions=body.regions,
        tags_any=body.tags_any,
        tags_all=body.tags_all,
        exclude_ids=body.exclude_ids,
    )
    if body.preview:
        plan = services.preview_fill(session, request_)
    else:
        if not body.reason.strip():
            raise field_error("reason", "a reason is required to apply a fill")
        plan = services.apply_fill(
            session,
            request_,
            reason=body.reason,
            actor=current_actor(),
            digest=body.plan_digest,
        )
    return FillOut(
        applied=not body.preview,
        plan_digest=services.plan_digest(plan),
        target_size=plan.target_size,
        cohort_size=len(plan.cohort),
        eligible_count=plan.eligible_count,
        shortfall=plan.shortfall,
        add=list(plan.add),
        remove=list(plan.remove),
        removal_reasons=dict(plan.removal_reasons),
        keep=list(plan.keep),
    )


# --- freezes -----------------------------------------------------------------------------


@routes.operation(
    "/stores/<external_id>/freezes",
    "POST",
    summary="Freeze a store for a period (it gets no new version)",
    scope=WRITE,
    body=FreezeIn,
    response=FreezeOut,
    status=201,
    errors=(409,),
)
def create_freeze(external_id: str, body: FreezeIn) -> FreezeOut:
    session = db.session()
    store = _store(external_id)
    row = services.freeze(
        session,
        store,
        starts_at=body.starts_at or utcnow(),
        ends_at=body.ends_at,
        reason=body.reason,
        actor=current_actor(),
    )
    return _freeze_out(row, store)


@routes.operation(
    "/freezes/<int:freeze_id>/lift",
    "POST",
    summary="Lift a freeze now",
    scope=WRITE,
    response=FreezeOut,
    errors=(409,),
)
def lift_freeze(freeze_id: int) -> FreezeOut:
    session = db.session()
    row = services.require_freeze(session, freeze_id)
    services.lift(session, row, actor=current_actor())
    store = session.get(Store, row.store_id)
    assert store is not None
    return _freeze_out(row, store)


# --- CSV import --------------------------------------------------------------------------


def _import_input() -> ImportIn:
    if request.mimetype == "application/json":
        data = read_json_body()
        try:
            return ImportIn.model_validate(data)
        except ValidationError as exc:
            raise validation_error(exc) from None
    if request.mimetype in ("text/csv", "text/plain"):
        try:
            text = request.get_data().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise field_error(
                "file", "the body is not UTF-8 text (save the file as 'CSV UTF-8')"
            ) from None
        return ImportIn(
            csv=text,
            accept_valid=request.args.get("accept_valid", "").lower() in ("1", "true", "yes"),
            preview=request.args.get("preview", "").lower() in ("1", "true", "yes"),
        )
    raise ApiError(
        415,
        "unsupported_media_type",
        'send the file as text/csv, or JSON {"csv": "...", "accept_valid": false}',
    )


def _rejected(report: ImportReport, message: str) -> Response:
    fields = [{"field": "file", "message": e, "type": "file_error"} for e in report.file_errors]
    fields += [
        {"field": f"line {r.line_no}", "message": r.reason, "type": "rejected_line"}
        for r in report.rejected
    ]
    body = {
        "error": {"code": "import_rejected", "message": message, "fields": fields},
        "report": report.to_dict(),
    }
    return current_app.response_class(
        json.dumps(body, ensure_ascii=False) + "\n", status=422, mimetype="application/json"
    )


@routes.operation(
    "/stores/import",
    "POST",
    summary="Import stores from CSV (idempotent upsert by external id)",
    scope=WRITE,
    response=ImportOut,
    errors=(415, 422),
)
def import_stores() -> ImportOut | Response:
    """Send the file as ``text/csv`` (flags as query parameters ``accept_valid=true``,
    ``preview=true``) or as JSON ``{"csv": "...", "accept_valid": false, "preview": false}``.
    Columns: external_id, name (required), region, timezone, tags (separated by ``;``),
    update_window_start, update_window_end. A file with a file-level error, or with
    rejected lines and no ``accept_valid``, changes nothing: the answer is 422 with the
    line-by-line ``report``."""
    data = _import_input()
    session = db.session()
    if data.preview:
        report = preview_import(session=session, data=data.csv)
        return ImportOut(applied=False, report=report.to_dict())
    try:
        report, result = services.import_csv(
            session, data.csv, actor=current_actor(), accept_valid=data.accept_valid
        )
    except ImportHasErrors as error:  # not a refusal: the answer is the line-by-line report
        session.rollback()
        return _rejected(error.report, error.message)
    return ImportOut(
        applied=True,
        report=report.to_dict(),
        created=list(result.created),
        updated=list(result.updated),
        unchanged=list(result.unchanged),
    )


# --- the update answer -------------------------------------------------------------------


@routes.operation(
    "/apps/<app>/update",
    summary="Which version a store device should run, and when it may install",
    tag="Update answer",
    scope=("heartbeats:write", "read"),
    query=UpdateQuery,
    response=UpdateAnswerOut,
    errors=(401, 403, 409),
)
def update_answer(app: str, query: UpdateQuery) -> dict[str, Any]:
    """Authentication: a bearer token with scope ``heartbeats:write`` (store devices) or
    ``read``. Answered from an in-memory snapshot of the fleet that every process rebuilds
    when the fleet's change counter moves; each process reads the counter at most every
    0.25 s, so a change is seen within a quarter of a second.
    ``reason`` is cohort, stage, stable, freeze, halt or up_to_date; ``mandatory`` is true
    when ``current_version`` is below the app's minimum supported version."""
    fleet_snapshot = current_snapshot()
    answer = fleet_snapshot.decide(
        app=app,
        store_id=query.store_id,
        device_id=query.device_id,
        current_version=query.current_version,
        now=utcnow(),
    )
    return answer.to_dict()


# --- staged rollout ------------------------------------------------------------------------


class StageOut(BaseModel):
    percent: float
    stores: int = Field(description="stores offered the release at this stage, beta included")
    added_stores: int
    devices: int
    reached: bool
    current: bool


class RolloutOut(BaseModel):
    release_id: int
    state: str
    stage_percent: float = Field(description="share of the non-beta stores offered it now")
    next_stage: float | None
    stages: list[StageOut]
    stores_total: int


class AdvanceIn(BaseModel):
    stage_percent: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="the stage you saw; a rollout that has moved since is refused (409)",
    )


def _rollout_out(release: Release) -> RolloutOut:
    data = rollout_summary(db.session(), release)
    return RolloutOut(
        release_id=release.id or 0,
        state=data["state"],
        stage_percent=data["stage_percent"],
        next_stage=data["next_stage"],
        stages=[StageOut.model_validate(row) for row in data["stages"]],
        stores_total=data["total"]["stores"],
    )


def _release(release_id: int) -> Release:
    release = db.session().get(Release, release_id)
    if release is None:
        raise ApiError(404, "not_found", f"no release {release_id}")
    return release


@routes.operation(
    "/releases/<int:release_id>/rollout",
    summary="A release's staged rollout: its stages and the stores each reaches",
    response=RolloutOut,
)
def get_rollout(release_id: int) -> RolloutOut:
    return _rollout_out(_release(release_id))


@routes.operation(
    "/releases/<int:release_id>/rollout/advance",
    "POST",
    summary="Advance a rolling-out release to its app's next stage (release managers)",
    scope=None,
    body=AdvanceIn,
    response=RolloutOut,
    errors=(401, 403, 404, 409),
)
def advance_rollout(release_id: int, body: AdvanceIn) -> RolloutOut:
    """A release manager's session (``X-CSRFToken``). Reaching 100 % leaves the release
    rolling out: mark it released with the ``complete`` transition."""
    user = require_person()
    release = _release(release_id)
    advance_stage(db.session(), release, user.actor, expected_percent=body.stage_percent)
    return _rollout_out(release)
