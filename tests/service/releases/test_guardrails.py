"""Guardrails of issue 18 on the release side: approve asks first; the git ref is resolved
before a release exists (a typo creates nothing) and a draft's ref can be corrected; an edit
of the notes re-opens support's review and shows what changed since; "Publish now" waits for
Notion; new people are viewers; one email rule for the CLI, the login form and the API."""

from __future__ import annotations

import re
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from sqlmodel import select

from service.jobs.models import Job
from service.models import AuditEvent, User
from service.releases.models import Release, ReleaseItem, SignOff
from service.releases.notes import note_hash
from tests.builders import api_headers, csrf_header, login, post_form, run_jobs
from tests.service.releases.release_fixtures import registered_release
from tests.service.releases.remotes import HangingRemote


@pytest.fixture
def ci(session, admin):
    return api_headers(session, creator=admin, scopes=["releases:write", "read"])


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# --- approve asks first ---------------------------------------------------------------------


def test_approve_without_the_confirmation_shows_what_will_happen_and_moves_nothing(
    app, client, session, pos, people
):
    release = registered_release(app, session, pos, people["release_manager"], submit=True)
    for item in session.exec(select(ReleaseItem).where(ReleaseItem.release_id == release.id)):
        if item.mode == "manual" and item.required:
            signer = next(u for u in people.values() if u.role == item.owner_role)
            theirs = app.test_client()
            login(theirs, signer.email)
            page = f"/releases/{release.id}"
            post_form(theirs, f"{page}/items/{item.id}/sign", {"decision": "approve"}, page=page)
    login(client, people["rm2"].email)
    page = f"/releases/{release.id}"
    html = client.get(page).get_data(as_text=True)
    assert "Approve…" in html and "the checklist closes" in html
    asked = post_form(client, page + "/transition", {"action": "approve"}, page=page)
    assert asked.status_code == 200
    assert "Approve POS 1.1.0?" in _text(asked.get_data(as_text=True))
    session.expire_all()
    assert session.get(Release, release.id).state == "in_review"
    done = post_form(
        client, page + "/transition", {"action": "approve", "confirm": "yes"}, page=page
    )
    assert done.status_code == 302
    session.expire_all()
    assert session.get(Release, release.id).state == "approved"


def test_the_confirmation_step_refuses_first_who_may_not_act(app, client, session, pos, people):
    release = registered_release(app, session, pos, people["engineer"], submit=True)
    login(client, people["engineer"].email)
    page = f"/releases/{release.id}"
    refused = post_form(client, page + "/transition", {"action": "approve"}, page=page)
    assert refused.status_code == 302  # back to the release with the refusal, no step shown
    assert "Could not approve" in client.get(page).get_data(as_text=True)


# --- the git ref ------------------------------------------------------------------------------


def test_a_typo_in_the_git_ref_answers_422_naming_it_and_creates_nothing(
    app, client, session, ci, pos
):
    body = {"app": "pos", "version": "1.1.0", "git_ref": "v1.1.O"}
    refused = client.post("/api/v1/releases", json=body, headers=ci)
    assert refused.status_code == 422, refused.json
    error = refused.json["error"]
    assert [f["field"] for f in error["fields"]] == ["git_ref"]
    assert "'v1.1.O'" in error["message"]
    assert session.exec(select(Release)).all() == []
    assert session.exec(select(Job)).all() == []
    # The same version at the right ref is accepted afterwards, resolved at once.
    made = client.post("/api/v1/releases", json=body | {"git_ref": "v1.1.0"}, headers=ci)
    assert made.status_code == 201 and len(made.json["to_sha"]) == 40


def test_the_page_form_names_the_ref_it_could_not_find(client, session, pos, people):
    login(client, people["engineer"].email)
    form = {"app": "pos", "version": "1.1.0", "git_ref": "release/1.1", "kind": "weekly"}
    answer = post_form(client, "/releases/new", form)
    assert answer.status_code == 422
    assert "release/1.1&#39; does not exist" in answer.get_data(as_text=True)
    assert session.exec(select(Release)).all() == []


