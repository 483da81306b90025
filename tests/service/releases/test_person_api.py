"""API actions that a person takes: sign-offs, overrides, approval, meetings, apps."""

import pytest

from tests.builders import csrf_header, login, make_token
from tests.service.releases.release_fixtures import registered_release


def person(client, email):
    login(client, email)
    return csrf_header(client)


@pytest.fixture
def release(app, session, pos, people):
    return registered_release(app, session, pos, people["engineer"], submit=True)


def items(client, release):
    return {i["title"]: i["id"] for i in client.get(f"/api/v1/releases/{release.id}").json["items"]}


def test_sign_off_through_the_api_as_a_person(client, release):
    headers = person(client, "qa@example.com")
    ids = items(client, release)
    url = f"/api/v1/releases/{release.id}/items/{ids['Regression tests pass']}/sign-offs"
    response = client.post(
        url, json={"decision": "approve", "comment": "all green"}, headers=headers
    )
    assert response.status_code == 201, response.json
    assert response.json["user_email"] == "qa@example.com"
    again = client.post(url, json={"decision": "approve", "comment": "all green"}, headers=headers)
    assert again.status_code == 200 and again.json == response.json  # recorded once
    history = client.get(url).json
    assert [h["decision"] for h in history] == ["approve"]
    other = client.post(url, json={"decision": "approve", "comment": "again"}, headers=headers)
    assert other.status_code == 409 and len(client.get(url).json) == 1

    wrong = f"/api/v1/releases/{release.id}/items/{ids['Rollback plan written']}/sign-offs"
    refused = client.post(wrong, json={"decision": "approve"}, headers=headers)
    assert refused.status_code == 403
    assert "with the role engineer" in refused.json["error"]["message"]
    assert client.post(wrong, json={}, headers=headers).status_code == 403  # before the body


def test_person_actions_need_csrf_and_refuse_tokens(client, session, admin, release):
    raw = make_token(session, creator=admin, scopes=["releases:write", "read"])
    ids = {
        i["title"]: i["id"]
        for i in client.get(
            f"/api/v1/releases/{release.id}", headers={"Authorization": f"Bearer {raw}"}
        ).json["items"]
    }
    url = f"/api/v1/releases/{release.id}/items/{ids['Regression tests pass']}/sign-offs"
    by_token = client.post(
        url, json={"decision": "approve"}, headers={"Authorization": f"Bearer {raw}"}
    )
    assert by_token.status_code == 403 and "person" in by_token.json["error"]["message"]
    assert client.post(url, json={"decision": "approve"}).status_code == 401
    login(client, "qa@example.com")
    no_csrf = client.post(url, json={"decision": "approve"})
    assert no_csrf.status_code == 400 and no_csrf.json["error"]["code"] == "csrf"


def test_release_manager_approves_through_the_api(client, release, people):
    for email, title in [
        ("qa@example.com", "Regression tests pass"),
        ("engineer@example.com", "Rollback plan written"),
    ]:
        headers = person(client, email)
        ids = items(client, release)
        url = f"/api/v1/releases/{release.id}/items/{ids[title]}/sign-offs"
        assert client.post(url, json={"decision": "approve"}, headers=headers).status_code == 201
        client.post("/logout", data={"csrf_token": headers["X-CSRFToken"]})
    headers = person(client, "release_manager@example.com")
    response = client.post(
        f"/api/v1/releases/{release.id}/transitions", json={"action": "approve"}, headers=headers
    )
    assert response.status_code == 200, response.json
    assert response.json["state"] == "approved"
    meeting = client.post(
        f"/api/v1/releases/{release.id}/meetings",
        json={"held_on": "2026-11-25", "attendees": "Ren, Kenji, Quinn", "decision": "go"},
        headers=headers,
    )
    assert meeting.status_code == 201
    assert client.get(f"/api/v1/releases/{release.id}/meetings").json[0]["decision"] == "go"


def test_admin_override_through_the_api(client, release, admin):
    headers = person(client, admin.email)
    ids = items(client, release)
    url = f"/api/v1/releases/{release.id}/items/{ids['Regression tests pass']}/override"
    assert client.post(url, json={"reason": ""}, headers=headers).status_code == 422
    response = client.post(url, json={"reason": "device lab down"}, headers=headers)
    assert response.status_code == 201 and response.json["override"] is True


