"""``seen_hour``: the report indexes hold the hour of ``last_seen``; reports stay exact.

Ingest keeps ``seen_hour`` equal to ``last_seen`` truncated to the hour, whether a heartbeat
rewrites the state row (a new device, version, store, cohort, kind or hour) or only moves
its ``last_seen`` in the same hour (an update no index sees). ``seen_since`` and
``seen_before`` select exactly the rows ``last_seen >= t`` and ``last_seen < t`` would.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, col, select

from beta.models import Device
from tests.version_monitor.vm_fleet import NOW, Fleet
from version_monitor.ingest import IngestResult, ValidHeartbeat, ingest_heartbeats
from version_monitor.ingest import apply as ingest_apply
from version_monitor.ingest import sql as ingest_sql
from version_monitor.models import DeviceState, device_state_table
from version_monitor.reports import census, offline_devices
from version_monitor.seen import seen_before, seen_hour, seen_since

APPS = {"pos", "kds"}


def test_seen_hour_truncates_to_the_hour() -> None:
    assert seen_hour(datetime(2024, 7, 10, 11, 59, 59, 999999)) == datetime(2024, 7, 10, 11)
    assert seen_hour(datetime(2024, 7, 10, 11)) == datetime(2024, 7, 10, 11)


def _moments() -> list[datetime]:
    """Last-seen moments around the cutoffs below: on, just before and just after each
    hour boundary and each cutoff, and every 7 minutes over four hours."""
    base = NOW - timedelta(hours=26)
    moments = [base + timedelta(minutes=7 * n) for n in range(36)]
    for edge in (NOW - timedelta(hours=24), NOW - timedelta(hours=24, minutes=17, seconds=3)):
        for delta in (timedelta(0), timedelta(microseconds=1), timedelta(hours=1)):
            moments += [edge - delta, edge + delta, seen_hour(edge) - delta]
    return moments


@pytest.mark.parametrize(
    "cutoff",
    [
        NOW - timedelta(hours=24),  # on the hour
        NOW - timedelta(hours=24, minutes=17, seconds=3),  # inside an hour
        NOW - timedelta(hours=23, minutes=59, microseconds=1),
    ],
)
def test_seen_since_and_before_pick_exactly_the_rows_last_seen_would(
    session: Session, fleet: Fleet, cutoff: datetime
) -> None:
    store = fleet.store("S1")
    for n, moment in enumerate(_moments()):
        device = fleet.device(f"d{n}", store)
        fleet.history(device, [(moment, "3.1.0")], last_seen=moment)
        # The same device's state for another app: the conditions must hold next to others.
        fleet.history(device, [(moment, "1.0.0")], last_seen=moment, app="kds")
    ds = device_state_table

    def ids(condition: Any) -> set[int]:
        query = select(ds.c.id).where(ds.c.app == "pos", condition)
        return set(session.exec(query).all())  # type: ignore[call-overload]

    since, before = ids(ds.c.last_seen >= cutoff), ids(ds.c.last_seen < cutoff)
    assert since and before
    assert ids(seen_since(ds, cutoff)) == since
    assert ids(seen_before(ds, cutoff)) == before
    rows = session.exec(select(DeviceState)).all()
    assert all(row.seen_hour == seen_hour(row.last_seen) for row in rows)


def test_reports_count_a_device_seen_in_the_cutoff_hour_by_its_minute(
    session: Session, fleet: Fleet
) -> None:
    """The cutoff 24 h before 12:30 is 12:30 the day before: devices last seen at 12:10 and
    12:50 that day share a ``seen_hour``; one is offline, the other live."""
    now = NOW + timedelta(minutes=30)
    store = fleet.store("S1")
    day_before = now - timedelta(hours=24)
    for device_id, moment in (
        ("early", day_before - timedelta(minutes=20)),
        ("late", day_before + timedelta(minutes=20)),
        ("now", now),
    ):
        fleet.history(fleet.device(device_id, store), [(moment, "3.1.0")], last_seen=moment)
    report = census(session, app="pos", now=now)
    assert report.as_dict()["devices"] == 2
    offline = offline_devices(session, app="pos", now=now)
    assert [d.device_id for d in offline.devices] == ["early"]
    assert (offline.offline_24h, offline.offline_7d) == (1, 0)


def _state(session: Session) -> dict[str, tuple[object, ...]]:
    rows = session.exec(
        select(Device.device_id, DeviceState)
        .join(DeviceState, col(DeviceState.device_id) == col(Device.id))
        .order_by(col(Device.device_id))
    ).all()
    return {
        device_id: (
            state.version,
            state.store_id,
            state.channel,
            state.device_kind,
            state.last_seen,
            state.seen_hour,
        )
        for device_id, state in rows
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ingest_keeps_the_state_and_its_seen_hour_whatever_a_heartbeat_moves(
    session: Session, fleet: Fleet, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random heartbeats, singly and in batches, out of order, over three hours: devices
    change version, store (and cohort), kind, or only their hour or minute. After every
    request each device's state is its newest heartbeat's, and ``seen_hour`` its hour."""
    written = {"states": 0, "touches": 0, "moves": 0}
    writes = ingest_sql.Rows.writes

    def counted(rows: ingest_sql.Rows) -> Any:
        written["states"] += len(rows.states)
        for moved, updates in rows.updates.items():
            written["moves" if moved else "touches"] += len(updates)
        return writes(rows)

    monkeypatch.setattr(ingest_sql.Rows, "writes", counted)
    rng = random.Random(seed)
    stores = {"S1": fleet.store("S1"), "B1": fleet.store("B1", in_beta=True)}
    newest: dict[str, dict[str, Any]] = {}
    clock = NOW - timedelta(hours=3)
    for _ in range(40):
        batch: list[object] = []
        for _ in range(rng.choice((1, 1, 3, 8))):
            sent = clock + timedelta(minutes=rng.uniform(-20, 10))
            clock += timedelta(minutes=rng.uniform(0, 4))
            item = {
                "device_id": f"d{rng.randrange(4)}",
                "store_id": "B1" if rng.random() < 0.1 else "S1",
                "app": "pos",
                "version": "3.2.0" if rng.random() < 0.1 else "3.1.0",
                "device_kind": "kds" if rng.random() < 0.1 else "pos",
                "sent_at": sent.isoformat() + "Z",
            }
            batch.append(item)
            known = newest.get(item["device_id"])
            if known is None or sent > known["sent"]:
                newest[item["device_id"]] = item | {"sent": sent}
        now = max(clock, NOW - timedelta(hours=3))
        result = ingest_heartbeats(session, batch, known_apps=APPS, now=now + timedelta(hours=1))
        assert result.rejected == []
        expected = {
            device_id: (
                item["version"],
                stores[item["store_id"]].id,
                "beta" if item["store_id"] == "B1" else "stable",
                item["device_kind"],
                item["sent"],
                seen_hour(item["sent"]),
            )
            for device_id, item in newest.items()
        }
        session.expire_all()
        assert _state(session) == expected
    assert written["states"] >= 4
    assert written["touches"] > 10
    assert written["moves"] > 10


