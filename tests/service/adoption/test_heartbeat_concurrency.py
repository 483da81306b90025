"""Heartbeats for the same devices posted at once by several clients, out of order: each
device ends in the state of its newest heartbeat and its change log is one unbroken chain."""

from __future__ import annotations

import itertools
import random
import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlmodel import Session

from tests.service.adoption.conftest import bearer, make_app, make_fleet
from version_monitor.models import DeviceState, VersionChange

URL = "/api/v1/heartbeats"
DEVICES = [f"S00{n % 3 + 1}-{kind}-{n // 3 % 2}" for n in range(6) for kind in ("pos",)]
VERSIONS = ["3.1.0", "3.2.0", "3.3.0"]


def test_concurrent_out_of_order_batches_keep_states_and_change_logs_consistent(
    app, session: Session, heartbeat_token: str
) -> None:
    make_app(session, "pos")
    make_fleet(session, stores=3, beta=1)
    rng = random.Random(7)
    base = datetime.now(UTC) - timedelta(hours=1)
    offsets = list(range(3 * 12 * 24))
    rng.shuffle(offsets)  # every heartbeat its own sent_at, sent in no particular order
    beats = [
        {
            "device_id": DEVICES[i % len(DEVICES)],
            "store_id": f"S00{DEVICES[i % len(DEVICES)][3]}",
            "app": "pos",
            "version": rng.choice(VERSIONS),
            "device_kind": "pos",
            "sent_at": (base + timedelta(milliseconds=offset)).isoformat(),
        }
        for i, offset in enumerate(offsets)
    ]
    batches = [beats[n : n + 24] for n in range(0, len(beats), 24)]
    statuses: list[int] = []

    def post(mine: list[list[dict[str, object]]]) -> None:
        client = app.test_client()
        for batch in mine:
            # Singles too: the one-heartbeat path has its own statements.
            response = client.post(URL, json=batch[0], headers=bearer(heartbeat_token))
            statuses.append(response.status_code)
            response = client.post(URL, json=batch[1:], headers=bearer(heartbeat_token))
            statuses.append(response.status_code)

    threads = [threading.Thread(target=post, args=(batches[n::3],)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert set(statuses) == {200}, statuses

    session.expire_all()
    states = {s.device_id: s for s in session.scalars(select(DeviceState))}
    changes = list(session.scalars(select(VersionChange).order_by(VersionChange.id)))
    ids = {row.device_id: row.id for row in _devices(session)}
    for device in DEVICES:
        mine = [b for b in beats if b["device_id"] == device]
        newest = max(mine, key=lambda b: str(b["sent_at"]))
        state = states[ids[device]]
        assert state.version == newest["version"]
        assert state.last_sent_at == datetime.fromisoformat(str(newest["sent_at"])).replace(
            tzinfo=None
        )
        chain = [c for c in changes if c.device_id == ids[device]]
        assert chain[0].from_version is None
        for before, after in itertools.pairwise(chain):
            assert after.from_version == before.to_version != after.to_version
            assert after.at >= before.at
        assert chain[-1].to_version == state.version


def _devices(session: Session) -> list:
    from beta.models import Device

    return list(session.scalars(select(Device)))
