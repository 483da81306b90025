"""The release state machine: one guarded function for every transition.

``transition(...)`` checks who may take the move (its permits), then that the move is legal
and runs the move's guards, stamps the release, records the audit event and runs the
reactions (the first rollout stage, auto-publishing), all in the caller's transaction:
either everything lands or nothing does. Which permits, guards and reactions an app has is
said in one place, ``service/wiring.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sqlmodel import Session

from service import audit
from service.errors import DomainError
from service.models import utcnow
from service.releases.models import Release

# action -> (states it may start from, state it leads to; None = back where it halted from)
TRANSITIONS: dict[str, tuple[frozenset[str], str | None]] = {
    "submit": (frozenset({"draft"}), "in_review"),
    "approve": (frozenset({"in_review"}), "approved"),
    "reject": (frozenset({"in_review", "approved"}), "rejected"),
    "reopen": (frozenset({"rejected"}), "draft"),
    "start_beta": (frozenset({"approved"}), "beta"),
    "promote": (frozenset({"beta"}), "rolling_out"),
    "complete": (frozenset({"rolling_out"}), "released"),
    "halt": (frozenset({"beta", "rolling_out"}), "halted"),
    "resume": (frozenset({"halted"}), None),
    "cancel": (frozenset({"draft", "in_review", "approved", "rejected", "halted"}), "cancelled"),
}
ACTION_LABELS = {
    "submit": "Submit for review",
    "approve": "Approve",
    "reject": "Reject",
    "reopen": "Reopen as draft",
    "start_beta": "Start beta",
    "promote": "Promote to staged rollout",
    "complete": "Mark released",
    "halt": "Halt",
    "resume": "Resume",
    "cancel": "Cancel",
}
NEEDS_REASON = frozenset({"reject", "halt", "cancel", "reopen", "resume"})
# The moves a person confirms on the page after reading what will happen (the server asks
# again, on a confirmation page, when a form arrives without ``confirm``).
NEEDS_CONFIRMATION = frozenset({"approve", "promote", "complete", "halt"})
# What each move does, in a sentence; ``consequences`` (service/wiring.py) add what the fleet
# and the other features make of it (how many stores, what gets published).
WHAT_HAPPENS = {
    "submit": "The release goes to review: owners sign their checklist items.",
    "approve": "The release is approved: the checklist closes and the beta can start.",
    "reject": "The release is rejected with your reason; it can be reopened as a draft.",
    "reopen": "The release goes back to draft.",
    "start_beta": "The beta cohort's stores are offered this release.",
    "promote": "The staged rollout starts: stores beyond the beta cohort are offered it.",
    "complete": "Every store is offered this release, and it is marked released.",
    "halt": "The rollout stops: the stores it reached are offered the previous release again.",
    "resume": "The rollout resumes where it was halted.",
    "cancel": "The release is cancelled; its version stays taken.",
}


class TransitionError(DomainError):
    """An illegal or refused transition: 409 (state) unless said otherwise (422: input)."""

    status = 409


@dataclass(frozen=True)
class Actor:
    """Who acts: an audit actor string, and the person behind it when there is one."""

    name: str
    user_id: int | None = None
    role: str | None = None


# guard(session, release, actor) raises TransitionError to refuse the move. A permit is a
# guard about who acts (403), checked before anything about the release (409).
Guard = Callable[[Session, Release, Actor], None]
# reaction(session, release, before, after, actor) runs after every transition.
Reaction = Callable[[Session, Release, str, str, Actor], None]
# consequence(session, release) -> a sentence on what the move would do now ("" for none).
Consequence = Callable[[Session, Release], str]


@dataclass(frozen=True)
class LifecycleHooks:
    """Who may take each action (its permits, checked first), the other guards of each
    action, and the reactions to every transition, in order."""

    permits: Mapping[str, Sequence[Guard]] = field(default_factory=dict)
    guards: Mapping[str, Sequence[Guard]] = field(default_factory=dict)
    reactions: Sequence[Reaction] = ()
    consequences: Mapping[str, Sequence[Consequence]] = field(default_factory=dict)


# The process's guards and reactions, installed by ``service/wiring.py`` through
# :func:`install` (every app of a process is wired the same way).
_installed: LifecycleHooks | None = None


def install(hooks: LifecycleHooks) -> None:
    global _installed
    unknown = (set(hooks.permits) | set(hooks.guards) | set(hooks.consequences)) - set(TRANSITIONS)
    if unknown:
        raise ValueError(f"guards for unknown actions: {', '.join(sorted(unknown))}")
    unpermitted = set(TRANSITIONS) - set(hooks.permits)
    if unpermitted:
        raise ValueError(f"no permit says who may {', '.join(sorted(unpermitted))}")
    _installed = hooks


def hooks() -> LifecycleHooks:
    """The guards and reactions :func:`install` was given."""
    if _installed is None:
        raise RuntimeError("the release lifecycle is not wired: create the app first")
    return _installed


def changed_since(release: Release, expected_lock: int | None, *, then: str) -> str | None:
    """Why a form shown at ``expected_lock`` may no longer act on ``release`` (None: it may)."""
    if expected_lock is None or expected_lock == release.lock_version:
        return None
    return (
        f"this release changed since you loaded the page (it is now "
        f"{release.state.replace('_', ' ')}); reload and {then}"
    )


def staged(release: Release) -> bool:
    """Whether the release is part-way through its staged rollout (not every store yet)."""
    return release.state == "rolling_out" and release.stage_percent < 100


def reason_needed(release: Release, action: str) -> bool:
    """Whether ``action`` needs a reason now: always for some moves; "Mark released" while
    the staged rollout has not reached every store (it jumps the stores left at once)."""
    return action in NEEDS_REASON or (action == "complete" and staged(release))


def what_happens(session: Session, release: Release, action: str) -> list[str]:
    """What ``action`` would do to ``release`` now, in sentences, for the confirmation."""
    sentences = [WHAT_HAPPENS.get(action, "")]
    for consequence in hooks().consequences.get(action, ()):
        sentences.append(consequence(session, release))
    return [s for s in sentences if s]


def allowed_actions(release: Release) -> list[str]:
    return [action for action, (sources, _) in TRANSITIONS.items() if release.state in sources]


def preflight(
    session: Session,
    release: Release,
    action: str,
    *,
    actor: Actor,
    expected_lock: int | None = None,
    reason: str | None = None,
) -> None:
    """Raise :class:`TransitionError` when ``action`` may not be taken now: who may act first
    (403), then the state (409), the reason (422, unless ``reason`` is None: not asked yet)
    and the move's guards. The confirmation step runs it before asking."""
    if action not in TRANSITIONS:
        raise TransitionError(f"unknown action {action!r}", status=422, field="action")
    wiring = hooks()
    for permit in wiring.permits.get(action, ()):
        permit(session, release, actor)
    stale = changed_since(release, expected_lock, then="try again")
    if stale:
        raise TransitionError(stale)
    sources = TRANSITIONS[action][0]
    if release.state not in sources:
        allowed = ", ".join(sorted(sources))
        raise TransitionError(
            f"cannot {ACTION_LABELS[action].lower()} a release that is "
            f"{release.state.replace('_', ' ')} (only from: {allowed})"
        )
    if reason is not None and reason_needed(release, action) and not reason:
        if action == "complete":
            raise TransitionError(
                f"Mark released during the staged rollout (at {release.stage_percent} %) needs "
                "a reason: " + " ".join(what_happens(session, release, action)),
                status=422,
                field="reason",
            )
        raise TransitionError(f"{ACTION_LABELS[action]} needs a reason", status=422, field="reason")
    for guard in wiring.guards.get(action, ()):
        guard(session, release, actor)


