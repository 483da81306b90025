from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from beta.errors import Conflict, NotFound
from beta.rollout import AppPolicy, AppReleases, ReleaseOffer
from beta.snapshot import FleetSnapshot, SnapshotCache, build_snapshot
from beta.store import create_device, enrol_store, lift_freeze
from tests.fleet_builders import freeze

POS = AppReleases(
    "pos",
    (
        ReleaseOffer("3.12.0", "released"),
        ReleaseOffer("3.13.0-beta.1", "beta"),
    ),
    AppPolicy(min_supported_version="3.10.0"),
)


@pytest.fixture
def fleet(session: Session, make_store: Any, now: datetime) -> Session:
    tokyo = make_store("TYO1")
    la = make_store("LAX1", timezone="America/Los_Angeles")
    frozen = make_store("TYO2")
    enrol_store(session=session, store=tokyo, reason="pilot", actor="sup", now=now)
    create_device(session=session, store=tokyo, device_id="pos-1", kind="pos", actor="a", now=now)
    create_device(session=session, store=la, device_id="kds-1", kind="kds", actor="a", now=now)
    freeze(session, frozen, now, reason="inventory", actor="sup")
    old = freeze(session, la, now, reason="lifted", actor="sup")
    lift_freeze(session=session, freeze=old.freeze, actor="sup", now=now)
    session.commit()
    return session


def _snapshot(engine: Engine, now: datetime, version: int = 1) -> FleetSnapshot:
    with Session(engine) as fresh:  # read back from the database, not from the identity map
        return build_snapshot(session=fresh, apps=[POS], version=version, now=now)


def test_snapshot_answers_from_memory(fleet: Session, engine: Engine, now: datetime) -> None:
    snapshot = _snapshot(engine, now)
    assert set(snapshot.stores) == {"TYO1", "LAX1", "TYO2"}
    assert snapshot.devices == {"pos-1": "TYO1", "kds-1": "LAX1"}
    assert snapshot.stores["LAX1"].freezes == ()  # lifted freezes are left out
    assert snapshot.stores["TYO2"].freezes[0].reason == "inventory"

    beta = snapshot.decide(app="pos", store_id="TYO1", current_version="3.12.0", now=now)
    assert (beta.target_version, beta.channel, beta.reason) == ("3.13.0-beta.1", "beta", "cohort")
    frozen = snapshot.decide(app="pos", store_id="TYO2", current_version="3.11.0", now=now)
    assert (frozen.target_version, frozen.reason) == ("3.11.0", "freeze")
    la = snapshot.decide(
        app="pos", store_id="LAX1", current_version="3.9.0", now=now, device_id="kds-1"
    )
    assert (la.target_version, la.reason, la.mandatory) == ("3.12.0", "stable", True)
    assert la.install_window.timezone == "America/Los_Angeles"


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"app": "kiosk", "store_id": "TYO1"}, NotFound, "app"),
        ({"app": "pos", "store_id": "NOPE"}, NotFound, "store_id"),
        ({"app": "pos", "store_id": "TYO1", "device_id": "kds-1"}, Conflict, "device_id"),
    ],
)
def test_snapshot_refuses_unknown_or_mismatched_input(
    fleet: Session,
    engine: Engine,
    now: datetime,
    kwargs: dict[str, str],
    error: type[Exception],
    field: str,
) -> None:
    snapshot = _snapshot(engine, now)
    with pytest.raises(error) as raised:
        snapshot.decide(current_version="3.12.0", now=now, **kwargs)
    assert getattr(raised.value, "field", None) == field


def test_unregistered_device_is_answered(fleet: Session, engine: Engine, now: datetime) -> None:
    snapshot = _snapshot(engine, now)
    answer = snapshot.decide(
        app="pos", store_id="TYO1", current_version="3.12.0", now=now, device_id="new-one"
    )
    assert answer.target_version == "3.13.0-beta.1"


def test_snapshot_stage_coverage(fleet: Session, engine: Engine, now: datetime) -> None:
    coverage = _snapshot(engine, now).stage_coverage("pos")
    assert [c.percent for c in coverage] == [10, 50, 100]
    assert coverage[-1].store_count == 3


def test_cache_rebuilds_only_when_the_version_moves(
    fleet: Session, engine: Engine, now: datetime
) -> None:
    builds: list[int] = []

    def build(version: int) -> FleetSnapshot:
        builds.append(version)
        return _snapshot(engine, now, version)

    cache = SnapshotCache(build)
    first = cache.get(1)
    assert cache.get(1) is first
    second = cache.get(2)
    assert second is not first and second.version == 2
    cache.invalidate()
    cache.get(2)
    assert builds == [1, 2, 2]
