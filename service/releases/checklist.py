"""A release's checklist: each item's status (signed by a person, or evaluated from data),
the progress, and the append-only sign-offs and overrides.

Functions take the session and never commit: the caller commits once, so a refused action
leaves nothing half-written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from service import audit
from service.errors import DomainError
from service.models import User
from service.releases.apps import items_in_order
from service.releases.lifecycle import changed_since
from service.releases.models import AUTOMATIC_RULES, DECISIONS, App, Release, ReleaseItem, SignOff
from service.releases.notes import note_for, notes_state

# Automatic items measured in beta: they cannot pass before it and gate the promotion.
PROMOTION_RULES = frozenset({"beta_adoption", "beta_soak", "incident_score"})


class ReleaseError(DomainError):
    """A refused request about a release."""


@dataclass
class ItemStatus:
    item: ReleaseItem
    status: str  # approved | rejected | blocked | pending | passed | failed | unavailable
    evidence: str = ""
    details: list[str] = field(default_factory=list)
    history: list[SignOff] = field(default_factory=list)
    overridden: SignOff | None = None
    release_state: str = "draft"

    @property
    def ok(self) -> bool:
        return self.status in ("approved", "passed") or self.overridden is not None

    @property
    def gates_promotion(self) -> bool:
        """Beta evidence (adoption, soak, incidents) gates the promotion, not the approval."""
        return self.item.rule in PROMOTION_RULES

    @property
    def blocking(self) -> bool:
        if self.gates_promotion and self.release_state not in ("beta", "halted"):
            return False
        return self.item.required and not self.ok

    @property
    def latest(self) -> SignOff | None:
        return self.history[-1] if self.history else None


# evaluate(session, release, app) -> (status, evidence, details) of an automatic item.
Evaluator = Callable[[Session, Release, App], tuple[str, str, list[str]]]
# How each automatic rule is evaluated, installed by ``service/wiring.py`` (every app of a
# process is wired the same way).
_rules: Mapping[str, Evaluator] = {}


def install(rules: Mapping[str, Evaluator]) -> None:
    """How each automatic checklist rule is evaluated."""
    global _rules
    unknown = set(rules) - set(AUTOMATIC_RULES)
    if unknown:
        raise ValueError(f"evaluators for unknown rules: {', '.join(sorted(unknown))}")
    _rules = dict(rules)


def notes_generated(session: Session, release: Release, app: App) -> tuple[str, str, list[str]]:
    note = note_for(session, release)
    if notes_state(session, release, note) == "pending":
        return "pending", "notes pending: being generated from git by the job worker", []
    if note is None or (note.generated_at is None and not note.generation_error):
        return "unavailable", "not available yet: notes have not been generated", []
    if note.generation_error:
        return "failed", f"generation failed: {note.generation_error}", []
    return (
        "passed",
        f"{note.commit_count} commits, {note.pr_count} PRs, {note.breaking_count} breaking",
        [],
    )


def commits_linked(session: Session, release: Release, app: App) -> tuple[str, str, list[str]]:
    note = note_for(session, release)
    if note is None or note.generated_at is None:
        return "unavailable", "not available yet: notes have not been generated", []
    if note.unlinked_commits:
        lines = [f"{c['sha']} {c['subject']}" for c in note.unlinked_commits]
        return "failed", f"{len(lines)} commit(s) without a pull request", lines
    return "passed", f"all {note.commit_count} commits link to a pull request", []


def notes_published(session: Session, release: Release, app: App) -> tuple[str, str, list[str]]:
    note = note_for(session, release)
    if note is None or note.publish_state in ("draft", "queued", "publishing"):
        state = note.publish_state if note else "draft"
        return "unavailable", f"not available yet: notes not published ({state})", []
    if note.publish_state == "failed":
        return "failed", f"publishing failed: {note.last_publish_error or 'unknown error'}", []
    link = f" at {note.notion_url}" if note.notion_url else ""
    return "passed", f"published to Notion{link}", []


def _not_yet(what: str) -> Evaluator:
    def evaluate(session: Session, release: Release, app: App) -> tuple[str, str, list[str]]:
        return "unavailable", f"not available yet: {what}", []

    return evaluate


def release_items(session: Session, release: Release) -> list[ReleaseItem]:
    return items_in_order(session, ReleaseItem, ReleaseItem.release_id == release.id)


def release_item(session: Session, release: Release, item_id: int) -> ReleaseItem | None:
    item = session.get(ReleaseItem, item_id)
    return item if item is not None and item.release_id == release.id else None


def item_statuses(session: Session, release: Release) -> list[ItemStatus]:
    app = session.get(App, release.app_id)
    assert app is not None
    items = release_items(session, release)
    rules = _rules
    signoffs = session.exec(
        select(SignOff).where(SignOff.release_id == release.id).order_by(col(SignOff.id))
    ).all()
    by_item: dict[int, list[SignOff]] = {}
    for signoff in signoffs:
        by_item.setdefault(signoff.item_id, []).append(signoff)
    statuses = []
    for item in items:
        history = by_item.get(item.id or 0, [])
        overrides = [s for s in history if s.override]
        status = ItemStatus(
            item=item, status="pending", history=history, release_state=release.state
        )
        if item.mode == "automatic":
            evaluate = rules.get(item.rule or "", _not_yet("unknown rule"))
            status.status, status.evidence, status.details = evaluate(session, release, app)
        else:
            manual = [s for s in history if not s.override]
            if manual:
                latest = manual[-1]
                status.status = {"approve": "approved", "reject": "rejected", "block": "blocked"}[
                    latest.decision
                ]
                status.evidence = f"{latest.decision} by {latest.user_email}"
        if overrides and not status.ok:
            status.overridden = overrides[-1]
        statuses.append(status)
    return statuses


@dataclass
class Progress:
    total: int
    done: int
    required: int
    required_done: int
    blocking: list[ItemStatus]

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 100


def progress(statuses: Sequence[ItemStatus]) -> Progress:
    return Progress(
        total=len(statuses),
        done=sum(1 for s in statuses if s.ok),
        required=sum(1 for s in statuses if s.item.required),
        required_done=sum(1 for s in statuses if s.item.required and s.ok),
        blocking=[s for s in statuses if s.blocking],
    )


# --- sign-offs -------------------------------------------------------------------------


def sign_off(
    session: Session,
    *,
    release: Release,
    item: ReleaseItem,
    user: User,
    decision: str,
    comment: str = "",
    expected_lock: int | None = None,
) -> tuple[SignOff, bool]:
    """Append ``user``'s decision on ``item`` (earlier decisions stay in the history) and
    return it with True; or, when the same person sends the decision of theirs that still
    stands again with the same comment (a double click, a retried request), return that
    sign-off with False and write nothing. The same decision with another comment is 409:
    the history keeps decisions, and theirs already stands.

    Who may sign (the item's owner role) is checked before anything else: 403 whatever the
    release's state or the input."""
    if item.release_id != release.id:
        raise ReleaseError("that item belongs to another release", status=404, field="item")
    if user.role != item.owner_role:
        raise ReleaseError(
            f"only a {item.owner_role.replace('_', ' ')} may sign “{item.title}” "
            f"(you are {user.role.replace('_', ' ')})",
            status=403,
            field="item",
        )
    stale = changed_since(release, expected_lock, then="sign again")
    if stale:
        raise ReleaseError(stale, status=409)
    if release.state not in ("draft", "in_review"):
        raise ReleaseError(
            f"sign-offs are closed: the release is {release.state.replace('_', ' ')}", status=409
        )
    if decision not in DECISIONS:
        raise ReleaseError(f"decision must be one of {', '.join(DECISIONS)}", field="decision")
    if item.mode == "automatic":
        raise ReleaseError(
            "this item is checked automatically from data; it cannot be signed by hand",
            status=409,
            field="item",
        )
    comment = comment.strip()
    if decision in ("reject", "block") and not comment:
        raise ReleaseError("say why: a reject or block needs a comment", field="comment")
    standing = _standing_decision(session, item, user, decision)
    if standing is not None:
        if standing.comment == comment[:2000]:
            return standing, False
        raise ReleaseError(
            f"you already chose {decision} on “{item.title}” and it stands "
            f"(comment: {standing.comment or 'none'}); a sign-off cannot be edited, only "
            "followed by a different decision",
            status=409,
            field="comment",
        )
    summary = f"{decision} “{item.title}”" + (f": {comment}" if comment else "")
    after = {"item": item.title, "decision": decision, "comment": comment, "role": user.role}
    signoff = _append(
        session, item, user, decision=decision, comment=comment, after=after, summary=summary
    )
    return signoff, True


def _standing_decision(
    session: Session, item: ReleaseItem, user: User, decision: str
) -> SignOff | None:
    """``user``'s sign-off of ``decision`` on ``item`` when it still stands: no sign-off of
    another decision came after it. The item's row is locked first (PostgreSQL; SQLite
    writes one transaction at a time), so two identical requests at once append one row."""
    session.exec(select(ReleaseItem.id).where(ReleaseItem.id == item.id).with_for_update()).first()
    history = session.exec(
        select(SignOff)
        .where(SignOff.item_id == item.id, col(SignOff.override).is_(False))
        .order_by(col(SignOff.id).desc())
    )
    for earlier in history:
        if earlier.decision != decision:
            return None
        if earlier.user_id == user.id:
            return earlier
    return None


def _append(
    session: Session,
    item: ReleaseItem,
    user: User,
    *,
    decision: str,
    comment: str,
    after: Mapping[str, object],
    summary: str,
    override: bool = False,
) -> SignOff:
    """Add a sign-off to the item's history, as ``user`` in the role they hold now, and
    audit it (``signoff.<decision>``, or ``signoff.override``, highlighted)."""
    signoff = SignOff(
        item_id=item.id or 0,
        release_id=item.release_id,
        user_id=user.id or 0,
        user_email=user.email,
        role=user.role,
        decision=decision,
        comment=comment[:2000],
        override=override,
    )
    session.add(signoff)
    session.flush()
    audit.record(
        session,
        actor=user.actor,
        action="signoff.override" if override else f"signoff.{decision}",
        subject_type="release",
        subject_id=item.release_id,
        after=after,
        summary=summary,
        highlight=override,
    )
    return signoff


def override_item(
    session: Session, *, release: Release, item: ReleaseItem, user: User, reason: str
) -> SignOff:
    """An admin lets a blocking item pass, with a reason; highlighted everywhere."""
    if user.role != "admin":
        raise ReleaseError("only an admin may override a checklist item", status=403)
    if item.release_id != release.id:
        raise ReleaseError("that item belongs to another release", status=404, field="item")
    if release.state not in ("draft", "in_review"):
        raise ReleaseError(
            f"the checklist is closed: the release is {release.state.replace('_', ' ')}",
            status=409,
        )
    reason = reason.strip()
    if not reason:
        raise ReleaseError("an override needs a reason", field="reason")
    return _append(
        session,
        item,
        user,
        decision="approve",
        comment=reason,
        after={"item": item.title, "reason": reason},
        summary=f"OVERRIDE “{item.title}”: {reason}",
        override=True,
    )
