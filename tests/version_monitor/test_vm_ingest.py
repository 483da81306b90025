from __future__ import annotations

import typing
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, col, select

from beta.models import DEVICE_KINDS, Device
from tests.version_monitor.vm_fleet import NOW, Fleet
from version_monitor.ingest import (
    MAX_BATCH,
    DeviceKind,
    HeartbeatIn,
    MalformedBatch,
    StoreRef,
    ingest_heartbeats,
    parse_batch,
    validate_batch,
)
from version_monitor.models import DeviceState, VersionChange

APPS = {"pos", "kds"}
STORES = {"S1": StoreRef(id=1, in_beta=False), "B1": StoreRef(id=2, in_beta=True)}


def beat(**overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "device_id": "d1",
        "store_id": "S1",
        "app": "pos",
        "version": "3.12.0",
        "device_kind": "pos",
        "sent_at": "2024-07-10T11:59:00Z",
    }
    item.update(overrides)
    return item


def test_device_kinds_match_the_fleet() -> None:
    assert set(typing.get_args(DeviceKind)) == set(DEVICE_KINDS)


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"store_id": "nope"}, "store_id", "unknown store"),
        ({"app": "tetris"}, "app", "unknown app"),
        ({"version": "latest"}, "version", "not a version"),
        ({"version": "1..2"}, "version", "not a version"),
        ({"version": ""}, "version", "at least 1 character"),
        ({"sent_at": "2024-07-10T12:06:00Z"}, "sent_at", "future"),
        ({"sent_at": "2024-07-03T11:59:00Z"}, "sent_at", "7 days old"),
        ({"sent_at": "yesterday"}, "sent_at", "datetime"),
        ({"sent_at": 1720612740}, "sent_at", "ISO 8601"),
        ({"device_id": 12}, "device_id", "valid string"),
        ({"version": 3.12}, "version", "valid string"),
        ({"device_kind": "toaster"}, "device_kind", "'pos'"),
        ({"device_id": None}, "device_id", "valid string"),
        # The device API's rule and message (beta.validation.check_device_id).
        ({"device_id": "=1+1"}, "device_id", "device id '=1+1' must be 1–128 characters"),
        ({"device_id": "@SUM(1)"}, "device_id", "starting with a letter or digit"),
        ({"device_id": " "}, "device_id", "device id is required"),
        ({"app": None}, "app", "valid string"),
    ],
)
def test_invalid_items_are_rejected_with_field_and_reason(
    overrides: dict[str, Any], field: str, reason: str
) -> None:
    items: list[object] = [beat(), beat(**overrides)]
    valid, rejected = validate_batch(items, known_apps=APPS, stores=STORES, now=NOW)
    assert [hb.index for hb in valid] == [0]
    assert len(rejected) == 1
    assert rejected[0].index == 1
    assert rejected[0].field == field
    assert reason in rejected[0].reason


def test_missing_field_and_non_object_items() -> None:
    missing = beat()
    del missing["sent_at"]
    valid, rejected = validate_batch(
        [missing, "hello", beat()], known_apps=APPS, stores=STORES, now=NOW
    )
    assert [hb.index for hb in valid] == [2]
    assert [(r.index, r.field) for r in rejected] == [(0, "sent_at"), (1, None)]
    assert rejected[1].as_dict() == {
        "index": 1,
        "field": None,
        "reason": "a heartbeat must be a JSON object",
    }


@pytest.mark.parametrize(
    "sent_at",
    ["2024-07-10T12:05:00Z", "2024-07-03T12:00:00Z", "2024-07-10T20:00:00+09:00"],
)
def test_window_edges_and_offsets_are_accepted(sent_at: str) -> None:
    valid, rejected = validate_batch(
        [beat(sent_at=sent_at)], known_apps=APPS, stores=STORES, now=NOW
    )
    assert rejected == []
    assert valid[0].sent_at.tzinfo is None


def test_valid_heartbeat_is_normalised() -> None:
    lookups: list[set[str]] = []

    def stores(ids: set[str]) -> dict[str, StoreRef]:
        lookups.append(ids)
        return {k: v for k, v in STORES.items() if k in ids}

    items: list[object] = [
        beat(store_id="B1", version="v3.12", sent_at="2024-07-10T20:00:00+09:00")
    ]
    valid, _ = validate_batch(items, known_apps=APPS, stores=stores, now=NOW)
    assert lookups == [{"B1"}]
    (hb,) = valid
    assert (hb.store_id, hb.channel, hb.version) == (2, "beta", "v3.12")
    assert hb.sent_at == datetime(2024, 7, 10, 11, 0)


@pytest.mark.parametrize("body", ["text", 3, None, [], [beat()] * (MAX_BATCH + 1)])
def test_malformed_bodies_are_refused_whole(body: object) -> None:
    with pytest.raises(MalformedBatch):
        parse_batch(body)


def test_single_object_and_full_batch_are_accepted() -> None:
    assert parse_batch(beat()) == [beat()]
    assert len(parse_batch([beat()] * MAX_BATCH)) == MAX_BATCH


def test_openapi_schema_names_every_field() -> None:
    schema = HeartbeatIn.model_json_schema()
    assert set(schema["required"]) == {
        "device_id",
        "store_id",
        "app",
        "version",
        "device_kind",
        "sent_at",
    }


