"""Heartbeat ingestion: validate a batch item by item, then apply it set-based.

A heartbeat moves a device's state forward only: one whose ``sent_at`` is not newer than
the newest already applied for that device and app changes nothing, so replaying a batch
is harmless. Unknown devices of known stores are registered in ``beta``'s ``device`` table.
Nothing is committed here: the caller commits (or rolls back) the whole request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import and_, bindparam, select
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, UTCDateTime

from utc import aware, naive
from version_monitor.models import (
    device_state_table,
    device_table,
    store_table,
)
from version_monitor.seen import seen_hour
from versioning import InvalidVersion, parse_version
from versioning.storage_key import version_sort_key

__all__ = [
    "MAX_AGE",
    "MAX_BATCH",
    "MAX_FUTURE",
    "REJECTION_CODES",
    "FinalStatement",
    "HeartbeatIn",
    "IngestResult",
    "MalformedBatch",
    "Rejection",
    "StoreRef",
    "ValidHeartbeat",
    "all_stores",
    "as_column_value",
    "dialect_insert",
    "ingest",
    "ingest_heartbeats",
    "lookup_stores",
    "parse_batch",
    "validate_batch",
]

MAX_BATCH = 1000
MAX_FUTURE = timedelta(minutes=5)
MAX_AGE = timedelta(days=7)

DeviceKind = Literal["pos", "handy", "kds", "kiosk"]  # beta.models.DEVICE_KINDS


class HeartbeatIn(BaseModel):
    """One heartbeat as a store device sends it."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    device_id: str = Field(min_length=1, max_length=128, examples=["pos-0042-01"])
    store_id: str = Field(
        min_length=1, max_length=64, description="The store's external id", examples=["S0042"]
    )
    app: str = Field(min_length=1, max_length=64, examples=["pos"])
    version: str = Field(min_length=1, max_length=128, examples=["3.12.0"])
    device_kind: DeviceKind
    sent_at: datetime = Field(
        description="ISO 8601; without an offset it is taken as UTC",
        examples=["2024-07-01T09:30:00+09:00"],
    )

    @field_validator("sent_at", mode="before")
    @classmethod
    def _sent_at_is_text(cls, value: object) -> object:
        # Pydantic would read a bare number as a Unix time; a device that sends one has a bug.
        if not isinstance(value, str | datetime):
            raise ValueError("sent_at must be an ISO 8601 date-time string")
        return value


class MalformedBatch(ValueError):
    """The request body is not one heartbeat object nor a list of them: refuse it whole."""


@dataclass(frozen=True)
class StoreRef:
    id: int
    in_beta: bool


# What a rejection's ``code`` can be (a metric label: a fixed set).
REJECTION_CODES = (
    "not_an_object",
    "invalid_field",
    "unknown_app",
    "unknown_store",
    "invalid_version",
    "sent_at_in_future",
    "sent_at_too_old",
)


@dataclass(frozen=True)
class Rejection:
    index: int
    field: str | None
    reason: str
    code: str = "invalid_field"  # one of REJECTION_CODES

    def as_dict(self) -> dict[str, object]:
        return {"index": self.index, "field": self.field, "reason": self.reason}


@dataclass(frozen=True)
class ValidHeartbeat:
    index: int
    device_id: str
    store_id: int
    channel: str
    app: str
    version: str
    version_key: str
    device_kind: str
    sent_at: datetime  # naive UTC


@dataclass
class IngestResult:
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


# A statement to run after the writes: its SQL per DBAPI paramstyle ("named" for SQLite,
# "pyformat" for psycopg) and its parameters.
FinalStatement = tuple[Mapping[str, str], Mapping[str, object]]

StoreLookup = Mapping[str, StoreRef] | Callable[[set[str]], Mapping[str, StoreRef]]


def parse_batch(body: object) -> list[object]:
    """The items of a request body: one object or a list of 1 to ``MAX_BATCH`` of them."""
    if isinstance(body, dict):
        return [body]
    if not isinstance(body, list):
        raise MalformedBatch("body must be a heartbeat object or a list of them")
    if not body:
        raise MalformedBatch("the batch is empty")
    if len(body) > MAX_BATCH:
        raise MalformedBatch(f"a batch holds at most {MAX_BATCH} heartbeats, not {len(body)}")
    return body


