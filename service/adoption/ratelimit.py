"""Heartbeats per API token per minute, counted in the database so every web process (on
every machine) shares one count.

A fixed one-minute window per token (``heartbeat_rate``: token, shard, window, heartbeats).
A request is counted by one statement in its own transaction, the last before the commit:
it adds the request's items to this process's shard row unless the token's rows of this
minute, summed, would then pass the limit, and returns nothing then. The caller rolls the
whole request back on a refusal, so a refused request stores nothing and is not counted.
Rejected items of an accepted request count; a request whose items were all rejected is
rolled back and does not.

Each process writes its own shard row (process id modulo :data:`SHARDS`), so the row lock
that an upsert holds until the commit never makes another process wait (one row per token
made every heartbeat transaction on PostgreSQL wait for the previous one's commit). The
sum is read without locks, so requests running at the same moment in several processes
can pass the limit by at most one request each.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

from sqlalchemy import text
from sqlmodel import Session

import service.adoption.models  # noqa: F401  (the heartbeat_rate table)
from version_monitor.ingest import FinalStatement

__all__ = [
    "SHARDS",
    "WINDOW_SECONDS",
    "Refusal",
    "count_queued",
    "plan",
    "refusal_unless_counted",
    "window_of",
]

WINDOW_SECONDS = 60
SHARDS = 16

_INSERT = (
    "INSERT INTO heartbeat_rate (token_id, shard, window_minute, heartbeats) "
    "SELECT CAST({t} AS INTEGER), CAST({s} AS INTEGER), CAST({w} AS INTEGER), "
    "CAST({n} AS INTEGER) "
)
_ADD = (
    "ON CONFLICT (token_id, shard) DO UPDATE SET "
    "heartbeats = CASE WHEN heartbeat_rate.window_minute = excluded.window_minute "
    "THEN heartbeat_rate.heartbeats + excluded.heartbeats ELSE excluded.heartbeats END, "
    "window_minute = excluded.window_minute "
)
_SUM = (
    "SELECT COALESCE(SUM(heartbeats), 0) FROM heartbeat_rate "
    "WHERE token_id = {t} AND window_minute = {w}"
)
_UPSERT = _INSERT + "WHERE (" + _SUM + ") + {n} <= {limit} " + _ADD + "RETURNING heartbeats"
# Per DBAPI paramstyle: "named" for SQLite, "pyformat" for psycopg.
_SQL = {
    "named": _UPSERT.format(t=":t", s=":s", w=":w", n=":n", limit=":limit"),
    "pyformat": _UPSERT.format(t="%(t)s", s="%(s)s", w="%(w)s", n="%(n)s", limit="%(limit)s"),
}


# Queued heartbeats (service/adoption/queue.py) were answered already: they are added
# whatever the count, and the token's total for the window is read back.
# (SQLite reads ``ON CONFLICT`` after ``INSERT ... SELECT`` only after a WHERE.)
_COUNT_QUEUED = text(_INSERT.format(t=":t", s=":s", w=":w", n=":n") + "WHERE true " + _ADD)
_TOTAL = text(_SUM.format(t=":t", w=":w"))


@dataclass(frozen=True)
class Refusal:
    """Why a request was refused and when to try again (whole seconds, at least 1)."""

    limit: int
    retry_after: int
    message: str


def plan(
    *, token_id: int, items: int, limit: int, now: float | None = None
) -> Refusal | FinalStatement | None:
    """What counting ``items`` takes: None (no limit), a :class:`Refusal` without asking the
    database (more items than the limit), or the counting statement, whose result goes to
    :func:`refusal_unless_counted`. :func:`version_monitor.ingest.ingest` runs it after its
    writes (on PostgreSQL in the same round trip)."""
    if limit <= 0:
        return None
    moment = time.time() if now is None else now
    window = window_of(moment)
    if items > limit:
        return Refusal(
            limit,
            _retry_after(window, moment),
            f"this token may send at most {limit} heartbeats a minute; "
            f"this request has {items}: send smaller batches",
        )
    params = {"t": token_id, "s": os.getpid() % SHARDS, "w": window, "n": items, "limit": limit}
    return _SQL, params


def refusal_unless_counted(
    counted: object, *, limit: int, now: float | None = None
) -> Refusal | None:
    """None when the counting statement returned a row, else the refusal (and Retry-After)."""
    if counted is not None:
        return None
    moment = time.time() if now is None else now
    retry_after = _retry_after(window_of(moment), moment)
    return Refusal(
        limit,
        retry_after,
        f"this token sent its {limit} heartbeats for this minute; try again in {retry_after} s",
    )


def window_of(moment: float) -> int:
    """The counting window (minute) of a Unix time."""
    return int(moment // WINDOW_SECONDS)


def count_queued(session: Session, *, token_id: int, window: int, items: int) -> int:
    """Count ``items`` queued heartbeats of a token, answered in ``window``, in this
    process's shard row (no refusal: they were accepted already); the token's total for the
    window, all processes together."""
    params = {"t": token_id, "s": os.getpid() % SHARDS, "w": window, "n": items}
    session.execute(_COUNT_QUEUED, params)
    return int(session.execute(_TOTAL, {"t": token_id, "w": window}).scalar_one())


def _retry_after(window: int, moment: float) -> int:
    return max(1, math.ceil((window + 1) * WINDOW_SECONDS - moment))
