"""An immutable in-memory picture of the fleet for answering update requests fast.

The service builds a :class:`FleetSnapshot` from the database (stores, devices, unlifted
freezes) plus the release data it owns (:class:`~beta.rollout.AppReleases` per app), stamped
with the value of its own change counter. :class:`SnapshotCache` keeps the latest snapshot
and rebuilds it only when the counter moves, so a warm update request is a dictionary
lookup and :func:`~beta.rollout.decide_update`, with no database round trip.

Bump the counter whenever a store, device, cohort membership, freeze, release state, stage
or minimum supported version changes. Freezes are stored as periods and evaluated at
request time, so a freeze starting or ending on its own needs no rebuild.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from sqlmodel import Session, col, select

import utc
from beta.errors import Conflict, NotFound
from beta.models import Device, Store, StoreFreeze
from beta.rollout import (
    AppReleases,
    FreezePeriod,
    StageCoverage,
    StoreContext,
    UpdateAnswer,
    decide_update,
    stage_coverage,
)

__all__ = ["FleetSnapshot", "SnapshotCache", "build_snapshot", "store_context"]


@dataclass(frozen=True)
class FleetSnapshot:
    version: int
    built_at: datetime
    stores: Mapping[str, StoreContext]  # by external id
    devices: Mapping[str, str]  # device id → store external id
    apps: Mapping[str, AppReleases]  # by app slug

    def decide(
        self,
        *,
        app: str,
        store_id: str,
        current_version: str,
        now: datetime,
        device_id: str | None = None,
    ) -> UpdateAnswer:
        """The update answer from memory.

        Unknown app or store → :class:`NotFound`; a device registered to another store →
        :class:`Conflict`. An unregistered device id is accepted (devices may ask before
        anyone registers them). A bad ``current_version`` raises ``InvalidVersion``.
        """
        releases = self.apps.get(app)
        if releases is None:
            raise NotFound(f"no app {app!r}", field="app")
        store = self.stores.get(store_id)
        if store is None:
            raise NotFound(f"no store {store_id!r}", field="store_id")
        if device_id is not None:
            owner = self.devices.get(device_id)
            if owner is not None and owner != store_id:
                raise Conflict(
                    f"device {device_id!r} belongs to store {owner!r}, not {store_id!r}",
                    field="device_id",
                )
        return decide_update(
            app_releases=releases, store=store, current_version=current_version, now=now
        )

    def stage_coverage(self, app: str) -> list[StageCoverage]:
        releases = self.apps.get(app)
        if releases is None:
            raise NotFound(f"no app {app!r}", field="app")
        return stage_coverage(
            self.stores.values(), releases.policy.stages, salt=releases.policy.rollout_salt
        )


def store_context(store: Store, freezes: Iterable[StoreFreeze] = ()) -> StoreContext:
    """A store row (and its unlifted freezes) as :func:`decide_update` sees it."""
    return StoreContext(
        external_id=store.external_id,
        in_beta=store.in_beta,
        timezone=store.timezone,
        window_start=store.update_window_start,
        window_end=store.update_window_end,
        freezes=tuple(
            FreezePeriod(f.starts_at, f.ends_at, f.reason)
            for f in sorted(freezes, key=lambda f: f.starts_at)
            if f.lifted_at is None
        ),
    )


def build_snapshot(
    *, session: Session, apps: Iterable[AppReleases], version: int, now: datetime
) -> FleetSnapshot:
    """Read the fleet in three queries; freezes that ended before ``now`` are left out."""
    freezes: defaultdict[int, list[StoreFreeze]] = defaultdict(list)
    query = select(StoreFreeze).where(
        col(StoreFreeze.lifted_at).is_(None), col(StoreFreeze.ends_at) > utc.aware(now)
    )
    for freeze in session.exec(query):
        freezes[freeze.store_id].append(freeze)
    stores: dict[str, StoreContext] = {}
    by_id: dict[int, str] = {}
    for store in session.exec(select(Store)):
        assert store.id is not None
        by_id[store.id] = store.external_id
        stores[store.external_id] = store_context(store, freezes.get(store.id, ()))
    devices = {
        device_id: by_id[store_id]
        for device_id, store_id in session.exec(select(Device.device_id, Device.store_id))
    }
    return FleetSnapshot(
        version=version,
        built_at=utc.aware(now),
        stores=MappingProxyType(stores),
        devices=MappingProxyType(devices),
        apps=MappingProxyType({a.app: a for a in apps}),
    )


class SnapshotCache:
    """Holds the latest snapshot; rebuilds it when asked for a different version.

    ``build(version)`` is the service's function that opens a session and calls
    :func:`build_snapshot`. Readers never block each other on a warm cache; one rebuild
    runs at a time.
    """

    def __init__(self, build: Callable[[int], FleetSnapshot]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._snapshot: FleetSnapshot | None = None

    def get(self, version: int) -> FleetSnapshot:
        snapshot = self._snapshot
        if snapshot is not None and snapshot.version == version:
            return snapshot
        with self._lock:
            snapshot = self._snapshot
            if snapshot is None or snapshot.version != version:
                snapshot = self._build(version)
                self._snapshot = snapshot
            return snapshot

    def invalidate(self) -> None:
        with self._lock:
            self._snapshot = None
