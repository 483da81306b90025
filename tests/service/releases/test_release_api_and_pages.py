"""Releases through the API and the pages, including XSS from commit messages."""

import pytest

from service.releases.models import Release
from tests.builders import api_headers, login, post_form, run_jobs


@pytest.fixture
def ci_token(session, admin):
    return api_headers(session, creator=admin, scopes=["releases:write", "read"])


def test_ci_registers_a_candidate_idempotently(app, client, ci_token, pos):
    body = {"app": "pos", "version": "1.1.0", "git_ref": "v1.1.0"}
    first = client.post("/api/v1/releases", json=body, headers=ci_token)
    assert first.status_code == 201, first.json
    assert first.json["state"] == "draft"
    # The notes are read from git by the job worker, not while CI waits.
    assert first.json["notes_state"] == "pending" and first.json["commit_count"] == 0
    assert first.json["items"][0]["title"] == "Notes generated"
    assert first.json["items"][0]["status"] == "pending"
    again = client.post("/api/v1/releases", json=body, headers=ci_token)
    assert again.status_code == 200 and again.json["id"] == first.json["id"]
    assert [job.state for job in run_jobs(app)] == ["succeeded"]  # one job for both
    done = client.get(f"/api/v1/releases/{first.json['id']}", headers=ci_token).json
    assert done["notes_state"] == "generated" and done["commit_count"] == 3
    assert done["items"][0]["status"] == "passed"
    third = client.post("/api/v1/releases", json=body, headers=ci_token)
    assert third.status_code == 200 and third.json["notes_state"] == "generated"
    assert run_jobs(app) == []


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"app": "pos", "version": "latest", "git_ref": "v1"}, 422, "version"),
        ({"app": "pos", "version": "1..2", "git_ref": "v1"}, 422, "version"),
        ({"app": "pos", "version": "99999999999999999999.0.0", "git_ref": "v1"}, 422, "version"),
        ({"app": "nope", "version": "1.0.0", "git_ref": "v1"}, 404, "app"),
        ({"app": "pos", "version": "1.0.0"}, 422, "git_ref"),
        ({"app": "pos", "version": "1.0.0", "git_ref": "v1", "kind": "monthly"}, 422, "kind"),
    ],
)
def test_bad_registrations(client, ci_token, pos, session, body, status, field):
    response = client.post("/api/v1/releases", json=body, headers=ci_token)
    assert response.status_code == status, response.json
    assert field in [f["field"] for f in response.json["error"]["fields"]]
    assert session.exec(__import__("sqlmodel").select(Release)).all() == []


def test_lower_than_released_is_refused(client, ci_token, pos, session):
    client.post(
        "/api/v1/releases",
        json={"app": "pos", "version": "1.1.0", "git_ref": "v1.1.0"},
        headers=ci_token,
    )
    release = session.exec(__import__("sqlmodel").select(Release)).one()
    release.state = "released"
    session.add(release)
    session.commit()
    response = client.post(
        "/api/v1/releases",
        json={"app": "pos", "version": "1.0.5", "git_ref": "v1.0.0"},
        headers=ci_token,
    )
    assert response.status_code == 409
    assert "lower than 1.1.0" in response.json["error"]["message"]


def test_illegal_transition_is_409_and_token_cannot_approve(client, ci_token, pos):
    created = client.post(
        "/api/v1/releases",
        json={"app": "pos", "version": "1.1.0", "git_ref": "v1.1.0"},
        headers=ci_token,
    ).json
    url = f"/api/v1/releases/{created['id']}/transitions"
    illegal = client.post(url, json={"action": "halt", "reason": "x"}, headers=ci_token)
    assert illegal.status_code == 409
    assert "cannot halt" in illegal.json["error"]["message"]
    # A move the token may not take at all is 403 whatever the state (not 409).
    not_its_own = client.post(url, json={"action": "promote"}, headers=ci_token)
    assert not_its_own.status_code == 403
    assert (
        client.post(url, json={"action": "submit"}, headers=ci_token).json["state"] == "in_review"
    )
    approve = client.post(url, json={"action": "approve"}, headers=ci_token)
    assert approve.status_code == 403
    reject = client.post(url, json={"action": "reject"}, headers=ci_token)
    assert reject.status_code == 403
    cancel = client.post(url, json={"action": "cancel"}, headers=ci_token)
    assert cancel.status_code == 422 and cancel.json["error"]["fields"][0]["field"] == "reason"
    assert (
        client.get(f"/api/v1/releases/{created['id']}", headers=ci_token).json["state"]
        == "in_review"
    )


def test_release_page_escapes_commit_messages(app, client, ci_token, pos, admin):
    created = client.post(
        "/api/v1/releases",
        json={"app": "pos", "version": "1.1.0", "git_ref": "v1.1.0"},
        headers=ci_token,
    ).json
    run_jobs(app)
    login(client, admin.email)
    html = client.get(f"/releases/{created['id']}").get_data(as_text=True)
    # Both hostile subjects are shown as text, never as markup.
    assert "&lt;script&gt;alert" in html and "<script>alert" not in html
    assert "&lt;img src=x onerror" in html
    assert "<img" not in html


def test_sign_and_transition_through_the_pages(client, ci_token, pos, people, session):
    created = client.post(
        "/api/v1/releases",
        json={"app": "pos", "version": "1.1.0", "git_ref": "v1.1.0"},
        headers=ci_token,
    ).json
    rid = created["id"]
    page = f"/releases/{rid}"
    item = {i["title"]: i["id"] for i in created["items"]}
    login(client, "support@example.com")
    response = post_form(
        client,
        f"{page}/items/{item['Rollback plan written']}/sign",
        {"decision": "approve"},
        page=page,
    )
    assert response.status_code == 302
    assert "only a engineer may sign" in client.get(page).get_data(as_text=True)
    # The release is on the agenda of the week its train leaves (any date of it names it).
    week = created["scheduled_for"][:10]
    meeting = client.get(f"/meeting?week={week}", follow_redirects=True).get_data(as_text=True)
    assert "1.1.0" in meeting and "Regression tests pass" in meeting
