"""Release registration (the checklist lives in ``checklist``, the notes in ``notes``, the
weekly meeting in ``service.meetings``).

Functions take the session and never commit: the caller (a request or a CLI command)
commits once, so a refused action leaves nothing half-written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from service import audit
from service.models import User, utcnow
from service.releases.apps import current_template, template_items
from service.releases.checklist import ReleaseError
from service.releases.lifecycle import Actor
from service.releases.models import (
    RELEASE_KINDS,
    App,
    ChecklistItemFields,
    Release,
    ReleaseItem,
)
from service.releases.notes import previous_release, queue_generation
from service.releases.repos import RefNotFound, RepoError, RepoPolicy, RepoRefused, resolve_ref
from service.releases.trains import next_train_slot
from versioning import InvalidVersion, parse_version

ACTIVE_STATES = ("draft", "in_review", "approved", "beta", "rolling_out", "halted")


# --- registration ----------------------------------------------------------------------


def released_versions(session: Session, app: App) -> list[Release]:
    rows = session.exec(
        select(Release).where(Release.app_id == app.id, Release.state == "released")
    ).all()
    return sorted(rows, key=lambda r: parse_version(r.version))


def _checked_input(version: str, kind: str, git_ref: str) -> tuple[str, Any, str]:
    """The version (stripped and parsed) and the ref (stripped) of a registration, or
    :class:`ReleaseError` naming the field."""
    version = version.strip()
    try:
        parsed = parse_version(version)
    except InvalidVersion as exc:
        raise ReleaseError(str(exc), field="version") from None
    if kind not in RELEASE_KINDS:
        raise ReleaseError(f"kind must be one of {', '.join(RELEASE_KINDS)}", field="kind")
    git_ref = git_ref.strip()
    if not git_ref:
        raise ReleaseError("git_ref is required (a tag, branch or commit)", field="git_ref")
    return version, parsed, git_ref


def register_release(
    session: Session,
    *,
    app: App,
    version: str,
    git_ref: str,
    kind: str = "weekly",
    actor: Actor,
    queue_notes: bool = True,
    to_sha: str | None = None,
) -> tuple[Release, bool]:
    """Register a candidate (idempotent per app+version); returns (release, created).

    Its notes are generated from git by the job worker (queued here, in the caller's
    transaction; ``queue_notes=False`` leaves that to the caller): no git runs while the
    registration's transaction is open, and the caller answers without waiting for git.
    """
    version, parsed, git_ref = _checked_input(version, kind, git_ref)
    existing = session.exec(
        select(Release).where(Release.app_id == app.id, Release.version == version)
    ).first()
    if existing is not None:
        if existing.git_ref != git_ref:
            raise ReleaseError(
                f"{app.slug} {version} is already registered for {existing.git_ref}, not {git_ref}",
                status=409,
                field="git_ref",
            )
        return existing, False
    released = released_versions(session, app)
    if released and parsed < parse_version(released[-1].version):
        raise ReleaseError(
            f"{version} is lower than {released[-1].version}, the last released version of "
            f"{app.slug}",
            status=409,
            field="version",
        )
    template = current_template(session, app, kind)
    release = Release(
        app_id=app.id or 0,
        version=version,
        kind=kind,
        git_ref=git_ref,
        created_by=actor.name,
        template_id=template.id if template else None,
        scheduled_for=_scheduled_for(session, app) if kind == "weekly" else None,
        to_sha=to_sha,
    )
    previous = previous_release(session, app, version)
    release.from_ref = previous.git_ref if previous else None
    session.add(release)
    session.flush()
    if template is not None:
        for item in template_items(session, template):
            session.add(
                ReleaseItem(
                    release_id=release.id or 0,
                    **item.model_dump(include=set(ChecklistItemFields.model_fields)),
                )
            )
    audit.record(
        session,
        actor=actor.name,
        action="release.register",
        subject_type="release",
        subject_id=release.id,
        after={
            "app": app.slug,
            "version": version,
            "kind": kind,
            "git_ref": git_ref,
            "from_ref": release.from_ref,
            "template_id": release.template_id,
        },
        summary=f"registered {app.slug} {version} ({kind}) at {git_ref}",
    )
    if queue_notes:
        queue_generation(session, release, actor=actor.name)
    return release, True


@dataclass(frozen=True)
class RefSource:
    """What resolving a ref reads of an app, copied out of the database."""

    slug: str
    repo_url: str


def resolve_git_ref(session: Session, app: App, git_ref: str, policy: RepoPolicy) -> str | None:
    """The commit ``git_ref`` names in ``app``'s repository; None when the app has no
    repository (nothing to check it against: its notes will say so). A ref the repository
    does not have is 422 naming ``git_ref``; a repository that does not answer within
    ``RELGOV_GIT_TIMEOUT_SECONDS`` is 503 (nothing was written: try again).

    Git runs with no transaction open: this ends the session's transaction first, so call it
    before writing anything (pending writes are a programming error)."""
    git_ref = git_ref.strip()
    if not git_ref:
        raise ReleaseError("git_ref is required (a tag, branch or commit)", field="git_ref")
    if not (app.repo_url or "").strip():
        return None
    source = RefSource(slug=app.slug, repo_url=app.repo_url)
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("resolve_git_ref must run before anything is written")
    session.rollback()  # ends the read transaction: no lock is held while git runs
    try:
        return resolve_ref(source, git_ref, policy)
    except RefNotFound as exc:
        raise ReleaseError(
            f"git_ref {git_ref!r} does not exist: {exc}; nothing was registered",
            status=422,
            field="git_ref",
        ) from None
    except RepoRefused as exc:
        raise ReleaseError(f"cannot check git_ref: {exc}", status=409, field="git_ref") from None
    except RepoError as exc:
        raise ReleaseError(
            f"cannot check git_ref {git_ref!r} now: {exc}; nothing was written, try again",
            status=503,
            field="git_ref",
        ) from None


def register_checked(
    session: Session,
    *,
    app: App,
    version: str,
    git_ref: str,
    kind: str = "weekly",
    actor: Actor,
    policy: RepoPolicy,
) -> tuple[Release, bool]:
    """:func:`register_release` for a person or CI: the same app and version again is
    answered from the database; otherwise ``git_ref`` is resolved first
    (:func:`resolve_git_ref`, no transaction open), so a typo creates nothing."""
    existing = session.exec(
        select(Release).where(Release.app_id == app.id, Release.version == version.strip())
    ).first()
    if existing is not None:
        return register_release(
            session, app=app, version=version, git_ref=git_ref, kind=kind, actor=actor
        )
    _checked_input(version, kind, git_ref)  # the input is refused before git runs
    app_id = app.id
    sha = resolve_git_ref(session, app, git_ref, policy)
    fresh = session.get(App, app_id)
    if fresh is None:
        raise ReleaseError("the app was removed meanwhile", status=404, field="app")
    return register_release(
        session, app=fresh, version=version, git_ref=git_ref, kind=kind, actor=actor, to_sha=sha
    )


def check_correctable(release: Release) -> None:
    """Only a draft's git ref can change (409 otherwise): checked before git runs."""
    if release.state != "draft":
        raise ReleaseError(
            f"only a draft's git ref can be corrected (this release is "
            f"{release.state.replace('_', ' ')})",
            status=409,
            field="git_ref",
        )


