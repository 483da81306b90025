"""Releases in the JSON API: CI registers candidates; tools read state and checklists."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Literal

from flask import request
from pydantic import BaseModel, Field
from sqlmodel import col, select

from release_notes.markdown_doc import render_html
from service import db
from service.api.errors import ApiError, not_found
from service.api.operations import Routes
from service.api.person_session import require_person
from service.auth import current_actor
from service.releases import checklist, notes, services
from service.releases.lifecycle import Actor, transition
from service.releases.models import App, Release, ReleaseItem, ReleaseNote, SignOff

routes = Routes(tag="Releases")


class ReleaseIn(BaseModel):
    app: str = Field(min_length=1, max_length=32, description="app slug, e.g. pos")
    version: str = Field(min_length=1, max_length=128, examples=["3.12.0"])
    git_ref: str = Field(min_length=1, max_length=255, description="tag, branch or commit")
    kind: Literal["weekly", "hotfix"] = "weekly"


class ItemOut(BaseModel):
    id: int
    title: str
    owner_role: str
    required: bool
    mode: str
    status: str
    evidence: str
    overridden: bool
    sign_offs: int


class ReleaseOut(BaseModel):
    id: int
    app: str
    version: str
    kind: str
    state: str
    halted_from: str | None
    git_ref: str
    from_ref: str | None
    to_sha: str | None
    created_by: str
    created_at: datetime
    approved_by: str | None
    scheduled_for: datetime | None
    stage_percent: int
    lock_version: int
    checklist_done: int
    checklist_total: int
    blocking: list[str]
    url: str


class ReleaseDetail(ReleaseOut):
    items: list[ItemOut]
    notes_state: Literal["pending", "generated", "failed", "none"] = Field(
        description="pending: the job worker is generating the notes from git (queued or "
        "running); failed: see notes_error (regenerate to try again)"
    )
    notes_markdown: str | None
    notes_error: str | None
    commit_count: int
    unlinked_commits: list[dict[str, str]]


class ReleaseQuery(BaseModel):
    app: str | None = Field(default=None, max_length=32)
    state: str | None = Field(default=None, max_length=16)
    limit: int = Field(default=100, ge=1, le=500)


class TransitionIn(BaseModel):
    action: Literal[
        "submit",
        "approve",
        "reject",
        "reopen",
        "start_beta",
        "promote",
        "complete",
        "halt",
        "resume",
        "cancel",
    ]
    reason: str = Field(default="", max_length=2000)
    lock_version: int | None = Field(default=None, description="refuse if the release changed")


def _summary(release: Release, app: App) -> dict[str, object]:
    statuses = checklist.item_statuses(db.session(), release)
    prog = checklist.progress(statuses)
    return {
        "id": release.id,
        "app": app.slug,
        "version": release.version,
        "kind": release.kind,
        "state": release.state,
        "halted_from": release.halted_from,
        "git_ref": release.git_ref,
        "from_ref": release.from_ref,
        "to_sha": release.to_sha,
        "created_by": release.created_by,
        "created_at": release.created_at,
        "approved_by": release.approved_by,
        "scheduled_for": release.scheduled_for,
        "stage_percent": release.stage_percent,
        "lock_version": release.lock_version,
        "checklist_done": prog.done,
        "checklist_total": prog.total,
        "blocking": [s.item.title for s in prog.blocking],
        "url": f"/releases/{release.id}",
        "_statuses": statuses,
    }


def _detail(release: Release, app: App) -> ReleaseDetail:
    data = _summary(release, app)
    statuses: list[checklist.ItemStatus] = data.pop("_statuses")  # type: ignore[assignment]
    note = notes.note_for(db.session(), release)
    return ReleaseDetail.model_validate(
        {
            **data,
            "items": [
                ItemOut(
                    id=s.item.id or 0,
                    title=s.item.title,
                    owner_role=s.item.owner_role,
                    required=s.item.required,
                    mode=s.item.mode,
                    status=s.status,
                    evidence=s.evidence,
                    overridden=s.overridden is not None,
                    sign_offs=len(s.history),
                )
                for s in statuses
            ],
            "notes_state": notes.notes_state(db.session(), release, note),
            "notes_markdown": note.markdown if note else None,
            "notes_error": note.generation_error if note else None,
            "commit_count": note.commit_count if note else 0,
            "unlinked_commits": note.unlinked_commits if note else [],
        }
    )


def _get(release_id: int) -> tuple[Release, App]:
    session = db.session()
    release = session.get(Release, release_id)
    if release is None:
        raise ApiError(404, "not_found", f"no release {release_id}")
    app = session.get(App, release.app_id)
    assert app is not None
    return release, app


@routes.operation(
    "/releases",
    "POST",
    summary="Register a release candidate (idempotent per app and version)",
    scope="releases:write",
    body=ReleaseIn,
    response=ReleaseDetail,
    status=201,
    errors=(404, 409),
)
def register(body: ReleaseIn) -> tuple[ReleaseDetail, int]:
    """Resolves the range from the previous release of the app, creates the checklist and
    queues generating the notes from git: the answer comes at once with ``notes_state``
    ``pending``; read the release again (``GET /releases/{id}``) for the notes, or for
    ``notes_error`` when git failed (``failed``). Registering the same app and version again
    returns the existing release with 200; a version below the last released one is refused
    with 409."""
    session = db.session()
    app = session.exec(select(App).where(App.slug == body.app)).first()
    if app is None:
        raise not_found(f"unknown app {body.app!r}", field="app")
    release, created = services.register_checked(
        session,
        app=app,
        version=body.version,
        git_ref=body.git_ref,
        kind=body.kind,
        actor=Actor(name=current_actor()),
        policy=notes.repo_policy(),
    )
    app = session.get(App, release.app_id) or app
    return _detail(release, app), 201 if created else 200


def _api_actor() -> Actor:
    """The caller: a token's name, or the person behind the session."""
    if request.headers.get("Authorization"):
        return Actor(name=current_actor())
    return services.actor_for(require_person())


