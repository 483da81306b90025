"""The notes of one release: preview, edit, diff against the generated text, regenerate.

Every preview goes through :func:`release_notes.markdown_doc.render_html` (raw HTML in a
commit message is text, and the result is cleaned with nh3), so nothing a commit author
wrote can run in a reader's browser. An edit keeps the generated text it started from
(``edit_base_markdown``): when regenerating changes the generated text under an edit, the
page shows what changed and lets the editor keep their text or take the new one.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from sqlmodel import Session, col, select
from werkzeug.wrappers import Response

from release_notes.markdown_doc import render_html
from service import db
from service.api import json_body
from service.auth import login_required, roles_required
from service.releases.lifecycle import Actor
from service.releases.models import App, Release, ReleaseNote
from service.releases.notes import (
    EDITOR_ROLES,
    EmptyNotes,
    NothingToSave,
    diff_lines,
    generation_job,
    normalise,
    note_for,
    note_hash,
    notes_state,
    queue_generation,
    resolve_conflict,
    save_note_edit,
)
from versioning import sort_key

bp = Blueprint("notes", __name__)
editor_required = roles_required(*EDITOR_ROLES)
LIST_PER_APP = 10


def _release_or_404(session: Session, release_id: int) -> tuple[Release, App]:
    release = session.get(Release, release_id)
    if release is None:
        abort(404)
    app = session.get(App, release.app_id)
    assert app is not None
    return release, app


def _actor() -> Actor:
    return Actor(name=current_user.actor, user_id=current_user.id, role=current_user.role)


def _can_edit() -> bool:
    return bool(current_user.is_authenticated and current_user.role in EDITOR_ROLES)


def _render(
    session: Session,
    release: Release,
    app: App,
    note: ReleaseNote | None,
    *,
    text: str | None = None,
    loaded_hash: str | None = None,
    error: str | None = None,
    previewing: bool = False,
    status: int = 200,
) -> tuple[str, int]:
    current = note.markdown if note else ""
    text = current if text is None else text
    generated = note.generated_markdown if note else ""
    conflict = None
    if (
        note is not None
        and note.edited_markdown is not None
        and note.edit_base_markdown is not None
        and note.edit_base_markdown != note.generated_markdown
    ):
        conflict = diff_lines(
            note.edit_base_markdown,
            note.generated_markdown,
            old_label="generated text your edit started from",
            new_label="newly generated text",
        )
    changes = (
        diff_lines(generated, text, old_label="generated from git", new_label="edited")
        if note is not None and text != generated
        else []
    )
    return render_template(
        "releases/notes_page.html",
        release=release,
        app=app,
        note=note,
        notes_state=notes_state(session, release, note),
        notes_job=generation_job(session, release),
        text=text,
        preview_html=render_html(text) if text else "",
        loaded_hash=loaded_hash or note_hash(current),
        changes=changes,
        conflict=conflict,
        error=error,
        previewing=previewing,
        can_edit=_can_edit(),
    ), status


@bp.get("/releases/<int:release_id>/notes")
@login_required
def notes_page(release_id: int) -> tuple[str, int]:
    session = db.session()
    release, app = _release_or_404(session, release_id)
    return _render(session, release, app, note_for(session, release))


@bp.post("/releases/<int:release_id>/notes")
@editor_required
def notes_save(release_id: int) -> tuple[str, int] | Response:
    session = db.session()
    release, app = _release_or_404(session, release_id)
    note = note_for(session, release)
    if note is None:
        flash("There are no notes to edit yet: regenerate them from git first.", "error")
        return redirect(url_for("notes.notes_page", release_id=release_id))
    action = request.form.get("action", "save")
    text = normalise(request.form.get("markdown", ""))
    loaded = request.form.get("loaded_hash", "")
    if action == "preview":
        return _render(session, release, app, note, text=text, loaded_hash=loaded, previewing=True)
    if action not in ("save", "discard"):
        abort(400)
    if loaded != note_hash(note.markdown):
        who = f" by {note.edited_by}" if note.edited_by else ""
        when = f" at {note.edited_at:%Y-%m-%d %H:%M} UTC" if note.edited_at else ""
        return _render(
            session,
            release,
            app,
            note,
            text=text,
            loaded_hash=loaded,
            error=(
                f"These notes changed since you opened them (edited{who}{when}, or "
                "regenerated). Your text was not saved; it is still in the editor. Compare "
                "it with the current notes, then save again."
            ),
            status=409,
        )
    try:
        event = save_note_edit(
            session,
            release=release,
            app=app,
            note=note,
            text=text,
            discard=action == "discard",
            actor=_actor(),
        )
    except NothingToSave as exc:
        flash(str(exc), "info")
        return redirect(url_for("notes.notes_page", release_id=release_id))
    except EmptyNotes as exc:
        return _render(
            session, release, app, note, text=text, loaded_hash=loaded, error=str(exc), status=422
        )
    session.commit()
    flash(
        "Saved your edit of the notes."
        if event == "notes.edit"
        else "The notes are the generated text again.",
        "success",
    )
    return redirect(url_for("notes.notes_page", release_id=release_id))


@bp.post("/releases/<int:release_id>/notes/preview")
@login_required
def notes_preview(release_id: int) -> Response:
    """The sanitized HTML of posted Markdown and its diff against the generated text."""
    session = db.session()
    release, _app = _release_or_404(session, release_id)
    try:
        payload: Any = json_body.parse(request.get_data(cache=True)) if request.is_json else None
    except json_body.InvalidJson as exc:
        response = jsonify(
            {"error": {"code": "invalid_json", "message": f"the body is not valid JSON: {exc}"}}
        )
        response.status_code = 400
        return response
    if not isinstance(payload, dict) or not isinstance(payload.get("markdown"), str):
        response = jsonify(
            {
                "error": {
                    "code": "invalid",
                    "message": 'send {"markdown": "..."}',
                    "fields": {"markdown": "required"},
                }
            }
        )
        response.status_code = 422
        return response
    text = normalise(payload["markdown"])
    note = note_for(session, release)
    generated = note.generated_markdown if note else ""
    changes = (
        diff_lines(generated, text, old_label="generated from git", new_label="edited")
        if text != generated
        else []
    )
    return jsonify(
        {
            "html": render_html(text),
            "diff": render_template("releases/notes_diff.html", lines=changes),
            "changed": bool(changes),
        }
    )


@bp.post("/releases/<int:release_id>/notes/regenerate")
@editor_required
def notes_regenerate(release_id: int) -> Response:
    session = db.session()
    release, _app = _release_or_404(session, release_id)
    queue_generation(session, release, actor=_actor().name)
    session.commit()
    flash(
        "Regenerating the notes from git in the background (notes pending): reload this page "
        "in a moment. An edit is kept; if the generated text changes under it, the page shows "
        "the conflict.",
        "info",
    )
    return redirect(url_for("notes.notes_page", release_id=release_id))


@bp.post("/releases/<int:release_id>/notes/resolve")
@editor_required
def notes_resolve(release_id: int) -> Response:
    session = db.session()
    release, app = _release_or_404(session, release_id)
    note = note_for(session, release)
    choice = request.form.get("choice", "")
    if (
        note is None
        or note.edited_markdown is None
        or note.edit_base_markdown == note.generated_markdown
    ):
        flash("There is no conflict to resolve any more.", "info")
        return redirect(url_for("notes.notes_page", release_id=release_id))
    if request.form.get("loaded_hash", "") != note_hash(note.markdown):
        flash("The notes changed since you opened them; look again before choosing.", "error")
        return redirect(url_for("notes.notes_page", release_id=release_id))
    if choice not in ("keep", "take"):
        abort(400)
    summary = resolve_conflict(
        session, release=release, app=app, note=note, keep=choice == "keep", actor=_actor()
    )
    session.commit()
    flash(summary[:1].upper() + summary[1:] + ".", "success")
    return redirect(url_for("notes.notes_page", release_id=release_id))


@bp.get("/notes")
@login_required
def notes_list() -> str:
    """Every app's releases that have notes, newest first."""
    session = db.session()
    rows = session.exec(
        select(ReleaseNote, Release, App)
        .join(Release, col(Release.id) == col(ReleaseNote.release_id))
        .join(App, col(App.id) == col(Release.app_id))
        .order_by(App.name, col(Release.created_at).desc(), col(Release.id).desc())
    ).all()
    by_app: dict[str, list[tuple[ReleaseNote, Release, App]]] = {}
    for note, release, app in rows:
        by_app.setdefault(app.name, []).append((note, release, app))
    for name, entries in by_app.items():
        entries.sort(key=lambda row: sort_key(row[1].version), reverse=True)
        by_app[name] = entries[:LIST_PER_APP]
    return render_template("releases/notes_list.html", by_app=by_app)