def test_apps_api(client, admin, pos):
    headers = person(client, admin.email)
    assert [a["slug"] for a in client.get("/api/v1/apps").json] == ["pos"]
    created = client.post(
        "/api/v1/apps",
        json={"slug": "kiosk", "name": "Self-order kiosk", "settings": {"train_weekday": 3}},
        headers=headers,
    )
    assert created.status_code == 201, created.json
    bad = client.patch(
        "/api/v1/apps/kiosk", json={"settings": {"train_timezone": "Mars/Olympus"}}, headers=headers
    )
    assert bad.status_code == 422 and bad.json["error"]["fields"][0]["field"] == "train_timezone"
    template = client.get("/api/v1/apps/kiosk/checklists/weekly").json
    assert template["version"] == 1 and template["items"]
    saved = client.put(
        "/api/v1/apps/kiosk/checklists/weekly",
        json={"items": [{"title": "Smoke test", "owner_role": "qa"}]},
        headers=headers,
    )
    assert saved.status_code == 200 and saved.json["version"] == 2
    trains = client.get("/api/v1/apps/kiosk/trains?weeks=3").json
    assert len(trains) == 3
    skip = client.post(
        "/api/v1/apps/kiosk/trains/skips",
        json={"week_of": trains[1]["week_of"], "reason": "Golden Week"},
        headers=headers,
    )
    assert skip.status_code == 201
    assert client.get("/api/v1/apps/kiosk/trains?weeks=3").json[1]["skipped"] is True


def test_only_admins_change_apps(client, people):
    headers = person(client, "release_manager@example.com")
    response = client.post("/api/v1/apps", json={"slug": "x", "name": "X"}, headers=headers)
    assert response.status_code == 403


def test_notes_edit_through_the_api(client, session, admin, release):
    raw = make_token(session, creator=admin, scopes=["releases:write", "read"])
    auth = {"Authorization": f"Bearer {raw}"}
    notes = client.get(f"/api/v1/releases/{release.id}/notes", headers=auth).json
    assert "<script>" not in notes["html"] and notes["edited"] is False
    url = f"/api/v1/releases/{release.id}/notes"
    edited = notes["markdown"] + "\n\nStores: restart the printer after updating.\n"
    saved = client.put(url, json={"markdown": edited, "loaded_hash": notes["hash"]}, headers=auth)
    assert saved.status_code == 200, saved.json
    assert saved.json["edited"] is True and "restart the printer" in saved.json["html"]
    stale = client.put(url, json={"markdown": "x", "loaded_hash": notes["hash"]}, headers=auth)
    assert stale.status_code == 409
    empty = client.put(
        url, json={"markdown": "  ", "loaded_hash": saved.json["hash"]}, headers=auth
    )
    assert empty.status_code == 422 and empty.json["error"]["fields"][0]["field"] == "markdown"


def test_meeting_agenda_api(client, session, admin, release):
    raw = make_token(session, creator=admin, scopes=["read"])
    # A week's agenda holds the releases whose train leaves that week (no longer every
    # release in progress): ask for the week of this one's train.
    week = release.scheduled_for.date().isoformat()
    agenda = client.get(
        f"/api/v1/meeting?week={week}", headers={"Authorization": f"Bearer {raw}"}
    ).json
    (train,) = agenda["trains"]
    (entry,) = train["releases"]
    assert entry["version"] == "1.1.0" and entry["state"] == "in_review"
    assert entry["checklist_total"] == 4 and "Regression tests pass" in entry["blocking"]
    assert set(entry["waiting_for_roles"]) == {"qa", "engineer"}
    bad = client.get("/api/v1/meeting?week=soon", headers={"Authorization": f"Bearer {raw}"})
    assert bad.status_code == 422 and bad.json["error"]["fields"][0]["field"] == "week"


def test_who_may_call_is_checked_before_the_body(client, session, admin, release, people):
    """The tester's cases: {} to POST /apps as a viewer or a token without the scope is 403
    (not 422 listing the fields), and QA submitting a release is 403 (not 409)."""
    anonymous = client.post(f"/api/v1/releases/{release.id}/transitions", json={})
    assert anonymous.status_code == 401 and "Bearer" in anonymous.headers["WWW-Authenticate"]
    read_only = make_token(session, creator=admin, scopes=["read"])
    as_token = client.post(
        "/api/v1/apps", json={}, headers={"Authorization": f"Bearer {read_only}"}
    )
    assert as_token.status_code == 403, as_token.json
    headers = person(client, "viewer@example.com")
    as_viewer = client.post("/api/v1/apps", json={}, headers=headers)
    assert as_viewer.status_code == 403 and "role admin" in as_viewer.json["error"]["message"]
    client.post("/logout", data={"csrf_token": headers["X-CSRFToken"]})
    headers = person(client, "qa@example.com")
    url = f"/api/v1/releases/{release.id}/transitions"
    for body in ({"action": "submit"}, {}):  # the release is in review already: 409 for others
        submit = client.post(url, json=body, headers=headers)
        assert submit.status_code == 403, submit.json
