"""Fleet changes as the pages, the API and the CLI make them: the beta function, then the
audit event, in the caller's transaction (the caller commits once).

Each function raises :mod:`beta.errors` on bad input before anything is written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from beta import store as beta_store
from beta.cohort import FillFilters, FillPlan, FillRequest
from beta.csv_import import ImportReport, ImportResult, apply_import, preview_import
from beta.errors import Conflict, InvalidInput, NotFound
from beta.models import CohortEvent, Device, Store, StoreFreeze
from service import audit
from service.models import utcnow
from version_monitor.models import DeviceState, VersionChange

COHORT_ACTIONS = ("enrol", "remove", "unpin")


def _audit(
    session: Session, actor: str, action: str, subject: tuple[str, str], change: Any, summary: str
) -> None:
    """Audit a change of ``beta.store`` (its ``before`` / ``after`` snapshots); an edit that
    changed nothing is not an event."""
    before = getattr(change, "before", None)
    if before is not None and before == change.after:
        return
    audit.record(
        session,
        actor=actor,
        action=action,
        subject_type=subject[0],
        subject_id=subject[1],
        before=before,
        after=change.after,
        summary=summary,
    )


def create_store(session: Session, *, actor: str, **values: Any) -> Store:
    change = beta_store.create_store(session=session, actor=actor, now=utcnow(), **values)
    store = change.store
    subject = ("store", store.external_id)
    _audit(
        session, actor, "store.create", subject, change, f"created store {subject[1]} {store.name}"
    )
    return store


def update_store(session: Session, store: Store, *, actor: str, **values: Any) -> Store:
    change = beta_store.update_store(
        session=session, store=store, actor=actor, now=utcnow(), **values
    )
    subject = ("store", store.external_id)
    _audit(session, actor, "store.update", subject, change, f"edited store {subject[1]}")
    return store


def create_device(session: Session, store: Store, *, actor: str, **values: Any) -> Device:
    change = beta_store.create_device(
        session=session, store=store, actor=actor, now=utcnow(), **values
    )
    device = change.device
    summary = f"added {device.kind} device {device.device_id} to {store.external_id}"
    _audit(session, actor, "device.create", ("device", device.device_id), change, summary)
    return device


def update_device(session: Session, device: Device, *, actor: str, **values: Any) -> Device:
    change = beta_store.update_device(
        session=session, device=device, actor=actor, now=utcnow(), **values
    )
    subject = ("device", device.device_id)
    _audit(session, actor, "device.update", subject, change, f"edited device {subject[1]}")
    return device


def delete_device(session: Session, device: Device, *, actor: str) -> None:
    """Delete a device with its adoption state and version history; the daily rollups, which
    count devices without naming them, keep the days it was seen."""
    history = 0
    for model in (DeviceState, VersionChange):
        result = session.execute(delete(model).where(col(model.device_id) == device.id))
        history += max(result.rowcount or 0, 0)  # type: ignore[attr-defined]
    change = beta_store.delete_device(session=session, device=device, actor=actor, now=utcnow())
    audit.record(
        session,
        actor=actor,
        action="device.delete",
        subject_type="device",
        subject_id=device.device_id,
        before=change.before,
        summary=f"deleted device {device.device_id}"
        + (f" and {history} row(s) of its adoption history" if history else ""),
    )


def change_cohort(
    session: Session, store: Store, *, action: str, reason: str, actor: str
) -> beta_store.CohortChange:
    functions = {
        "enrol": beta_store.enrol_store,
        "remove": beta_store.remove_store,
        "unpin": beta_store.unpin_store,
    }
    if action not in functions:
        raise InvalidInput(f"action must be one of {', '.join(COHORT_ACTIONS)}", field="action")
    change = functions[action](
        session=session, store=store, reason=reason, actor=actor, now=utcnow()
    )
    verb = {"enrol": "enrolled", "remove": "removed", "unpin": "unpinned"}[action]
    audit.record(
        session,
        actor=actor,
        action=f"cohort.{action}",
        subject_type="store",
        subject_id=store.external_id,
        before=change.before,
        after={**change.after, "reason": change.event.reason},
        summary=f"{verb} {store.external_id} {'in' if action == 'enrol' else 'from'} the beta "
        f"cohort: {change.event.reason}",
    )
    return change


def fill_request(
    *,
    target_count: int | None,
    target_percent: float | None,
    regions: Iterable[str] = (),
    tags_any: Iterable[str] = (),
    tags_all: Iterable[str] = (),
    exclude_ids: Iterable[str] = (),
) -> FillRequest:
    def clean(values: Iterable[str]) -> frozenset[str]:
        return frozenset(v.strip() for v in values if v.strip())

    return FillRequest(
        target_count=target_count,
        target_percent=target_percent,
        filters=FillFilters(
            regions=clean(regions),
            tags_any=clean(tags_any),
            tags_all=clean(tags_all),
            exclude_ids=clean(exclude_ids),
        ),
    )


def check_exclusions(session: Session, request: FillRequest) -> None:
    wanted = request.filters.exclude_ids
    if not wanted:
        return
    known = beta_store.stores_by_external_id(session=session, external_ids=sorted(wanted))
    unknown = sorted(wanted - known.keys())
    if unknown:
        raise InvalidInput(f"no store {', '.join(unknown)}", field="exclude_ids")


def plan_digest(plan: FillPlan) -> str:
    """A short fingerprint of exactly what a fill adds and removes (carried by the preview)."""
    text = "+" + ",".join(plan.add) + "|-" + ",".join(plan.remove)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def preview_fill(session: Session, request: FillRequest) -> FillPlan:
    check_exclusions(session, request)
    return beta_store.preview_fill(session=session, request=request)


def apply_fill(
    session: Session, request: FillRequest, *, reason: str, actor: str, digest: str | None
) -> FillPlan:
    """Apply a fill; with ``digest`` (from the preview), only if it still changes exactly that."""
    plan = preview_fill(session, request)
    if digest is not None and digest != plan_digest(plan):
        raise Conflict(
            "the cohort changed since the preview; look at the new preview and apply again",
            field="plan_digest",
        )
    result = beta_store.apply_fill(
        session=session, plan=plan, reason=reason, actor=actor, now=utcnow()
    )
    audit.record(
        session,
        actor=actor,
        action="cohort.fill",
        subject_type="cohort",
        subject_id="beta",
        before=result.before,
        after={**result.after, "reason": reason.strip()},
        summary=f"filled the beta cohort to {len(plan.cohort)} stores "
        f"(+{len(plan.add)} / −{len(plan.remove)}): {reason.strip()}",
    )
    return plan


def freeze(
    session: Session,
    store: Store,
    *,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    actor: str,
) -> StoreFreeze:
    change = beta_store.freeze_store(
        session=session,
        store=store,
        starts_at=starts_at,
        ends_at=ends_at,
        reason=reason,
        actor=actor,
        now=utcnow(),
    )
    audit.record(
        session,
        actor=actor,
        action="freeze.create",
        subject_type="store",
        subject_id=store.external_id,
        after=change.after,
        summary=f"froze {store.external_id} until {change.freeze.ends_at:%Y-%m-%d %H:%M} UTC: "
        f"{change.freeze.reason}",
    )
    return change.freeze


def lift(session: Session, freeze_row: StoreFreeze, *, actor: str) -> StoreFreeze:
    change = beta_store.lift_freeze(session=session, freeze=freeze_row, actor=actor, now=utcnow())
    store = session.get(Store, freeze_row.store_id)
    assert store is not None
    audit.record(
        session,
        actor=actor,
        action="freeze.lift",
        subject_type="store",
        subject_id=store.external_id,
        before=change.before,
        after=change.after,
        summary=f"lifted the freeze of {store.external_id} ({freeze_row.reason})",
    )
    return freeze_row


def require_freeze(session: Session, freeze_id: int) -> StoreFreeze:
    row = session.get(StoreFreeze, freeze_id)
    if row is None:
        raise NotFound(f"no freeze {freeze_id}", field="freeze_id")
    return row


def require_device(session: Session, device_id: str) -> Device:
    device = beta_store.get_device(session=session, device_id=device_id)
    if device is None:
        raise NotFound(f"no device {device_id!r}", field="device_id")
    return device


def import_csv(
    session: Session, data: str | bytes, *, actor: str, accept_valid: bool
) -> tuple[ImportReport, ImportResult]:
    """Validate and upsert; raises ``ImportHasErrors`` (nothing changed) when refused."""
    report = preview_import(session=session, data=data)
    result = apply_import(
        session=session, report=report, actor=actor, now=utcnow(), accept_valid=accept_valid
    )
    for change in result.changes:
        audit.record(
            session,
            actor=actor,
            action="store.create" if change.before is None else "store.update",
            subject_type="store",
            subject_id=change.store.external_id,
            before=change.before,
            after=change.after,
            summary=f"{'created' if change.before is None else 'updated'} store "
            f"{change.store.external_id} from a CSV import",
        )
    audit.record(
        session,
        actor=actor,
        action="store.import",
        subject_type="store_import",
        subject_id=f"{len(report.valid_rows)} lines",
        after={
            "created": len(result.created),
            "updated": len(result.updated),
            "unchanged": len(result.unchanged),
            "skipped_lines": [line.line_no for line in result.skipped_lines],
        },
        summary=f"imported stores: {len(result.created)} created, {len(result.updated)} "
        f"updated, {len(result.unchanged)} unchanged, {len(result.skipped_lines)} lines skipped",
    )
    return report, result


def device_counts(session: Session, store_ids: Iterable[int] | None = None) -> dict[int, int]:
    query = select(Device.store_id, func.count()).group_by(col(Device.store_id))
    if store_ids is not None:
        query = query.where(col(Device.store_id).in_(list(store_ids)))
    return {store_id: count for store_id, count in session.exec(query)}


def member_since(session: Session, store_ids: Iterable[int]) -> dict[int, datetime]:
    """When each store last joined the cohort."""
    query = select(CohortEvent.store_id, CohortEvent.at).where(
        CohortEvent.action == "enrol", col(CohortEvent.store_id).in_(list(store_ids))
    )
    since: dict[int, datetime] = {}
    for store_id, at in session.exec(query):
        if store_id not in since or at > since[store_id]:
            since[store_id] = at
    return since


def search_stores(
    session: Session,
    *,
    q: str = "",
    region: str = "",
    tag: str = "",
    in_beta: bool | None = None,
    page: int = 1,
    per_page: int = 50,
) -> tuple[list[Store], int]:
    """One page of stores ordered by external id, and how many match in all."""
    query = select(Store.id)
    if q.strip():
        pattern = f"%{q.strip().lower()}%"
        query = query.where(
            func.lower(Store.external_id).like(pattern) | func.lower(Store.name).like(pattern)
        )
    if region:
        query = query.where(Store.region == region)
    if in_beta is not None:
        query = query.where(Store.in_beta == in_beta)
    if tag:
        # Tags are a JSON list: matched in Python, reading only the id and tags columns.
        tagged = query.add_columns(col(Store.tags)).order_by(col(Store.external_id))
        ids = [store_id for store_id, tags in session.execute(tagged) if tag in tags]
    else:
        ids = list(session.exec(query.order_by(col(Store.external_id))))
    total = len(ids)
    chosen = ids[(page - 1) * per_page : page * per_page]
    stores = session.exec(select(Store).where(col(Store.id).in_(chosen))).all()
    return sorted(stores, key=lambda s: s.external_id), total


def facets(session: Session) -> tuple[list[str], list[str]]:
    """The regions and tags in use, for filter menus."""
    regions = [r for r in session.exec(select(Store.region).distinct().order_by(Store.region)) if r]
    tags: set[str] = set()
    for store_tags in session.exec(select(Store.tags)):
        tags.update(store_tags)
    return regions, sorted(tags)
