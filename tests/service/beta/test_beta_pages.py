"""Fleet pages: viewing, changes with reasons, fill preview, import, rollout, CLI."""

from __future__ import annotations

import io

import pytest
from sqlmodel import select

from beta.models import CohortEvent, Store
from service.beta.stages import advance_stage, rollout_summary
from service.models import AuditEvent
from service.releases.lifecycle import Actor, transition
from service.releases.models import Release
from tests.builders import add_release, csrf_token, login, make_user, post_form


@pytest.fixture
def support_client(client, session):
    make_user(session, email="support@example.com", role="support")
    login(client, "support@example.com")
    return client


def test_pages_render_for_a_viewer(client, session, pos, stores):
    make_user(session, email="v@example.com", role="viewer")
    login(client, "v@example.com")
    for path in ("/beta", "/beta/stores", "/beta/stores/S0001", "/beta/stores?q=umi&in_beta=no"):
        response = client.get(path)
        assert response.status_code == 200, path
    page = client.get("/beta/stores/S0003").get_data(as_text=True)
    assert "frozen until" in page and "New Year" in page
    assert client.get("/beta/stores/S9999").status_code == 404
    assert client.get("/beta/import").status_code == 403
    response = client.post("/beta/stores/S0002/cohort", data={"action": "enrol", "reason": "x"})
    assert response.status_code in (400, 403)


def test_store_page_offers_per_app(support_client, pos, stores):
    page = support_client.get("/beta/stores/S0001").get_data(as_text=True)
    assert "3.12.0" in page and "cohort" in page
    page = support_client.get("/beta/stores/S0002?app=pos&version=2.0").get_data(as_text=True)
    assert "mandatory" in page
    page = support_client.get("/beta/stores/S0002?app=pos&version=zzz").get_data(as_text=True)
    assert "field-error" in page


def test_enrol_needs_a_reason(support_client, session, stores):
    store = "/beta/stores/S0002"

    def enrol(reason):
        form = {"action": "enrol", "reason": reason}
        return post_form(support_client, f"{store}/cohort", form, page=store)

    response = enrol(" ")
    assert response.status_code == 422
    assert "a reason is required" in response.get_data(as_text=True)
    assert session.exec(select(Store).where(Store.external_id == "S0002")).one().in_beta is False
    assert enrol("owner wants early features").status_code == 302
    page = support_client.get("/beta/stores/S0002").get_data(as_text=True)
    assert "owner wants early features" in page
    assert "owner wants early features" in support_client.get("/beta").get_data(as_text=True)
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "cohort.enrol")).one()
    assert event.actor == "user:support@example.com"


def test_fill_preview_and_apply(support_client, session, stores):
    def fill(**fields):
        return post_form(support_client, "/beta/fill", fields, page="/beta")

    response = fill(mode="count", target="2")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "Preview: fill to 2 stores" in html
    assert session.exec(select(CohortEvent).where(CohortEvent.source == "fill")).all() == []
    import re

    digest = re.search(r'name="digest" value="([0-9a-f]+)"', html).group(1)
    apply = {"mode": "count", "target": "2", "action": "apply", "digest": digest}
    assert fill(**apply, reason="").status_code == 422
    assert fill(**apply, reason="two beta stores").status_code == 302
    assert len(session.exec(select(CohortEvent).where(CohortEvent.source == "fill")).all()) == 1
    response = fill(mode="percent", target="abc")
    assert response.status_code == 422


def test_store_create_edit_devices_freeze(support_client, session, stores):
    new, store = "/beta/stores/new", "/beta/stores/S0900"
    kai = {"external_id": "S0900", "name": "Kai Tempura", "timezone": "Asia/Tokyo"}
    device = "/beta/devices/S0900-pos-1"
    until = {"ends_at": "2099-12-31T23:00"}
    # (the form's action, its fields, the page it sits on, the answer expected, text in it)
    steps = [
        (new, {**kai, "name": ""}, new, 422, "name is required"),
        (new, {**kai, "tags": "hw:gen3, franchise:kai"}, new, 302, ""),
        (f"{store}/edit", {"name": "Kai Tempura", "timezone": "Nowhere/City"}, store, 422, ""),
        (f"{store}/devices", {"device_id": "S0900-pos-1", "kind": "pos"}, store, 302, ""),
        (f"{device}/edit", {"kind": "kiosk", "label": "entrance"}, store, 302, ""),
        (f"{store}/freezes", {**until, "reason": ""}, store, 422, ""),
        (f"{store}/freezes", {**until, "reason": "renovation"}, store, 302, ""),
        (f"{device}/delete", {}, store, 302, ""),
    ]
    for action, fields, page, status, text in steps:
        response = post_form(support_client, action, fields, page=page)
        assert response.status_code == status, (action, fields)
        assert text in response.get_data(as_text=True)
    actions = {e.action for e in session.exec(select(AuditEvent)).all()}
    assert {
        "store.create",
        "device.create",
        "device.update",
        "device.delete",
        "freeze.create",
    } <= actions


