"""Adoption reports: the queries behind the pages, the API and the checklist.

Every function reads with set-based SQL (grouped in the database, never a row per device
through the ORM) and returns plain dataclasses with ``as_dict()`` for JSON and ``rows()``
where a CSV makes sense. The arithmetic lives in :mod:`version_monitor.adoption`.

Live reports (census, stragglers, offline, beta adoption, stalls) read ``DeviceState``; a
device not seen for ``OFFLINE_AFTER`` (24 h) is offline and kept out of every percentage,
and listed by :func:`offline_devices` instead. Reports over time read ``AdoptionDaily``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import and_, case, func, select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from version_monitor.adoption import (
    THRESHOLDS,
    AdoptionSeries,
    DailyCount,
    Milestone,
    ReleaseInfo,
    build_series,
    stopped_rising,
    time_to_thresholds,
)
from version_monitor.models import (
    adoption_daily_table,
    adoption_day_total_table,
    adoption_rollup_stamp_table,
    device_state_table,
    device_table,
    store_table,
)
from version_monitor.seen import seen_before, seen_since
from versioning.storage_key import key_of

__all__ = [
    "GONE_AFTER",
    "OFFLINE_AFTER",
    "Census",
    "HoldingBack",
    "OfflineDevice",
    "OfflineReport",
    "Stall",
    "Straggler",
    "StragglerReport",
    "adoption_over_time",
    "beta_adoption",
    "census",
    "detect_stalls",
    "offline_devices",
    "stragglers",
    "time_to_adoption",
]

OFFLINE_AFTER = timedelta(hours=24)
GONE_AFTER = timedelta(days=7)

ds = device_state_table
st = store_table
ad = adoption_daily_table
dv = device_table


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _share(part: int, total: int) -> float:
    return part / total if total else 0.0


# --- adoption over time -------------------------------------------------------------------


@contextmanager
def _day_totals(
    session: Session,
    *,
    app: str,
    start: date,
    end: date,
    only: Sequence[date] | None = None,
) -> Iterator[Iterable[tuple[Any, ...]]]:
    """The day totals of ``app`` from ``start`` to ``end`` as the driver's cursor gives them:
    (day, version, version_key, channel, devices) in day, key and channel order, the day a
    ``date`` on PostgreSQL and ISO text on SQLite.

    A year is ~18,000 rows. Read one at a time, straight from the DB-API cursor, they are
    folded and dropped: no SQLAlchemy row per row, and no list of them that survives long
    enough to set off the garbage collector's full collections (those made the tail).
    """
    tot = adoption_day_total_table
    conditions = [tot.c.app == app, tot.c.day >= start, tot.c.day <= end]
    if only is not None:
        conditions.append(tot.c.day.in_(list(only)))
    statement = (
        select(tot.c.day, tot.c.version, tot.c.version_key, tot.c.channel, tot.c.devices)
        .where(*conditions)
        .order_by(tot.c.day, tot.c.version_key, tot.c.channel)
    )
    connection = session.connection()  # begins the session's transaction if need be
    compiled = statement.compile(
        dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
    )
    params = compiled.construct_params()
    args: Any = params
    if compiled.positiontup is not None:  # SQLite's "?" placeholders; days as ISO text
        args = tuple(
            value.isoformat() if isinstance(value, date) else value
            for value in (params[name] for name in compiled.positiontup)
        )
    cursor = connection.connection.cursor()
    try:
        cursor.execute(compiled.string, args)
        yield cast(Iterable[tuple[Any, ...]], cursor)  # DB-API cursors iterate their rows
    finally:
        cursor.close()


def _daily_counts(
    session: Session,
    *,
    app: str,
    start: date,
    end: date,
) -> Iterator[DailyCount]:
    """The day totals as :class:`DailyCount` rows, one at a time."""
    parsed: dict[str, date] = {}
    with _day_totals(session, app=app, start=start, end=end) as rows:
        for day, version, key, channel, devices in rows:
            if isinstance(day, str):
                text = day
                day = parsed.get(text)
                if day is None:
                    day = parsed[text] = date.fromisoformat(text)
            yield DailyCount(day, version, key, channel, devices)


def adoption_over_time(
    session: Session,
    *,
    app: str,
    start: date,
    end: date,
    releases: Sequence[ReleaseInfo] = (),
    step: int = 1,
) -> AdoptionSeries:
    """Share of each version per day from ``start`` to ``end``: beta, the rest, and all.

    ``step`` > 1 samples one day in ``step`` (counting back from ``end``, which is always
    included): a year drawn weekly reads a seventh of the rows.

    :func:`version_monitor.adoption.build_series` folds the driver's rows as they are read.
    """
    if step < 1:
        raise ValueError("step must be at least 1")
    span = (end - start).days
    days = sorted(end - timedelta(days=n) for n in range(0, span + 1, step))
    shown = [
        r
        for r in releases
        if any(start <= m.date() <= end for m in (r.beta_at, r.rolled_out_at) if m)
    ]
    only = days if step > 1 else None
    with _day_totals(session, app=app, start=start, end=end, only=only) as rows:
        return build_series(app, rows, days=days, releases=shown)


def time_to_adoption(
    session: Session,
    *,
    app: str,
    releases: Sequence[ReleaseInfo],
    thresholds: Sequence[float] = THRESHOLDS,
    until: date | None = None,
) -> list[Milestone]:
    """Days to 50 / 80 / 95 % adoption for each release, beta and overall (from rollups).

    Kept per process for the same arguments while the rollup stamp holds (every write of
    day totals changes it): one small read instead of a year of day totals.
    """
    starts = [m.date() for r in releases for m in (r.beta_at, r.rolled_out_at) if m]
    if not starts:
        return time_to_thresholds([], releases, thresholds=thresholds)
    stamp = session.execute(_STAMP_QUERY).scalar()
    key = (app, tuple(releases), tuple(thresholds), until)
    cached = _milestones.get(key)
    if stamp is not None and cached is not None and cached[0] == stamp:
        return list(cached[1])
    end = until or date.max
    counts = _daily_counts(session, app=app, start=min(starts), end=end)
    result = time_to_thresholds(counts, releases, thresholds=thresholds)
    if stamp is not None:
        if len(_milestones) >= _MILESTONES_KEPT:
            _milestones.clear()
        _milestones[key] = (stamp, tuple(result))
    return result


_STAMP_QUERY = select(adoption_rollup_stamp_table.c.stamp).where(
    adoption_rollup_stamp_table.c.id == 1
)
_MILESTONES_KEPT = 256
_milestones: dict[
    tuple[str, tuple[ReleaseInfo, ...], tuple[float, ...], date | None],
    tuple[int, tuple[Milestone, ...]],
] = {}


# --- census -------------------------------------------------------------------------------


@dataclass
class Census:
    """Today's devices and stores per version, per device kind and per region."""

    app: str
    at: datetime
    devices: int  # counted: seen within 24 h
    stores: int
    offline: int  # not seen for 24 h but within 7 days
    gone: int  # not seen for 7 days
    by_version: list[dict[str, Any]] = field(default_factory=list)
    by_kind: list[dict[str, Any]] = field(default_factory=list)
    by_region: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return data


