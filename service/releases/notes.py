"""A release's notes: generated from git (in the job worker), edited by people, hashed, and
who hears of an edit.

Functions take the session and never commit; the caller (a page, the API, the CLI) does.
The job handler and :func:`generate_now` open their own short transactions around git.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app
from sqlmodel import Session, col, select

from release_notes.config import config_from_dict
from release_notes.errors import NotesError
from release_notes.generate import generate_for_range, no_gc, render_notes
from release_notes.render import to_json_dict
from service import audit, db, jobs
from service.errors import DomainError
from service.jobs.models import Job
from service.models import utcnow
from service.releases.lifecycle import Actor
from service.releases.models import App, Release, ReleaseNote
from service.releases.repos import RepoError, RepoPolicy, resolve_repo
from versioning import parse_version

EDITOR_ROLES = ("release_manager", "engineer", "support", "admin")
MAX_DIFF_LINES = 4000
# reaction(session, release, actor name, the text before) after a release's notes changed.
EditReaction = Callable[[Session, Release, str, str], Any]
# Installed by ``service/wiring.py`` (every app of a process is wired the same way).
_on_edit: tuple[EditReaction, ...] = ()
_on_generate: tuple[EditReaction, ...] = ()


def install(on_edit: Sequence[EditReaction], on_generate: Sequence[EditReaction] = ()) -> None:
    """Who hears that a release's notes were edited, and that they were generated."""
    global _on_edit, _on_generate
    _on_edit, _on_generate = tuple(on_edit), tuple(on_generate)


@dataclass(frozen=True)
class DiffLine:
    """One line of a unified diff, typed for the templates."""

    kind: str  # meta | hunk | add | del | ctx
    text: str


def diff_lines(old: str, new: str, *, old_label: str, new_label: str) -> list[DiffLine]:
    """A unified diff of ``old`` → ``new`` as typed lines for the template (escaped there)."""
    lines: list[DiffLine] = []
    for raw in difflib.unified_diff(
        old.splitlines(), new.splitlines(), old_label, new_label, n=2, lineterm=""
    ):
        if raw.startswith(("---", "+++")):
            kind = "meta"
        elif raw.startswith("@@"):
            kind = "hunk"
        elif raw.startswith("+"):
            kind = "add"
        elif raw.startswith("-"):
            kind = "del"
        else:
            kind = "ctx"
        lines.append(DiffLine(kind, raw))
        if len(lines) >= MAX_DIFF_LINES:
            lines.append(DiffLine("meta", "… the diff is longer; showing the first part only"))
            break
    return lines


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


def repo_policy(app: Flask | None = None) -> RepoPolicy:
    """Where repositories may come from, and the git timeout (the app's settings)."""
    settings = (app or current_app).config["RELGOV_SETTINGS"]
    return RepoPolicy.from_settings(settings)


# --- generating: git in the job worker, with no transaction open -----------------------------
#
# Registering a release (and "Regenerate") only queues a job in the request's transaction;
# the worker reads what to generate in one short transaction, runs git with none open (a slow
# or hanging remote holds no database lock), then stores the notes in a second one.

KIND = "release_notes"
MAX_ATTEMPTS = 3  # a git failure is not retried (it is shown); this is for crashes
SYSTEM_ACTOR = "system:notes"


def job_key(release_id: int | None) -> str:
    return f"release-notes:{release_id}"


@dataclass(frozen=True)
class NotesSource:
    """What generating a release's notes reads from git, copied out of the database."""

    release_id: int
    slug: str
    repo_url: str
    from_ref: str | None
    git_ref: str
    version: str
    area_map: dict[str, str]
    pr_url_template: str


@dataclass(frozen=True)
class Generated:
    markdown: str
    data: dict[str, Any]


def previous_release(session: Session, app: App, version: str) -> Release | None:
    """The highest release of ``app`` below ``version`` that reached the stores: what a
    store upgrades from (a hotfix 1.0.1 for 1.1.0, whichever branch it was made on)."""
    target = parse_version(version)
    candidates = session.exec(
        select(Release).where(
            Release.app_id == app.id,
            col(Release.state).in_(["released", "rolling_out", "beta", "halted"]),
        )
    ).all()
    below = [r for r in candidates if parse_version(r.version) < target]
    return max(below, key=lambda r: parse_version(r.version), default=None)


