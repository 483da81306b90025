"""The update answer: a per-process fleet snapshot, kept fresh by a counter in the database.

**Counter.** ``fleet_version.version`` moves in the same transaction as every change that
can alter an answer: a store, device, cohort event or freeze written, deleted or changed; a
release created, deleted or changed in its state, stage or version; an app's slug, minimum
supported version or rollout stages changed. A ``before_flush`` listener on every ORM
session does the bump, so no code path (pages, API, CLI, the release lifecycle, another
engineer's module) can forget it. Bulk SQL that bypasses the ORM (``session.execute(
table.insert())``) does not bump; call :func:`bump` after it.

**Cache.** Each process keeps one :class:`beta.snapshot.SnapshotCache`. Reading the counter
(one primary-key query) tells whether the snapshot is current; it is rebuilt only when the
counter moved. The snapshot is built from the asking session, in the same transaction that
read the counter, so the number always describes the data. A session that has itself
bumped the counter in its open transaction gets a private, uncached snapshot of its
uncommitted state.

**Update answer.** The update endpoint (:func:`current_snapshot`) reads the counter at most
every :data:`CHECK_INTERVAL` (0.25 s) per process, so a warm answer touches no database at
all. A fleet change committed in this process is seen by its next request (a commit that
bumped the counter makes the next request read it); one committed in another gunicorn
worker is seen there within 0.25 s. Pages and the rollout preview (:func:`snapshot`) still
read the counter every time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import event, insert, inspect, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col, select

from beta.errors import InvalidInput
from beta.models import CohortEvent, Device, Store, StoreFreeze
from beta.rollout import DEFAULT_STAGES, AppPolicy, AppReleases, ReleaseOffer
from beta.snapshot import FleetSnapshot, SnapshotCache, build_snapshot
from service import db
from service.beta.models import FLEET_VERSION_ROW, FleetVersion
from service.models import utcnow
from service.releases.models import App, Release
from versioning import InvalidVersion, parse_version

__all__ = [
    "CHECK_INTERVAL",
    "OFFERED_STATES",
    "FleetAnswers",
    "bump",
    "current_snapshot",
    "init_app",
    "load_app_releases",
    "read_version",
    "snapshot",
]

log = logging.getLogger(__name__)

OFFERED_STATES = ("beta", "rolling_out", "released", "halted")
_RELEASE_FIELDS = ("state", "stage_percent", "halted_from", "version", "app_id")
_APP_FIELDS = ("slug", "min_supported_version", "rollout_stages")
_FLEET_TABLES = (Store, Device, CohortEvent, StoreFreeze)
_BUMPED = "relgov.fleet_bumped"  # session.info key: the transaction that already bumped
_VERSION_SQL = text(f"SELECT version FROM fleet_version WHERE id = {FLEET_VERSION_ROW}")
_table = FleetVersion.__table__  # type: ignore[attr-defined]


# --- the counter -------------------------------------------------------------------------


def read_version(session: Session) -> int:
    """The fleet's change counter (0 before the first change)."""
    value = session.connection().execute(_VERSION_SQL).scalar()
    return int(value or 0)


def bump(session: Session | OrmSession) -> None:
    """Move the counter in ``session``'s transaction (an upsert: the row may not exist yet)."""
    connection = session.connection()
    dialect = connection.dialect.name
    statement: Any
    if dialect == "postgresql":
        statement = postgresql.insert(_table).values(id=FLEET_VERSION_ROW, version=1)
    elif dialect == "sqlite":
        statement = sqlite.insert(_table).values(id=FLEET_VERSION_ROW, version=1)
    else:  # pragma: no cover - the service supports SQLite and PostgreSQL
        if connection.execute(_VERSION_SQL).first() is None:
            connection.execute(insert(_table).values(id=FLEET_VERSION_ROW, version=1))
        else:
            connection.execute(_table.update().values(version=_table.c.version + 1))
        session.info[_BUMPED] = session.get_transaction()
        return
    statement = statement.on_conflict_do_update(
        index_elements=[_table.c.id], set_={"version": _table.c.version + 1}
    )
    connection.execute(statement)
    session.info[_BUMPED] = session.get_transaction()


def _bumped_in_open_transaction(session: Session | OrmSession) -> bool:
    marker = session.info.get(_BUMPED)
    return marker is not None and marker is session.get_transaction()


def _changed(obj: object, names: Iterable[str]) -> bool:
    state = inspect(obj)
    return any(state.attrs[name].history.has_changes() for name in names)


def _touches_fleet(session: OrmSession) -> bool:
    for obj in (*session.new, *session.deleted):
        if isinstance(obj, (*_FLEET_TABLES, App)):
            return True
        if isinstance(obj, Release) and (obj in session.deleted or obj.state in OFFERED_STATES):
            return True
    for obj in session.dirty:
        if isinstance(obj, _FLEET_TABLES) and session.is_modified(obj):
            return True
        if isinstance(obj, Release) and _changed(obj, _RELEASE_FIELDS):
            return True
        if isinstance(obj, App) and _changed(obj, _APP_FIELDS):
            return True
    return False


class _Commits:
    """How many commits that bumped the counter this process has seen."""

    count = 0