_side_pool: ThreadPoolExecutor | None = None
_side_pool_lock = threading.Lock()


def _alongside(
    session: Session, statements: Sequence[Any], *, concurrently: bool
) -> Callable[[], list[Sequence[Any]]]:
    """Start ``statements`` on a second connection of the session's engine, to run while
    the caller runs its own query, and return what gives their rows (in order).

    Only when ``concurrently`` (the caller's transaction has written nothing the second
    connection would miss) and on PostgreSQL: its server works on both at once, on its own
    CPUs. Each statement sees the data committed when it starts, as it would on the session
    under PostgreSQL's READ COMMITTED. Otherwise (and on SQLite: one writer lock and, in
    memory, one shared connection) they run on the session when their rows are asked for.
    """
    bind = session.get_bind()
    if not concurrently or bind.dialect.name != "postgresql":
        return lambda: [session.execute(statement).all() for statement in statements]
    engine = bind.engine

    def run() -> list[Sequence[Any]]:
        with engine.connect() as connection:
            return [connection.execute(statement).all() for statement in statements]

    global _side_pool
    with _side_pool_lock:
        if _side_pool is None:
            _side_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="relgov-reports")
        future = _side_pool.submit(run)
    return future.result


def census(
    session: Session,
    *,
    app: str,
    now: datetime,
    offline_after: timedelta = OFFLINE_AFTER,
    concurrently: bool = False,
) -> Census:
    """Devices and stores per version, kind and region, offline devices left out.

    ``concurrently`` (for a caller that has written nothing in its transaction, such as a
    page or API read): on PostgreSQL the offline counts and the per-kind grouping run on a
    second connection while the main statement runs (~25 of ~85 ms).
    """
    cutoff = now - offline_after
    live = and_(ds.c.app == app, seen_since(ds, cutoff))
    away_and_kinds = _alongside(
        session,
        [
            select(
                func.count(),
                func.coalesce(func.sum(case((seen_before(ds, now - GONE_AFTER), 1), else_=0)), 0),
            ).where(ds.c.app == app, seen_before(ds, cutoff)),
            select(ds.c.device_kind, ds.c.version_key, func.count())
            .where(live)
            .group_by(ds.c.device_kind, ds.c.version_key)
            .order_by(ds.c.device_kind, ds.c.version_key.desc()),
        ],
        concurrently=concurrently,
    )
    # Devices per store and version first (in index order), then per region and version:
    # counting the groups gives the stores without a count(DISTINCT) over every device.
    # Every store has one region, so the per-version rows are the region rows summed.
    by_store = (
        select(
            ds.c.store_id,
            ds.c.version_key,
            func.count().label("n"),
        )
        .where(live)
        .group_by(ds.c.store_id, ds.c.version_key)
        .cte("by_store")
    )
    # The live stores come from the same groups (one scan of the states, not two).
    stores_live = select(func.count(by_store.c.store_id.distinct())).scalar_subquery()
    rows = session.execute(
        select(
            st.c.region,
            by_store.c.version_key,
            func.sum(by_store.c.n),
            func.count(),
            stores_live,
        )
        .select_from(by_store.join(st, st.c.id == by_store.c.store_id))
        .group_by(st.c.region, by_store.c.version_key)
        .order_by(st.c.region, by_store.c.version_key.desc())
    ).all()
    region_rows = [row[:4] for row in rows]
    stores = int(rows[0][4]) if rows else 0
    per_version: dict[str, list[int]] = {}
    for _, key, n, n_stores in region_rows:
        totals = per_version.setdefault(key, [0, 0])
        totals[0] += int(n)
        totals[1] += int(n_stores)
    version_rows: list[tuple[str, int, int]] = [
        (key, per_version[key][0], per_version[key][1]) for key in sorted(per_version, reverse=True)
    ]
    devices = sum(int(n) for _, n, _ in version_rows)
    away_rows, kind_rows = away_and_kinds()
    away = away_rows[0]
    report = Census(
        app=app,
        at=now,
        devices=devices,
        stores=stores,
        offline=int(away[0]) - int(away[1]),
        gone=int(away[1]),
    )
    # Every key of the kind and region rows below is among these.
    labels = _version_labels(session, app=app, keys={row[0] for row in version_rows})
    report.by_version = [
        {
            "version": labels[key],
            "devices": int(n),
            "stores": int(n_stores),
            "share": _share(int(n), devices),
            "store_share": _share(int(n_stores), stores),
        }
        for key, n, n_stores in version_rows
    ]

    kind_totals: dict[str, int] = {}
    for kind, _, n in kind_rows:
        kind_totals[kind] = kind_totals.get(kind, 0) + int(n)
    report.by_kind = [
        {
            "device_kind": kind,
            "version": labels[key],
            "devices": int(n),
            "share": _share(int(n), kind_totals[kind]),
        }
        for kind, key, n in kind_rows
    ]

    region_totals: dict[str, int] = {}
    for region, _, n, _ in region_rows:
        region_totals[region] = region_totals.get(region, 0) + int(n)
    report.by_region = [
        {
            "region": region,
            "version": labels[key],
            "devices": int(n),
            "stores": int(n_stores),
            "share": _share(int(n), region_totals[region]),
        }
        for region, key, n, n_stores in region_rows
    ]
    return report