@lru_cache(maxsize=4096)
def _parsed_version(text: str) -> tuple[str, str]:
    """``(original, sort key)`` of a version string (devices send few distinct ones)."""
    version = parse_version(text)
    return version.original, version_sort_key(version)


def _first_error(error: ValidationError) -> tuple[str | None, str]:
    first = error.errors(include_url=False)[0]
    loc = first.get("loc", ())
    name = str(loc[0]) if loc else None
    return name, str(first.get("msg", "invalid"))


def validate_batch(
    items: Sequence[object],
    *,
    known_apps: Collection[str],
    stores: StoreLookup,
    now: datetime,
) -> tuple[list[ValidHeartbeat], list[Rejection]]:
    """Split ``items`` into valid heartbeats and rejections (index, field, reason).

    ``stores`` maps store external ids to :class:`StoreRef`, or is a function that does so
    for a set of ids (called once per batch). ``now`` is naive UTC.
    """
    parsed: list[tuple[int, HeartbeatIn]] = []
    rejected: list[Rejection] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            rejected.append(
                Rejection(index, None, "a heartbeat must be a JSON object", "not_an_object")
            )
            continue
        try:
            parsed.append((index, HeartbeatIn.model_validate(item)))
        except ValidationError as error:
            name, reason = _first_error(error)
            rejected.append(Rejection(index, name, reason))

    wanted = {hb.store_id for _, hb in parsed}
    store_map = stores if isinstance(stores, Mapping) else stores(wanted)
    earliest, latest = now - MAX_AGE, now + MAX_FUTURE
    valid: list[ValidHeartbeat] = []
    for index, hb in parsed:
        store = store_map.get(hb.store_id)
        sent_at = naive(hb.sent_at)
        if hb.app not in known_apps:
            rejected.append(Rejection(index, "app", f"unknown app {hb.app!r}", "unknown_app"))
            continue
        if store is None:
            reason = f"unknown store {hb.store_id!r}"
            rejected.append(Rejection(index, "store_id", reason, "unknown_store"))
            continue
        try:
            version, version_key = _parsed_version(hb.version)
        except InvalidVersion as error:
            rejected.append(Rejection(index, "version", str(error), "invalid_version"))
            continue
        if sent_at > latest:
            reason = "sent_at is more than 5 minutes in the future"
            rejected.append(Rejection(index, "sent_at", reason, "sent_at_in_future"))
            continue
        if sent_at < earliest:
            reason = "sent_at is more than 7 days old"
            rejected.append(Rejection(index, "sent_at", reason, "sent_at_too_old"))
            continue
        valid.append(
            ValidHeartbeat(
                index=index,
                device_id=hb.device_id,
                store_id=store.id,
                channel="beta" if store.in_beta else "stable",
                app=hb.app,
                version=version,
                version_key=version_key,
                device_kind=hb.device_kind,
                sent_at=sent_at,
            )
        )
    rejected.sort(key=lambda r: r.index)
    return valid, rejected


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