class ReleasePatch(BaseModel):
    git_ref: str = Field(
        min_length=1, max_length=255, description="the corrected tag, branch or commit"
    )


@routes.operation(
    "/releases/<int:release_id>",
    "PATCH",
    summary="Correct a draft's git ref (resolved first; its notes are generated again)",
    scope=None,
    body=ReleasePatch,
    response=ReleaseDetail,
    errors=(401, 403, 404, 409, 503),
)
def patch_release(release_id: int, body: ReleasePatch) -> ReleaseDetail:
    """Only a draft's ref can change. The ref is resolved in the app's repository before
    anything is written (422 naming ``git_ref`` when it does not exist, 503 when git does not
    answer within ``RELGOV_GIT_TIMEOUT_SECONDS``); then the notes are queued again. A token
    with ``releases:write`` (CI) or a registrar's session (``X-CSRFToken``) may correct."""
    actor = _api_actor()
    session = db.session()
    release, app = _get(release_id)
    services.check_correctable(release)
    sha = services.resolve_git_ref(session, app, body.git_ref, notes.repo_policy())
    release, app = _get(release_id)
    services.correct_git_ref(
        session, release=release, git_ref=body.git_ref, to_sha=sha, actor=actor
    )
    return _detail(release, app)


@routes.operation(
    "/releases",
    summary="List releases, newest first",
    query=ReleaseQuery,
    response=list[ReleaseOut],
)
def list_releases(query: ReleaseQuery) -> list[ReleaseOut]:
    session = db.session()
    stmt = select(Release, App).join(App, col(App.id) == col(Release.app_id))
    if query.app:
        stmt = stmt.where(App.slug == query.app)
    if query.state:
        stmt = stmt.where(Release.state == query.state)
    rows = session.exec(stmt.order_by(col(Release.created_at).desc()).limit(query.limit)).all()
    result = []
    for release, app in rows:
        data = _summary(release, app)
        data.pop("_statuses")
        result.append(ReleaseOut.model_validate(data))
    return result


@routes.operation(
    "/releases/<int:release_id>",
    summary="One release with its checklist and notes",
    response=ReleaseDetail,
)
def get_release(release_id: int) -> ReleaseDetail:
    return _detail(*_get(release_id))