# --- stragglers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Straggler:
    store_id: str  # the store's external id
    name: str
    region: str
    in_beta: bool
    devices: int  # the store's devices of this app seen within the window
    devices_behind: int
    devices_below_minimum: int
    oldest_version: str
    last_seen: datetime
    reasons: tuple[str, ...]  # "below_minimum" and/or "behind"

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["last_seen"] = self.last_seen.isoformat()
        data["reasons"] = list(self.reasons)
        return data


@dataclass
class StragglerReport:
    app: str
    minimum_supported: str | None
    max_behind: int | None
    behind_threshold: str | None  # devices older than this are more than N releases behind
    total_stores: int
    stores: list[Straggler]

    def as_dict(self) -> dict[str, object]:
        data = {k: v for k, v in asdict(self).items() if k != "stores"}
        data["stores"] = [s.as_dict() for s in self.stores]
        return data

    def rows(self) -> list[dict[str, object]]:
        return [s.as_dict() | {"reasons": " ".join(s.reasons)} for s in self.stores]


def _behind_threshold(releases: Sequence[ReleaseInfo], max_behind: int, now: datetime) -> str:
    """The version a device must be older than to be more than ``max_behind`` releases
    behind the releases that reached every store; "" when there are not enough of them."""
    shipped = sorted(
        (r for r in releases if r.rolled_out_at and r.rolled_out_at <= now),
        key=lambda r: r.key,
        reverse=True,
    )
    return shipped[max_behind].version if len(shipped) > max_behind else ""


