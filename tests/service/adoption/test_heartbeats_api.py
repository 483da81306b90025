"""POST /api/v1/heartbeats: single, batch, mixed, replay, and every refusal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from beta.models import Device
from tests import builders
from tests.service.adoption.conftest import bearer, make_app, make_fleet
from version_monitor.models import DeviceState, VersionChange

URL = "/api/v1/heartbeats"


def beat(device: str = "S001-pos-0", store: str = "S001", **fields: object) -> dict[str, object]:
    sent = datetime.now(UTC) - timedelta(minutes=1)
    return {
        "device_id": device,
        "store_id": store,
        "app": "pos",
        "version": "3.2.0",
        "device_kind": "pos",
        "sent_at": sent.isoformat(),
    } | fields


def count(session: Session, model: type) -> int:
    session.expire_all()
    return int(session.execute(select(func.count()).select_from(model)).scalar_one())


@pytest.fixture
def fleet(session: Session) -> None:
    make_app(session, "pos")
    make_fleet(session, stores=3, beta=1)


def test_single_heartbeat_is_stored(client, fleet, session, heartbeat_token):
    response = client.post(URL, json=beat(), headers=bearer(heartbeat_token))
    assert response.status_code == 200, response.json
    assert response.json["accepted"] == 1
    assert response.json["rejected"] == []
    state = session.exec(select(DeviceState)).scalars().one()
    assert (state.app, state.version, state.channel) == ("pos", "3.2.0", "beta")


def test_batch_and_replay_changes_nothing(client, fleet, session, heartbeat_token):
    batch = [beat(f"S00{n}-pos-0", f"S00{n}") for n in (1, 2, 3)]
    first = client.post(URL, json=batch, headers=bearer(heartbeat_token))
    assert first.status_code == 200 and first.json["accepted"] == 3
    states, changes = count(session, DeviceState), count(session, VersionChange)
    again = client.post(URL, json=batch, headers=bearer(heartbeat_token))
    assert again.status_code == 200
    assert again.json["stale"] == 3
    assert (count(session, DeviceState), count(session, VersionChange)) == (states, changes)


def test_mixed_batch_reports_rejections_by_index(client, fleet, session, heartbeat_token):
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    batch = [
        beat(),
        beat(app="nope"),
        beat(version="latest"),
        beat(version="1..2"),
        beat(sent_at=future),
        beat(store="S999"),
        beat(device_kind="toaster"),
        "not an object",
        beat("S002-pos-0", "S002"),
    ]
    response = client.post(URL, json=batch, headers=bearer(heartbeat_token))
    assert response.status_code == 207, response.json
    assert response.json["accepted"] == 2
    rejected = {r["index"]: r for r in response.json["rejected"]}
    assert sorted(rejected) == [1, 2, 3, 4, 5, 6, 7]
    assert rejected[1]["field"] == "app" and "unknown app" in rejected[1]["reason"]
    assert rejected[2]["field"] == rejected[3]["field"] == "version"
    assert rejected[4]["field"] == "sent_at" and "future" in rejected[4]["reason"]
    assert rejected[5]["field"] == "store_id"
    assert rejected[6]["field"] == "device_kind"
    assert rejected[7]["field"] is None
    assert count(session, DeviceState) == 2


def test_unknown_device_of_known_store_is_registered(client, fleet, session, heartbeat_token):
    response = client.post(URL, json=beat("S003-kds-new", "S003"), headers=bearer(heartbeat_token))
    assert response.status_code == 200
    assert response.json["registered_devices"] == 1
    assert session.exec(select(Device).where(Device.device_id == "S003-kds-new")).first()


def test_all_rejected_is_422_and_stores_nothing(client, fleet, session, heartbeat_token):
    old = (datetime.now(UTC) - timedelta(days=8)).isoformat()
    response = client.post(
        URL, json=[beat(sent_at=old), beat(app="x")], headers=bearer(heartbeat_token)
    )
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"
    assert response.json["error"]["fields"][0]["field"] == "[0].sent_at"
    assert response.json["accepted"] == 0
    assert count(session, DeviceState) == 0


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("{not json", "invalid_json"),
        ("42", "malformed_batch"),
        ("[]", "malformed_batch"),
        ('"text"', "malformed_batch"),
    ],
)
def test_malformed_body_is_400(client, fleet, session, heartbeat_token, body, code):
    response = client.post(
        URL, data=body, content_type="application/json", headers=bearer(heartbeat_token)
    )
    assert response.status_code == 400
    assert response.json["error"]["code"] == code
    assert count(session, DeviceState) == 0


def test_over_the_limit_is_413_stating_it(client, fleet, session, heartbeat_token):
    response = client.post(URL, json=[beat()] * 1001, headers=bearer(heartbeat_token))
    assert response.status_code == 413
    assert "at most 1000" in response.json["error"]["message"]
    assert count(session, DeviceState) == 0


def test_not_json_is_415(client, fleet, heartbeat_token):
    response = client.post(URL, data="x", headers=bearer(heartbeat_token))
    assert response.status_code == 415


def test_token_without_the_scope_is_403(client, fleet, session, read_token):
    response = client.post(URL, json=beat(), headers=bearer(read_token))
    assert response.status_code == 403
    assert "heartbeats:write" in response.json["error"]["message"]
    assert count(session, DeviceState) == 0


def test_no_token_is_401(client, fleet):
    assert client.post(URL, json=beat()).status_code == 401


def test_openapi_documents_the_body(client):
    doc = client.get("/api/v1/openapi.json").json
    post = doc["paths"]["/api/v1/heartbeats"]["post"]
    assert post["x-scope"] == "heartbeats:write"
    assert "HeartbeatBatch" in str(post["requestBody"])
    assert "413" in post["responses"]
    assert "/api/v1/apps/{app}/adoption/stragglers.csv" in doc["paths"]


@pytest.mark.parametrize("device_id", ["=1+1", "@SUM(1)", "-1", "pos 1", "x/../y"])
def test_a_device_id_the_device_api_refuses_is_rejected_per_item_with_its_message(
    client, fleet, session, admin, heartbeat_token, device_id
):
    fleet_token = builders.make_token(session, creator=admin, scopes=["fleet:write"], name="fleet")
    refused = client.post(
        "/api/v1/stores/S001/devices",
        json={"device_id": device_id, "kind": "pos"},
        headers=bearer(fleet_token),
    )
    assert refused.status_code == 422
    [field] = refused.json["error"]["fields"]
    assert field["field"] == "device_id"
    devices = count(session, Device)

    response = client.post(
        URL, json=[beat(), beat(device_id, "S002")], headers=bearer(heartbeat_token)
    )
    assert response.status_code == 207, response.json
    assert response.json["accepted"] == 1
    assert response.json["rejected"] == [
        {"index": 1, "field": "device_id", "reason": field["message"]}
    ]
    alone = client.post(URL, json=beat(device_id, "S002"), headers=bearer(heartbeat_token))
    assert alone.status_code == 422
    assert alone.json["error"]["fields"][0]["field"] == "[0].device_id"
    assert count(session, Device) == devices  # nothing registered
    session.expire_all()
    assert session.exec(select(Device).where(Device.device_id == device_id)).first() is None


def test_the_update_answer_takes_the_same_device_ids(client, fleet, session, heartbeat_token):
    query = {"store_id": "S001", "current_version": "3.2.0"}
    url = "/api/v1/apps/pos/update"
    ok = client.get(
        url, query_string=query | {"device_id": "S001-pos-0"}, headers=bearer(heartbeat_token)
    )
    assert ok.status_code == 200, ok.json
    bad = client.get(
        url, query_string=query | {"device_id": "=1+1"}, headers=bearer(heartbeat_token)
    )
    assert bad.status_code == 422
    assert bad.json["error"]["fields"][0]["field"] == "device_id"
    assert "must be 1–128 characters" in bad.json["error"]["fields"][0]["message"]
