"""The heartbeat fast path (service/adoption/fastpath.py): the common request answered in
front of Flask exactly as the view answers it; everything else still reaches the view."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import OperationalError

from beta.models import Store
from service import db
from service.adoption import heartbeats
from service.adoption.models import HeartbeatRate
from service.adoption.ratelimit import SHARDS
from service.api import tokens
from service.api.tokens import cached_token
from service.models import ApiToken
from tests.service.adoption.conftest import URL, bearer, beat, stored
from version_monitor.models import DeviceState


def test_the_common_heartbeat_is_answered_like_the_view_answers_it(
    client, session, heartbeat_token, fast, warm
):
    response = client.post(URL, json=beat(0), headers=bearer(heartbeat_token))
    assert fast == [response.json]
    assert response.status_code == 200
    assert response.get_data(as_text=True).endswith("\n")
    assert response.json == warm.json  # a first state for a known device, both times
    view_headers = {k for k, _ in warm.headers} - {"Content-Length"}
    assert {k for k, _ in response.headers} - {"Content-Length"} == view_headers
    for name in view_headers - {"X-Request-ID"}:
        assert response.headers[name] == warm.headers[name], name
    assert re.fullmatch(r"[0-9a-f]{16}", response.headers["X-Request-ID"])
    assert response.headers["Content-Length"] == str(len(response.get_data()))
    assert response.headers["Cache-Control"] == warm.headers["Cache-Control"] == "no-store"
    state = session.exec(select(DeviceState).where(DeviceState.channel == "beta")).scalars().one()
    assert state.version == "3.2.0"  # S001 is the beta store


def test_batches_replays_and_version_changes(client, session, heartbeat_token, fast, warm):
    batch = [beat(0), beat(1)]
    first = client.post(URL, json=batch, headers=bearer(heartbeat_token))
    assert first.json["new_device_states"] == 2
    newer = [beat(3, version="3.3.0"), beat(4, version="3.2.0")]
    second = client.post(URL, json=newer, headers=bearer(heartbeat_token))
    assert (second.json["version_changes"], second.json["stale"]) == (1, 0)
    before = stored(session)
    replay = client.post(URL, json=newer, headers=bearer(heartbeat_token))
    assert (replay.json["accepted"], replay.json["stale"]) == (2, 2)
    assert stored(session) == before
    assert len(fast) == 3


def test_request_id_access_log_and_metrics(client, heartbeat_token, fast, warm, caplog):
    def sample(name: str, **labels: str) -> float:
        text = client.get("/metrics").get_data(as_text=True)
        wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
        found = re.search(
            "^" + re.escape(f"{name}{{{wanted}}}" if wanted else name) + r" ([0-9.e+]+)$",
            text,
            re.MULTILINE,
        )
        return float(found.group(1)) if found else 0.0

    labels = {"endpoint": "api.adoption_post_heartbeats", "method": "POST", "status": "2xx"}
    requests = sample("relgov_http_requests_total", **labels)
    accepted = sample("relgov_heartbeats_accepted_total")
    caplog.set_level(logging.INFO, logger="relgov.access")
    headers = bearer(heartbeat_token) | {"X-Request-ID": "device-42.beat"}
    response = client.post(URL, json=[beat(0), beat(1)], headers=headers)
    assert len(fast) == 1
    assert response.headers["X-Request-ID"] == "device-42.beat"
    (record,) = [r for r in caplog.records if r.name == "relgov.access"]
    assert record.getMessage() == "POST /api/v1/heartbeats 200"
    assert (record.endpoint, record.status, record.actor) == (
        "api.adoption_post_heartbeats",
        200,
        "token:devices",
    )
    assert record.request_id == "device-42.beat"
    assert record.duration_ms >= 0
    assert sample("relgov_http_requests_total", **labels) == requests + 1
    assert sample("relgov_heartbeats_accepted_total") == accepted + 2
    unsafe = client.post(
        URL, json=beat(3), headers=bearer(heartbeat_token) | {"X-Request-ID": "a b"}
    )
    assert re.fullmatch(r"[0-9a-f]{16}", unsafe.headers["X-Request-ID"])


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ([{"device_id": "S001-pos-0"}], 422),  # every item rejected
        (None, 207),  # one valid, one unknown app: filled in below
        ([beat(0, device_id="nul\u0000")], 422),  # NUL refused by service.security
        ({"not": "a heartbeat"}, 422),
        ([], 400),
        ("text", 400),
    ],
)
def test_anything_unusual_is_answered_by_the_view(
    client, session, heartbeat_token, fast, warm, body, status
):
    if body is None:
        body = [beat(0), beat(1, app="nope")]
    before = stored(session)
    response = client.post(URL, json=body, headers=bearer(heartbeat_token))
    assert response.status_code == status, response.json
    assert fast == []
    assert "error" in response.json or response.json["rejected"]
    assert stored(session) == (before if status != 207 else (before[0] + 1, before[1] + 1))


def test_other_media_types_queries_and_unknown_tokens_reach_the_view(
    client, heartbeat_token, read_token, fast, warm
):
    import json

    raw = json.dumps(beat(0))
    headers = bearer(heartbeat_token)
    text = client.post(URL, data=raw, headers=headers | {"Content-Type": "text/plain"})
    assert text.status_code == 415
    query = client.post(URL + "?x=1", json=beat(0), headers=headers)
    assert query.status_code == 200
    assert client.post(URL, json=beat(1), headers=bearer(read_token)).status_code == 403
    assert client.post(URL, json=beat(1), headers=bearer("relgov_nope")).status_code == 401
    assert client.post(URL, json=beat(1)).status_code == 401
    assert fast == []


def test_a_revoked_or_expired_token_is_refused_even_when_cached(
    client, session, heartbeat_token, fast, warm
):
    cached = cached_token(heartbeat_token, client.application)
    assert cached is not None
    cached.revoked_at = datetime.now(UTC)
    refused = client.post(URL, json=beat(0), headers=bearer(heartbeat_token))
    assert refused.status_code == 401 and fast == []
    cached.revoked_at = None
    cached.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    expired = client.post(URL, json=beat(0), headers=bearer(heartbeat_token))
    assert expired.status_code == 401 and fast == []
    assert stored(session) == (1, 1)  # the warm-up's


def test_a_revocation_in_another_process_stops_the_fast_path_within_the_check_interval(
    app, client, session, heartbeat_token, fast, warm, database_url, monkeypatch
):
    """Another gunicorn worker revokes the token: this worker's fast path, which never
    queries the token, refuses it once the token generation has been read again."""
    now = [1_000.0]
    monkeypatch.setattr(tokens, "time", SimpleNamespace(monotonic=lambda: now[0]))
    tokens.clear_token_cache()
    assert client.post(URL, json=beat(0), headers=bearer(heartbeat_token)).status_code == 200
    assert client.post(URL, json=beat(1), headers=bearer(heartbeat_token)).status_code == 200
    assert len(fast) == 1  # the first request cached the token (the view), then the fast path
    cache = tokens.cache_of(app)
    reads = cache.generation_reads
    engine = db.make_engine(database_url)
    with engine.begin() as conn:  # what the other worker commits
        conn.execute(update(ApiToken).values(revoked_at=datetime.now(UTC)))
        conn.execute(text("UPDATE token_generation SET generation = generation + 1"))
    engine.dispose()
    now[0] += tokens.CHECK_INTERVAL / 2
    for n in range(2, 12):
        assert client.post(URL, json=beat(n), headers=bearer(heartbeat_token)).status_code == 200
    assert len(fast) == 11 and cache.generation_reads == reads  # no query for the token
    now[0] += tokens.CHECK_INTERVAL / 2
    refused = client.post(URL, json=beat(12), headers=bearer(heartbeat_token))
    assert refused.status_code == 401 and len(fast) == 11
    assert refused.json["error"]["message"] == "this token was revoked"


def test_over_the_rate_limit_is_refused_by_the_view_and_stores_nothing(
    client, app, session, heartbeat_token, fast, warm
):
    limit = app.config["RELGOV_SETTINGS"].heartbeat_rate_limit
    token = session.exec(select(ApiToken)).scalars().one()
    import os
    import time

    session.add(
        HeartbeatRate(
            token_id=token.id,
            shard=(os.getpid() + 1) % SHARDS,
            window_minute=int(time.time() // 60),
            heartbeats=limit,
        )
    )
    session.commit()
    before = stored(session)
    response = client.post(URL, json=beat(0), headers=bearer(heartbeat_token))
    assert response.status_code == 429, response.json
    assert response.json["error"]["code"] == "rate_limited"
    assert int(response.headers["Retry-After"]) >= 1
    assert stored(session) == before
    assert fast == []


def test_a_store_change_is_seen_by_the_next_heartbeat(client, session, heartbeat_token, fast, warm):
    client.post(URL, json=beat(1), headers=bearer(heartbeat_token))  # S002, cached as stable
    store = session.scalars(select(Store).where(Store.external_id == "S002")).one()
    store.in_beta = True
    session.add(store)
    session.commit()  # bumps the fleet counter
    client.post(URL, json=beat(4), headers=bearer(heartbeat_token))
    assert len(fast) == 2
    session.expire_all()
    state = session.scalars(select(DeviceState).where(DeviceState.store_id == store.id)).one()
    assert state.channel == "beta"


def test_a_database_error_in_the_fast_path_leaves_the_request_to_the_view(
    client, session, heartbeat_token, fast, warm, monkeypatch
):
    real = heartbeats.accept

    def failing(*args: Any, **kwargs: Any) -> Any:
        accepted = real(*args, **kwargs)
        if kwargs.get("every_item_valid"):  # the fast path: it wrote, then its connection fails
            raise OperationalError("COMMIT", {}, Exception("server closed the connection"))
        return accepted

    monkeypatch.setattr(heartbeats, "accept", failing)
    before = stored(session)
    response = client.post(URL, json=beat(0, version="3.9.0"), headers=bearer(heartbeat_token))
    assert response.status_code == 200, response.json
    assert response.json["new_device_states"] == 1  # the view saw no state: none was kept
    assert fast == []
    assert stored(session) == (before[0] + 1, before[1] + 1)
    monkeypatch.setattr(heartbeats, "accept", real)
    again = client.post(URL, json=beat(3, version="4.0.0"), headers=bearer(heartbeat_token))
    assert again.json["version_changes"] == 1 and len(fast) == 1