def test_a_commit_or_branch_of_a_remote_is_resolved_with_ls_remote_or_the_mirror(
    client, session, ci, pos, git_repo
):
    pos.repo_url = f"file://{git_repo.path}"
    session.add(pos)
    session.commit()
    by_tag = client.post(
        "/api/v1/releases", json={"app": "pos", "version": "1.1.0", "git_ref": "v1.1.0"}, headers=ci
    )
    assert by_tag.status_code == 201 and by_tag.json["to_sha"] == git_repo.head()
    head = git_repo.head()
    by_sha = client.post(
        "/api/v1/releases",
        json={"app": "pos", "version": "1.2.0", "git_ref": head[:12]},
        headers=ci,
    )
    assert by_sha.status_code == 201 and by_sha.json["to_sha"] == head
    missing = client.post(
        "/api/v1/releases",
        json={"app": "pos", "version": "1.3.0", "git_ref": "0123456789ab"},
        headers=ci,
    )
    assert missing.status_code == 422
    assert missing.json["error"]["fields"][0]["field"] == "git_ref"


def test_a_remote_that_does_not_answer_is_refused_within_the_git_timeout(
    app, client, session, ci, pos, tmp_path: Path
):
    """Registration never waits longer than RELGOV_GIT_TIMEOUT_SECONDS: 503 naming git_ref,
    nothing written (the request's transaction was closed while git ran)."""
    app.config["RELGOV_SETTINGS"] = replace(
        app.config["RELGOV_SETTINGS"], repo_allowed_hosts=("127.0.0.1",), git_timeout_seconds=1.0
    )
    with HangingRemote() as remote:
        pos.repo_url = remote.url("pos.git")
        session.add(pos)
        session.commit()
        answers = []
        body = {"app": "pos", "version": "1.1.0", "git_ref": "v1.1.0"}
        thread = threading.Thread(
            target=lambda: answers.append(client.post("/api/v1/releases", json=body, headers=ci))
        )
        thread.start()
        thread.join(60)
        assert not thread.is_alive()
        assert remote.accepted.is_set()
    answer = answers[0]
    assert answer.status_code == 503, answer.json
    assert answer.json["error"]["fields"][0]["field"] == "git_ref"
    assert "RELGOV_GIT_TIMEOUT_SECONDS" in answer.json["error"]["message"]
    assert session.exec(select(Release)).all() == []


def test_a_drafts_git_ref_can_be_corrected_and_its_notes_regenerate(
    app, client, session, ci, pos, people, git_repo
):
    release = registered_release(app, session, pos, people["engineer"])
    git_repo.commit("feat(menu): allergens on the receipt (#13)")
    git_repo.tag("v1.1.1")
    url = f"/api/v1/releases/{release.id}"
    typo = client.patch(url, json={"git_ref": "v1.1.l"}, headers=ci)
    assert typo.status_code == 422 and typo.json["error"]["fields"][0]["field"] == "git_ref"
    fixed = client.patch(url, json={"git_ref": "v1.1.1"}, headers=ci)
    assert fixed.status_code == 200, fixed.json
    assert fixed.json["git_ref"] == "v1.1.1" and fixed.json["notes_state"] == "pending"
    assert [j.state for j in run_jobs(app)] == ["succeeded"]
    assert client.get(url, headers=ci).json["commit_count"] == 4
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "release.correct_ref")).one()
    assert event.before["git_ref"] == "v1.1.0" and event.after["git_ref"] == "v1.1.1"

    # The page does the same for a registrar; a release past draft keeps its ref.
    login(client, people["engineer"].email)
    page = f"/releases/{release.id}"
    assert "Correct the git ref" in client.get(page).get_data(as_text=True)
    post_form(client, page + "/git-ref", {"git_ref": "v1.1.0"}, page=page)
    session.expire_all()
    assert session.get(Release, release.id).git_ref == "v1.1.0"
    client.post(f"{url}/transitions", json={"action": "submit"}, headers=ci)
    late = client.patch(url, json={"git_ref": "v1.1.1"}, headers=ci)
    assert late.status_code == 409


# --- a review re-opened by an edit -----------------------------------------------------------