def _stores_below(
    session: Session,
    *,
    app: str,
    below_key: str,
    since: datetime,
    channel: str | None = None,
    minimum_key: str | None = None,
    limit: int,
    offset: int = 0,
) -> tuple[int, list[tuple[Any, ...]]]:
    """Stores with devices (seen since ``since``) on a version older than ``below_key``."""
    live = [ds.c.app == app, seen_since(ds, since)]
    if channel:
        live.append(ds.c.channel == channel)
    below_min: ColumnElement[Any] = (
        func.sum(case((ds.c.version_key < minimum_key, 1), else_=0)) if minimum_key else func.sum(0)
    )
    behind = (
        select(
            ds.c.store_id,
            func.count().label("behind"),
            below_min.label("below_min"),
            func.min(ds.c.version_key).label("oldest_key"),
        )
        .where(*live, ds.c.version_key < below_key)
        .group_by(ds.c.store_id)
        .subquery("behind")
    )
    total = session.execute(select(func.count()).select_from(behind)).scalar_one()
    if not total:
        return 0, []
    everyone = (
        select(
            ds.c.store_id,
            func.count().label("devices"),
            func.max(ds.c.last_seen).label("last_seen"),
        )
        .where(*live, ds.c.store_id.in_(select(behind.c.store_id)))
        .group_by(ds.c.store_id)
        .subquery("everyone")
    )
    rows = session.execute(
        select(
            st.c.external_id,
            st.c.name,
            st.c.region,
            st.c.in_beta,
            everyone.c.devices,
            behind.c.behind,
            behind.c.below_min,
            behind.c.oldest_key,
            everyone.c.last_seen,
        )
        .select_from(
            behind.join(st, st.c.id == behind.c.store_id).join(
                everyone, everyone.c.store_id == behind.c.store_id
            )
        )
        .order_by(
            behind.c.below_min.desc(),
            behind.c.behind.desc(),
            behind.c.oldest_key,
            st.c.external_id,
        )
        .limit(limit)
        .offset(offset)
    ).all()
    return int(total), [tuple(row) for row in rows]


