"""Stores, devices, the beta cohort and freezes: Session functions.

Every function takes the ``Session`` and keyword-only arguments, validates its input
(raising :mod:`beta.errors`), flushes, and never commits: the caller owns the transaction,
so a failure leaves nothing half-written. State-changing functions take an ``actor`` and
return the ``before`` / ``after`` dicts the caller writes to its audit log.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

import utc
from beta import validation as v
from beta.cohort import REMOVAL_REASONS, FillPlan, FillRequest, StoreCandidate, plan_fill
from beta.errors import Conflict, InvalidInput, NotFound
from beta.models import CohortEvent, Device, Store, StoreFreeze

__all__ = [
    "CohortChange",
    "CohortHistoryEntry",
    "DeviceChange",
    "FillResult",
    "FreezeChange",
    "StoreChange",
    "active_freeze",
    "apply_fill",
    "cohort_history",
    "create_device",
    "create_store",
    "delete_device",
    "device_fields",
    "enrol_store",
    "freeze_fields",
    "freeze_store",
    "get_device",
    "get_store",
    "lift_freeze",
    "list_devices",
    "list_freezes",
    "list_stores",
    "preview_fill",
    "remove_store",
    "require_store",
    "store_fields",
    "stores_by_external_id",
    "unpin_store",
    "update_device",
    "update_store",
]

_UNSET: Any = object()


# --- audit snapshots ---------------------------------------------------------------------


def store_fields(store: Store) -> dict[str, Any]:
    """The store as the audit log records it."""
    return {
        "external_id": store.external_id,
        "name": store.name,
        "region": store.region,
        "timezone": store.timezone,
        "tags": list(store.tags),
        "update_window_start": store.update_window_start,
        "update_window_end": store.update_window_end,
        "in_beta": store.in_beta,
        "beta_pinned": store.beta_pinned,
    }


def device_fields(device: Device, store: Store) -> dict[str, Any]:
    return {
        "device_id": device.device_id,
        "store": store.external_id,
        "kind": device.kind,
        "label": device.label,
    }


def freeze_fields(freeze: StoreFreeze, store: Store) -> dict[str, Any]:
    return {
        "store": store.external_id,
        "starts_at": freeze.starts_at.isoformat(),
        "ends_at": freeze.ends_at.isoformat(),
        "reason": freeze.reason,
        "lifted_at": freeze.lifted_at.isoformat() if freeze.lifted_at else None,
        "lifted_by": freeze.lifted_by,
    }


def _cohort_state(store: Store) -> dict[str, Any]:
    return {"store": store.external_id, "in_beta": store.in_beta, "beta_pinned": store.beta_pinned}


@dataclass(frozen=True)
class StoreChange:
    store: Store
    before: dict[str, Any] | None  # None when the store was created
    after: dict[str, Any]


@dataclass(frozen=True)
class DeviceChange:
    device: Device
    before: dict[str, Any] | None
    after: dict[str, Any] | None  # None when the device was deleted


@dataclass(frozen=True)
class CohortChange:
    event: CohortEvent
    store: Store
    before: dict[str, Any]
    after: dict[str, Any]


@dataclass(frozen=True)
class FreezeChange:
    freeze: StoreFreeze
    before: dict[str, Any] | None
    after: dict[str, Any]


# --- stores ------------------------------------------------------------------------------


def get_store(*, session: Session, external_id: str) -> Store | None:
    return session.exec(select(Store).where(Store.external_id == external_id)).first()


def require_store(*, session: Session, external_id: str) -> Store:
    store = get_store(session=session, external_id=external_id)
    if store is None:
        raise NotFound(f"no store {external_id!r}", field="store_id")
    return store


def list_stores(
    *,
    session: Session,
    region: str | None = None,
    tag: str | None = None,
    in_beta: bool | None = None,
) -> list[Store]:
    """Stores ordered by external id; ``tag`` is matched in Python (JSON column)."""
    query = select(Store).order_by(col(Store.external_id))
    if region is not None:
        query = query.where(Store.region == region)
    if in_beta is not None:
        query = query.where(Store.in_beta == in_beta)
    stores = list(session.exec(query))
    if tag is not None:
        stores = [s for s in stores if tag in s.tags]
    return stores


def create_store(
    *,
    session: Session,
    external_id: str,
    name: str,
    region: str = "",
    timezone: str = v.DEFAULT_TIMEZONE,
    tags: Iterable[str] = (),
    update_window_start: str = v.DEFAULT_WINDOW_START,
    update_window_end: str = v.DEFAULT_WINDOW_END,
    actor: str,
    now: datetime,
) -> StoreChange:
    v.check_actor(actor)
    external_id = v.check_external_id(external_id)
    start, end = v.check_window(update_window_start, update_window_end)
    values: dict[str, Any] = {
        "name": v.check_name(name),
        "region": v.check_region(region),
        "timezone": v.check_timezone(timezone),
        "tags": v.check_tags(tags),
        "update_window_start": start,
        "update_window_end": end,
    }
    if get_store(session=session, external_id=external_id) is not None:
        raise Conflict(f"store {external_id!r} already exists", field="external_id")
    stamp = utc.aware(now)
    store = Store(external_id=external_id, created_at=stamp, updated_at=stamp, **values)
    session.add(store)
    session.flush()
    return StoreChange(store=store, before=None, after=store_fields(store))


def update_store(
    *,
    session: Session,
    store: Store,
    name: str = _UNSET,
    region: str = _UNSET,
    timezone: str = _UNSET,
    tags: Iterable[str] = _UNSET,
    update_window_start: str = _UNSET,
    update_window_end: str = _UNSET,
    actor: str,
    now: datetime,
) -> StoreChange:
    """Change only the fields given. The external id and cohort flags are not edited here."""
    v.check_actor(actor)
    before = store_fields(store)
    values: dict[str, Any] = {}
    if name is not _UNSET:
        values["name"] = v.check_name(name)
    if region is not _UNSET:
        values["region"] = v.check_region(region)
    if timezone is not _UNSET:
        values["timezone"] = v.check_timezone(timezone)
    if tags is not _UNSET:
        values["tags"] = v.check_tags(tags)
    if update_window_start is not _UNSET or update_window_end is not _UNSET:
        start, end = v.check_window(
            store.update_window_start if update_window_start is _UNSET else update_window_start,
            store.update_window_end if update_window_end is _UNSET else update_window_end,
        )
        values["update_window_start"] = start
        values["update_window_end"] = end
    _assign(store, values, now)
    session.add(store)
    session.flush()
    return StoreChange(store=store, before=before, after=store_fields(store))


def _assign(store: Store, values: dict[str, Any], now: datetime) -> bool:
    changed = False
    for key, value in values.items():
        if getattr(store, key) != value:
            setattr(store, key, value)
            changed = True
    if changed:
        store.updated_at = utc.aware(now)
    return changed


# --- devices -----------------------------------------------------------------------------


def get_device(*, session: Session, device_id: str) -> Device | None:
    return session.exec(select(Device).where(Device.device_id == device_id)).first()


def list_devices(*, session: Session, store: Store) -> list[Device]:
    query = select(Device).where(Device.store_id == store.id).order_by(col(Device.device_id))
    return list(session.exec(query))


def create_device(
    *,
    session: Session,
    store: Store,
    device_id: str,
    kind: str,
    label: str = "",
    actor: str,
    now: datetime,
) -> DeviceChange:
    v.check_actor(actor)
    device_id = v.check_device_id(device_id)
    kind = v.check_device_kind(kind)
    label = v.check_label(label)
    if get_device(session=session, device_id=device_id) is not None:
        raise Conflict(f"device {device_id!r} already exists", field="device_id")
    assert store.id is not None
    device = Device(
        device_id=device_id,
        store_id=store.id,
        kind=kind,
        label=label,
        created_at=utc.aware(now),
    )
    session.add(device)
    session.flush()
    return DeviceChange(device=device, before=None, after=device_fields(device, store))


def update_device(
    *,
    session: Session,
    device: Device,
    kind: str = _UNSET,
    label: str = _UNSET,
    store: Store = _UNSET,
    actor: str,
    now: datetime,
) -> DeviceChange:
    """Change a device's kind or label, or move it to another store."""
    v.check_actor(actor)
    old_store = session.get(Store, device.store_id)
    assert old_store is not None
    before = device_fields(device, old_store)
    if kind is not _UNSET:
        device.kind = v.check_device_kind(kind)
    if label is not _UNSET:
        device.label = v.check_label(label)
    new_store = old_store
    if store is not _UNSET:
        assert store.id is not None
        device.store_id = store.id
        new_store = store
    session.add(device)
    session.flush()
    return DeviceChange(device=device, before=before, after=device_fields(device, new_store))


