"""A release's notes: generated from git, edited by people, hashed, and who hears of an edit.

Functions take the session and never commit; the caller (a page, the API, the CLI) does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from flask import current_app
from sqlmodel import Session, select

from release_notes.config import config_from_dict
from release_notes.errors import NotesError
from release_notes.generate import generate_for_range, no_gc, render_notes
from release_notes.render import to_json_dict
from service import audit
from service.errors import DomainError
from service.models import utcnow
from service.releases.lifecycle import Actor
from service.releases.models import App, Release, ReleaseNote
from service.releases.repos import RepoError, RepoPolicy, resolve_repo

EDITOR_ROLES = ("release_manager", "engineer", "support", "admin")
# reaction(session, release, actor name) after the text of a release's notes changed.
EditReaction = Callable[[Session, Release, str], Any]
# Installed by ``service/wiring.py`` (every app of a process is wired the same way).
_on_edit: tuple[EditReaction, ...] = ()


def install(on_edit: Sequence[EditReaction]) -> None:
    """Who hears that a release's notes were edited."""
    global _on_edit
    _on_edit = tuple(on_edit)


def note_hash(text: str | None) -> str:
    """The hash of a note's text: what an edit is checked against, and what the audit log
    keeps (its first 16 digits)."""
    return hashlib.sha256((text or "").encode()).hexdigest()


def _short(text: str | None) -> str:
    return note_hash(text)[:16]


def normalise(text: str) -> str:
    """Browsers send textareas with CRLF line ends; the notes are stored with LF."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") or not text else text + "\n"


def note_for(session: Session, release: Release) -> ReleaseNote | None:
    return session.exec(select(ReleaseNote).where(ReleaseNote.release_id == release.id)).first()


def repo_policy() -> RepoPolicy:
    """Where repositories may come from, and the git timeout (the app's settings)."""
    return RepoPolicy.from_settings(current_app.config["RELGOV_SETTINGS"])


def generate_notes_for(session: Session, release: Release, *, actor: Actor) -> ReleaseNote:
    """(Re)generate the notes from git; an edit is kept (its base shows any conflict)."""
    app = session.get(App, release.app_id)
    assert app is not None
    note = note_for(session, release)
    if note is None:
        note = ReleaseNote(release_id=release.id or 0)
    before = {"generated_hash": _short(note.generated_markdown), "error": note.generation_error}
    try:
        repo = _resolve_repo(app)
        config_data: dict[str, Any] = {"areas": dict(app.area_map)}
        if app.pr_url_template:
            config_data["pr_url"] = app.pr_url_template
        config = config_from_dict(config_data)
        with no_gc():  # one pause across parse, render and JSON (see no_gc)
            notes = generate_for_range(
                repo,
                release.from_ref,
                release.git_ref,
                version=release.version,
                config=config,
                timeout=repo_policy().timeout,
            )
            markdown = render_notes(notes, "markdown", config)
            data = to_json_dict(notes)
            del notes
    except (NotesError, RepoError) as exc:
        note.generation_error = str(exc)[:2000]
        session.add(note)
        audit.record(
            session,
            actor=actor.name,
            action="notes.generate_failed",
            subject_type="release",
            subject_id=release.id,
            after={"error": note.generation_error},
            summary=f"notes could not be generated: {note.generation_error}",
        )
        return note
    note.generated_markdown = markdown
    note.data = data
    counts = data["counts"]
    note.commit_count = int(counts["commits"])
    note.pr_count = int(counts["prs"])
    note.breaking_count = int(counts["breaking"])
    # Merge commits of listed PRs are filtered and need no link of their own.
    note.unlinked_commits = [
        {"sha": item["short_sha"], "subject": item["subject"]}
        for item in data["shown"]
        if not item.get("pr_number") and not item.get("bot")
    ]
    note.generation_error = None
    note.generated_at = utcnow()
    release.to_sha = data["range"].get("to_sha") or release.to_sha
    # With no earlier release registered, the engine starts at the previous version tag.
    release.from_ref = release.from_ref or data["range"].get("from")
    session.add(note)
    session.add(release)
    session.flush()
    audit.record(
        session,
        actor=actor.name,
        action="notes.generate",
        subject_type="release",
        subject_id=release.id,
        before=before,
        after={"generated_hash": _short(markdown), "commits": note.commit_count},
        summary=f"generated notes: {note.commit_count} commits, {note.pr_count} PRs",
    )
    return note


def _resolve_repo(app: App) -> Path:
    if not app.repo_url:
        raise RepoError(f"{app.slug} has no git repository configured")
    return Path(resolve_repo(app, repo_policy()))


def _edited(session: Session, release: Release, actor: Actor) -> None:
    """Tell who listens that the text changed (publishing re-publishes when it applies)."""
    for react in _on_edit:
        react(session, release, actor.name)


class NothingToSave(Exception):
    """The submitted text is what is already stored (nothing is refused, nothing changes)."""


class EmptyNotes(DomainError):
    """Notes cannot be saved empty."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="markdown")


def save_note_edit(
    session: Session,
    *,
    release: Release,
    app: App,
    note: ReleaseNote,
    text: str,
    discard: bool,
    actor: Actor,
) -> str:
    """Store an edit of the notes (or drop it), audited; returns the audit action.

    The caller checks that the form was not stale (``loaded_hash``) and commits.
    """
    text = normalise(text)
    before_hash = _short(note.markdown)
    if discard or text == note.generated_markdown:
        if note.edited_markdown is None:
            raise NothingToSave("Nothing to save: the text is the generated text.")
        note.edited_markdown = None
        note.edit_base_markdown = None
        summary = "went back to the generated notes"
        event = "notes.discard_edit"
    else:
        if not text.strip():
            raise EmptyNotes(
                "The notes cannot be empty. Use “Use generated text” to drop your edit."
            )
        if text == note.edited_markdown:
            raise NothingToSave("Nothing to save: the text has not changed.")
        note.edited_markdown = text
        note.edit_base_markdown = note.generated_markdown
        summary = "edited the notes"
        event = "notes.edit"
    _record_edit(session, release, app, note, actor, event, summary, before_hash)
    return event


def resolve_conflict(
    session: Session, *, release: Release, app: App, note: ReleaseNote, keep: bool, actor: Actor
) -> str:
    """After regenerating changed the text under an edit: keep the edit, or take the new
    generated text; audited. Returns what was done, in words."""
    before_hash = _short(note.markdown)
    if keep:
        note.edit_base_markdown = note.generated_markdown
        summary = "kept the edit over the regenerated notes"
    else:
        note.edited_markdown = None
        note.edit_base_markdown = None
        summary = "took the regenerated notes, dropping the edit"
    action = f"notes.resolve_{'keep' if keep else 'take'}"
    _record_edit(session, release, app, note, actor, action, summary, before_hash)
    return summary


def _record_edit(
    session: Session,
    release: Release,
    app: App,
    note: ReleaseNote,
    actor: Actor,
    action: str,
    summary: str,
    before_hash: str,
) -> None:
    """Stamp who changed the text, audit it, and tell who listens."""
    note.edited_by = actor.name
    note.edited_at = utcnow()
    session.add(note)
    audit.record(
        session,
        actor=actor.name,
        action=action,
        subject_type="release",
        subject_id=release.id,
        before={"hash": before_hash},
        after={"hash": _short(note.markdown), "edited": note.edited_markdown is not None},
        summary=f"{app.slug} {release.version}: {summary}",
    )
    _edited(session, release, actor)
