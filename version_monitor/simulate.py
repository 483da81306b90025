"""Realistic adoption history for demos and benchmarks, written straight into the tables.

Given the fleet (``beta``'s stores and devices) and a list of releases, this produces months
of history: beta stores take each release first, everyone else after it goes to every
store, devices update in a night or two with a long tail, some devices stop updating
(stragglers), some are offline (not seen for a day or more) or gone (more than a week),
and some join the fleet later. It writes ``DeviceState``, ``VersionChange`` and the
``AdoptionDaily`` rows that :func:`version_monitor.rollup.rollup_day` would compute from them
(the same rules, applied to intervals in memory instead of one query per day).

Deterministic for a given fleet, release list, ``now`` and ``seed``. Inserts are set-based
(``COPY`` on PostgreSQL, ``executemany`` elsewhere); nothing is committed here.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Table, delete, select
from sqlmodel import Session, UTCDateTime

import utc
from beta.models import DEVICE_KINDS
from version_monitor.adoption import ReleaseInfo
from version_monitor.models import (
    adoption_daily_table,
    adoption_day_total_table,
    device_state_table,
    device_table,
    store_table,
    version_change_table,
)
from version_monitor.rollup import rebuild_totals
from version_monitor.seen import seen_hour
from versioning.storage_key import key_of

__all__ = ["SimulationResult", "build_fleet", "simulate_adoption", "weekly_releases"]

REGIONS = ("hokkaido", "tohoku", "kanto", "chubu", "kansai", "chugoku", "shikoku", "kyushu")


def weekly_releases(
    *,
    first: date,
    weeks: int,
    major: int = 3,
    first_minor: int = 0,
    beta_days: int = 2,
    now: datetime | None = None,
) -> list[ReleaseInfo]:
    """One release a week from ``first`` (``3.0.0``, ``3.1.0``, …): beta on the day at 09:00,
    every store ``beta_days`` later; releases whose dates are after ``now`` are left out and
    a rollout after ``now`` is left unset (still in beta)."""
    releases = []
    for week in range(weeks):
        beta_at = datetime.combine(first + timedelta(weeks=week), time(9))
        rolled_out_at: datetime | None = beta_at + timedelta(days=beta_days)
        if now is not None:
            if beta_at > now:
                break
            if rolled_out_at and rolled_out_at > now:
                rolled_out_at = None
        releases.append(
            ReleaseInfo(f"{major}.{first_minor + week}.0", beta_at, rolled_out_at=rolled_out_at)
        )
    return releases


def _for_column(table: Table, column: str, moment: datetime) -> datetime:
    if isinstance(table.c[column].type, UTCDateTime):
        return utc.aware(moment)
    return moment


def _bulk_insert(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        columns = list(rows[0])
        raw: Any = session.connection().connection.driver_connection
        names = ", ".join(f'"{c}"' for c in columns)
        with raw.cursor().copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])
        return
    for start in range(0, len(rows), 50_000):
        session.execute(table.insert(), rows[start : start + 50_000])


def build_fleet(
    session: Session,
    *,
    stores: int,
    devices: int,
    now: datetime,
    beta_share: float = 0.05,
    seed: int = 0,
    prefix: str = "S",
) -> None:
    """Insert ``stores`` stores (``S00001`` …, a ``beta_share`` of them in beta) and
    ``devices`` devices spread over them, kinds weighted towards POS registers."""
    rng = random.Random(seed)
    stamp = _for_column(store_table, "created_at", now)
    store_rows = [
        {
            "external_id": f"{prefix}{n:05d}",
            "name": f"Restaurant {prefix}{n:05d}",
            "region": rng.choice(REGIONS),
            "timezone": "Asia/Tokyo",
            "tags": [],
            "update_window_start": "02:00",
            "update_window_end": "05:00",
            "in_beta": rng.random() < beta_share,
            "beta_pinned": False,
            "created_at": stamp,
            "updated_at": stamp,
        }
        for n in range(1, stores + 1)
    ]
    session.execute(store_table.insert(), store_rows)
    ids = dict(
        session.execute(
            select(store_table.c.external_id, store_table.c.id).where(
                store_table.c.external_id.in_([r["external_id"] for r in store_rows])
            )
        ).all()
    )
    store_ids = [ids[r["external_id"]] for r in store_rows]
    device_stamp = _for_column(device_table, "created_at", now)
    kinds = list(DEVICE_KINDS)
    weights = [5, 3, 1, 1][: len(kinds)] + [1] * (len(kinds) - 4)
    device_rows = []
    for n in range(devices):
        store_index = n % stores if n < stores else rng.randrange(stores)
        kind = rng.choices(kinds, weights)[0]
        device_rows.append(
            {
                "device_id": f"{prefix}{store_index + 1:05d}-{kind}-{n:06d}",
                "store_id": store_ids[store_index],
                "kind": kind,
                "label": "",
                "created_at": device_stamp,
            }
        )
    for start in range(0, len(device_rows), 50_000):
        session.execute(device_table.insert(), device_rows[start : start + 50_000])


@dataclass(frozen=True)
class SimulationResult:
    devices: int
    version_changes: int
    rollup_rows: int
    first_day: date
    last_day: date


def _day(moment: datetime, origin: date) -> int:
    return (moment.date() - origin).days


def _merge(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(intervals):
        if merged and lo <= merged[-1][1]:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged


def simulate_adoption(
    session: Session,
    *,
    app: str,
    releases: Sequence[ReleaseInfo],
    start: datetime,
    now: datetime,
    seed: int = 0,
    straggler_share: float = 0.03,
    offline_share: float = 0.02,
    gone_share: float = 0.01,
    late_joiner_share: float = 0.1,
) -> SimulationResult:
    """Replace ``app``'s adoption data with history from ``start`` to ``now`` for every device
    of the fleet. ``releases`` need a ``beta_at``; ``rolled_out_at`` unset means beta only."""
    ds, vc, ad = device_state_table, version_change_table, adoption_daily_table
    for table in (ad, adoption_day_total_table, vc, ds):
        session.execute(delete(table).where(table.c.app == app))

    ordered = sorted((r for r in releases if r.beta_at), key=lambda r: r.key)
    keys = {r.version: r.key for r in ordered}
    fleet = session.execute(
        select(
            device_table.c.id, device_table.c.store_id, device_table.c.kind, store_table.c.in_beta
        )
        .join(store_table, store_table.c.id == device_table.c.store_id)
        .order_by(device_table.c.store_id, device_table.c.id)
    ).all()
    rng = random.Random(seed)
    origin = start.date()
    today = _day(now, origin)
    span = (now - start).total_seconds()
    device_diff: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0] * (today + 2))
    store_diff: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0] * (today + 2))
    states: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    store_intervals: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    current_store: int | None = None
    current_channel = "stable"

    def flush_store() -> None:
        for (version, kind), spans in store_intervals.items():
            line = store_diff[(version, current_channel, kind)]
            for lo, hi in _merge(spans):
                line[lo] += 1
                line[hi] -= 1
        store_intervals.clear()

    for device_pk, store_pk, kind, in_beta in fleet:
        if store_pk != current_store:
            flush_store()
            current_store = store_pk
        channel = current_channel = "beta" if in_beta else "stable"
        roll = rng.random()
        if roll < late_joiner_share:
            first_seen = start + timedelta(seconds=rng.uniform(0, span))
        else:
            first_seen = start + timedelta(seconds=rng.uniform(0, 6 * 3600))
        profile = rng.random()
        if profile < gone_share:
            last_seen = first_seen + (now - first_seen) * rng.random()
            last_seen = min(last_seen, now - timedelta(days=8))
        elif profile < gone_share + offline_share:
            last_seen = now - timedelta(hours=rng.uniform(25, 6 * 24))
        else:
            last_seen = now - timedelta(minutes=rng.uniform(0, 30))
        last_seen = max(last_seen, first_seen)
        stops_at = (
            start + timedelta(seconds=rng.uniform(0, span))
            if rng.random() < straggler_share
            else now
        )
        pace = rng.choice((0.5, 1.0, 1.0, 1.0, 2.0, 4.0))

        initial = ordered[0].version if ordered else "1.0.0"
        timeline: list[tuple[datetime, str]] = []
        for release in ordered:
            available = release.beta_at if in_beta else release.rolled_out_at
            if available is None:
                continue
            if available <= first_seen:
                initial = release.version
                continue
            # Devices update in the store's night window; some wait for a reboot.
            delay = timedelta(hours=rng.expovariate(1 / 14) * pace)
            if rng.random() < 0.08:
                delay += timedelta(days=rng.uniform(1, 6))
            upgrade = available + delay
            if upgrade < min(last_seen, stops_at):
                timeline.append((upgrade, release.version))
        # A later release that arrived first makes the skipped one vanish.
        kept: list[tuple[datetime, str]] = []
        for moment, version in reversed(timeline):
            if not kept or moment < kept[-1][0]:
                kept.append((moment, version))
        kept.reverse()
        history = [(first_seen, initial), *kept]

        previous: str | None = None
        first_day, last_day = _day(first_seen, origin), _day(last_seen, origin)
        for i, (moment, version) in enumerate(history):
            changes.append(
                {
                    "device_id": device_pk,
                    "app": app,
                    "store_id": store_pk,
                    "from_version": previous,
                    "to_version": version,
                    "to_key": keys.get(version) or key_of(version),
                    "at": moment,
                }
            )
            previous = version
            ends = _day(history[i + 1][0], origin) if i + 1 < len(history) else today + 1
            lo, hi = max(_day(moment, origin), first_day), min(ends, last_day + 1)
            if lo < hi:
                line = device_diff[(version, channel, kind)]
                line[lo] += 1
                line[hi] -= 1
                store_intervals[(version, kind)].append((lo, hi))
        since, version = history[-1]
        states.append(
            {
                "device_id": device_pk,
                "app": app,
                "store_id": store_pk,
                "device_kind": kind,
                "channel": channel,
                "version": version,
                "version_key": keys.get(version) or key_of(version),
                "version_since": since,
                "first_seen": first_seen,
                "last_seen": last_seen,
                "seen_hour": seen_hour(last_seen),
                "last_sent_at": last_seen,
                "received_at": last_seen,
            }
        )
    flush_store()

    rollups: list[dict[str, Any]] = []
    for (version, channel, kind), line in device_diff.items():
        stores_line = store_diff[(version, channel, kind)]
        devices = stores = 0
        for index in range(today + 1):
            devices += line[index]
            stores += stores_line[index]
            if devices:
                rollups.append(
                    {
                        "day": origin + timedelta(days=index),
                        "app": app,
                        "version": version,
                        "version_key": keys.get(version) or key_of(version),
                        "channel": channel,
                        "device_kind": kind,
                        "devices": devices,
                        "stores": stores,
                    }
                )
    _bulk_insert(session, ds, states)
    _bulk_insert(session, vc, changes)
    _bulk_insert(session, ad, rollups)
    rebuild_totals(session)
    return SimulationResult(
        devices=len(states),
        version_changes=len(changes),
        rollup_rows=len(rollups),
        first_day=origin,
        last_day=origin + timedelta(days=today),
    )