def delete_device(*, session: Session, device: Device, actor: str, now: datetime) -> DeviceChange:
    v.check_actor(actor)
    store = session.get(Store, device.store_id)
    assert store is not None
    before = device_fields(device, store)
    session.delete(device)
    session.flush()
    return DeviceChange(device=device, before=before, after=None)


# --- the cohort --------------------------------------------------------------------------


def _record(
    session: Session,
    store: Store,
    *,
    action: str,
    source: str,
    reason: str,
    actor: str,
    now: datetime,
) -> CohortEvent:
    assert store.id is not None
    event = CohortEvent(
        store_id=store.id,
        action=action,
        source=source,
        reason=reason,
        actor=actor,
        at=utc.aware(now),
    )
    session.add(event)
    return event


def enrol_store(
    *, session: Session, store: Store, reason: str, actor: str, now: datetime
) -> CohortChange:
    """Manually put a store in the cohort; the pin keeps every later fill from removing it."""
    reason = v.check_reason(reason)
    actor = v.check_actor(actor)
    if store.in_beta and store.beta_pinned:
        raise Conflict(f"store {store.external_id!r} is already enrolled", field="store_id")
    return _decide(session, store, "enrol", in_beta=True, reason=reason, actor=actor, now=now)


def remove_store(
    *, session: Session, store: Store, reason: str, actor: str, now: datetime
) -> CohortChange:
    """Manually take a store out of the cohort and keep it out of every later fill.

    Removing a store that is not in the cohort is allowed: it records the owner's wish that
    the hash never picks it.
    """
    reason = v.check_reason(reason)
    actor = v.check_actor(actor)
    if not store.in_beta and store.beta_pinned:
        raise Conflict(f"store {store.external_id!r} is already removed", field="store_id")
    return _decide(session, store, "remove", in_beta=False, reason=reason, actor=actor, now=now)


