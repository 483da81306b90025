"""The service's side of adoption: apps and releases from ``service`` tables, turned into
what :mod:`version_monitor` expects, and the summaries other pages show.

``version_monitor`` takes ``now`` and release dates as naive UTC; the service's tables hold
timezone-aware UTC; :mod:`utc` converts between them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from flask import Flask, current_app
from sqlmodel import Session, col, select

import utc
from service.beta.answers import read_version
from service.releases.models import App, Release
from version_monitor import reports
from version_monitor.adoption import ReleaseInfo
from version_monitor.ingest import StoreRef, all_stores, lookup_stores
from versioning import is_valid_version
from versioning.storage_key import key_of

# Releases whose adoption the reports follow (drafts and rejected ones never shipped).
SHIPPED_STATES = ("beta", "rolling_out", "released", "halted")
# Stalls are looked for among releases still spreading, and the recently released.
STALL_STATES = ("beta", "rolling_out", "released")
STALL_RELEASED_WITHIN = timedelta(days=14)
# Used when an app sets no minimum: more than this many releases behind is a straggler.
DEFAULT_MAX_BEHIND = 2


def now_naive() -> datetime:
    """Now as ``version_monitor`` takes it: naive UTC."""
    return utc.naive(utc.now())


# --- apps -----------------------------------------------------------------------------


class _KnownApps:
    """App slugs, cached per process: heartbeats ask on every request.

    Only a hit is trusted; a miss asks the database again, so an app created by another
    worker is known at once (apps are never deleted, only added).
    """

    def __init__(self, ttl: float = 60.0) -> None:
        self._lock = threading.Lock()
        self._slugs: frozenset[str] = frozenset()
        self._loaded_at = 0.0
        self._ttl = ttl

    def cached(self, wanted: Iterable[str]) -> frozenset[str] | None:
        """The cached slugs when they are fresh and hold every one of ``wanted``, else None."""
        if time.monotonic() - self._loaded_at < self._ttl and self._slugs.issuperset(wanted):
            return self._slugs
        return None

    def get(self, session: Session, wanted: Iterable[str]) -> frozenset[str]:
        hit = self.cached(wanted)
        if hit is not None:
            return hit
        slugs = frozenset(session.exec(select(App.slug)).all())
        with self._lock:
            self._slugs, self._loaded_at = slugs, time.monotonic()
        return slugs


known_apps = _KnownApps()


# --- stores and devices for heartbeats -------------------------------------------------


class IngestIds:
    """Store refs and device ids, cached per process for heartbeats.

    Both are valid as long as the fleet's change counter (:mod:`service.beta.answers`)
    has not moved: every ORM change to a store (its cohort too) or a device bumps it. The
    counter is read once per request, in the request's transaction, so a heartbeat never
    uses a store's beta flag or a device id older than the last committed fleet change
    (queued heartbeats: see :mod:`service.adoption.queue`). An empty store cache is filled
    with the whole fleet in one query; later misses (stores created by bulk SQL, devices
    registered by heartbeats) are looked up and cached; devices registered by this request
    are not (they exist only once it commits).
    """

    MAX_DEVICES = 250_000

    def __init__(self) -> None:
        self._version: int | None = None
        self.stores: dict[str, StoreRef] = {}
        self.devices: dict[str, int] = {}

    def refresh(self, session: Session) -> None:
        """Drop everything when the fleet counter moved (read in ``session``)."""
        version = read_version(session)
        if version != self._version or len(self.devices) > self.MAX_DEVICES:
            self.stores.clear()
            self.devices.clear()
            self._version = version

    @property
    def version(self) -> int | None:
        """The fleet counter the caches belong to (None before the first read)."""
        return self._version

    def forget(self, version: int) -> None:
        """Drop everything: the fleet counter moved to ``version`` (read by the heartbeat
        queue's writer, :mod:`service.adoption.queue`). Requests refill the caches."""
        if version != self._version:
            self.stores.clear()
            self.devices.clear()
            self._version = version

    def store_lookup(self, session: Session) -> Callable[[set[str]], dict[str, StoreRef]]:
        """For :func:`~version_monitor.ingest.validate_batch`, which calls it once per
        request after checking every item: the counter is read there, so a request holds
        no database lock while its items are validated."""
        stores = self.stores

        def lookup(wanted: set[str]) -> dict[str, StoreRef]:
            self.refresh(session)
            missing = {s for s in wanted if s not in stores}
            if missing and not stores:
                # A cold cache (a new process, or the fleet changed): the whole fleet in one
                # query rather than one store at a time over the next thousands of requests.
                stores.update(all_stores(session))
                missing = {s for s in wanted if s not in stores}
            if missing:
                stores.update(lookup_stores(session, external_ids=missing))
            return stores

        return lookup


def ingest_ids(app: Flask | None = None) -> IngestIds:
    """This app's (this process's) cache; its store lookup checks the fleet counter."""
    extensions = (app or current_app).extensions
    cache: IngestIds = extensions.setdefault("relgov.ingest_ids", IngestIds())
    return cache


def list_apps(session: Session) -> list[App]:
    return list(session.exec(select(App).order_by(col(App.slug))).all())


def find_app(session: Session, slug: str) -> App | None:
    return session.exec(select(App).where(App.slug == slug)).first()


# --- releases -------------------------------------------------------------------------


def release_info(release: Release) -> ReleaseInfo:
    """``release`` as the reports see it: beta from ``beta_at``; "every store" from the start
    of the rollout (or from ``released_at`` when it went straight to everyone)."""
    return ReleaseInfo(
        version=release.version,
        beta_at=utc.naive_or_none(release.beta_at),
        rolled_out_at=utc.naive_or_none(release.rollout_started_at or release.released_at),
    )


def shipped_releases(
    session: Session, app: App, *, states: Sequence[str] = SHIPPED_STATES
) -> list[Release]:
    rows = session.exec(
        select(Release).where(Release.app_id == app.id, col(Release.state).in_(states))
    ).all()
    return [r for r in rows if (r.beta_at or r.rollout_started_at or r.released_at)]


def release_infos(session: Session, app: App) -> list[ReleaseInfo]:
    return [release_info(r) for r in shipped_releases(session, app) if is_valid_version(r.version)]


def stall_candidates(session: Session, app: App, *, now: datetime) -> list[ReleaseInfo]:
    """Releases in beta or rolling out, and those released within the last two weeks."""
    infos = []
    for release in shipped_releases(session, app, states=STALL_STATES):
        if not is_valid_version(release.version):
            continue
        if release.state == "released":
            released = utc.naive_or_none(release.released_at)
            if released is None or now - released > STALL_RELEASED_WITHIN:
                continue
        infos.append(release_info(release))
    return infos


# --- reports with the app's settings --------------------------------------------------


@dataclass(frozen=True)
class SeriesWindow:
    start: date
    end: date


def default_window(now: datetime, days: int = 150) -> SeriesWindow:
    end = now.date()
    return SeriesWindow(start=end - timedelta(days=days - 1), end=end)


def detect_stalls(session: Session, app: App, *, now: datetime) -> list[reports.Stall]:
    return reports.detect_stalls(
        session,
        app=app.slug,
        releases=stall_candidates(session, app, now=now),
        now=now,
        beta_target=app.beta_adoption_target / 100.0,
        beta_hours=app.beta_stall_hours,
    )


def stragglers(
    session: Session,
    app: App,
    *,
    now: datetime,
    max_behind: int | None = DEFAULT_MAX_BEHIND,
    limit: int = 500,
    offset: int = 0,
) -> reports.StragglerReport:
    minimum = app.min_supported_version if app.min_supported_version else None
    if minimum and not is_valid_version(minimum):
        minimum = None
    return reports.stragglers(
        session,
        app=app.slug,
        releases=release_infos(session, app),
        now=utc.naive(now),  # version_monitor compares it with naive UTC release times
        minimum_supported=minimum,
        max_behind=max_behind,
        limit=limit,
        offset=offset,
    )


def stall_summary(session: Session, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every stalled release of every app, for the dashboard and ``/metrics``.

    Each dict: app, version, release_id, kind, channel, share, target, detail, since,
    stores_holding_back and the first few stores holding it back.
    """
    moment = now or now_naive()
    out: list[dict[str, Any]] = []
    for app in list_apps(session):
        stalls = detect_stalls(session, app, now=moment)
        if not stalls:
            continue
        ids = {
            r.version: r.id
            for r in session.exec(select(Release).where(Release.app_id == app.id)).all()
        }
        for stall in stalls:
            out.append(
                {
                    "app": app.slug,
                    "app_name": app.name,
                    "version": stall.version,
                    "release_id": ids.get(stall.version),
                    "kind": stall.kind,
                    "channel": stall.channel,
                    "share": stall.share,
                    "target": stall.target,
                    "detail": stall.detail,
                    "since": utc.aware(stall.since),
                    "stores_holding_back": stall.stores_holding_back,
                    "holding_back": [h.as_dict() for h in stall.holding_back[:5]],
                }
            )
    return out


# --- the release page and its checklist -----------------------------------------------


def _overall_adoption(session: Session, app: str, version: str, now: datetime) -> float | None:
    total, adopted = reports._adoption(
        session, app=app, key=key_of(version), since=now - reports.OFFLINE_AFTER, channel=None
    )
    return adopted / total if total else None


def release_adoption(
    session: Session, release: Release, *, now: datetime | None = None
) -> dict[str, Any]:
    """What the release page shows: adoption in beta stores and overall now, the app's beta
    target, and whether the release is flagged as stalled (with the stores holding it back).

    Shares are 0–1 or ``None`` when no device of that group has reported within 24 h.
    """
    moment = now or now_naive()
    app = session.get(App, release.app_id)
    result: dict[str, Any] = {
        "available": False,
        "app": app.slug if app else None,
        "version": release.version,
        "beta": None,
        "overall": None,
        "target": (app.beta_adoption_target / 100.0) if app else None,
        "stall_hours": app.beta_stall_hours if app else None,
        "stalls": [],
        "stalled": False,
        "adoption_url": None,
    }
    if app is None or not is_valid_version(release.version):
        return result
    result["adoption_url"] = f"/adoption/{app.slug}"
    beta = reports.beta_adoption(session, app=app.slug, version=release.version, now=moment)
    overall = _overall_adoption(session, app.slug, release.version, moment)
    result.update(beta=beta, overall=overall, available=beta is not None or overall is not None)
    if release.state in STALL_STATES:
        stalls = reports.detect_stalls(
            session,
            app=app.slug,
            releases=[release_info(release)],
            now=moment,
            beta_target=app.beta_adoption_target / 100.0,
            beta_hours=app.beta_stall_hours,
        )
        result["stalls"] = [s.as_dict() for s in stalls]
        result["stalled"] = bool(stalls)
    return result


def beta_adoption_for_checklist(
    session: Session, release: Release, *, now: datetime | None = None
) -> tuple[float | None, str]:
    """The checklist's automatic "beta adoption ≥ X %" item: the share (0–1) of online beta
    devices on this release or newer, and evidence text; ``None`` = not available yet."""
    moment = now or now_naive()
    app = session.get(App, release.app_id)
    if app is None:
        return None, "the release's app is unknown"
    if not is_valid_version(release.version):
        return None, f"version {release.version!r} cannot be compared"
    if release.beta_at is None:
        return None, "not available yet: the release has not entered beta"
    total, adopted = reports._adoption(
        session,
        app=app.slug,
        key=key_of(release.version),
        since=moment - reports.OFFLINE_AFTER,
        channel="beta",
    )
    if not total:
        return None, "not available yet: no beta device has reported in the last 24 h"
    share = adopted / total
    target = app.beta_adoption_target
    verdict = "meets" if share * 100 >= target else "below"
    return share, (
        f"{adopted} of {total} online beta devices run {release.version} or newer "
        f"({share:.1%}; {verdict} the target of {target:g} %)"
    )


@dataclass(frozen=True)
class VersionShare:
    """Devices of an app on one version on a day (from the daily rollups)."""

    version: str
    day: date
    devices: int  # devices seen that day
    on_version: int  # of which on ``version``
    on_or_newer: int  # of which on ``version`` or newer

    @property
    def share(self) -> float:
        return self.on_version / self.devices if self.devices else 0.0

    @property
    def share_or_newer(self) -> float:
        return self.on_or_newer / self.devices if self.devices else 0.0


def version_share(session: Session, app: App, version: str, *, on: date) -> VersionShare | None:
    """How many of ``app``'s devices ran ``version`` (and it or newer) on the last day up to
    ``on`` that has a rollup (looking back two days); ``None`` when there is none."""
    if not is_valid_version(version):
        return None
    series = reports.adoption_over_time(session, app=app.slug, start=on - timedelta(days=2), end=on)
    everyone = series.channels["all"]
    wanted = key_of(version)
    keys = {v: key_of(v) for v in series.versions if is_valid_version(v)}
    for index in range(len(series.days) - 1, -1, -1):
        total = everyone.totals[index]
        if not total:
            continue
        return VersionShare(
            version=version,
            day=series.days[index],
            devices=total,
            on_version=everyone.devices.get(version, [0] * len(series.days))[index],
            on_or_newer=sum(
                line[index] for v, line in everyone.devices.items() if keys.get(v, "") >= wanted
            ),
        )
    return None
