"""Release registration (the checklist lives in ``checklist``, the notes in ``notes``, the
weekly meeting in ``service.meetings``).

Functions take the session and never commit: the caller (a request or a CLI command)
commits once, so a refused action leaves nothing half-written.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

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
from service.releases.notes import queue_generation
from service.releases.trains import next_train_slot
from versioning import InvalidVersion, parse_version

ACTIVE_STATES = ("draft", "in_review", "approved", "beta", "rolling_out", "halted")


# --- registration ----------------------------------------------------------------------


def released_versions(session: Session, app: App) -> list[Release]:
    rows = session.exec(
        select(Release).where(Release.app_id == app.id, Release.state == "released")
    ).all()
    return sorted(rows, key=lambda r: parse_version(r.version))


def previous_release(session: Session, app: App, version: str) -> Release | None:
    """The highest release of ``app`` below ``version`` that reached the stores."""
    target = parse_version(version)
    candidates = session.exec(
        select(Release).where(
            Release.app_id == app.id,
            col(Release.state).in_(["released", "rolling_out", "beta", "halted"]),
        )
    ).all()
    below = [r for r in candidates if parse_version(r.version) < target]
    return max(below, key=lambda r: parse_version(r.version), default=None)


def register_release(
    session: Session,
    *,
    app: App,
    version: str,
    git_ref: str,
    kind: str = "weekly",
    actor: Actor,
    queue_notes: bool = True,
) -> tuple[Release, bool]:
    """Register a candidate (idempotent per app+version); returns (release, created).

    Its notes are generated from git by the job worker (queued here, in the caller's
    transaction; ``queue_notes=False`` leaves that to the caller): no git runs while the
    registration's transaction is open, and the caller answers without waiting for git.
    """
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


def _scheduled_for(session: Session, app: App) -> datetime | None:
    slot = next_train_slot(session, app, after=utcnow())
    return slot.at if slot else None


def actor_for(user: User) -> Actor:
    return Actor(name=user.actor, user_id=user.id, role=user.role)


def count_by_state(session: Session) -> dict[str, int]:
    rows = session.exec(select(Release.state, func.count()).group_by(Release.state)).all()
    return {state: count for state, count in rows}