def test_a_notes_edit_after_supports_review_reopens_it_with_the_change(
    app, client, session, pos, people
):
    release = registered_release(app, session, pos, people["engineer"], submit=True)
    item = session.exec(
        select(ReleaseItem).where(
            ReleaseItem.release_id == release.id, ReleaseItem.owner_role == "support"
        )
    ).one()
    page = f"/releases/{release.id}"
    support = app.test_client()
    login(support, people["support"].email)
    post_form(support, f"{page}/items/{item.id}/sign", {"decision": "approve"}, page=page)

    login(client, people["engineer"].email)
    notes = client.get(f"/api/v1/releases/{release.id}/notes").json
    edited = notes["markdown"] + "\nSplit bills now keep the tip per guest.\n"
    saved = client.put(
        f"/api/v1/releases/{release.id}/notes",
        json={"markdown": edited, "loaded_hash": notes["hash"]},
        headers=csrf_header(client),
    )
    assert saved.status_code == 200, saved.json
    items = client.get(f"/api/v1/releases/{release.id}").json["items"]
    reviewed = next(i for i in items if i["id"] == item.id)
    assert reviewed["status"] == "pending" and "re-opened" in reviewed["evidence"]
    latest = session.exec(
        select(SignOff).where(SignOff.item_id == item.id).order_by(SignOff.id.desc())
    ).first()
    assert latest.decision == "reopen" and latest.user_email == "user:engineer@example.com"
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "signoff.reopen")).one()
    assert event.before["reviewed_hash"] == note_hash(notes["markdown"])[:16]
    html = client.get(page).get_data(as_text=True)
    assert "Changed since the review" in html
    assert "+Split bills now keep the tip per guest." in html
    # Support signs again: the item stands approved.
    post_form(support, f"{page}/items/{item.id}/sign", {"decision": "approve"}, page=page)
    items = client.get(f"/api/v1/releases/{release.id}").json["items"]
    assert next(i for i in items if i["id"] == item.id)["status"] == "approved"


# --- Publish now waits for Notion ------------------------------------------------------------


def test_publish_now_is_disabled_with_the_reason_and_the_api_refuses_while_notion_is_off(
    app, client, session, ci, pos, people
):
    release = registered_release(app, session, pos, people["engineer"])
    login(client, people["engineer"].email)
    html = client.get(f"/releases/{release.id}").get_data(as_text=True)
    button = re.search(r"<button[^>]*>Publish now</button>", html)
    assert button and "disabled" in button.group(0)
    assert "Disabled: Notion is not configured." in html
    refused = client.post(f"/api/v1/releases/{release.id}/publish", headers=ci)
    assert refused.status_code == 409
    assert refused.json["error"]["code"] == "notion_not_configured"
    assert "NOTION_TOKEN" in refused.json["error"]["message"]
    assert session.exec(select(Job).where(Job.kind == "notion_publish")).all() == []
    status = client.get(f"/api/v1/releases/{release.id}/publish", headers=ci).json
    assert status["disabled_reason"].startswith("Notion is not configured")


# --- people ------------------------------------------------------------------------------------


def test_new_people_default_to_viewer_on_the_page_and_in_the_api(admin_client, session):
    html = admin_client.get("/admin/users").get_data(as_text=True)
    assert re.search(r'<option selected value="viewer">|<option value="viewer" selected>', html)
    headers = csrf_header(admin_client, "/admin/users")
    made = admin_client.post(
        "/api/v1/users",
        json={"email": "new@example.com", "password": "a-long-password-1"},
        headers=headers,
    )
    assert made.status_code == 201, made.json
    assert made.json["role"] == "viewer"


def test_the_cli_and_the_login_form_accept_the_same_emails(app, runner, client, session):
    made = runner.invoke(
        args=["users", "create", "--email", "admin@x.test", "--role", "admin"],
        input="a-long-password-1\na-long-password-1\n",
    )
    assert made.exit_code == 0, made.output
    answer = login(client, "admin@x.test", "a-long-password-1")
    assert answer.status_code == 302, answer.get_data(as_text=True)
    refused = runner.invoke(
        args=["users", "create", "--email", "admin@localhost", "--role", "admin"],
        input="a-long-password-1\na-long-password-1\n",
    )
    assert refused.exit_code != 0 and "not an email address" in refused.output
    page = login(app.test_client(), "admin@localhost", "a-long-password-1")
    assert page.status_code == 400  # the same rule refuses it on the form
    assert session.exec(select(User).where(User.email == "admin@localhost")).first() is None
