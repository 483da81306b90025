"""Heartbeats per token per minute (429 + Retry-After, nothing stored) and the ingestion
counters in /metrics."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import func, select
from sqlmodel import Session

from service.adoption.models import HeartbeatRate
from service.settings import Settings, SettingsError
from tests.service.adoption.conftest import bearer, make_app, make_fleet
from version_monitor.models import DeviceState, VersionChange

URL = "/api/v1/heartbeats"
LIMIT = 5
# The middle of a minute, so that a test's few requests stay in one window.
T0 = datetime(2030, 3, 4, 10, 20, 30, tzinfo=UTC)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, heartbeat_rate_limit=LIMIT)


@pytest.fixture
def fleet(session: Session) -> None:
    make_app(session, "pos")
    make_fleet(session, stores=3, beta=1)


def beat(n: int, *, version: str = "3.2.0", sent: datetime | None = None) -> dict[str, object]:
    store = n % 3 + 1
    return {
        "device_id": f"S00{store}-pos-{n}",
        "store_id": f"S00{store}",
        "app": "pos",
        "version": version,
        "device_kind": "pos",
        "sent_at": ((sent or datetime.now(UTC)) - timedelta(seconds=1)).isoformat(),
    }


def stored(session: Session) -> tuple[int, int]:
    session.expire_all()
    states = session.execute(select(func.count()).select_from(DeviceState)).scalar_one()
    changes = session.execute(select(func.count()).select_from(VersionChange)).scalar_one()
    return int(states), int(changes)


def test_requests_over_the_limit_get_429_with_retry_after_and_store_nothing(
    client, fleet, session, heartbeat_token
):
    with time_machine.travel(T0, tick=False):
        ok = client.post(URL, json=[beat(n) for n in range(4)], headers=bearer(heartbeat_token))
        assert ok.status_code == 200 and ok.json["accepted"] == 4
        ok = client.post(URL, json=beat(4), headers=bearer(heartbeat_token))
        assert ok.status_code == 200
        before = stored(session)
        for n in (5, 6, 7):
            refused = client.post(URL, json=beat(n), headers=bearer(heartbeat_token))
            assert refused.status_code == 429
            assert refused.headers["Retry-After"] == "30"  # the rest of the minute
            assert refused.json["error"]["code"] == "rate_limited"
            assert "5 heartbeats" in refused.json["error"]["message"]
        assert stored(session) == before
        row = session.exec(select(HeartbeatRate)).scalars().one()
        assert row.heartbeats == LIMIT  # refusals are not counted


def test_a_batch_that_would_pass_the_limit_is_refused_whole(
    client, fleet, session, heartbeat_token
):
    with time_machine.travel(T0, tick=False):
        assert client.post(URL, json=beat(0), headers=bearer(heartbeat_token)).status_code == 200
        before = stored(session)
        batch = [beat(n) for n in range(1, 6)]  # 1 + 5 > 5
        refused = client.post(URL, json=batch, headers=bearer(heartbeat_token))
        assert refused.status_code == 429
        assert stored(session) == before
        # What still fits goes through.
        fits = client.post(URL, json=batch[:4], headers=bearer(heartbeat_token))
        assert fits.status_code == 200 and fits.json["accepted"] == 4


def test_a_batch_larger_than_the_limit_is_told_to_split(client, fleet, heartbeat_token):
    with time_machine.travel(T0, tick=False):
        batch = [beat(n) for n in range(LIMIT + 1)]
        refused = client.post(URL, json=batch, headers=bearer(heartbeat_token))
    assert refused.status_code == 429
    assert "smaller batches" in refused.json["error"]["message"]


def test_the_window_resets_after_the_minute(client, fleet, session, heartbeat_token):
    with time_machine.travel(T0, tick=False) as traveller:
        batch = [beat(n) for n in range(LIMIT)]
        assert client.post(URL, json=batch, headers=bearer(heartbeat_token)).status_code == 200
        assert client.post(URL, json=beat(9), headers=bearer(heartbeat_token)).status_code == 429
        traveller.shift(timedelta(seconds=29))  # 10:20:59
        refused = client.post(URL, json=beat(9), headers=bearer(heartbeat_token))
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
        traveller.shift(timedelta(seconds=1))  # 10:21:00, a new window
        later = [beat(n, version="3.3.0", sent=T0 + timedelta(seconds=30)) for n in range(LIMIT)]
        again = client.post(URL, json=later, headers=bearer(heartbeat_token))
        assert again.status_code == 200 and again.json["version_changes"] == LIMIT


def test_each_token_has_its_own_count(client, fleet, session, admin, heartbeat_token):
    from tests import builders

    other = builders.make_token(session, creator=admin, scopes=["heartbeats:write"], name="b")
    with time_machine.travel(T0, tick=False):
        batch = [beat(n) for n in range(LIMIT)]
        assert client.post(URL, json=batch, headers=bearer(heartbeat_token)).status_code == 200
        assert client.post(URL, json=beat(7), headers=bearer(heartbeat_token)).status_code == 429
        assert client.post(URL, json=beat(7), headers=bearer(other)).status_code == 200


def test_rejected_requests_are_not_counted(client, fleet, heartbeat_token):
    with time_machine.travel(T0, tick=False):
        bad = [beat(n) | {"app": "nope"} for n in range(LIMIT)]
        for _ in range(3):
            assert client.post(URL, json=bad, headers=bearer(heartbeat_token)).status_code == 422
        batch = [beat(n) for n in range(LIMIT)]
        assert client.post(URL, json=batch, headers=bearer(heartbeat_token)).status_code == 200


class TestNoLimit:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return replace(settings, heartbeat_rate_limit=0)

    def test_zero_disables_the_limit(self, client, fleet, session, heartbeat_token):
        with time_machine.travel(T0, tick=False):
            for n in range(3):
                batch = [beat(n * 10 + i) for i in range(10)]
                response = client.post(URL, json=batch, headers=bearer(heartbeat_token))
                assert response.status_code == 200
        assert session.exec(select(HeartbeatRate)).first() is None


def test_the_setting_is_read_from_the_environment():
    base = {"RELGOV_ENV": "test"}
    assert Settings.from_env(base).heartbeat_rate_limit == 600_000
    assert Settings.from_env(base | {"RELGOV_HEARTBEAT_RATE_LIMIT": "0"}).heartbeat_rate_limit == 0
    with pytest.raises(SettingsError, match="RELGOV_HEARTBEAT_RATE_LIMIT"):
        Settings.from_env(base | {"RELGOV_HEARTBEAT_RATE_LIMIT": "-1"})
    with pytest.raises(SettingsError, match="RELGOV_HEARTBEAT_RATE_LIMIT"):
        Settings.from_env(base | {"RELGOV_HEARTBEAT_RATE_LIMIT": "lots"})


# --- metrics ------------------------------------------------------------------------------


def sample(client, name: str, **labels: str) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name + (f"{{{wanted}}}" if wanted else "")) + r" ([0-9.e+]+)"
    found = re.search(r"^" + pattern + "$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_ingestion_counters_appear_in_metrics(client, fleet, heartbeat_token):
    accepted = sample(client, "relgov_heartbeats_accepted_total")
    unknown_app = sample(client, "relgov_heartbeats_rejected_total", reason="unknown_app")
    old = sample(client, "relgov_heartbeats_rejected_total", reason="sent_at_too_old")
    limited = sample(client, "relgov_heartbeat_requests_rate_limited_total")
    with time_machine.travel(T0, tick=False):
        batch = [beat(0), beat(1), beat(2) | {"app": "nope"}]
        batch.append(beat(3, sent=T0 - timedelta(days=8)))
        assert client.post(URL, json=batch, headers=bearer(heartbeat_token)).status_code == 207
        bad = [beat(4) | {"app": "nope"}]
        assert client.post(URL, json=bad, headers=bearer(heartbeat_token)).status_code == 422
        assert client.post(URL, json=beat(5), headers=bearer(heartbeat_token)).status_code == 200
        too_many = [beat(n) for n in range(6, 9)]
        assert client.post(URL, json=too_many, headers=bearer(heartbeat_token)).status_code == 429
    assert sample(client, "relgov_heartbeats_accepted_total") == accepted + 3
    assert (
        sample(client, "relgov_heartbeats_rejected_total", reason="unknown_app") == unknown_app + 2
    )
    assert sample(client, "relgov_heartbeats_rejected_total", reason="sent_at_too_old") == old + 1
    assert sample(client, "relgov_heartbeat_requests_rate_limited_total") == limited + 1
    text = client.get("/metrics").get_data(as_text=True)
    assert 'relgov_heartbeats_rejected_total{reason="invalid_version"}' in text


def test_the_count_is_shared_with_other_processes(client, fleet, session, heartbeat_token):
    """Another web process (another shard row of the token) counted heartbeats this minute."""
    import os

    from service.adoption.ratelimit import SHARDS
    from service.models import ApiToken

    token = session.exec(select(ApiToken)).scalars().one()
    other_shard = (os.getpid() + 1) % SHARDS
    minute = int(T0.timestamp() // 60)
    session.add(
        HeartbeatRate(
            token_id=token.id, shard=other_shard, window_minute=minute, heartbeats=LIMIT - 1
        )
    )
    # A row of an earlier minute does not count.
    session.add(
        HeartbeatRate(
            token_id=token.id,
            shard=(other_shard + 1) % SHARDS,
            window_minute=minute - 1,
            heartbeats=LIMIT,
        )
    )
    session.commit()
    with time_machine.travel(T0, tick=False):
        batch = [beat(0), beat(1)]
        assert client.post(URL, json=batch, headers=bearer(heartbeat_token)).status_code == 429
        assert client.post(URL, json=beat(0), headers=bearer(heartbeat_token)).status_code == 200
        assert client.post(URL, json=beat(1), headers=bearer(heartbeat_token)).status_code == 429