def _states(session: Session) -> list[tuple[str, str, str, datetime]]:
    rows = session.exec(
        select(Device.device_id, DeviceState.app, DeviceState.version, DeviceState.last_sent_at)
        .join(DeviceState, DeviceState.device_id == Device.id)  # type: ignore[arg-type]
        .order_by(Device.device_id, DeviceState.app)
    ).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def _changes(session: Session) -> list[tuple[str | None, str, datetime]]:
    rows = session.exec(
        select(VersionChange.from_version, VersionChange.to_version, VersionChange.at).order_by(
            col(VersionChange.at), col(VersionChange.id)
        )
    ).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def at(minutes_ago: int) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).isoformat() + "Z"


def test_unknown_device_of_known_store_is_registered(session: Session, fleet: Fleet) -> None:
    fleet.store("S1")
    fleet.device("known", fleet.stores["S1"])
    result = ingest_heartbeats(
        session,
        [beat(device_id="known"), beat(device_id="new", device_kind="kds"), beat(store_id="X")],
        known_apps=APPS,
        now=NOW,
    )
    assert result.accepted == 2
    assert result.registered_devices == 1
    assert [r.index for r in result.rejected] == [2]
    new = session.exec(select(Device).where(Device.device_id == "new")).one()
    assert (new.store_id, new.kind) == (fleet.stores["S1"].id, "kds")
    assert session.exec(select(Device).where(Device.device_id == "X")).first() is None


def test_replay_changes_nothing(session: Session, fleet: Fleet) -> None:
    fleet.store("S1")
    batch: list[object] = [beat(device_id="a", sent_at=at(10)), beat(device_id="b", app="kds")]
    first = ingest_heartbeats(session, batch, known_apps=APPS, now=NOW)
    assert (first.registered_devices, first.new_device_states, first.stale) == (2, 2, 0)
    states, changes = _states(session), _changes(session)

    later = NOW + timedelta(minutes=3)
    again = ingest_heartbeats(session, batch, known_apps=APPS, now=later)
    assert (again.accepted, again.registered_devices, again.stale) == (2, 0, 2)
    assert again.version_changes == again.new_device_states == 0
    assert _states(session) == states
    assert _changes(session) == changes
    received = session.exec(select(DeviceState.received_at)).all()
    assert set(received) == {NOW}


def test_older_heartbeat_does_not_move_state_back(session: Session, fleet: Fleet) -> None:
    fleet.store("S1")
    ingest_heartbeats(session, [beat(version="3.13.0", sent_at=at(5))], known_apps=APPS, now=NOW)
    result = ingest_heartbeats(
        session, [beat(version="3.12.0", sent_at=at(60))], known_apps=APPS, now=NOW
    )
    assert result.stale == 1
    assert _states(session) == [("d1", "pos", "3.13.0", NOW - timedelta(minutes=5))]
    assert _changes(session) == [(None, "3.13.0", NOW - timedelta(minutes=5))]


def test_version_change_logged_only_on_change(session: Session, fleet: Fleet) -> None:
    fleet.store("S1")
    batches: list[list[object]] = [
        [beat(version="3.12.0", sent_at=at(50))],
        [beat(version="3.12", sent_at=at(40))],  # the same version, spelled differently
        [beat(version="3.13.0", sent_at=at(30)), beat(version="3.12.0", sent_at=at(35))],
        [beat(version="3.13.0", sent_at=at(20))],
    ]
    counts = [
        ingest_heartbeats(session, b, known_apps=APPS, now=NOW).version_changes for b in batches
    ]
    assert counts == [0, 0, 1, 0]
    assert _changes(session) == [
        (None, "3.12.0", NOW - timedelta(minutes=50)),
        ("3.12.0", "3.13.0", NOW - timedelta(minutes=30)),
    ]
    state = session.exec(select(DeviceState)).one()
    assert state.version_since == NOW - timedelta(minutes=30)
    assert state.first_seen == NOW - timedelta(minutes=50)
    assert state.last_seen == NOW - timedelta(minutes=20)


def test_a_batch_holding_several_versions_of_one_device_logs_each(
    session: Session, fleet: Fleet
) -> None:
    fleet.store("S1")
    batch: list[object] = [
        beat(version="3.14.0", sent_at=at(10)),
        beat(version="3.12.0", sent_at=at(30)),
        beat(version="3.13.0", sent_at=at(20)),
    ]
    result = ingest_heartbeats(session, batch, known_apps=APPS, now=NOW)
    assert result.version_changes == 2
    assert [c[:2] for c in _changes(session)] == [
        (None, "3.12.0"),
        ("3.12.0", "3.13.0"),
        ("3.13.0", "3.14.0"),
    ]
    assert _states(session) == [("d1", "pos", "3.14.0", NOW - timedelta(minutes=10))]


def test_future_sent_at_is_capped_for_seen_times(session: Session, fleet: Fleet) -> None:
    fleet.store("B1", in_beta=True)
    ingest_heartbeats(session, [beat(store_id="B1", sent_at=at(-3))], known_apps=APPS, now=NOW)
    state = session.exec(select(DeviceState)).one()
    assert state.last_sent_at == NOW + timedelta(minutes=3)
    assert state.last_seen == state.first_seen == NOW
    assert state.channel == "beta"


def test_a_large_batch_is_applied_in_one_go(session: Session, fleet: Fleet) -> None:
    for n in range(5):
        fleet.store(f"S{n}")
    batch: list[object] = [
        beat(device_id=f"dev{n}", store_id=f"S{n % 5}", sent_at=at(n % 60)) for n in range(1000)
    ]
    result = ingest_heartbeats(session, batch, known_apps=APPS, now=NOW)
    assert (result.accepted, result.registered_devices, result.new_device_states) == (
        1000,
        1000,
        1000,
    )
    assert len(session.exec(select(VersionChange)).all()) == 1000