def notes_source(session: Session, release: Release) -> NotesSource:
    """What to read from git, as of now: the range starts at the release that reached the
    stores last below this one (a hotfix released after this release was registered
    counts), else where it started when registered (or the previous version tag)."""
    app = session.get(App, release.app_id)
    assert app is not None
    previous = previous_release(session, app, release.version)
    return NotesSource(
        release_id=release.id or 0,
        slug=app.slug,
        repo_url=app.repo_url or "",
        from_ref=previous.git_ref if previous is not None else release.from_ref,
        git_ref=release.git_ref,
        version=release.version,
        area_map=dict(app.area_map),
        pr_url_template=app.pr_url_template or "",
    )


def read_from_git(source: NotesSource, policy: RepoPolicy) -> Generated:
    """The notes of ``source``'s range: git only, no database (raises RepoError/NotesError).
    Each git command (fetch, clone, log) is bounded by ``policy.timeout``."""
    if not source.repo_url:
        raise RepoError(f"{source.slug} has no git repository configured")
    repo = resolve_repo(source, policy)
    config_data: dict[str, Any] = {"areas": source.area_map}
    if source.pr_url_template:
        config_data["pr_url"] = source.pr_url_template
    config = config_from_dict(config_data)
    with no_gc():  # one pause across parse, render and JSON (see no_gc)
        notes = generate_for_range(
            repo,
            source.from_ref,
            source.git_ref,
            version=source.version,
            config=config,
            timeout=policy.timeout,
        )
        markdown = render_notes(notes, "markdown", config)
        data = to_json_dict(notes)
        del notes
    return Generated(markdown=markdown, data=data)


def queue_generation(session: Session, release: Release, *, actor: str) -> Job:
    """Queue (re)generating ``release``'s notes in the caller's transaction; until the job
    worker has run it, the notes are pending (:func:`notes_state`)."""
    return jobs.enqueue(
        session,
        KIND,
        key=job_key(release.id),
        payload={"release_id": release.id, "actor": actor},
        run_now=True,
        actor=actor,
    )


def generation_job(session: Session, release: Release) -> Job | None:
    """The queued or running generation of ``release``'s notes, else the latest one."""
    return jobs.latest_job(session, job_key(release.id))


def notes_state(session: Session, release: Release, note: ReleaseNote | None = None) -> str:
    """``pending`` (queued or being generated), ``failed``, ``generated`` or ``none``."""
    job = generation_job(session, release)
    if job is not None and job.state in ("queued", "running"):
        return "pending"
    note = note if note is not None else note_for(session, release)
    if note is None:
        return "none"
    if note.generation_error:
        return "failed"
    return "generated" if note.generated_at is not None else "none"


def handle_generate(ctx: jobs.JobContext) -> str:
    """The job: read the source, run git with no transaction open, store the notes. A git
    failure fails the job at once (``on_generate_error`` stores it on the note)."""
    release_id = ctx.job.payload.get("release_id")
    with db.session_scope() as session:
        release = session.get(Release, release_id) if isinstance(release_id, int) else None
        if release is None:
            raise jobs.PermanentJobError(f"release {release_id} no longer exists")
        source = notes_source(session, release)
    try:
        generated = read_from_git(source, repo_policy(ctx.app))
    except (NotesError, RepoError) as exc:
        raise jobs.PermanentJobError(str(exc)) from None
    with db.session_scope() as session:
        release = session.get(Release, source.release_id)
        assert release is not None
        note = store_generated(session, release, generated, actor=_job_actor(ctx.job))
        return f"{note.commit_count} commits, {note.pr_count} PRs"


def on_generate_error(session: Session, job: Job, message: str, final: bool) -> None:
    """A failed generation, in the transaction that records it: the note shows the error."""
    release_id = job.payload.get("release_id")
    release = session.get(Release, release_id) if isinstance(release_id, int) else None
    if final and release is not None:
        store_failure(session, release, message, actor=_job_actor(job))