def unpin_store(
    *, session: Session, store: Store, reason: str, actor: str, now: datetime
) -> CohortChange:
    """Hand a manually enrolled or removed store back to the hash.

    Its membership does not change now; the next fill decides it like any other store.
    """
    reason = v.check_reason(reason)
    actor = v.check_actor(actor)
    if not store.beta_pinned:
        raise Conflict(f"store {store.external_id!r} has no manual decision", field="store_id")
    return _decide(session, store, "unpin", in_beta=None, reason=reason, actor=actor, now=now)


def _decide(
    session: Session,
    store: Store,
    action: str,
    *,
    in_beta: bool | None,
    reason: str,
    actor: str,
    now: datetime,
) -> CohortChange:
    """Record a manual decision (``reason`` and ``actor`` already checked): ``in_beta`` pins
    the store in or out of the cohort; ``None`` unpins it and leaves its membership as it is.
    """
    before = _cohort_state(store)
    if in_beta is not None:
        store.in_beta = in_beta
    store.beta_pinned = in_beta is not None
    store.updated_at = utc.aware(now)
    event = _record(
        session, store, action=action, source="manual", reason=reason, actor=actor, now=now
    )
    session.add(store)
    session.flush()
    return CohortChange(event=event, store=store, before=before, after=_cohort_state(store))


def preview_fill(*, session: Session, request: FillRequest) -> FillPlan:
    """Exactly which stores a fill to ``request`` would add and remove; changes nothing."""
    stores = list(session.exec(select(Store)))
    return plan_fill(
        [StoreCandidate(s.external_id, s.region, frozenset(s.tags)) for s in stores],
        request=request,
        pinned_in=[s.external_id for s in stores if s.beta_pinned and s.in_beta],
        pinned_out=[s.external_id for s in stores if s.beta_pinned and not s.in_beta],
        current_members=[s.external_id for s in stores if s.in_beta],
    )


@dataclass(frozen=True)
class FillResult:
    plan: FillPlan
    events: list[CohortEvent]
    before: dict[str, Any]
    after: dict[str, Any]


def apply_fill(
    *, session: Session, plan: FillPlan, reason: str, actor: str, now: datetime
) -> FillResult:
    """Carry out a previewed fill.

    The plan is recomputed from the current state first; if the cohort or the stores changed
    since the preview, nothing happens and :class:`Conflict` asks for a new preview, so the
    user gets exactly the change they saw.
    """
    reason = v.check_reason(reason)
    actor = v.check_actor(actor)
    fresh = preview_fill(session=session, request=plan.request)
    if (fresh.add, fresh.remove) != (plan.add, plan.remove):
        raise Conflict("the cohort changed since the preview; preview the fill again", field="plan")
    by_id = {
        s.external_id: s
        for s in session.exec(
            select(Store).where(col(Store.external_id).in_([*plan.add, *plan.remove]))
        )
    }
    events: list[CohortEvent] = []
    for external_id, joining in [(e, True) for e in plan.add] + [(e, False) for e in plan.remove]:
        store = by_id[external_id]
        store.in_beta = joining
        store.updated_at = utc.aware(now)
        session.add(store)
        why = "" if joining else f" ({REMOVAL_REASONS[plan.removal_reasons[external_id]]})"
        events.append(
            _record(
                session,
                store,
                action="enrol" if joining else "remove",
                source="fill",
                reason=f"{reason}{why}"[:1000],
                actor=actor,
                now=now,
            )
        )
    session.flush()
    before = {"request": plan.request.to_dict(), "cohort_size": len(plan.keep) + len(plan.remove)}
    after = {
        "request": plan.request.to_dict(),
        "cohort_size": len(plan.cohort),
        "added": list(plan.add),
        "removed": list(plan.remove),
    }
    return FillResult(plan=plan, events=events, before=before, after=after)