def _version_labels(session: Session, *, app: str, keys: set[str]) -> dict[str, str]:
    if not keys:
        return {}
    # One index seek per key, all in one statement: a version as some device spelled it
    # ("3.12" or "3.12.0").
    ordered = sorted(keys)
    row = session.execute(
        select(
            *(
                select(ds.c.version)
                .where(ds.c.app == app, ds.c.version_key == key)
                .limit(1)
                .scalar_subquery()
                for key in ordered
            )
        )
    ).one()
    return dict(zip(ordered, row, strict=True))


def stragglers(
    session: Session,
    *,
    app: str,
    releases: Sequence[ReleaseInfo],
    now: datetime,
    minimum_supported: str | None = None,
    max_behind: int | None = None,
    seen_within: timedelta = GONE_AFTER,
    limit: int = 500,
    offset: int = 0,
) -> StragglerReport:
    """Stores with a device below the minimum supported version or more than ``max_behind``
    releases (of those that reached every store) behind, worst first."""
    minimum_key = key_of(minimum_supported) if minimum_supported else None
    behind_version = _behind_threshold(releases, max_behind, now) if max_behind is not None else ""
    behind_key = key_of(behind_version) if behind_version else None
    report = StragglerReport(
        app=app,
        minimum_supported=minimum_supported,
        max_behind=max_behind,
        behind_threshold=behind_version or None,
        total_stores=0,
        stores=[],
    )
    below_key = max(k for k in (minimum_key, behind_key, "") if k is not None)
    if not below_key:
        return report
    total, rows = _stores_below(
        session,
        app=app,
        below_key=below_key,
        since=now - seen_within,
        minimum_key=minimum_key,
        limit=limit,
        offset=offset,
    )
    labels = _version_labels(session, app=app, keys={row[7] for row in rows})
    report.total_stores = total
    for ext, name, region, in_beta, devices, n_behind, n_below, oldest, last_seen in rows:
        reasons = []
        if n_below:
            reasons.append("below_minimum")
        if behind_key and oldest < behind_key:
            reasons.append("behind")
        report.stores.append(
            Straggler(
                store_id=ext,
                name=name,
                region=region,
                in_beta=bool(in_beta),
                devices=int(devices),
                devices_behind=int(n_behind),
                devices_below_minimum=int(n_below),
                oldest_version=labels.get(oldest, ""),
                last_seen=last_seen,
                reasons=tuple(reasons),
            )
        )
    return report


# --- offline devices ----------------------------------------------------------------------


@dataclass(frozen=True)
class OfflineDevice:
    device_id: str
    device_kind: str
    store_id: str
    store_name: str
    region: str
    version: str
    last_seen: datetime
    bucket: str  # "24h" (not seen for 24 hours) or "7d" (not seen for 7 days)

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["last_seen"] = self.last_seen.isoformat()
        return data


@dataclass
class OfflineReport:
    app: str
    at: datetime
    offline_24h: int  # not seen for 24 h, seen within 7 days
    offline_7d: int  # not seen for 7 days
    devices: list[OfflineDevice]

    def as_dict(self) -> dict[str, object]:
        return {
            "app": self.app,
            "at": self.at.isoformat(),
            "offline_24h": self.offline_24h,
            "offline_7d": self.offline_7d,
            "devices": [d.as_dict() for d in self.devices],
        }

    def rows(self) -> list[dict[str, object]]:
        return [d.as_dict() for d in self.devices]


