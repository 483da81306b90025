"""Stores, devices, the cohort, freezes and CSV import through the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import func, select

from beta.models import Store
from service.models import AuditEvent
from tests.builders import bearer, make_token
from version_monitor.models import DeviceState, VersionChange


def events(session, action):
    return session.exec(select(AuditEvent).where(AuditEvent.action == action)).all()


def count(session, model):
    return session.exec(select(func.count()).select_from(model)).one()


def refused_field(response):
    """The first field a refusal names."""
    return response.json["error"]["fields"][0]["field"]


@pytest.fixture
def post(client, writer):
    """``post(path, **body)``: POST ``body`` as JSON with the fleet writer's token."""

    def send(path, **body):
        return client.post(path, json=body, headers=writer)

    return send


def test_store_crud_and_audit(client, writer, reader, session):
    body = {
        "external_id": "S0100",
        "name": "Hana Soba Ginza",
        "region": "Tokyo",
        "tags": ["franchise:hana", "hw:gen3"],
    }
    response = client.post("/api/v1/stores", json=body, headers=writer)
    assert response.status_code == 201, response.json
    assert response.json["timezone"] == "Asia/Tokyo"
    assert response.json["update_window_start"] == "02:00"
    response = client.patch(
        "/api/v1/stores/S0100", json={"region": "Osaka", "timezone": "Asia/Tokyo"}, headers=writer
    )
    assert response.status_code == 200 and response.json["region"] == "Osaka"
    listing = client.get("/api/v1/stores", query_string={"tag": "hw:gen3"}, headers=reader).json
    assert [s["external_id"] for s in listing["items"]] == ["S0100"] and listing["total"] == 1
    assert client.get("/api/v1/stores/S0100", headers=reader).json["name"] == "Hana Soba Ginza"
    assert len(events(session, "store.create")) == 1
    assert events(session, "store.update")[0].before["region"] == "Tokyo"


def test_store_bad_input_changes_nothing(client, writer, session, stores):
    cases = [
        ({"external_id": "bad id!", "name": "x"}, 422, "external_id"),
        ({"external_id": "S0200", "name": "x", "timezone": "Mars/Olympus"}, 422, "timezone"),
        ({"external_id": "S0200", "name": "x", "update_window_start": "25:00"}, 422, None),
        ({"external_id": "S0001", "name": "dup"}, 409, "external_id"),
        ({"name": "no id"}, 422, "external_id"),
    ]
    before = count(session, Store)
    for body, status, field in cases:
        response = client.post("/api/v1/stores", json=body, headers=writer)
        assert response.status_code == status, (body, response.json)
        if field:
            assert refused_field(response) == field
    assert count(session, Store) == before
    response = client.patch("/api/v1/stores/S0001", json={"name": None}, headers=writer)
    assert response.status_code == 422 and refused_field(response) == "name"
    response = client.patch("/api/v1/stores/S9999", json={"name": "x"}, headers=writer)
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"
    assert client.get("/api/v1/stores/S9999", headers=writer).status_code == 404


def test_writes_need_fleet_write(client, reader, stores):
    response = client.post(
        "/api/v1/stores", json={"external_id": "S1", "name": "x"}, headers=reader
    )
    assert response.status_code == 403


def test_devices(client, writer, post, session, stores):
    devices = "/api/v1/stores/S0001/devices"
    response = post(devices, device_id="S0001-kds-1", kind="kds")
    assert response.status_code == 201, response.json
    response = post(devices, device_id="S0001-x", kind="toaster")
    assert response.status_code == 422 and refused_field(response) == "kind"
    response = client.patch(
        "/api/v1/devices/S0001-kds-1",
        json={"label": "kitchen", "store_id": "S0002"},
        headers=writer,
    )
    assert response.status_code == 200 and response.json["store_id"] == "S0002"
    assert (
        client.patch(
            "/api/v1/devices/S0001-kds-1", json={"store_id": "S9999"}, headers=writer
        ).status_code
        == 404
    )
    assert client.delete("/api/v1/devices/S0001-kds-1", headers=writer).status_code == 204
    assert client.delete("/api/v1/devices/S0001-kds-1", headers=writer).status_code == 404
    actions = [e.action for e in session.exec(select(AuditEvent)).all()]
    assert {"device.create", "device.update", "device.delete"} <= set(actions)


def test_cohort_actions_and_history(client, post, reader, session, stores):
    cohort = "/api/v1/stores/S0002/cohort"
    response = post(cohort, action="enrol", reason="")
    assert response.status_code == 422 and refused_field(response) == "reason"
    response = post(cohort, action="enrol", reason="owner request")
    assert response.status_code == 200 and response.json["store"]["in_beta"] is True
    assert post(cohort, action="enrol", reason="again").status_code == 409
    members = client.get("/api/v1/cohort", headers=reader).json
    assert {m["external_id"] for m in members["members"]} == {"S0001", "S0002"}
    assert members["history"][0]["reason"] == "owner request"
    assert members["history"][0]["actor"].startswith("token:") or members["history"][0]["actor"]
    detail = client.get("/api/v1/stores/S0002", headers=reader).json
    assert detail["cohort_history"][0]["action"] == "enrol"
    assert events(session, "cohort.enrol")[0].after["reason"] == "owner request"
    assert post("/api/v1/stores/S9999/cohort", action="enrol", reason="x").status_code == 404