@routes.operation(
    "/releases/<int:release_id>/transitions",
    "POST",
    summary="Move a release through its lifecycle",
    scope=None,
    body=TransitionIn,
    response=ReleaseDetail,
    errors=(401, 403, 409),
)
def post_transition(release_id: int, body: TransitionIn) -> ReleaseDetail:
    """Illegal transitions get 409 with the reason. A token with ``releases:write`` (CI) may
    submit, cancel or halt; approving needs a release manager: a person's logged-in session
    with the page's CSRF token in ``X-CSRFToken`` (a token is refused with 403). Who may take
    the move is checked before whether the release may take it (403 before 409)."""
    if request.headers.get("Authorization"):
        actor = Actor(name=current_actor())
    else:
        actor = services.actor_for(require_person())
    release, app = _get(release_id)
    session = db.session()
    transition(
        session,
        release,
        body.action,
        actor=actor,
        reason=body.reason,
        expected_lock=body.lock_version,
    )
    return _detail(release, app)


# --- acting for a person: sign-offs, overrides --------------------------------------------


class SignOffIn(BaseModel):
    decision: Literal["approve", "reject", "block"]
    comment: str = Field(default="", max_length=2000)
    lock_version: int | None = Field(default=None, description="refuse if the release changed")


class OverrideIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


class SignOffOut(BaseModel):
    id: int
    item_id: int
    user_email: str
    role: str
    decision: str
    comment: str
    override: bool
    at: datetime


def _item(release: Release, item_id: int) -> ReleaseItem:
    item = checklist.release_item(db.session(), release, item_id)
    if item is None:
        raise ApiError(404, "not_found", f"release {release.id} has no checklist item {item_id}")
    return item


def _item_owner(release_id: int, item_id: int) -> str:
    """Who may sign the item the path names (the policy's ``ITEM_OWNER``), or 404."""
    release, _ = _get(release_id)
    return _item(release, item_id).owner_role


@routes.operation(
    "/releases/<int:release_id>/items/<int:item_id>/sign-offs",
    summary="The sign-off history of one checklist item, oldest first",
    tag="Checklist",
    response=list[SignOffOut],
)
def list_sign_offs(release_id: int, item_id: int) -> list[SignOffOut]:
    release, _ = _get(release_id)
    item = _item(release, item_id)
    rows = db.session().exec(
        select(SignOff).where(SignOff.item_id == item.id).order_by(col(SignOff.id))
    )
    return [SignOffOut.model_validate(row, from_attributes=True) for row in rows]


@routes.operation(
    "/releases/<int:release_id>/items/<int:item_id>/sign-offs",
    "POST",
    summary="Approve, reject or block a checklist item you own (append-only)",
    tag="Checklist",
    scope=None,
    body=SignOffIn,
    response=SignOffOut,
    status=201,
    errors=(401, 403, 409),
    item_owner=_item_owner,
)
def post_sign_off(release_id: int, item_id: int, body: SignOffIn) -> tuple[SignOffOut, int]:
    """Only a person holding the item's owner role may sign; a stale ``lock_version`` is 409.
    Sending again the decision of yours that still stands, with the same comment, records
    nothing and returns that sign-off with 200 (the same decision with another comment is
    409). Acts for a person: a logged-in session with the page's CSRF token in
    ``X-CSRFToken``."""
    person = require_person()
    release, _ = _get(release_id)
    item = _item(release, item_id)
    signoff, created = checklist.sign_off(
        db.session(),
        release=release,
        item=item,
        user=person,
        decision=body.decision,
        comment=body.comment,
        expected_lock=body.lock_version,
    )
    return SignOffOut.model_validate(signoff, from_attributes=True), 201 if created else 200


@routes.operation(
    "/releases/<int:release_id>/items/<int:item_id>/override",
    "POST",
    summary="Override a blocking item with a reason (admins; highlighted and audited)",
    tag="Checklist",
    scope=None,
    body=OverrideIn,
    response=SignOffOut,
    status=201,
    errors=(401, 403, 409),
)
def post_override(release_id: int, item_id: int, body: OverrideIn) -> SignOffOut:
    person = require_person()
    release, _ = _get(release_id)
    item = _item(release, item_id)
    signoff = checklist.override_item(
        db.session(), release=release, item=item, user=person, reason=body.reason
    )
    return SignOffOut.model_validate(signoff, from_attributes=True)


@routes.operation(
    "/releases/<int:release_id>/notes/regenerate",
    "POST",
    summary="Queue regenerating the notes from git (an edit is kept; its base shows any conflict)",
    scope="releases:write",
    response=ReleaseDetail,
    status=202,
)
def post_regenerate(release_id: int) -> ReleaseDetail:
    """Answers 202 with ``notes_state`` ``pending``; the job worker reads git."""
    release, app = _get(release_id)
    notes.queue_generation(db.session(), release, actor=current_actor())
    return _detail(release, app)