def offline_devices(
    session: Session,
    *,
    app: str,
    now: datetime,
    bucket: str | None = None,
    limit: int = 500,
    offset: int = 0,
) -> OfflineReport:
    """Devices not seen for 24 h (``bucket="24h"``: up to 7 days) or 7 days, longest first."""
    day_ago, week_ago = now - OFFLINE_AFTER, now - GONE_AFTER
    counts = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((seen_before(ds, week_ago), 1), else_=0)), 0),
        ).where(ds.c.app == app, seen_before(ds, day_ago))
    ).one()
    conditions = [ds.c.app == app, seen_before(ds, day_ago)]
    if bucket == "24h":
        conditions.append(seen_since(ds, week_ago))
    elif bucket == "7d":
        conditions.append(seen_before(ds, week_ago))
    elif bucket is not None:
        raise ValueError("bucket must be '24h', '7d' or None")
    rows = session.execute(
        select(
            dv.c.device_id,
            ds.c.device_kind,
            st.c.external_id,
            st.c.name,
            st.c.region,
            ds.c.version,
            ds.c.last_seen,
        )
        .select_from(ds.join(dv, dv.c.id == ds.c.device_id).join(st, st.c.id == ds.c.store_id))
        .where(*conditions)
        # seen_hour first: the index's order (last_seen sorts within each hour).
        .order_by(ds.c.seen_hour, ds.c.last_seen, dv.c.device_id)
        .limit(limit)
        .offset(offset)
    )
    return OfflineReport(
        app=app,
        at=now,
        offline_24h=int(counts[0]) - int(counts[1]),
        offline_7d=int(counts[1]),
        devices=[
            OfflineDevice(
                device_id=device_id,
                device_kind=kind,
                store_id=ext,
                store_name=name,
                region=region,
                version=version,
                last_seen=last_seen,
                bucket="7d" if last_seen < week_ago else "24h",
            )
            for device_id, kind, ext, name, region, version, last_seen in rows
        ],
    )


# --- beta adoption and stalls -------------------------------------------------------------


def _adoption(
    session: Session, *, app: str, key: str, since: datetime, channel: str | None
) -> tuple[int, int]:
    conditions = [ds.c.app == app, seen_since(ds, since)]
    if channel:
        conditions.append(ds.c.channel == channel)
    total, adopted = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((ds.c.version_key >= key, 1), else_=0)), 0),
        ).where(*conditions)
    ).one()
    return int(total), int(adopted)


def beta_adoption(
    session: Session,
    *,
    app: str,
    version: str,
    now: datetime,
    offline_after: timedelta = OFFLINE_AFTER,
) -> float | None:
    """Share (0–1) of beta stores' online devices running ``version`` or newer.

    ``None`` when no beta device has reported within ``offline_after``: the checklist shows
    "not available yet", never a pass.
    """
    total, adopted = _adoption(
        session, app=app, key=key_of(version), since=now - offline_after, channel="beta"
    )
    return adopted / total if total else None


@dataclass(frozen=True)
class HoldingBack:
    store_id: str
    name: str
    region: str
    devices: int
    devices_behind: int
    oldest_version: str
    last_seen: datetime

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["last_seen"] = self.last_seen.isoformat()
        return data


@dataclass
class Stall:
    """A release whose adoption is not where it should be, and the stores holding it back.

    ``kind`` is "beta_below_target" (beta adoption still below the target ``hours`` after
    the release entered beta) or "not_rising" (overall adoption gained less than the minimum
    over the last days).
    """

    version: str
    kind: str
    channel: str
    share: float
    target: float
    since: datetime
    detail: str
    holding_back: list[HoldingBack]
    stores_holding_back: int

    def as_dict(self) -> dict[str, object]:
        data = {k: v for k, v in asdict(self).items() if k != "holding_back"}
        data["since"] = self.since.isoformat()
        data["holding_back"] = [h.as_dict() for h in self.holding_back]
        return data