def test_fill_preview_then_apply(post, session, stores):
    def fill(**body):
        return post("/api/v1/cohort/fill", **body)

    for n in range(4, 41):
        post("/api/v1/stores", external_id=f"S{n:04d}", name=f"Store {n}")
    preview = fill(target_percent=5).json
    assert preview["applied"] is False and preview["target_size"] == 2
    assert preview["add"] and "S0001" not in preview["add"]  # S0001 is enrolled by hand
    in_beta = session.exec(select(func.count()).select_from(Store).where(Store.in_beta)).one()
    assert in_beta == 1  # the preview changed nothing
    response = fill(target_percent=5, preview=False)
    assert response.status_code == 422 and refused_field(response) == "reason"
    apply = {"target_percent": 5, "preview": False, "reason": "5 % beta"}
    assert fill(**apply, plan_digest="stale").status_code == 409
    response = fill(**apply, plan_digest=preview["plan_digest"])
    assert response.status_code == 200 and response.json["add"] == preview["add"]
    assert len(events(session, "cohort.fill")) == 1
    response = fill(target_count=3, exclude_ids=["S9999"])
    assert response.status_code == 422 and refused_field(response) == "exclude_ids"
    assert fill(target_count=3, target_percent=4).status_code == 422


def test_fill_is_sticky_when_stores_are_imported(client, writer, post, session):
    """Issue 17 item 17: filled to 8, then 40 stores imported; refills keep the members."""

    def fill(**body):
        return post("/api/v1/cohort/fill", **body).json

    def apply(target, reason):
        preview = fill(target_count=target)
        body = {"target_count": target, "preview": False, "reason": reason}
        response = post("/api/v1/cohort/fill", **body, plan_digest=preview["plan_digest"])
        assert response.status_code == 200, response.json
        return response.json

    def members():
        return set(session.exec(select(Store.external_id).where(Store.in_beta)).all())

    for n in range(1, 21):
        post("/api/v1/stores", external_id=f"S{n:04d}", name=f"Store {n}", region="Tokyo")
    apply(8, "weekly beta")
    first = members()
    assert len(first) == 8
    rows = "".join(f"S{n:04d},Imported {n},Osaka,,\n" for n in range(21, 61))
    headers = {**writer, "Content-Type": "text/csv"}
    csv_body = "external_id,name,region,timezone,tags\n" + rows
    imported = client.post("/api/v1/stores/import", data=csv_body, headers=headers)
    assert imported.status_code == 200 and len(imported.json["created"]) == 40

    same = fill(target_count=8)
    assert same["add"] == [] and same["remove"] == [] and same["removal_reasons"] == {}
    larger = fill(target_count=12)
    assert larger["remove"] == [] and len(larger["add"]) == 4
    assert set(larger["keep"]) == first
    smaller = fill(target_count=5)
    assert smaller["add"] == [] and len(smaller["remove"]) == 3
    assert set(smaller["remove"]) < first
    assert smaller["removal_reasons"] == dict.fromkeys(smaller["remove"], "target_shrinks")
    # A filter change: the Tokyo members are no longer eligible for an Osaka-only fill.
    osaka = fill(target_count=8, regions=["Osaka"])
    assert set(osaka["remove"]) == first
    assert set(osaka["removal_reasons"].values()) == {"not_eligible"}
    excluded = sorted(first)[0]
    without = fill(target_count=8, exclude_ids=[excluded])
    assert without["remove"] == [excluded] and len(without["add"]) == 1
    assert without["removal_reasons"] == {excluded: "excluded"}

    applied = apply(5, "smaller beta")
    assert members() == first - set(applied["remove"])
    history = client.get(f"/api/v1/stores/{applied['remove'][0]}", headers=writer).json
    assert history["cohort_history"][0]["reason"] == "smaller beta (the target shrinks)"


def test_freeze_and_lift(client, writer, post, session, stores):
    freezes = "/api/v1/stores/S0002/freezes"
    response = post(freezes, ends_at="2099-01-01T00:00:00Z", reason="renovation")
    assert response.status_code == 201, response.json
    freeze_id = response.json["id"]
    response = post(freezes, ends_at="2099-01-01T00:00:00", reason="naive")
    assert response.status_code == 422 and refused_field(response) == "ends_at"
    assert post(freezes, ends_at="2000-01-01T00:00:00Z", reason="past").status_code == 422
    lifted = client.post(f"/api/v1/freezes/{freeze_id}/lift", headers=writer)
    assert lifted.status_code == 200 and lifted.json["lifted_at"]
    assert client.post(f"/api/v1/freezes/{freeze_id}/lift", headers=writer).status_code == 409
    assert client.post("/api/v1/freezes/999999/lift", headers=writer).status_code == 404
    assert len(events(session, "freeze.lift")) == 1


