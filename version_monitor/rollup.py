"""Daily rollups: devices and stores per app, version, channel and device kind.

Which devices count on day D, and with which version, is decided from what we keep (the
latest state per device and the version-change log; there is no raw heartbeat log):

- A device counts on D when it was first seen before D ended and last seen on or after D
  began (``first_seen < end`` and ``last_seen >= start``). A device that is offline for days
  and comes back is therefore counted on the days in between when those days are rolled up
  *again* after its return; rolled up on the day itself (the worker rolls up today and
  yesterday every run) it is not. Offline devices never count after their last heartbeat,
  so they stay out of the percentages computed from these rows.
- Its version on D is the one it ran at the end of D (at ``now`` for today): the newest
  ``VersionChange`` before that moment. The log has an entry for a device's first version,
  so it alone answers this; when the state's ``version_since`` is before the moment, the
  current version is the answer and the log is not read at all.
- Channel and device kind are the ones the device last reported with.

Recomputing a day deletes its rows and inserts them again from one ``INSERT … SELECT``, in
the caller's transaction, so running it twice gives the same rows. The day's totals over
device kinds (``adoption_day_total``) are recomputed from those rows right after.
"""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Result, and_, delete, func, literal, select, union_all
from sqlmodel import Session

from version_monitor.models import (
    adoption_daily_table,
    adoption_day_total_table,
    adoption_rollup_stamp_table,
    device_state_table,
    version_change_table,
)
from version_monitor.seen import seen_since

__all__ = [
    "new_stamp",
    "prune_rollups",
    "rebuild_totals",
    "rollup_day",
    "rollup_range",
    "rollup_recent",
]


def _rowcount(result: Result[Any]) -> int:
    return max(cast(CursorResult[Any], result).rowcount, 0)


def rebuild_totals(session: Session, *, start: date | None = None, end: date | None = None) -> None:
    """Recompute ``adoption_day_total`` from ``adoption_daily`` for ``start``…``end``
    (inclusive; open ends: every day)."""
    ad, total = adoption_daily_table, adoption_day_total_table
    delete_totals = delete(total)
    sums = select(
        ad.c.day,
        ad.c.app,
        ad.c.version_key,
        ad.c.channel,
        func.min(ad.c.version),
        func.sum(ad.c.devices),
    ).group_by(ad.c.day, ad.c.app, ad.c.version_key, ad.c.channel)
    if start is not None:
        delete_totals = delete_totals.where(total.c.day >= start)
        sums = sums.where(ad.c.day >= start)
    if end is not None:
        delete_totals = delete_totals.where(total.c.day <= end)
        sums = sums.where(ad.c.day <= end)
    session.execute(delete_totals)
    columns = ["day", "app", "version_key", "channel", "version", "devices"]
    session.execute(total.insert().from_select(columns, sums))
    new_stamp(session)


def new_stamp(session: Session) -> None:
    """Give ``adoption_rollup_stamp`` a new random value (caches keyed by it are void)."""
    from version_monitor.ingest import dialect_insert

    stamp = random.getrandbits(62)
    upsert = dialect_insert(session, adoption_rollup_stamp_table).values(id=1, stamp=stamp)
    session.execute(
        upsert.on_conflict_do_update(index_elements=["id"], set_={"stamp": stamp})  # type: ignore[attr-defined]
    )


def rollup_day(session: Session, *, day: date, now: datetime) -> int:
    """Recompute the rollup rows of ``day`` (all apps); returns how many rows it holds now."""
    ad = adoption_daily_table
    session.execute(delete(ad).where(ad.c.day == day))
    start = datetime.combine(day, time())
    if start >= now:
        rebuild_totals(session, start=day, end=day)
        return 0
    moment = min(start + timedelta(days=1), now)

    ds = device_state_table
    vc = version_change_table
    present = and_(ds.c.first_seen < moment, seen_since(ds, start))
    unchanged = select(
        ds.c.app,
        ds.c.version,
        ds.c.version_key,
        ds.c.channel,
        ds.c.device_kind,
        ds.c.store_id,
    ).where(present, ds.c.version_since < moment)
    ranked = (
        select(
            ds.c.app,
            vc.c.to_version.label("version"),
            vc.c.to_key.label("version_key"),
            ds.c.channel,
            ds.c.device_kind,
            ds.c.store_id,
            func.row_number()
            .over(
                partition_by=(vc.c.device_id, vc.c.app),
                order_by=(vc.c.at.desc(), vc.c.id.desc()),
            )
            .label("rank"),
        )
        .join(vc, and_(vc.c.device_id == ds.c.device_id, vc.c.app == ds.c.app))
        .where(present, ds.c.version_since >= moment, vc.c.at < moment)
        .subquery("ranked")
    )
    changed = select(
        ranked.c.app,
        ranked.c.version,
        ranked.c.version_key,
        ranked.c.channel,
        ranked.c.device_kind,
        ranked.c.store_id,
    ).where(ranked.c.rank == 1)
    devices = union_all(unchanged, changed).subquery("devices")
    counts = select(
        literal(day, ad.c.day.type).label("day"),
        devices.c.app,
        devices.c.version,
        devices.c.version_key,
        devices.c.channel,
        devices.c.device_kind,
        func.count().label("devices"),
        func.count(devices.c.store_id.distinct()).label("stores"),
    ).group_by(
        devices.c.app,
        devices.c.version,
        devices.c.version_key,
        devices.c.channel,
        devices.c.device_kind,
    )
    columns = [
        "day",
        "app",
        "version",
        "version_key",
        "channel",
        "device_kind",
        "devices",
        "stores",
    ]
    session.execute(ad.insert().from_select(columns, counts))
    rebuild_totals(session, start=day, end=day)
    # Counted rather than read from rowcount, which drivers report unevenly for INSERT…SELECT.
    written = session.execute(select(func.count()).where(ad.c.day == day)).scalar_one()
    return int(written)


def rollup_range(session: Session, *, start: date, end: date, now: datetime) -> int:
    """Recompute every day from ``start`` to ``end`` inclusive; returns the rows written."""
    written = 0
    day = start
    while day <= end:
        written += rollup_day(session, day=day, now=now)
        day += timedelta(days=1)
    return written


def rollup_recent(session: Session, *, now: datetime, days: int = 2) -> int:
    """What the worker runs periodically: today and the ``days - 1`` days before it."""
    today = now.date()
    return rollup_range(session, start=today - timedelta(days=days - 1), end=today, now=now)


def prune_rollups(session: Session, *, keep_days: int, now: datetime) -> int:
    """Delete rollup rows older than ``keep_days`` days before today; returns how many."""
    if keep_days < 1:
        raise ValueError("keep_days must be at least 1")
    cutoff = now.date() - timedelta(days=keep_days)
    ad, total = adoption_daily_table, adoption_day_total_table
    result = session.execute(delete(ad).where(ad.c.day < cutoff))
    session.execute(delete(total).where(total.c.day < cutoff))
    new_stamp(session)
    return _rowcount(result)