def test_import_page_check_then_apply(support_client, session):
    csv_text = (
        "external_id,name,region,timezone\n"
        "S0700,Ume Udon,Fukuoka,Asia/Tokyo\n"
        "S0701,Bad Zone,Fukuoka,Nowhere/Here\n"
    )
    token_page = "/beta/import"
    from tests.builders import csrf_token

    token = csrf_token(support_client, token_page)
    response = support_client.post(
        token_page,
        data={
            "csrf_token": token,
            "action": "check",
            "file": (io.BytesIO(csv_text.encode()), "stores.csv"),
        },
        content_type="multipart/form-data",
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "Nowhere/Here" in html and "rejected" in html
    assert session.exec(select(Store).where(Store.external_id == "S0700")).first() is None
    response = post_form(
        support_client, token_page, {"action": "apply", "csv": csv_text, "accept_valid": "yes"}
    )
    assert response.status_code == 302
    assert session.exec(select(Store).where(Store.external_id == "S0700")).first() is not None
    assert session.exec(select(Store).where(Store.external_id == "S0701")).first() is None


def test_import_page_refuses_a_nul_character_and_writes_nothing(support_client, session):
    data = b"external_id,name\nS0710,Good\nS0711,Bad\x00Name\n"
    response = support_client.post(
        "/beta/import",
        data={
            "csrf_token": csrf_token(support_client, "/beta/import"),
            "action": "apply",
            "accept_valid": "yes",
            "file": (io.BytesIO(data), "stores.csv"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    assert "Nothing was imported: line 3 holds a NUL character" in response.get_data(as_text=True)
    assert session.exec(select(Store).where(Store.external_id == "S0710")).first() is None


def test_rollout_promote_advance_and_summary(client, session, admin, pos, stores):
    beta = session.exec(select(Release).where(Release.version == "3.12.0")).one()
    transition(session, beta, "promote", actor=Actor("user:admin@example.com", role="admin"))
    session.commit()
    assert beta.stage_percent == 10
    login(client, admin.email)
    with client.application.test_request_context():
        from service import db

        data = rollout_summary(db.session(), db.session().get(Release, beta.id))
    assert [s["percent"] for s in data["stages"]] == [10, 50, 100]
    assert data["beta"]["stores"] == 1 and data["total"]["devices"] == 6
    assert data["stages"][-1]["stores"] == 3 and data["stages"][-1]["devices"] == 6
    assert data["next_stage"] == 50
    response = post_form(
        client,
        f"/fleet/releases/{beta.id}/advance-stage",
        {"stage_percent": "10", "confirm": "yes"},
        page="/beta",
    )
    assert response.status_code == 302 and response.location.endswith(f"/releases/{beta.id}")
    session.expire_all()
    assert session.get(Release, beta.id).stage_percent == 50
    response = post_form(
        client,
        f"/fleet/releases/{beta.id}/advance-stage",
        {"stage_percent": "10", "confirm": "yes"},
        page="/beta",
    )  # stale form: no double step
    session.expire_all()
    assert session.get(Release, beta.id).stage_percent == 50
    assert session.exec(
        select(AuditEvent).where(AuditEvent.action == "release.advance_stage")
    ).one()


def test_advance_needs_rolling_out(session, pos):
    draft = add_release(session, pos, "4.0.0", "draft")
    from beta.errors import Conflict

    with pytest.raises(Conflict):
        advance_stage(session, draft, "test")


def test_cli_import(runner, session, tmp_path):
    good = tmp_path / "stores.csv"
    good.write_text("external_id,name\nS0800,Nori Bento\nbad id,Broken\n", encoding="utf-8")
    result = runner.invoke(args=["stores", "import", str(good)])
    assert result.exit_code == 2
    assert "line 3: rejected" in result.output
    assert session.exec(select(Store).where(Store.external_id == "S0800")).first() is None
    result = runner.invoke(args=["stores", "import", str(good), "--accept-valid"])
    assert result.exit_code == 0, result.output
    assert "1 created" in result.output
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("id;name\nS1;x\n", encoding="utf-8")
    result = runner.invoke(args=["stores", "import", str(wrong)])
    assert result.exit_code == 2 and "unknown columns" in result.output
    result = runner.invoke(args=["stores", "import", str(tmp_path / "missing.csv")])
    assert result.exit_code == 2