CSV_OK = "external_id,name,region,timezone,tags\nS0500,Tori Yakitori,Osaka,Asia/Tokyo,hw:gen2\n"
CSV_BAD = (
    "external_id,name,region,timezone,tags\n"
    "S0501,Good One,Osaka,Asia/Tokyo,\n"
    "S0502,Bad Zone,Osaka,Mars/Base,\n"
    "S0503,Dup A,Osaka,,\n"
    "S0503,Dup B,Osaka,,\n"
)


def test_import_csv_body_is_idempotent(client, writer, session):
    headers = {**writer, "Content-Type": "text/csv"}
    first = client.post("/api/v1/stores/import", data=CSV_OK, headers=headers)
    assert first.status_code == 200, first.json
    assert first.json["created"] == ["S0500"]
    again = client.post("/api/v1/stores/import", data=CSV_OK, headers=headers)
    assert again.json["created"] == [] and again.json["unchanged"] == ["S0500"]
    assert len(events(session, "store.import")) == 2


def test_import_with_errors_changes_nothing_unless_accepted(client, writer, session):
    before = count(session, Store)
    response = client.post("/api/v1/stores/import", json={"csv": CSV_BAD}, headers=writer)
    assert response.status_code == 422
    rejected = {r["line_no"]: r["reason"] for r in response.json["report"]["rejected"]}
    assert set(rejected) == {3, 4, 5}
    assert "timezone" in rejected[3] and "also on line" in rejected[4]
    assert count(session, Store) == before
    response = client.post(
        "/api/v1/stores/import", json={"csv": CSV_BAD, "accept_valid": True}, headers=writer
    )
    assert response.status_code == 200 and response.json["created"] == ["S0501"]


def test_import_wrong_columns_is_a_file_error(client, writer, session):
    before = count(session, Store)
    response = client.post(
        "/api/v1/stores/import",
        json={"csv": "id;name\nS1;x\n", "accept_valid": True},
        headers=writer,
    )
    assert response.status_code == 422
    assert response.json["report"]["file_errors"]
    assert count(session, Store) == before
    response = client.post(
        "/api/v1/stores/import", data="x", headers={**writer, "Content-Type": "application/xml"}
    )
    assert response.status_code == 415


NUL_CSV = "external_id,name,region\nS0600,Good,Osaka\nS0601,Bad\x00Name,Osaka\n"


def test_import_refuses_a_nul_character_and_writes_nothing(
    client, writer, session, runner, tmp_path
):
    before = (count(session, Store), count(session, AuditEvent))
    for query in ("", "?accept_valid=true"):
        response = client.post(
            "/api/v1/stores/import" + query,
            data=NUL_CSV.encode(),
            headers={**writer, "Content-Type": "text/csv"},
        )
        assert response.status_code == 422, response.json
        assert response.json["report"]["file_errors"] == [
            "line 3 holds a NUL character, which no store field may contain (is it CSV text?)"
        ]
    path = tmp_path / "stores.csv"
    path.write_text(NUL_CSV, encoding="utf-8")
    result = runner.invoke(args=["stores", "import", str(path), "--accept-valid"])
    assert result.exit_code == 2 and "NUL character" in result.output
    session.expire_all()
    assert (count(session, Store), count(session, AuditEvent)) == before


def test_a_device_that_has_reported_can_be_deleted_with_its_adoption_history(
    client, writer, session, admin, pos, stores
):
    heartbeats = make_token(session, creator=admin, scopes=["heartbeats:write"], name="devices")
    sent = datetime.now(UTC) - timedelta(minutes=1)
    for version in ("3.11.0", "3.12.0"):
        beat = {
            "device_id": "S0001-pos-1",
            "store_id": "S0001",
            "app": "pos",
            "version": version,
            "device_kind": "pos",
            "sent_at": sent.isoformat(),
        }
        response = client.post("/api/v1/heartbeats", json=beat, headers=bearer(heartbeats))
        assert response.status_code == 200 and response.json["accepted"] == 1, response.json
        sent += timedelta(seconds=10)
    assert client.delete("/api/v1/devices/S0001-pos-1", headers=writer).status_code == 204
    session.expire_all()
    assert session.exec(select(func.count()).select_from(DeviceState)).one() == 0
    assert session.exec(select(func.count()).select_from(VersionChange)).one() == 0
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "device.delete")).one()
    assert "3 row(s) of its adoption history" in event.summary