def test_an_update_sets_the_indexed_columns_that_moved_and_no_other() -> None:
    """A known device's heartbeat updates its row by id: ``version`` and the seen times,
    plus whichever indexed columns it moves (version, store, cohort, kind, hour)."""
    before = ingest_sql.Existing(
        version="3.1",
        version_key="k3.1",
        version_since=NOW - timedelta(days=2),
        last_sent_at=NOW - timedelta(minutes=55),
        id=7,
        store_id=1,
        device_kind="pos",
        channel="stable",
        seen_hour=seen_hour(NOW - timedelta(minutes=55)),
    )

    def written(sent: datetime, **changed: Any) -> ingest_sql.Rows:
        beat = ValidHeartbeat(
            index=0,
            device_id="d1",
            store_id=changed.get("store_id", 1),
            app="pos",
            version=changed.get("version", "3.1.0"),
            version_key=changed.get("version_key", "k3.1"),
            device_kind=changed.get("device_kind", "pos"),
            channel=changed.get("channel", "stable"),
            sent_at=sent,
        )
        rows = ingest_sql.Rows()
        result = IngestResult(accepted=1)
        ingest_apply._advance(3, "pos", before, [beat], NOW, result, rows)
        assert rows.states == []
        return rows

    same_hour = NOW - timedelta(minutes=40)
    seen = {"version": "3.1.0", "last_seen": same_hour, "last_sent_at": same_hour}
    seen |= {"id": 7, "received_at": NOW}
    assert written(same_hour).updates == {(): [seen]}
    statement = ingest_sql._update_state(())
    assert statement.named == (
        "UPDATE device_state SET version = :version, last_seen = :last_seen, "
        "last_sent_at = :last_sent_at, received_at = :received_at "
        "WHERE id = :id AND last_sent_at < :last_sent_at"
    )
    new_version = written(same_hour, version_key="k3.2", version="3.2")
    assert new_version.updates == {
        ("version_key",): [
            seen | {"version": "3.2", "version_key": "k3.2", "version_since": same_hour}
        ]
    }
    assert [c["to_version"] for c in new_version.changes] == ["3.2"]
    assert "version_since = :version_since" in ingest_sql._update_state(("version_key",)).named
    moved = written(same_hour, store_id=2, channel="beta", device_kind="kds").updates
    assert moved == {
        ("store_id", "device_kind", "channel"): [
            seen | {"store_id": 2, "channel": "beta", "device_kind": "kds"}
        ]
    }
    later = NOW + timedelta(minutes=3)  # seen at NOW (12:00), sent ahead
    next_hour = written(later).updates
    assert next_hour == {
        ("seen_hour",): [seen | {"last_seen": NOW, "seen_hour": NOW, "last_sent_at": later}]
    }