def _count_bumping_commit(session: OrmSession) -> None:
    if session.info.pop(_BUMPED, None) is not None:
        _Commits.count += 1


def _bump_on_fleet_change(session: OrmSession, _context: Any, _instances: Any) -> None:
    if _bumped_in_open_transaction(session):
        return
    if _touches_fleet(session):
        bump(session)


# --- building the snapshot ---------------------------------------------------------------


def _policy(app: App) -> AppPolicy:
    minimum = app.min_supported_version or None
    if minimum is not None:
        try:
            parse_version(minimum)
        except InvalidVersion:
            log.warning("app %s: ignoring unparsable minimum version %r", app.slug, minimum)
            minimum = None
    try:
        return AppPolicy(min_supported_version=minimum, stages=tuple(app.rollout_stages))
    except InvalidInput as error:
        log.warning("app %s: %s; using stages %s", app.slug, error.message, DEFAULT_STAGES)
        return AppPolicy(min_supported_version=minimum)


def _offer(release: Release) -> ReleaseOffer | None:
    halted_from = None
    if release.state == "halted":
        halted_from = release.halted_from if release.halted_from == "rolling_out" else "beta"
    try:
        return ReleaseOffer(
            version=release.version,
            state=release.state,  # type: ignore[arg-type]
            halted_from=halted_from,  # type: ignore[arg-type]
            stage_percent=min(100, max(0, release.stage_percent)),
        )
    except (InvalidInput, InvalidVersion) as error:
        log.warning("release %s %r is not offered: %s", release.id, release.version, error)
        return None


def load_app_releases(session: Session) -> list[AppReleases]:
    """Every app with the releases devices may be offered (beta, rolling out, halted) and
    its highest released version; older released versions never decide an answer."""
    releases: defaultdict[int, list[Release]] = defaultdict(list)
    for release in session.exec(select(Release).where(col(Release.state).in_(OFFERED_STATES))):
        releases[release.app_id].append(release)
    result = []
    for app in session.exec(select(App)):
        offers: list[ReleaseOffer] = []
        newest_released: ReleaseOffer | None = None
        for release in releases.get(app.id or 0, []):
            offer = _offer(release)
            if offer is None:
                continue
            if offer.state != "released":
                offers.append(offer)
            elif newest_released is None or offer.parsed > newest_released.parsed:
                newest_released = offer
        if newest_released is not None:
            offers.append(newest_released)
        result.append(AppReleases(app=app.slug, releases=tuple(offers), policy=_policy(app)))
    return result


def _build(session: Session, version: int) -> FleetSnapshot:
    return build_snapshot(
        session=session, apps=load_app_releases(session), version=version, now=utcnow()
    )


CHECK_INTERVAL = 0.25  # seconds between counter reads on the update answer, per process


class FleetAnswers:
    """The per-process cache: one :class:`SnapshotCache` fed by the asking request's session."""

    def __init__(self) -> None:
        self._local = threading.local()
        self.cache = SnapshotCache(self._build_for_cache)
        self.builds = 0  # how often the snapshot was rebuilt (tests and the benchmark)
        # (snapshot, monotonic time of the counter read, _Commits.count before it)
        self._checked: tuple[FleetSnapshot, float, int] | None = None

    def current(self) -> FleetSnapshot:
        """For a request: the snapshot last checked less than CHECK_INTERVAL ago when no
        bumping commit happened in this process since, else :meth:`snapshot` of the
        request's session."""
        session = g.get("db_session")
        if session is not None and _bumped_in_open_transaction(session):
            return self.snapshot(session)
        checked = self._checked
        now = time.monotonic()
        if (
            checked is not None
            and checked[2] == _Commits.count
            and now - checked[1] < CHECK_INTERVAL
        ):
            return checked[0]
        commits = _Commits.count
        fleet = self.snapshot(db.session())
        self._checked = (fleet, now, commits)
        return fleet

    def _build_for_cache(self, version: int) -> FleetSnapshot:
        self.builds += 1
        return _build(self._local.session, version)

    def snapshot(self, session: Session) -> FleetSnapshot:
        if _bumped_in_open_transaction(session):
            session.flush()
            return _build(session, -1)
        version = read_version(session)
        self._local.session = session
        try:
            return self.cache.get(version)
        finally:
            self._local.session = None


_LISTENERS = (
    (OrmSession, "after_commit", _count_bumping_commit),
    (OrmSession, "before_flush", _bump_on_fleet_change),
)


def init_app(app: Flask) -> None:
    """Give ``app`` its update-answer cache, and make every ORM session of this process bump
    the fleet counter with each fleet change (idempotent)."""
    app.extensions["relgov.fleet_answers"] = FleetAnswers()
    for target, name, listener in _LISTENERS:
        if not event.contains(target, name, listener):
            event.listen(target, name, listener)


def answers() -> FleetAnswers:
    result: FleetAnswers = current_app.extensions["relgov.fleet_answers"]
    return result


def snapshot(session: Session) -> FleetSnapshot:
    """The fleet as the update answer sees it, from this process's cache when current."""
    return answers().snapshot(session)


def current_snapshot() -> FleetSnapshot:
    """The update answer's snapshot: the counter is read at most every CHECK_INTERVAL."""
    return answers().current()