class NotesOut(BaseModel):
    markdown: str
    html: str = Field(description="the sanitized HTML preview")
    generated_markdown: str
    edited: bool
    edited_by: str | None
    hash: str = Field(description="send it back as loaded_hash when saving an edit")
    publish_state: str


class PreviewIn(BaseModel):
    markdown: str = Field(max_length=1_000_000, description="the Markdown to preview")


class DiffLineOut(BaseModel):
    kind: Literal["meta", "hunk", "add", "del", "ctx"]
    text: str


class PreviewOut(BaseModel):
    html: str = Field(description="the sanitized HTML the release page would show")
    changed: bool = Field(description="whether the text differs from the generated notes")
    diff: list[DiffLineOut] = Field(description="unified diff: generated → this text")


@routes.operation(
    "/releases/<int:release_id>/notes/preview",
    "POST",
    summary="Preview Markdown as the release page shows it, with its diff (changes nothing)",
    scope=None,
    body=PreviewIn,
    response=PreviewOut,
    errors=(404,),
)
def preview_notes(release_id: int, body: PreviewIn) -> PreviewOut:
    """Renders the posted Markdown through the same sanitizer as the page (raw HTML is
    text) and diffs it against the generated notes. Nothing is saved."""
    release, _ = _get(release_id)
    text = notes.normalise(body.markdown)
    note = notes.note_for(db.session(), release)
    generated = note.generated_markdown if note else ""
    lines = (
        notes.diff_lines(generated, text, old_label="generated from git", new_label="edited")
        if text != generated
        else []
    )
    return PreviewOut(
        html=render_html(text),
        changed=bool(lines),
        diff=[DiffLineOut(kind=line.kind, text=line.text) for line in lines],
    )


class NotesIn(BaseModel):
    markdown: str = Field(max_length=1_000_000)
    loaded_hash: str = Field(description="the hash of the text the edit started from")


def _notes_out(note: ReleaseNote) -> NotesOut:
    return NotesOut(
        markdown=note.markdown,
        html=render_html(note.markdown),
        generated_markdown=note.generated_markdown,
        edited=note.edited_markdown is not None,
        edited_by=note.edited_by,
        hash=notes.note_hash(note.markdown),
        publish_state=note.publish_state,
    )


def _note(release: Release) -> ReleaseNote:
    note = notes.note_for(db.session(), release)
    if note is None:
        pending = notes.notes_state(db.session(), release) == "pending"
        raise ApiError(
            404,
            "not_found",
            f"release {release.id} has no notes yet"
            + (" (notes pending: being generated from git)" if pending else ""),
        )
    return note


@routes.operation(
    "/releases/<int:release_id>/notes",
    summary="The release notes: Markdown, sanitized HTML and the hash to edit against",
    response=NotesOut,
)
def get_notes(release_id: int) -> NotesOut:
    release, _ = _get(release_id)
    return _notes_out(_note(release))


@routes.operation(
    "/releases/<int:release_id>/notes",
    "PUT",
    summary="Save an edit of the notes (409 when they changed since loaded_hash)",
    scope=None,
    body=NotesIn,
    response=NotesOut,
    errors=(401, 403, 409),
)
def put_notes(release_id: int, body: NotesIn) -> NotesOut:
    """A token with ``releases:write`` or an editor's session (``X-CSRFToken``) may edit.
    Sending the generated text drops the edit."""
    if request.headers.get("Authorization"):
        actor = Actor(name=current_actor())
    else:
        actor = services.actor_for(require_person())
    release, app = _get(release_id)
    note = _note(release)
    if body.loaded_hash != notes.note_hash(note.markdown):
        raise ApiError(
            409,
            "conflict",
            "the notes changed since you loaded them; fetch them again and reapply your edit",
            [{"field": "loaded_hash", "message": "stale", "type": "conflict"}],
        )
    with contextlib.suppress(notes.NothingToSave):  # the text is what is stored
        notes.save_note_edit(
            db.session(),
            release=release,
            app=app,
            note=note,
            text=body.markdown,
            discard=False,
            actor=actor,
        )
    return _notes_out(note)
