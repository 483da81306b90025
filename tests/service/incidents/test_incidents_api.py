"""The incidents API: record with computed score, suggestion, validation, resolve, trend."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from service.incidents.models import Incident
from service.models import AuditEvent, utcnow

URL = "/api/v1/incidents"


def body(**fields: object) -> dict[str, object]:
    data: dict[str, object] = {
        "app": "pos",
        "title": "Tickets print twice",
        "impact": 5,
        "stores": ["S0001", "S0003"],
        "started_at": (utcnow() - timedelta(hours=1)).isoformat(),
    }
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


def test_record_scores_and_suggests_the_release(client, world, writer, session) -> None:
    response = client.post(URL, json=body(), headers=writer)
    assert response.status_code == 201, response.json
    data = response.json
    assert data["score"] == 5 and data["impact"] == 5 and data["scope"] == 1
    assert data["store_count"] == 2 and data["beta_store_count"] == 1
    assert data["active_stores"] == 6
    assert data["stores"] == ["S0001", "S0003"]
    assert "6 stores with a device seen in the 24 h" in data["active_basis"]
    assert data["derivation"].startswith(
        "impact 5 (store work impossible (no workaround)) × scope 1"
    )
    # S0001's device ran 3.12.0, S0003's 3.11.0: a tie goes to the first seen most common.
    assert data["release"] in ("3.12.0", "3.11.0") and data["release_suggested"] is True
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "incident.record")).one()
    assert event.subject_id == str(data["id"])


def test_suggestion_uses_the_versions_at_the_start(client, world, writer) -> None:
    # 35 days ago the beta stores still ran 3.11.0; now they run 3.12.0.
    before = client.post(
        URL,
        json=body(
            stores=["S0001", "S0002"], started_at=(utcnow() - timedelta(days=35)).isoformat()
        ),
        headers=writer,
    )
    assert before.json["release"] == "3.11.0"
    after = client.post(URL, json=body(stores=["S0001", "S0002"]), headers=writer)
    assert after.json["release"] == "3.12.0" and after.json["beta_store_count"] == 2
    named = client.post(URL, json=body(stores=["S0001"], release="3.11.0"), headers=writer)
    assert named.json["release"] == "3.11.0" and named.json["release_suggested"] is False
    unsuggested = client.post(
        URL, json=body(stores=["S0001"], suggest_release=False), headers=writer
    )
    assert unsuggested.json["release"] is None


def test_a_count_instead_of_stores(client, world, writer) -> None:
    response = client.post(
        URL, json=body(stores=None, store_count=4, beta_store_count=1, impact=1), headers=writer
    )
    assert response.status_code == 201, response.json
    # 4 of 6 active stores is more than half: the example, 1 × 3 = 3.
    assert response.json["scope"] == 3 and response.json["score"] == 3
    assert response.json["stores"] is None


def test_all_stores_count_when_no_device_reported(client, session, writer) -> None:
    from beta import store as fleet
    from service.releases.models import App

    session.add(App(slug="kds", name="KDS"))
    for n in range(1, 5):
        fleet.create_store(session=session, external_id=f"K{n}", name="k", actor="t", now=utcnow())
    session.commit()
    response = client.post(URL, json=body(app="kds", stores=["K1"], impact=3), headers=writer)
    assert response.status_code == 201
    assert response.json["active_stores"] == 4
    assert "no device reported" in response.json["active_basis"]


@pytest.mark.parametrize(
    ("fields", "status", "field"),
    [
        ({"impact": 2}, 422, "impact"),
        ({"impact": None}, 422, "impact"),
        ({"title": ""}, 422, "title"),
        ({"title": "   "}, 422, "title"),
        ({"app": "nope"}, 422, "app"),
        ({"stores": ["S0001", "S9999"]}, 422, "stores"),
        ({"stores": []}, 422, "stores"),
        ({"stores": None}, 422, "stores"),
        ({"store_count": 3}, 422, "store_count"),
        ({"stores": None, "store_count": 0}, 422, "store_count"),
        ({"stores": None, "store_count": 2, "beta_store_count": 3}, 422, "beta_store_count"),
        ({"release": "9.9.9"}, 422, "release"),
        ({"started_at": "yesterday"}, 422, "started_at"),
        ({"started_at": (utcnow() + timedelta(days=1)).isoformat()}, 422, "started_at"),
        ({"resolved_at": (utcnow() - timedelta(days=3)).isoformat()}, 422, "resolved_at"),
        ({"postmortem_url": "notion page"}, 422, "postmortem_url"),
    ],
)
def test_bad_input_names_the_field(client, world, writer, session, fields, status, field) -> None:
    response = client.post(URL, json=body(**fields), headers=writer)
    assert response.status_code == status, response.json
    names = [f["field"] for f in response.json["error"].get("fields", [])]
    assert field in names, response.json
    assert session.exec(select(Incident)).first() is None  # nothing half-written


def test_scopes(client, world, reader) -> None:
    assert client.post(URL, json=body()).status_code == 401
    assert client.post(URL, json=body(), headers=reader).status_code == 403
    assert client.get(URL, headers=reader).status_code == 200


def test_get_list_patch(client, world, writer, reader, session) -> None:
    created = client.post(URL, json=body(), headers=writer).json
    one = client.get(f"{URL}/{created['id']}", headers=reader)
    assert one.status_code == 200 and one.json["title"] == "Tickets print twice"
    assert client.get(f"{URL}/9999", headers=reader).status_code == 404
    listed = client.get(f"{URL}?app=pos&open=true", headers=reader).json
    assert [i["id"] for i in listed] == [created["id"]]
    assert client.get(f"{URL}?app=nope", headers=reader).status_code == 404
    assert client.get(f"{URL}?app=pos&release=0.0.1", headers=reader).status_code == 404

    resolved_at = datetime.now(UTC).isoformat()
    patched = client.patch(
        f"{URL}/{created['id']}",
        json={"resolved_at": resolved_at, "postmortem_url": "https://notion.example.com/pm/1"},
        headers=writer,
    )
    assert patched.status_code == 200, patched.json
    assert patched.json["resolved_at"] is not None
    assert patched.json["postmortem_url"] == "https://notion.example.com/pm/1"
    assert client.get(f"{URL}?open=true", headers=reader).json == []
    rescored = client.patch(f"{URL}/{created['id']}", json={"impact": 1}, headers=writer)
    assert rescored.json["score"] == 1
    bad = client.patch(f"{URL}/{created['id']}", json={"impact": 4}, headers=writer)
    assert bad.status_code == 422 and bad.json["error"]["fields"][0]["field"] == "impact"
    bad = client.patch(f"{URL}/{created['id']}", json={"release": "7.0.0"}, headers=writer)
    assert bad.status_code == 422 and bad.json["error"]["fields"][0]["field"] == "release"
    assert (
        client.patch(f"{URL}/{created['id']}", json={"impact": 3}, headers=reader).status_code
        == 403
    )
    actions = session.exec(
        select(AuditEvent.action).where(AuditEvent.subject_type == "incident")
    ).all()
    assert actions.count("incident.update") == 2


def test_trend(client, world, writer, reader) -> None:
    client.post(URL, json=body(stores=["S0001", "S0002"]), headers=writer)  # 3.12.0, score 5
    client.post(
        URL, json=body(stores=None, store_count=4, impact=3, release="3.11.0"), headers=writer
    )
    old = (utcnow() - timedelta(days=21)).isoformat()
    client.post(URL, json=body(stores=["S0003"], impact=1, started_at=old), headers=writer)
    trend = client.get("/api/v1/apps/pos/incident-trend?weeks=8", headers=reader)
    assert trend.status_code == 200
    weeks = trend.json["weeks"]
    assert len(weeks) == 8
    assert weeks[-1]["total"] == 5 + 9
    assert weeks[-1]["by_release"] == {"3.12.0": 5, "3.11.0": 9}
    assert sum(w["total"] for w in weeks) == 15
    assert trend.json["releases"] == ["3.11.0", "3.12.0"]
    assert client.get("/api/v1/apps/nope/incident-trend", headers=reader).status_code == 404
    assert client.get("/api/v1/apps/pos/incident-trend?weeks=0", headers=reader).status_code == 422


def test_scope_thresholds_from_the_settings(client, world, writer, monkeypatch) -> None:
    settings = client.application.config["RELGOV_SETTINGS"]
    monkeypatch.setitem(
        client.application.config, "RELGOV_SETTINGS", replace(settings, incident_few_stores=2)
    )
    response = client.post(URL, json=body(stores=["S0001", "S0002"], impact=3), headers=writer)
    assert response.json["scope"] == 2 and response.json["score"] == 6
    assert "at least 2 stores" in response.json["derivation"]


def test_openapi_lists_the_endpoints(client) -> None:
    paths = client.get("/api/v1/openapi.json").json["paths"]
    assert {"post", "get"} <= set(paths["/api/v1/incidents"])
    assert {"get", "patch"} <= set(paths["/api/v1/incidents/{incident_id}"])
    assert "/api/v1/apps/{slug}/incident-trend" in paths