def transition(
    session: Session,
    release: Release,
    action: str,
    *,
    actor: Actor,
    reason: str = "",
    expected_lock: int | None = None,
) -> Release:
    """Move ``release`` by ``action`` or raise :class:`TransitionError` saying why not: who
    may act is checked first (403), then whether the release may move (409, 422)."""
    reason = reason.strip()
    preflight(session, release, action, actor=actor, expected_lock=expected_lock, reason=reason)
    target = TRANSITIONS[action][1]
    before = release.state
    now = utcnow()
    if action == "resume":
        target = release.halted_from or "beta"
        release.halted_from = None
    if action == "halt":
        release.halted_from = release.state
    assert target is not None
    release.state = target
    release.updated_at = now
    release.lock_version += 1
    if action == "approve":
        release.approved_by, release.approved_at = actor.name, now
    elif action == "reject":
        release.rejected_reason = reason
    elif action == "start_beta":
        release.beta_at = now
    elif action == "promote":
        release.rollout_started_at = now
    elif action == "complete":
        release.released_at = now
        release.stage_percent = 100
    session.add(release)
    audit.record(
        session,
        actor=actor.name,
        action=f"release.{action}",
        subject_type="release",
        subject_id=release.id,
        before={"state": before},
        after={"state": release.state, **({"reason": reason} if reason else {})},
        summary=f"{ACTION_LABELS[action].lower()}: {before} → {release.state}"
        + (f" ({reason})" if reason else ""),
    )
    for react in hooks().reactions:
        react(session, release, before, release.state, actor)
    return release
