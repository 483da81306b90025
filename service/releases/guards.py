"""Who may move a release, and what else approval needs: the lifecycle permits and guards of
the release feature (which action each one guards is said in ``service/wiring.py``)."""

from __future__ import annotations

from sqlmodel import Session

from service.releases.checklist import item_statuses
from service.releases.lifecycle import Actor, TransitionError
from service.releases.models import App, Release


def approval(session: Session, release: Release, actor: Actor) -> None:
    """Every required item is approved, and (per app) the approver is neither who
    registered the release nor the only person who signed. (Who may approve at all, a
    release manager in person, is the permit :func:`approver`.)"""
    statuses = item_statuses(session, release)
    blocking = [s for s in statuses if s.blocking]
    if blocking:
        names = "; ".join(f"{s.item.title} ({s.status})" for s in blocking[:5])
        raise TransitionError(f"{len(blocking)} required item(s) are not approved: {names}")
    app = session.get(App, release.app_id)
    if app is not None and app.separation_of_duties:
        if release.created_by == actor.name:
            raise TransitionError(
                "separation of duties: the person who registered the release cannot approve it"
            )
        signers = {s.user_id for st in statuses for s in st.history if not s.override}
        if signers and signers <= {actor.user_id}:
            raise TransitionError(
                "separation of duties: the approver cannot be the only person who signed"
            )


def approver(session: Session, release: Release, actor: Actor) -> None:
    """Only a release manager approves, in person (not an API token)."""
    if actor.role not in ("release_manager", "admin"):
        raise TransitionError("only a release manager may approve a release", status=403)


def release_manager(session: Session, release: Release, actor: Actor) -> None:
    """A person must be a release manager; a token (no role) may pass (CI halts, cancels)."""
    if actor.role is not None and actor.role not in ("release_manager", "admin"):
        raise TransitionError("only a release manager may do this", status=403)


def release_manager_in_person(session: Session, release: Release, actor: Actor) -> None:
    """A release manager's decision: an actor without a role (an API token) may not take it."""
    release_manager(session, release, actor)
    if actor.role is None:
        raise TransitionError(
            "only a release manager may do this; an API token may submit, halt or cancel",
            status=403,
        )


def submitter(session: Session, release: Release, actor: Actor) -> None:
    """Engineers and release managers submit; so may CI's token."""
    if actor.role is not None and actor.role not in ("release_manager", "admin", "engineer"):
        raise TransitionError("only an engineer or release manager may submit", status=403)