@dataclass(frozen=True)
class CohortHistoryEntry:
    at: datetime
    store: str  # external id
    store_name: str
    action: str  # enrol | remove | unpin
    source: str  # manual | fill
    reason: str
    actor: str


def cohort_history(
    *, session: Session, store: Store | None = None, limit: int | None = None
) -> list[CohortHistoryEntry]:
    """Who enrolled or removed which store, when and why; newest first."""
    query = (
        select(CohortEvent, Store)
        .join(Store, col(Store.id) == col(CohortEvent.store_id))
        .order_by(col(CohortEvent.at).desc(), col(CohortEvent.id).desc())
    )
    if store is not None:
        query = query.where(CohortEvent.store_id == store.id)
    if limit is not None:
        query = query.limit(limit)
    return [
        CohortHistoryEntry(
            at=event.at,
            store=owner.external_id,
            store_name=owner.name,
            action=event.action,
            source=event.source,
            reason=event.reason,
            actor=event.actor,
        )
        for event, owner in session.exec(query)
    ]


# --- freezes -----------------------------------------------------------------------------


def freeze_store(
    *,
    session: Session,
    store: Store,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    actor: str,
    now: datetime,
) -> FreezeChange:
    """Freeze a store from ``starts_at`` to ``ends_at`` (aware, or naive UTC)."""
    reason = v.check_reason(reason)
    actor = v.check_actor(actor)
    start = utc.aware(starts_at)
    end = utc.aware(ends_at)
    if end <= start:
        raise InvalidInput("a freeze must end after it starts", field="ends_at")
    if end <= utc.aware(now):
        raise InvalidInput("a freeze must end in the future", field="ends_at")
    assert store.id is not None
    clash = session.exec(
        select(StoreFreeze).where(StoreFreeze.store_id == store.id, StoreFreeze.starts_at == start)
    ).first()
    if clash is not None:
        raise Conflict(
            f"store {store.external_id!r} already has a freeze starting at {start.isoformat()}",
            field="starts_at",
        )
    freeze = StoreFreeze(
        store_id=store.id,
        starts_at=start,
        ends_at=end,
        reason=reason,
        actor=actor,
        created_at=utc.aware(now),
    )
    session.add(freeze)
    session.flush()
    return FreezeChange(freeze=freeze, before=None, after=freeze_fields(freeze, store))


def lift_freeze(
    *, session: Session, freeze: StoreFreeze, actor: str, now: datetime
) -> FreezeChange:
    """End a freeze early (or cancel one that has not started). The row is kept."""
    actor = v.check_actor(actor)
    if freeze.lifted_at is not None:
        raise Conflict("this freeze was already lifted", field="freeze_id")
    store = session.get(Store, freeze.store_id)
    assert store is not None
    before = freeze_fields(freeze, store)
    freeze.lifted_at = utc.aware(now)
    freeze.lifted_by = actor
    session.add(freeze)
    session.flush()
    return FreezeChange(freeze=freeze, before=before, after=freeze_fields(freeze, store))


def list_freezes(
    *, session: Session, store: Store | None = None, current_at: datetime | None = None
) -> list[StoreFreeze]:
    """Freezes newest start first; with ``current_at``, only unlifted ones not yet ended."""
    query = select(StoreFreeze).order_by(col(StoreFreeze.starts_at).desc())
    if store is not None:
        query = query.where(StoreFreeze.store_id == store.id)
    if current_at is not None:
        query = query.where(
            col(StoreFreeze.lifted_at).is_(None),
            col(StoreFreeze.ends_at) > utc.aware(current_at),
        )
    return list(session.exec(query))


def active_freeze(*, session: Session, store: Store, now: datetime) -> StoreFreeze | None:
    """The freeze in force at ``now`` (the one ending last when several overlap)."""
    moment = utc.aware(now)
    query = (
        select(StoreFreeze)
        .where(
            StoreFreeze.store_id == store.id,
            col(StoreFreeze.lifted_at).is_(None),
            col(StoreFreeze.starts_at) <= moment,
            col(StoreFreeze.ends_at) > moment,
        )
        .order_by(col(StoreFreeze.ends_at).desc())
    )
    return session.exec(query).first()


def stores_by_external_id(*, session: Session, external_ids: Sequence[str]) -> dict[str, Store]:
    query = select(Store).where(col(Store.external_id).in_(list(external_ids)))
    return {s.external_id: s for s in session.exec(query)}
