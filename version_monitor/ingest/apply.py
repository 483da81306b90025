"""Applying valid heartbeats: each device's state moves forward only.

:func:`ingest` registers unknown devices, reads the states the heartbeats build on, moves
each forward (:func:`_advance`) and hands the rows to :func:`version_monitor.ingest.sql.write`.
:func:`ingest_heartbeats` is validation and :func:`ingest` in one call, with the stores
looked up here (:func:`lookup_stores`) unless the caller passes a cache.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from version_monitor.ingest.sql import (
    MOVABLE,
    ONE_STATE,
    PG_LOCK_ONE,
    REGISTER_ONE,
    Existing,
    FinalStatement,
    Rows,
    as_column_value,
    existing_states,
    fetch_one,
    lock_devices,
    lookup_devices,
    register_devices,
    write,
)
from version_monitor.ingest.validation import (
    Rejection,
    StoreLookup,
    StoreRef,
    ValidHeartbeat,
    validate_batch,
)
from version_monitor.models import device_table, store_table
from version_monitor.seen import seen_hour

__all__ = ["IngestResult", "all_stores", "ingest", "ingest_heartbeats", "lookup_stores"]


@dataclass
class IngestResult:
    """What :func:`ingest` did; ``as_dict`` is the answer to the device."""

    accepted: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    registered_devices: int = 0
    version_changes: int = 0  # real changes, not first sightings
    new_device_states: int = 0
    stale: int = 0  # valid but not newer than what the device already reported
    then_row: Any = None  # the first row of ingest()'s ``then`` statement, if it ran

    def as_dict(self) -> dict[str, object]:
        return {
            "accepted": self.accepted,
            "rejected": [r.as_dict() for r in self.rejected],
            "registered_devices": self.registered_devices,
            "version_changes": self.version_changes,
            "new_device_states": self.new_device_states,
            "stale": self.stale,
        }


def _chunks(values: Sequence[Any], size: int = 500) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


_STORE_REFS = select(store_table.c.external_id, store_table.c.id, store_table.c.in_beta)


def _store_refs(rows: Iterable[Any]) -> dict[str, StoreRef]:
    return {
        external_id: StoreRef(id=pk, in_beta=bool(in_beta)) for external_id, pk, in_beta in rows
    }


def lookup_stores(session: Session, *, external_ids: Collection[str]) -> dict[str, StoreRef]:
    """Stores by external id, for :func:`validate_batch`."""
    found: dict[str, StoreRef] = {}
    for chunk in _chunks(sorted(external_ids)):
        statement = _STORE_REFS.where(store_table.c.external_id.in_(chunk))
        found.update(_store_refs(session.execute(statement)))
    return found


def all_stores(session: Session) -> dict[str, StoreRef]:
    """Every store by external id: one query, for a cache that starts empty."""
    return _store_refs(session.execute(_STORE_REFS))


def ingest(
    session: Session,
    valid: Sequence[ValidHeartbeat],
    *,
    now: datetime,
    devices: MutableMapping[str, int] | None = None,
    then: FinalStatement | None = None,
) -> IngestResult:
    """Apply validated heartbeats: register devices, move states forward, log changes.

    ``devices`` (optional) caches device external ids to primary keys across calls: it is
    read first and given the ids this call had to look up (never the ones it registered,
    which exist only if the caller commits). The caller must drop it when devices may have
    been deleted.

    ``then`` (optional) is the caller's hook, a
    :data:`~version_monitor.ingest.sql.FinalStatement`: one more statement run right after
    the writes, in the same transaction (on PostgreSQL in the same pipeline: one round trip
    for all of them), when there is a valid heartbeat; its first row, or None, is
    ``result.then_row``. The service counts the request against its rate limit with it.
    """
    result = IngestResult(accepted=len(valid))
    if not valid:
        return result

    if len(valid) == 1:
        _ingest_one(session, valid[0], now=now, devices=devices, then=then, result=result)
        return result

    wanted = {hb.device_id for hb in valid}
    if devices is None:
        known = lookup_devices(session, wanted)
    else:
        known = {}
        for device_id in wanted:
            pk = devices.get(device_id)
            if pk is not None:
                known[device_id] = pk
        if len(known) < len(wanted):
            looked_up = lookup_devices(session, wanted - known.keys())
            devices.update(looked_up)
            known.update(looked_up)
    # Existing rows first (in id order), then the new ones it inserts: two batches for the
    # same devices queue instead of deadlocking. (A device registered by a third request
    # meanwhile is locked after the inserts; should that ever deadlock, PostgreSQL rolls one
    # request back whole and its devices send again.)
    lock_devices(session, known.values())
    unknown: dict[str, ValidHeartbeat] = {}
    for hb in valid:
        if hb.device_id not in known and hb.device_id not in unknown:
            unknown[hb.device_id] = hb
    inserted: set[int] = set()
    if unknown:
        registered = register_devices(session, unknown, now=now)
        result.registered_devices = len(registered)
        inserted.update(registered.values())
        known.update(registered)
        if len(registered) < len(unknown):  # registered meanwhile by a concurrent request
            meanwhile = lookup_devices(session, unknown.keys() - registered.keys())
            lock_devices(session, meanwhile.values())
            known.update(meanwhile)

    by_state: dict[tuple[int, str], list[ValidHeartbeat]] = {}
    for hb in valid:
        by_state.setdefault((known[hb.device_id], hb.app), []).append(hb)
    # A device this call registered has no state yet.
    existing = existing_states(session, {key for key in by_state if key[0] not in inserted})

    written = Rows()
    for (device_pk, app), beats in by_state.items():
        beats.sort(key=lambda hb: hb.sent_at)
        _advance(device_pk, app, existing.get((device_pk, app)), beats, now, result, written)
    result.then_row = write(session, written.writes(), then)
    return result


def _advance(
    device_pk: int,
    app: str,
    before: Existing | None,
    beats: Sequence[ValidHeartbeat],
    now: datetime,
    result: IngestResult,
    rows: Rows,
) -> None:
    """Move one device's state for ``app`` from ``before`` by ``beats`` (oldest first):
    add its new state to ``rows`` (a first state, or an update of a known one naming the
    indexed columns it moves) and a row per version change; beats not newer than what the
    device already reported are counted stale."""
    fresh: list[ValidHeartbeat] = []
    last_sent = before.last_sent_at if before else None
    for hb in beats:
        if last_sent is not None and hb.sent_at <= last_sent:
            result.stale += 1
            continue
        fresh.append(hb)
        last_sent = hb.sent_at
    if not fresh:
        return
    version, key = (before.version, before.version_key) if before else (None, None)
    since = before.version_since if before else None
    for hb in fresh:
        seen = min(hb.sent_at, now)
        if hb.version_key != key:
            rows.changes.append(
                {
                    "device_id": device_pk,
                    "app": app,
                    "store_id": hb.store_id,
                    "from_version": version,
                    "to_version": hb.version,
                    "to_key": hb.version_key,
                    "at": seen,
                }
            )
            if key is not None:
                result.version_changes += 1
            key, since = hb.version_key, seen
        version = hb.version
    last = fresh[-1]
    assert since is not None
    last_seen = min(last.sent_at, now)
    hour = seen_hour(last_seen)
    if before is not None:
        update: dict[str, object] = {
            "id": before.id,
            "version": last.version,
            "last_seen": last_seen,
            "last_sent_at": last.sent_at,
            "received_at": now,
        }
        new = {
            "version_key": last.version_key,
            "version_since": since,
            "store_id": last.store_id,
            "device_kind": last.device_kind,
            "channel": last.channel,
            "seen_hour": hour,
        }
        moved = tuple(column for column in MOVABLE if new[column] != getattr(before, column))
        for column in moved:
            update.update({c: new[c] for c in MOVABLE[column]})
        rows.updates.setdefault(moved, []).append(update)
        return
    result.new_device_states += 1
    rows.states.append(
        {
            "device_id": device_pk,
            "app": app,
            "store_id": last.store_id,
            "device_kind": last.device_kind,
            "channel": last.channel,
            "version": last.version,
            "version_key": last.version_key,
            "version_since": since,
            "first_seen": min(fresh[0].sent_at, now),
            "last_seen": last_seen,
            "seen_hour": hour,
            "last_sent_at": last.sent_at,
            "received_at": now,
        }
    )


def _ingest_one(
    session: Session,
    hb: ValidHeartbeat,
    *,
    now: datetime,
    devices: MutableMapping[str, int] | None,
    then: FinalStatement | None,
    result: IngestResult,
) -> None:
    """:func:`ingest` of one heartbeat (the common request) on the driver's own cursor."""
    connection = session.connection()
    cached = devices.get(hb.device_id) if devices is not None else None
    value: int | str
    key = "device_id" if cached is None else "id"
    value = hb.device_id if cached is None else cached
    row = fetch_one(
        connection, ONE_STATE[key], {"app": hb.app, "value": value}, lock=PG_LOCK_ONE[key]
    )
    before: Existing | None = None
    if row is not None:
        device_pk = int(row[0])
        if devices is not None and cached is None:
            devices[hb.device_id] = device_pk
        if row[1] is not None:
            before = Existing.of(row[1:])
    else:
        registered = fetch_one(
            connection,
            REGISTER_ONE,
            {
                "device_id": hb.device_id,
                "store_id": hb.store_id,
                "kind": hb.device_kind,
                "label": "",
                "created_at": as_column_value(device_table.c.created_at, now),
            },
        )
        if registered is not None:
            device_pk = int(registered[0])
            result.registered_devices = 1
        else:  # registered meanwhile by a concurrent request: look again
            found = lookup_devices(session, {hb.device_id})
            device_pk = found[hb.device_id]
            lock_devices(session, [device_pk])
            before = existing_states(session, {(device_pk, hb.app)}).get((device_pk, hb.app))

    rows = Rows()
    _advance(device_pk, hb.app, before, [hb], now, result, rows)
    result.then_row = write(session, rows.writes(), then)


def ingest_heartbeats(
    session: Session,
    items: Sequence[object],
    *,
    known_apps: Collection[str],
    now: datetime,
    stores: StoreLookup | None = None,
    devices: MutableMapping[str, int] | None = None,
    then: FinalStatement | None = None,
) -> IngestResult:
    """Validate ``items`` (from :func:`~version_monitor.ingest.validation.parse_batch`)
    against the stores table and apply them.

    ``stores`` replaces the lookup in the stores table (e.g. a cache), ``devices`` is
    :func:`ingest`'s cache of device ids, ``then`` its final statement (see :func:`ingest`).
    """
    valid, rejected = validate_batch(
        items,
        known_apps=known_apps,
        stores=stores
        if stores is not None
        else (lambda ids: lookup_stores(session, external_ids=ids)),
        now=now,
    )
    result = ingest(session, valid, now=now, devices=devices, then=then)
    result.rejected = rejected
    return result