def _holding_back(
    session: Session,
    *,
    app: str,
    key: str,
    since: datetime,
    channel: str | None,
    limit: int,
) -> tuple[int, list[HoldingBack]]:
    total, rows = _stores_below(
        session, app=app, below_key=key, since=since, channel=channel, limit=limit
    )
    labels = _version_labels(session, app=app, keys={row[7] for row in rows})
    return total, [
        HoldingBack(
            store_id=ext,
            name=name,
            region=region,
            devices=int(devices),
            devices_behind=int(n_behind),
            oldest_version=labels.get(oldest, ""),
            last_seen=last_seen,
        )
        for ext, name, region, _, devices, n_behind, _, oldest, last_seen in rows
    ]


def _overall_shares(session: Session, *, app: str, key: str, start: date, end: date) -> list[float]:
    rows = session.execute(
        select(
            ad.c.day,
            func.sum(ad.c.devices),
            func.sum(case((ad.c.version_key >= key, ad.c.devices), else_=0)),
        )
        .where(ad.c.app == app, ad.c.day >= start, ad.c.day <= end)
        .group_by(ad.c.day)
        .order_by(ad.c.day)
    ).all()
    return [int(adopted) / int(total) for _, total, adopted in rows if total]


def detect_stalls(
    session: Session,
    *,
    app: str,
    releases: Sequence[ReleaseInfo],
    now: datetime,
    beta_target: float,
    beta_hours: float,
    window_days: int = 3,
    min_gain: float = 0.01,
    done_at: float = 0.95,
    holders_limit: int = 50,
) -> list[Stall]:
    """Flag stalled releases among ``releases`` (pass those in beta or rolling out).

    - In beta: ``beta_hours`` after ``beta_at``, beta adoption below ``beta_target``.
    - Rolling out: over the last ``window_days`` full days of rollups (only once the release
      has been out to every store that long), overall adoption rose by less than
      ``min_gain`` while still below ``done_at``.
    """
    since = now - OFFLINE_AFTER
    stalls: list[Stall] = []
    for release in releases:
        key = release.key
        if (
            release.beta_at
            and release.rolled_out_at is None
            and now - release.beta_at >= timedelta(hours=beta_hours)
        ):
            total, adopted = _adoption(session, app=app, key=key, since=since, channel="beta")
            if total and adopted / total < beta_target:
                count, holders = _holding_back(
                    session, app=app, key=key, since=since, channel="beta", limit=holders_limit
                )
                stalls.append(
                    Stall(
                        version=release.version,
                        kind="beta_below_target",
                        channel="beta",
                        share=adopted / total,
                        target=beta_target,
                        since=release.beta_at,
                        detail=(
                            f"beta adoption {adopted / total:.1%} is below the target "
                            f"{beta_target:.0%} {beta_hours:g} h after entering beta"
                        ),
                        holding_back=holders,
                        stores_holding_back=count,
                    )
                )
        if release.rolled_out_at and release.rolled_out_at <= now:
            last = now.date() - timedelta(days=1)
            first = last - timedelta(days=window_days)
            if release.rolled_out_at.date() > first:
                continue
            shares = _overall_shares(session, app=app, key=key, start=first, end=last)
            if len(shares) == window_days + 1 and stopped_rising(
                shares, min_gain=min_gain, done_at=done_at
            ):
                count, holders = _holding_back(
                    session, app=app, key=key, since=since, channel=None, limit=holders_limit
                )
                stalls.append(
                    Stall(
                        version=release.version,
                        kind="not_rising",
                        channel="all",
                        share=shares[-1],
                        target=done_at,
                        since=release.rolled_out_at,
                        detail=(
                            f"overall adoption went from {shares[0]:.1%} to {shares[-1]:.1%} "
                            f"in {window_days} days (less than {min_gain:.0%})"
                        ),
                        holding_back=holders,
                        stores_holding_back=count,
                    )
                )
    return stalls
