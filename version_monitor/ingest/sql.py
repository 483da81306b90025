"""The SQL of heartbeat ingestion, per database (SQLite and PostgreSQL).

Reads, locks and writes run as plain SQL on the driver's own cursor: SQLAlchemy's per-row
parameter processing cost more than the database's work. PostgreSQL takes a batch's keys
and rows as binary arrays (``unnest``) and runs a request's writes in one pipeline; SQLite
takes them as JSON (``json_each``) and datetimes as the text SQLAlchemy stores.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Any, TypeAlias

from sqlalchemy import and_, bindparam, select
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, UTCDateTime

from utc import aware, naive
from version_monitor.ingest.validation import ValidHeartbeat
from version_monitor.models import device_state_table, device_table

__all__ = [
    "MOVABLE",
    "ONE_STATE",
    "PG_LOCK_ONE",
    "REGISTER_ONE",
    "Existing",
    "FinalStatement",
    "Rows",
    "as_column_value",
    "dialect_insert",
    "existing_states",
    "fetch_one",
    "lock_devices",
    "lookup_devices",
    "register_devices",
    "write",
]


FinalStatement: TypeAlias = tuple[Mapping[str, str], Mapping[str, object]]
"""A statement of the caller's to run right after a request's writes, in the same
transaction: its SQL per DBAPI paramstyle (``"named"`` for SQLite, ``"pyformat"`` for
psycopg) and its parameters. :func:`~version_monitor.ingest.apply.ingest` takes it as
``then`` and returns its first row (or None) as ``IngestResult.then_row``; on PostgreSQL it
goes in the writes' pipeline, so it costs no round trip of its own. The service counts a
request against its API token's rate limit this way (``service.adoption.ratelimit.plan``):
no row back means the request is refused, and the caller rolls it back."""


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
# What a heartbeat needs of a device's state (:class:`Existing`, in this order).
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


def lookup_devices(session: Session, device_ids: Collection[str]) -> dict[str, int]:
    """The primary keys of the known devices of ``device_ids``, by external id."""
    if len(device_ids) == 1:
        (device_id,) = device_ids
        pk = session.connection().execute(_DEVICE_ID_QUERY, {"device_id": device_id}).scalar()
        return {} if pk is None else {device_id: pk}
    if _is_postgresql(session):
        rows = _driver_rows(session, _PG_DEVICE_IDS, {"ids": sorted(device_ids)})
    else:
        rows = _driver_rows(session, _SQLITE_DEVICE_IDS, {"ids": json.dumps(sorted(device_ids))})
    return {device_id: pk for device_id, pk in rows}


def register_devices(
    session: Session, unknown: Mapping[str, ValidHeartbeat], *, now: datetime
) -> dict[str, int]:
    """Register the devices of ``unknown`` (external id → a heartbeat of it) in one
    statement: the primary keys of those it inserted, by external id (a device registered
    meanwhile by a concurrent request is not among them)."""
    if _is_postgresql(session):
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
    else:
        params: dict[str, object] = {
            "rows": json.dumps([[d, hb.store_id, hb.device_kind] for d, hb in unknown.items()]),
            "created_at": now,
        }
        _driver_rows_of(session.get_bind().dialect, [params])
        rows = _driver_rows(session, _SQLITE_REGISTER, params)
    return {device_id: pk for device_id, pk in rows}


_STATE_QUERY = select(*(device_state_table.c[c] for c in _EXISTING)).where(
    and_(
        device_state_table.c.device_id == bindparam("device_pk"),
        device_state_table.c.app == bindparam("app"),
    )
)


@dataclass
class Existing:
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
    def of(cls, row: Sequence[Any]) -> Existing:
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


def _as_datetime(value: Any) -> datetime:
    # SQLite hands back the text SQLAlchemy stored (``YYYY-MM-DD HH:MM:SS.ffffff``).
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def existing_states(
    session: Session, keys: Collection[tuple[int, str]]
) -> dict[tuple[int, str], Existing]:
    """The states there are of ``keys`` (device primary key, app)."""
    found: dict[tuple[int, str], Existing] = {}
    if not keys:
        return found
    if len(keys) == 1:
        ((device_pk, app),) = keys
        row = (
            session.connection().execute(_STATE_QUERY, {"device_pk": device_pk, "app": app}).first()
        )
        if row is not None:
            found[(device_pk, app)] = Existing.of(row)
        return found
    device_pks = sorted({pk for pk, _ in keys})
    if _is_postgresql(session):
        rows = _driver_rows(session, _PG_STATES, {"pks": device_pks})
    else:
        rows = _driver_rows(session, _SQLITE_STATES, {"pks": json.dumps(device_pks)})
    for pk, app, *state in rows:
        if (pk, app) in keys:
            found[(pk, app)] = Existing.of(state)
    return found


# One device's state for one app, with the device's primary key: one statement (and one
# round trip) instead of two. The device is named by external id or, when cached, by key.
_ONE_STATE_SQL = (
    f"SELECT device.id, {_EXISTING_SQL} FROM device "
    "LEFT JOIN device_state ON device_state.device_id = device.id AND device_state.app = {app} "
    "WHERE device.{key} = {value}"
)
ONE_STATE = {
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
REGISTER_ONE = _insert(
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
MOVABLE = {
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
    columns = (*(c for column in moved for c in MOVABLE[column]), *_UPDATED_ALWAYS)
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


@dataclass
class Rows:
    """What a call writes: first states of devices, updates of known states (by the
    indexed columns they move, see :data:`MOVABLE`), version-change rows."""

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


def fetch_one(
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
PG_LOCK_ONE = {
    "id": "SELECT id FROM device WHERE id = %(value)s FOR NO KEY UPDATE",
    "device_id": "SELECT id FROM device WHERE device_id = %(value)s FOR NO KEY UPDATE",
}


def lock_devices(session: Session, pks: Collection[int]) -> None:
    """On PostgreSQL, lock the rows of the devices ``pks`` until the commit, in id order."""
    if pks and _is_postgresql(session):
        _driver_rows(session, _PG_LOCK_DEVICES, {"pks": sorted(pks)})


def write(
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
