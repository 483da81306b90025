"""The notes page: sanitized preview, edit with stale-form check, diff, regenerate conflicts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, select

from service.models import AuditEvent, User
from service.releases.models import App, Release, ReleaseNote
from tests.builders import csrf_token, login, post_form, run_jobs
from tests.release_notes.git_repo_builder import GitRepo
from tests.service.releases.release_fixtures import (  # noqa: F401
    git_repo,
    people,
    pos,
    registered_release,
)


@pytest.fixture
def release(app: Flask, session: Session, pos: App, people: dict[str, User]) -> Release:  # noqa: F811
    return registered_release(app, session, pos, people["engineer"])


def _note(session: Session, release: Release) -> ReleaseNote:
    session.expire_all()
    return session.exec(select(ReleaseNote).where(ReleaseNote.release_id == release.id)).one()


def _hash(html: str) -> str:
    match = re.search(r'name="loaded_hash" value="([0-9a-f]+)"', html)
    assert match, "no loaded_hash on the page"
    return match.group(1)


def _as(client: FlaskClient, role: str) -> FlaskClient:
    login(client, f"{role}@example.com")
    return client


def test_page_never_lets_commit_html_run(
    client: FlaskClient, session: Session, release: Release
) -> None:
    note = _note(session, release)
    assert "<script>" in note.generated_markdown or "script" in note.generated_markdown
    for role in ("viewer", "engineer"):
        html = _as(client, role).get(f"/releases/{release.id}/notes").get_data(as_text=True)
        assert "sold-out badge" in html
        assert "<script>alert" not in html
        assert not re.search(r"<img[^>]*onerror", html)
        assert "&lt;script&gt;alert" in html
        client.post("/logout", data={"csrf_token": csrf_token(client, "/")})


def test_viewer_reads_but_cannot_edit(
    client: FlaskClient, session: Session, release: Release
) -> None:
    html = _as(client, "viewer").get(f"/releases/{release.id}/notes").get_data(as_text=True)
    assert "<textarea" not in html and "Regenerate from git" not in html
    page = f"/releases/{release.id}/notes"
    assert post_form(client, page, {"markdown": "x"}).status_code == 403
    assert post_form(client, page + "/regenerate", {}, page=page).status_code == 403


def test_edit_saves_with_audit_and_shows_the_diff(
    client: FlaskClient, session: Session, release: Release
) -> None:
    page = f"/releases/{release.id}/notes"
    html = _as(client, "support").get(page).get_data(as_text=True)
    generated = _note(session, release).generated_markdown
    edited = generated.replace("round tips correctly", "round tips correctly for split bills")
    assert edited != generated
    response = post_form(
        client,
        page,
        {"markdown": edited.replace("\n", "\r\n"), "loaded_hash": _hash(html), "action": "save"},
    )
    assert response.status_code == 302
    note = _note(session, release)
    assert note.edited_markdown == edited  # CRLF from the browser is stored as LF
    assert note.edit_base_markdown == generated
    assert note.edited_by == "user:support@example.com" and note.edited_at is not None
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "notes.edit")).one()
    assert event.before["hash"] != event.after["hash"]  # type: ignore[index]
    html = client.get(page).get_data(as_text=True)
    assert "edited</span> by user:support@example.com" in html
    assert re.search(r'<div class="add">\+.*correctly for split bills', html)
    assert re.search(r'<div class="del">-.*round tips correctly \(', html)


def test_preview_renders_without_saving(
    client: FlaskClient, session: Session, release: Release
) -> None:
    page = f"/releases/{release.id}/notes"
    html = _as(client, "engineer").get(page).get_data(as_text=True)
    response = post_form(
        client,
        page,
        {
            "markdown": "# Draft\n\n<script>alert(1)</script> **bold**\n",
            "action": "preview",
            "loaded_hash": _hash(html),
        },
    )
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "<strong>bold</strong>" in body and "<script>alert(1)" not in body
    assert "previewing unsaved text" in body
    assert _hash(body) == _hash(html)  # still the hash of what was loaded
    assert _note(session, release).edited_markdown is None


def test_json_preview_is_sanitized(client: FlaskClient, release: Release) -> None:
    page = f"/releases/{release.id}/notes"
    _as(client, "engineer")
    token = csrf_token(client, page)
    response = client.post(
        page + "/preview",
        json={"markdown": "<img src=x onerror=alert(1)> [x](javascript:alert(1)) *ok*"},
        headers={"X-CSRFToken": token},
    )
    assert response.status_code == 200
    data = response.get_json()
    assert "<em>ok</em>" in data["html"]
    assert "<img" not in data["html"] and 'href="javascript' not in data["html"]
    assert data["changed"] is True and 'class="add"' in data["diff"]
    assert "<img" not in data["diff"]
    bad = client.post(page + "/preview", json={"text": 1}, headers={"X-CSRFToken": token})
    assert bad.status_code == 422 and bad.get_json()["error"]["fields"] == {"markdown": "required"}
    no_csrf = client.post(page + "/preview", json={"markdown": "x"})
    assert no_csrf.status_code == 400


def test_stale_form_is_refused_without_overwriting(
    client: FlaskClient, session: Session, release: Release
) -> None:
    page = f"/releases/{release.id}/notes"
    html = _as(client, "engineer").get(page).get_data(as_text=True)
    old_hash = _hash(html)
    first = post_form(client, page, {"markdown": "First edit\n", "loaded_hash": old_hash})
    assert first.status_code == 302
    second = post_form(client, page, {"markdown": "Second edit\n", "loaded_hash": old_hash})
    assert second.status_code == 409
    body = second.get_data(as_text=True)
    assert "changed since you opened them" in body and "Second edit" in body
    assert _note(session, release).edited_markdown == "First edit\n"


def test_empty_text_is_refused_and_discard_goes_back(
    client: FlaskClient, session: Session, release: Release
) -> None:
    page = f"/releases/{release.id}/notes"
    html = _as(client, "engineer").get(page).get_data(as_text=True)
    empty = post_form(client, page, {"markdown": "  \n", "loaded_hash": _hash(html)})
    assert empty.status_code == 422 and "cannot be empty" in empty.get_data(as_text=True)
    post_form(client, page, {"markdown": "Mine\n", "loaded_hash": _hash(html)})
    html = client.get(page).get_data(as_text=True)
    response = post_form(
        client, page, {"markdown": "Mine\n", "loaded_hash": _hash(html), "action": "discard"}
    )
    assert response.status_code == 302
    note = _note(session, release)
    assert note.edited_markdown is None and note.markdown == note.generated_markdown
    assert session.exec(select(AuditEvent).where(AuditEvent.action == "notes.discard_edit")).one()


def _move_tag_with_new_commit(repo: GitRepo) -> None:
    repo.commit("feat(kds): bump the ticket font for the grill station (#13)")
    repo.git("tag", "-f", "v1.1.0")


@pytest.mark.parametrize("choice", ["keep", "take"])
def test_regenerate_under_an_edit_shows_a_conflict_to_resolve(
    app: Flask,
    client: FlaskClient,
    session: Session,
    release: Release,
    git_repo: GitRepo,  # noqa: F811
    choice: str,
) -> None:
    page = f"/releases/{release.id}/notes"
    html = _as(client, "release_manager").get(page).get_data(as_text=True)
    post_form(client, page, {"markdown": "Hand-written notes\n", "loaded_hash": _hash(html)})
    old_generated = _note(session, release).generated_markdown

    same = post_form(client, page + "/regenerate", {}, page=page)
    assert same.status_code == 302
    html = client.get(page).get_data(as_text=True)
    assert "Notes pending" in html and "in the background" in html
    assert [job.state for job in run_jobs(app)] == ["succeeded"]
    html = client.get(page).get_data(as_text=True)
    assert "Notes pending" not in html and 'id="conflict"' not in html
    assert _note(session, release).generated_markdown == old_generated

    _move_tag_with_new_commit(git_repo)
    post_form(client, page + "/regenerate", {}, page=page)
    run_jobs(app)
    note = _note(session, release)
    assert note.generated_markdown != old_generated
    assert note.edited_markdown == "Hand-written notes\n"
    html = client.get(page).get_data(as_text=True)
    assert 'id="conflict"' in html and "changed under your edit" in html
    assert re.search(r'<div class="add">\+.*bump the ticket font', html)

    response = post_form(
        client, page + "/resolve", {"choice": choice, "loaded_hash": _hash(html)}, page=page
    )
    assert response.status_code == 302
    note = _note(session, release)
    if choice == "keep":
        assert note.edited_markdown == "Hand-written notes\n"
        assert note.edit_base_markdown == note.generated_markdown
    else:
        assert note.edited_markdown is None and note.edit_base_markdown is None
    assert 'id="conflict"' not in client.get(page).get_data(as_text=True)
    assert session.exec(
        select(AuditEvent).where(AuditEvent.action == f"notes.resolve_{choice}")
    ).one()


def test_regenerate_failure_is_reported(
    app: Flask,
    client: FlaskClient,
    session: Session,
    release: Release,
    pos: App,  # noqa: F811
    tmp_path: Path,
) -> None:
    pos.repo_url = str(tmp_path / "nowhere" / "at" / "all")
    session.add(pos)
    session.commit()
    page = f"/releases/{release.id}/notes"
    _as(client, "engineer")
    post_form(client, page + "/regenerate", {}, page=page)
    assert [job.state for job in run_jobs(app)] == ["failed"]
    html = client.get(page).get_data(as_text=True)
    assert "could not be generated" in html and "does not exist" in html
    assert "Try again: regenerate from git" in html
    html = client.get(f"/releases/{release.id}").get_data(as_text=True)
    assert "could not be generated" in html and "Try again: regenerate from git" in html


def test_notes_list_links_each_release(
    client: FlaskClient,
    release: Release,
    pos: App,  # noqa: F811
) -> None:
    html = _as(client, "viewer").get("/notes").get_data(as_text=True)
    assert f"/releases/{release.id}/notes" in html and pos.name in html
    assert "Not built yet" not in html