def _job_actor(job: Job) -> str:
    return str(job.payload.get("actor") or SYSTEM_ACTOR)


def generate_now(release_id: int, *, actor: str, policy: RepoPolicy | None = None) -> str:
    """Generate a release's notes in this process, as the job does (the demo, tests); needs
    an app context. It opens its own transactions, none of them while git runs, so the
    caller must have committed the release first. Returns the resulting notes state."""
    with db.session_scope() as session:
        release = session.get(Release, release_id)
        assert release is not None
        source = notes_source(session, release)
    try:
        generated = read_from_git(source, policy or repo_policy())
    except (NotesError, RepoError) as exc:
        with db.session_scope() as session:
            release = session.get(Release, release_id)
            assert release is not None
            store_failure(session, release, str(exc), actor=actor)
        return "failed"
    with db.session_scope() as session:
        release = session.get(Release, release_id)
        assert release is not None
        store_generated(session, release, generated, actor=actor)
    return "generated"


def _note_of(session: Session, release: Release) -> ReleaseNote:
    note = note_for(session, release)
    return note if note is not None else ReleaseNote(release_id=release.id or 0)


def store_failure(session: Session, release: Release, message: str, *, actor: str) -> ReleaseNote:
    """Record that generating failed (the older notes, if any, stay), audited."""
    note = _note_of(session, release)
    note.generation_error = message[:2000]
    session.add(note)
    audit.record(
        session,
        actor=actor,
        action="notes.generate_failed",
        subject_type="release",
        subject_id=release.id,
        after={"error": note.generation_error},
        summary=f"notes could not be generated: {note.generation_error}",
    )
    return note


def store_generated(
    session: Session, release: Release, generated: Generated, *, actor: str
) -> ReleaseNote:
    """Store freshly generated notes; an edit is kept (its base shows any conflict)."""
    note = _note_of(session, release)
    text_before = note.markdown or ""
    before = {
        "generated_hash": _short(note.generated_markdown),
        "error": note.generation_error,
        "from_ref": release.from_ref,
    }
    data = generated.data
    note.generated_markdown = generated.markdown
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
    # Where these notes start: the previous release reaching the stores, else the previous
    # version tag the engine found (None: the whole history).
    release.from_ref = data["range"].get("from") or release.from_ref
    session.add(note)
    session.add(release)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="notes.generate",
        subject_type="release",
        subject_id=release.id,
        before=before,
        after={
            "generated_hash": _short(generated.markdown),
            "commits": note.commit_count,
            "from_ref": release.from_ref,
        },
        summary=f"generated notes: {note.commit_count} commits, {note.pr_count} PRs",
    )
    for react in _on_generate:
        react(session, release, actor, text_before)
    return note


def _edited(session: Session, release: Release, actor: Actor, before: str) -> None:
    """Tell who listens that the text changed (publishing re-publishes when it applies; a
    review of the old text is re-opened)."""
    for react in _on_edit:
        react(session, release, actor.name, before)


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
    before_text = note.markdown
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
    _record_edit(session, release, app, note, actor, event, summary, before_text)
    return event


def resolve_conflict(
    session: Session, *, release: Release, app: App, note: ReleaseNote, keep: bool, actor: Actor
) -> str:
    """After regenerating changed the text under an edit: keep the edit, or take the new
    generated text; audited. Returns what was done, in words."""
    before_text = note.markdown
    if keep:
        note.edit_base_markdown = note.generated_markdown
        summary = "kept the edit over the regenerated notes"
    else:
        note.edited_markdown = None
        note.edit_base_markdown = None
        summary = "took the regenerated notes, dropping the edit"
    action = f"notes.resolve_{'keep' if keep else 'take'}"
    _record_edit(session, release, app, note, actor, action, summary, before_text)
    return summary


def _record_edit(
    session: Session,
    release: Release,
    app: App,
    note: ReleaseNote,
    actor: Actor,
    action: str,
    summary: str,
    before_text: str,
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
        before={"hash": _short(before_text)},
        after={"hash": _short(note.markdown), "edited": note.edited_markdown is not None},
        summary=f"{app.slug} {release.version}: {summary}",
    )
    _edited(session, release, actor, before_text)