def correct_git_ref(
    session: Session, *, release: Release, git_ref: str, to_sha: str | None, actor: Actor
) -> bool:
    """Point a draft at another ref (resolved by the caller with :func:`resolve_git_ref`),
    audited, and regenerate its notes. Returns False when it already points there."""
    git_ref = git_ref.strip()
    check_correctable(release)
    if git_ref == release.git_ref:
        return False
    before = {"git_ref": release.git_ref, "to_sha": release.to_sha}
    release.git_ref = git_ref
    release.to_sha = to_sha
    release.updated_at = utcnow()
    release.lock_version += 1
    session.add(release)
    audit.record(
        session,
        actor=actor.name,
        action="release.correct_ref",
        subject_type="release",
        subject_id=release.id,
        before=before,
        after={"git_ref": git_ref, "to_sha": to_sha},
        summary=f"corrected the git ref from {before['git_ref']} to {git_ref}; notes regenerate",
    )
    queue_generation(session, release, actor=actor.name)
    return True


def _scheduled_for(session: Session, app: App) -> datetime | None:
    slot = next_train_slot(session, app, after=utcnow())
    return slot.at if slot else None


def actor_for(user: User) -> Actor:
    return Actor(name=user.actor, user_id=user.id, role=user.role)


def count_by_state(session: Session) -> dict[str, int]:
    rows = session.exec(select(Release.state, func.count()).group_by(Release.state)).all()
    return {state: count for state, count in rows}
