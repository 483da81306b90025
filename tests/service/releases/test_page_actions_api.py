"""Actions that were only page forms, now in the API (issue 18 item 9): overriding a gate,
people and tokens, checklist template versions, the notes preview. (Advancing a rollout
stage: tests/service/beta/test_rollout_guardrails.py.)"""

from __future__ import annotations

from sqlmodel import select

from service.models import ApiToken, AuditEvent, User, utcnow
from service.releases.apps import save_template
from tests.builders import api_headers, csrf_header, login, make_user
from tests.service.releases.release_fixtures import registered_release


def test_an_admin_overrides_a_failing_gate_through_the_api(
    app, client, session, pos, people, admin
):
    release = registered_release(app, session, pos, people["release_manager"])
    release.state, release.beta_at = "beta", utcnow()
    session.add(release)
    session.commit()
    url = f"/api/v1/releases/{release.id}/gates/beta_soak/override"
    token = api_headers(session, creator=admin, scopes=["releases:write", "read"])
    assert client.post(url, json={"reason": "x"}, headers=token).status_code == 403
    login(client, admin.email)
    headers = csrf_header(client)
    empty = client.post(url, json={"reason": ""}, headers=headers)
    assert empty.status_code == 422 and empty.json["error"]["fields"][0]["field"] == "reason"
    done = client.post(url, json={"reason": "soak covered by the 1.0 hotfix"}, headers=headers)
    assert done.status_code == 201, done.json
    soak = next(g for g in done.json["gates"] if g["gate"] == "beta_soak")
    assert soak["overridden_by"] == "user:admin@example.com"
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "gate.override")).one()
    assert event.highlight
    unknown = client.post(
        f"/api/v1/releases/{release.id}/gates/vibes/override", json={"reason": "x"}, headers=headers
    )
    assert unknown.status_code == 422 and unknown.json["error"]["fields"][0]["field"] == "gate"


def test_people_and_tokens_through_the_api(app, client, session, admin):
    login(client, admin.email)
    headers = csrf_header(client)
    bad = client.post(
        "/api/v1/users", json={"email": "nobody", "password": "a-long-password-1"}, headers=headers
    )
    assert bad.status_code == 422 and bad.json["error"]["fields"][0]["field"] == "email"
    made = client.post(
        "/api/v1/users",
        json={"email": "Quinn@Example.com", "password": "a-long-password-1", "role": "qa"},
        headers=headers,
    )
    assert made.status_code == 201 and made.json["email"] == "quinn@example.com"
    user_id = made.json["id"]
    listed = client.get("/api/v1/users", headers=headers).json
    assert {p["email"] for p in listed} == {"admin@example.com", "quinn@example.com"}
    raised = client.patch(f"/api/v1/users/{user_id}", json={"role": "engineer"}, headers=headers)
    assert raised.status_code == 200 and raised.json["role"] == "engineer"
    wrong = client.patch(f"/api/v1/users/{user_id}", json={"role": "boss"}, headers=headers)
    assert wrong.status_code == 422 and wrong.json["error"]["fields"][0]["field"] == "role"

    issued = client.post(
        "/api/v1/tokens",
        json={"name": "CI kds", "scopes": ["releases:write", "read"]},
        headers=headers,
    )
    assert issued.status_code == 201 and issued.json["token"]
    token_id = issued.json["id"]
    machine = {"Authorization": f"Bearer {issued.json['token']}"}
    me = app.test_client().get("/api/v1/me", headers=machine)
    assert me.status_code == 200 and me.json["name"] == "CI kds", me.json
    tokens = client.get("/api/v1/tokens", headers=headers).json
    assert [t["name"] for t in tokens] == ["CI kds"] and "token" not in tokens[0]
    revoked = client.post(f"/api/v1/tokens/{token_id}/revoke", headers=headers)
    assert revoked.status_code == 200 and revoked.json["active"] is False
    assert client.post(f"/api/v1/tokens/{token_id}/revoke", headers=headers).status_code == 409
    assert session.get(ApiToken, token_id).revoked_at is not None
    # A non-admin, and a token, are refused.
    viewer = make_user(session, email="v@example.com", role="viewer")
    theirs = app.test_client()
    login(theirs, viewer.email)
    assert theirs.get("/api/v1/users", headers=csrf_header(theirs)).status_code == 403
    assert session.exec(select(User).where(User.email == "v@example.com")).one().role == "viewer"


def test_checklist_template_versions_through_the_api(client, session, pos, reader):
    items = [{"title": "QA passed", "owner_role": "qa"}]
    save_template(session, app=pos, kind="weekly", items=items, actor="user:admin@example.com")
    session.commit()
    versions = client.get("/api/v1/apps/pos/checklists/weekly/versions", headers=reader)
    assert versions.status_code == 200
    assert [v["version"] for v in versions.json] == [2, 1]
    assert [i["title"] for i in versions.json[0]["items"]] == ["QA passed"]
    assert versions.json[1]["releases"] == 0
    bad = client.get("/api/v1/apps/pos/checklists/monthly/versions", headers=reader)
    assert bad.status_code == 422 and bad.json["error"]["fields"][0]["field"] == "kind"


def test_the_notes_preview_through_the_api(app, client, session, pos, people, reader):
    release = registered_release(app, session, pos, people["engineer"])
    url = f"/api/v1/releases/{release.id}/notes/preview"
    shown = client.post(url, json={"markdown": "# Hi\n<script>alert(1)</script>\n"}, headers=reader)
    assert shown.status_code == 200, shown.json
    assert "<h1>Hi</h1>" in shown.json["html"] and "<script>" not in shown.json["html"]
    assert shown.json["changed"] is True
    assert any(line["kind"] == "add" for line in shown.json["diff"])
    missing = client.post(url, json={}, headers=reader)
    assert missing.status_code == 422
    assert missing.json["error"]["fields"][0]["field"] == "markdown"