def dialect_insert(session: Session, table: Any) -> Insert:
    """An INSERT that knows ``ON CONFLICT`` on the session's database."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    if bind.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    raise NotImplementedError(f"unsupported database {bind.dialect.name!r}")


def as_column_value(column: ColumnElement[Any], moment: datetime) -> datetime:
    """``moment`` (naive UTC) as ``column`` wants it.

    SQLModel maps a plain ``datetime`` field to its ``UTCDateTime``, which refuses naive
    values; a ``NaiveDatetime`` field is a plain ``DateTime``. Tables of other packages may
    use either.
    """
    if isinstance(column.type, UTCDateTime):
        return aware(moment)
    return moment


_DEVICE_ID_QUERY = select(device_table.c.id).where(
    device_table.c.device_id == bindparam("device_id")
)


# On PostgreSQL the lookups of a batch take their keys as one array parameter: the same
# short statement every time (parsed once by psycopg, prepared by the server) instead of an
# ``IN`` list of up to 500 literals, which psycopg parsed anew in ~5 ms each.
_PG_DEVICE_IDS = "SELECT device_id, id FROM device WHERE device_id = ANY(%(ids)b::varchar[])"
# What a heartbeat needs of a device's state (:class:`_Existing`, in this order).
_EXISTING = (
    "version",
    "version_key",
    "version_since",
    "last_sent_at",
    "id",
    "store_id",
    "device_kind",
    "channel",
    "seen_hour",
)
_EXISTING_SQL = ", ".join(f"device_state.{c}" for c in _EXISTING)
_PG_STATES = (
    f"SELECT device_state.device_id, device_state.app, {_EXISTING_SQL} "
    "FROM device_state WHERE device_id = ANY(%(pks)b::integer[])"
)
# SQLite takes them as one JSON array (``json_each``): the same for every batch, so
# sqlite3 keeps it prepared, and no SQLAlchemy compilation of ``IN`` lists.
_SQLITE_DEVICE_IDS = (
    "SELECT device_id, id FROM device WHERE device_id IN (SELECT value FROM json_each(:ids))"
)
_SQLITE_STATES = (
    f"SELECT device_state.device_id, device_state.app, {_EXISTING_SQL} "
    "FROM device_state WHERE device_id IN (SELECT value FROM json_each(:pks))"
)
_PG_REGISTER = (
    "INSERT INTO device (device_id, store_id, kind, label, created_at) "
    "SELECT d, s, k, '', %(created_at)s "
    "FROM unnest(%(ids)b::varchar[], %(stores)b::integer[], %(kinds)b::varchar[]) AS t(d, s, k) "
    "ON CONFLICT (device_id) DO NOTHING RETURNING device_id, id"
)


# One statement for all of them (a multi-row INSERT, not a statement per device).
_SQLITE_REGISTER = (
    "INSERT INTO device (device_id, store_id, kind, label, created_at) "
    "SELECT value ->> 0, value ->> 1, value ->> 2, '', :created_at FROM json_each(:rows) "
    "WHERE true ON CONFLICT (device_id) DO NOTHING RETURNING device_id, id"
)


def _is_postgresql(session: Session) -> bool:
    return bool(session.get_bind().dialect.name == "postgresql")


def _driver_rows(session: Session, sql: str, params: Mapping[str, object]) -> Sequence[Any]:
    cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _device_ids(session: Session, device_ids: Collection[str]) -> dict[str, int]:
    if len(device_ids) == 1:
        (device_id,) = device_ids
        pk = session.connection().execute(_DEVICE_ID_QUERY, {"device_id": device_id}).scalar()
        return {} if pk is None else {device_id: pk}
    if _is_postgresql(session):
        rows = _driver_rows(session, _PG_DEVICE_IDS, {"ids": sorted(device_ids)})
    else:
        rows = _driver_rows(session, _SQLITE_DEVICE_IDS, {"ids": json.dumps(sorted(device_ids))})
    return {device_id: pk for device_id, pk in rows}


_STATE_QUERY = select(*(device_state_table.c[c] for c in _EXISTING)).where(
    and_(
        device_state_table.c.device_id == bindparam("device_pk"),
        device_state_table.c.app == bindparam("app"),
    )
)


@dataclass
class _Existing:
    """A device's state for one app as a heartbeat finds it (the columns of
    :data:`_EXISTING`)."""

    version: str
    version_key: str
    version_since: datetime
    last_sent_at: datetime
    id: int
    store_id: int
    device_kind: str
    channel: str
    seen_hour: datetime

    @classmethod
    def of(cls, row: Sequence[Any]) -> _Existing:
        """From a row of the :data:`_EXISTING` columns (SQLite's datetimes are text)."""
        version, key, since, last_sent_at, pk, store_id, kind, channel, hour = row
        return cls(
            version,
            key,
            _as_datetime(since),
            _as_datetime(last_sent_at),
            pk,
            store_id,
            kind,
            channel,
            _as_datetime(hour),
        )


def _existing_states(
    session: Session, keys: Collection[tuple[int, str]]
) -> dict[tuple[int, str], _Existing]:
    found: dict[tuple[int, str], _Existing] = {}
    if not keys:
        return found
    if len(keys) == 1:
        ((device_pk, app),) = keys
        row = (
            session.connection().execute(_STATE_QUERY, {"device_pk": device_pk, "app": app}).first()
        )
        if row is not None:
            found[(device_pk, app)] = _Existing.of(row)
        return found
    device_pks = sorted({pk for pk, _ in keys})
    if _is_postgresql(session):
        rows = _driver_rows(session, _PG_STATES, {"pks": device_pks})
    else:
        rows = _driver_rows(session, _SQLITE_STATES, {"pks": json.dumps(device_pks)})
    for pk, app, *state in rows:
        if (pk, app) in keys:
            found[(pk, app)] = _Existing.of(state)
    return found


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

    ``then`` (optional) is one more statement run right after the writes (on PostgreSQL in
    the same pipeline: one round trip for all of them) when there is a valid heartbeat; its
    first row, or None, is ``result.then_row``.
    """
    result = IngestResult(accepted=len(valid))
    if not valid:
        return result

    if len(valid) == 1:
        _ingest_one(session, valid[0], now=now, devices=devices, then=then, result=result)
        return result

    wanted = {hb.device_id for hb in valid}
    if devices is None:
        known = _device_ids(session, wanted)
    else:
        known = {}
        for device_id in wanted:
            pk = devices.get(device_id)
            if pk is not None:
                known[device_id] = pk
        if len(known) < len(wanted):
            looked_up = _device_ids(session, wanted - known.keys())
            devices.update(looked_up)
            known.update(looked_up)
    # Existing rows first (in id order), then the new ones it inserts: two batches for the
    # same devices queue instead of deadlocking. (A device registered by a third request
    # meanwhile is locked after the inserts; should that ever deadlock, PostgreSQL rolls one
    # request back whole and its devices send again.)
    _lock_devices(session, known.values())
    unknown: dict[str, ValidHeartbeat] = {}
    for hb in valid:
        if hb.device_id not in known and hb.device_id not in unknown:
            unknown[hb.device_id] = hb
    inserted: set[int] = set()
    if unknown and _is_postgresql(session):
        rows = _driver_rows(
            session,
            _PG_REGISTER,
            {
                "ids": list(unknown),
                "stores": [hb.store_id for hb in unknown.values()],
                "kinds": [hb.device_kind for hb in unknown.values()],
                "created_at": as_column_value(device_table.c.created_at, now),
            },
        )
    elif unknown:
        params: dict[str, object] = {
            "rows": json.dumps([[d, hb.store_id, hb.device_kind] for d, hb in unknown.items()]),
            "created_at": now,
        }
        _driver_rows_of(session.get_bind().dialect, [params])
        rows = _driver_rows(session, _SQLITE_REGISTER, params)
    if unknown:
        registered = {device_id: pk for device_id, pk in rows}
        result.registered_devices = len(registered)
        inserted.update(registered.values())
        known.update(registered)
        if len(registered) < len(unknown):  # registered meanwhile by a concurrent request
            meanwhile = _device_ids(session, unknown.keys() - registered.keys())
            _lock_devices(session, meanwhile.values())
            known.update(meanwhile)

    by_state: dict[tuple[int, str], list[ValidHeartbeat]] = {}
    for hb in valid:
        by_state.setdefault((known[hb.device_id], hb.app), []).append(hb)
    # A device this call registered has no state yet.
    existing = _existing_states(session, {key for key in by_state if key[0] not in inserted})

    written = _Rows()
    for (device_pk, app), beats in by_state.items():
        beats.sort(key=lambda hb: hb.sent_at)
        _advance(device_pk, app, existing.get((device_pk, app)), beats, now, result, written)
    result.then_row = _write(session, written.writes(), then)
    return result


@dataclass
class _Rows:
    """What a call writes: first states of devices, updates of known states (by the
    indexed columns they move, see :data:`_MOVABLE`), version-change rows."""

    states: list[dict[str, object]] = field(default_factory=list)
    updates: dict[tuple[str, ...], list[dict[str, object]]] = field(default_factory=dict)
    changes: list[dict[str, object]] = field(default_factory=list)

    def writes(self) -> list[tuple[_Statement, list[dict[str, object]]]]:
        """The state writes, then the change-log inserts (the ones that have rows)."""
        writes = [(_NEW_STATE, self.states)] if self.states else []
        writes += [(_update_state(moved), rows) for moved, rows in self.updates.items()]
        if self.changes:
            writes.append((_INSERT_CHANGE, self.changes))
        return writes


def _advance(
    device_pk: int,
    app: str,
    before: _Existing | None,
    beats: Sequence[ValidHeartbeat],
    now: datetime,
    result: IngestResult,
    rows: _Rows,
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
        moved = tuple(column for column in _MOVABLE if new[column] != getattr(before, column))
        for column in moved:
            update.update({c: new[c] for c in _MOVABLE[column]})
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


# One device's state for one app, with the device's primary key: one statement (and one
# round trip) instead of two. The device is named by external id or, when cached, by key.
_ONE_STATE_SQL = (
    f"SELECT device.id, {_EXISTING_SQL} FROM device "
    "LEFT JOIN device_state ON device_state.device_id = device.id AND device_state.app = {app} "
    "WHERE device.{key} = {value}"
)
_ONE_STATE = {
    key: {
        style: _ONE_STATE_SQL.format(
            app=":app" if style == "named" else "%(app)s",
            key=key,
            value=":value" if style == "named" else "%(value)s",
        )
        for style in ("named", "pyformat")
    }.__getitem__
    for key in ("id", "device_id")
}


def _as_datetime(value: Any) -> datetime:
    # SQLite hands back the text SQLAlchemy stored (``YYYY-MM-DD HH:MM:SS.ffffff``).
    return datetime.fromisoformat(value) if isinstance(value, str) else value


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
    row = _fetch_one(
        connection, _ONE_STATE[key], {"app": hb.app, "value": value}, lock=_PG_LOCK_ONE[key]
    )
    before: _Existing | None = None
    if row is not None:
        device_pk = int(row[0])
        if devices is not None and cached is None:
            devices[hb.device_id] = device_pk
        if row[1] is not None:
            before = _Existing.of(row[1:])
    else:
        registered = _fetch_one(
            connection,
            _REGISTER_ONE,
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
            found = _device_ids(session, {hb.device_id})
            device_pk = found[hb.device_id]
            _lock_devices(session, [device_pk])
            before = _existing_states(session, {(device_pk, hb.app)}).get((device_pk, hb.app))

    rows = _Rows()
    _advance(device_pk, hb.app, before, [hb], now, result, rows)
    result.then_row = _write(session, rows.writes(), then)


# The two writes of every heartbeat go to the driver as plain SQL with one parameter dict
# per row: SQLAlchemy's per-row parameter processing cost more than the database's work.
# Datetimes are naive UTC (plain TIMESTAMP columns); SQLite gets them as text in the exact
# format SQLAlchemy stores (``YYYY-MM-DD HH:MM:SS.ffffff``), so comparisons stay textual.
_STATE_COLUMNS = (
    "device_id",
    "app",
    "store_id",
    "device_kind",
    "channel",
    "version",
    "version_key",
    "version_since",
    "first_seen",
    "last_seen",
    "seen_hour",
    "last_sent_at",
    "received_at",
)
_STATE_UPDATED = _STATE_COLUMNS[2:8] + _STATE_COLUMNS[9:]
_CHANGE_COLUMNS = ("device_id", "app", "store_id", "from_version", "to_version", "to_key", "at")
_DATETIMES = frozenset({"version_since", "first_seen", "last_seen", "seen_hour", "last_sent_at"})
_DATETIMES |= {"received_at", "at", "created_at"}
_PG_TYPES = {
    **dict.fromkeys(("id", "device_id", "store_id"), "integer"),
    **dict.fromkeys(("app", "device_kind", "channel", "version", "version_key"), "varchar"),
    **dict.fromkeys(("from_version", "to_version", "to_key"), "varchar"),
    **dict.fromkeys(_DATETIMES, "timestamp"),
}


@dataclass(frozen=True)
class _Statement:
    """A write in both paramstyles (see :func:`_paramstyle`) and, for PostgreSQL, its form
    for many rows: one statement taking each of ``columns`` as an array (``unnest``), so
    the server plans and runs one statement and the driver binds a dozen arrays, not
    12,000 values (psycopg's ``executemany`` runs a statement per row)."""

    named: str
    pyformat: str
    bulk: str | None = None
    columns: tuple[str, ...] = ()

    def __call__(self, paramstyle: str) -> str:
        return self.pyformat if paramstyle == "pyformat" else self.named


def _mark(column: str, paramstyle: str) -> str:
    return f"%({column})s" if paramstyle == "pyformat" else f":{column}"


# The arrays go in binary (``%b``): psycopg quotes each string of a text array with a
# regular expression, ~30 ms per 1,000 heartbeats of the worker's CPU.
def _arrays(columns: Sequence[str]) -> str:
    return ", ".join(f"%({c})b::{_PG_TYPES[c]}[]" for c in columns)


def _insert(
    table: str, columns: tuple[str, ...], tail: str = "", *, bulk: bool = True
) -> _Statement:
    head = f"INSERT INTO {table} ({', '.join(columns)})"
    named, pyformat = (
        f"{head} VALUES ({', '.join(_mark(c, style) for c in columns)}){tail}"
        for style in ("named", "pyformat")
    )
    if not bulk:
        return _Statement(named, pyformat)
    return _Statement(
        named, pyformat, f"{head} SELECT * FROM unnest({_arrays(columns)}){tail}", columns
    )


# One device (a batch's go through _PG_REGISTER / _SQLITE_REGISTER).
_REGISTER_ONE = _insert(
    "device",
    ("device_id", "store_id", "kind", "label", "created_at"),
    " ON CONFLICT (device_id) DO NOTHING RETURNING id",
    bulk=False,
)
_STATE_CONFLICT = (
    " ON CONFLICT (device_id, app) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _STATE_UPDATED)
    # A concurrent request may have applied a newer heartbeat meanwhile.
    + " WHERE device_state.last_sent_at < excluded.last_sent_at"
)
# A device's first state for an app. SQLite inserts it plainly: its writer lock is held
# since the states were read, so no other request can have added it, and an upsert makes
# SQLite keep a statement journal for the foreign-key checks of every row (about four times
# the insert's work). PostgreSQL's transactions run side by side: there it is an upsert.
_NEW_STATE = replace(
    _insert("device_state", _STATE_COLUMNS, _STATE_CONFLICT),
    named=_insert("device_state", _STATE_COLUMNS).named,
)
_INSERT_CHANGE = _insert("version_change", _CHANGE_COLUMNS)

# An update of a known state sets these, and only those indexed columns that moved (see
# :mod:`version_monitor.seen`): most heartbeats rewrite the row and no index entry.
_UPDATED_ALWAYS = ("version", "last_seen", "last_sent_at", "received_at")
# Each indexed column a heartbeat can move, with the columns that move along with it.
_MOVABLE = {
    "version_key": ("version_key", "version_since"),
    "store_id": ("store_id",),
    "device_kind": ("device_kind",),
    "channel": ("channel",),
    "seen_hour": ("seen_hour",),
}


@lru_cache(maxsize=64)
def _update_state(moved: tuple[str, ...]) -> _Statement:
    """The UPDATE of known states (by id) whose ``moved`` indexed columns changed. The
    ``last_sent_at`` guard leaves a state a concurrent request moved further alone."""
    columns = (*(c for column in moved for c in _MOVABLE[column]), *_UPDATED_ALWAYS)
    named, pyformat = (
        f"UPDATE device_state SET {', '.join(f'{c} = {_mark(c, style)}' for c in columns)} "
        f"WHERE id = {_mark('id', style)} AND last_sent_at < {_mark('last_sent_at', style)}"
        for style in ("named", "pyformat")
    )
    bulk = (
        f"UPDATE device_state AS s SET {', '.join(f'{c} = u.{c}' for c in columns)} "
        f"FROM unnest({_arrays(('id', *columns))}) AS u(id, {', '.join(columns)}) "
        "WHERE s.id = u.id AND s.last_sent_at < u.last_sent_at"
    )
    return _Statement(named, pyformat, bulk, ("id", *columns))


_NO_SYNC_COMMIT = "SET LOCAL synchronous_commit = off"


def _paramstyle(dialect: Any) -> str:
    if dialect.name not in ("sqlite", "postgresql"):  # pragma: no cover - SQLite and PostgreSQL
        raise NotImplementedError(f"unsupported database {dialect.name!r}")
    return "pyformat" if dialect.paramstyle in ("pyformat", "format") else "named"


def _driver_rows_of(dialect: Any, rows: Iterable[dict[str, object]]) -> None:
    """Datetimes of ``rows`` (in the columns of :data:`_DATETIMES`) as the driver takes
    them: SQLite gets the text SQLAlchemy stores (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC
    without an offset); psycopg the values."""
    if dialect.name != "sqlite":
        return
    # Rows share many of their moments (``now``; a batch's sent_at): each is formatted once.
    texts: dict[datetime, str] = {}
    for row in rows:
        for name in _DATETIMES.intersection(row):
            value = row[name]
            if isinstance(value, datetime):
                text = texts.get(value)
                if text is None:
                    text = texts[value] = naive(value).isoformat(" ", "microseconds")
                row[name] = text


def _fetch_one(
    connection: Any,
    statement: Callable[[str], str],
    params: dict[str, object],
    *,
    lock: str | None = None,
) -> Any:
    """The first row of ``statement`` (SQL per paramstyle) on the driver's own cursor.

    ``lock`` (PostgreSQL only, pyformat, same parameters) runs first, in the same round
    trip: ``statement`` then reads what was committed once the lock was granted."""
    dialect = connection.dialect
    _driver_rows_of(dialect, [params])
    dbapi = connection.connection.dbapi_connection
    cursor = dbapi.cursor()
    try:
        if lock is None or dialect.name != "postgresql":
            cursor.execute(statement(_paramstyle(dialect)), params)
            return cursor.fetchone()
        with dbapi.pipeline():
            cursor.execute(lock, params)
            reader = dbapi.cursor()
            try:
                reader.execute(statement("pyformat"), params)
                return reader.fetchone()
            finally:
                reader.close()
    finally:
        cursor.close()


# PostgreSQL runs heartbeat transactions side by side (SQLite's writer lock serializes
# them): each first locks the rows of its devices, in id order, then reads their states,
# so that two requests for one device never both build on the same earlier state (each
# would log a version change from it). Rows it registers itself are its own already.
_PG_LOCK_DEVICES = (
    "SELECT id FROM device WHERE id = ANY(%(pks)b::integer[]) ORDER BY id FOR NO KEY UPDATE"
)
_PG_LOCK_ONE = {
    "id": "SELECT id FROM device WHERE id = %(value)s FOR NO KEY UPDATE",
    "device_id": "SELECT id FROM device WHERE device_id = %(value)s FOR NO KEY UPDATE",
}


def _lock_devices(session: Session, pks: Collection[int]) -> None:
    if pks and _is_postgresql(session):
        _driver_rows(session, _PG_LOCK_DEVICES, {"pks": sorted(pks)})


def _write(
    session: Session,
    writes: Sequence[tuple[_Statement, list[dict[str, object]]]],
    then: FinalStatement | None = None,
) -> Any:
    """Run ``writes`` (statement, rows) and then ``then`` on the driver's cursor; return the
    first row of ``then`` (None without one). On PostgreSQL they go in one pipeline."""
    if not writes and then is None:
        return None
    connection = session.connection()
    dialect = connection.dialect
    style = _paramstyle(dialect)
    for _, rows in writes:
        _driver_rows_of(dialect, rows)
    dbapi = connection.connection.dbapi_connection
    assert dbapi is not None
    cursor = dbapi.cursor()
    try:
        if dialect.name == "postgresql":
            with dbapi.pipeline():
                # Heartbeats only: the commit does not wait for the WAL flush. A server
                # crash may lose the last fraction of a second of them (devices send
                # again); other transactions keep the server's setting.
                cursor.execute(_NO_SYNC_COMMIT)
                return _run(cursor, style, writes, then)
        return _run(cursor, style, writes, then)
    finally:
        cursor.close()


def _run(
    cursor: Any,
    style: str,
    writes: Sequence[tuple[_Statement, list[dict[str, object]]]],
    then: FinalStatement | None,
) -> Any:
    for statement, rows in writes:
        if style == "pyformat" and len(rows) > 1 and statement.bulk:
            cursor.execute(statement.bulk, {c: [row[c] for row in rows] for c in statement.columns})
        elif len(rows) > 1:
            cursor.executemany(statement(style), rows)
        else:
            cursor.execute(statement(style), rows[0])
    if then is None:
        return None
    sql, params = then
    # Its own cursor: in a pipeline, a cursor's results are those of its first statement.
    final = cursor.connection.cursor()
    try:
        final.execute(sql[style], params)
        return final.fetchone()
    finally:
        final.close()


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
    """Validate ``items`` (from :func:`parse_batch`) against the stores table and apply them.

    ``stores`` replaces the lookup in the stores table (e.g. a cache), ``devices`` is
    :func:`ingest`'s cache of device ids, ``then`` its final statement.
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
