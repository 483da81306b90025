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
from service.models import AuditEvent, User
from service.releases.apps import items_in_order
from service.releases.lifecycle import changed_since
from service.releases.models import AUTOMATIC_RULES, DECISIONS, App, Release, ReleaseItem, SignOff
from service.releases.notes import DiffLine, diff_lines, note_for, note_hash, notes_state

# Automatic items measured in beta: they cannot pass before it and gate the promotion.
PROMOTION_RULES = frozenset({"beta_adoption", "beta_soak", "incident_score"})
# Who reviews the notes: their approval of a manual item is of the text they read, so an edit
# of the notes after it re-opens the item (a ``reopen`` entry in its history).
REVIEW_ROLES = frozenset({"support"})
REOPEN = "reopen"
STATUS_OF = {"approve": "approved", "reject": "rejected", "block": "blocked", REOPEN: "pending"}


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

    @property
    def reopened(self) -> SignOff | None:
        """The ``reopen`` entry that stands (the notes changed after the review), if any."""
        manual = [s for s in self.history if not s.override]
        return manual[-1] if manual and manual[-1].decision == REOPEN else None


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
                status.status = STATUS_OF[latest.decision]
                if latest.decision == REOPEN:
                    status.evidence = (
                        f"re-opened: {latest.user_email} changed the notes after the review; "
                        "sign again"
                    )
                else:
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


# --- a review re-opened by an edit of the notes ------------------------------------------


def reopen_reviews(session: Session, release: Release, actor: str, before: str) -> list[SignOff]:
    """A reaction to an edit of the notes: each approved manual item of a reviewing role
    (support) goes back to pending, with a ``reopen`` entry in its history and an audit
    event that keeps the text the reviewer approved (to show what changed since). Only while
    sign-offs are open (draft, in review); nothing happens when the text did not change."""
    note = note_for(session, release)
    if note is None or note.markdown == before or release.state not in ("draft", "in_review"):
        return []
    reopened = []
    for status in item_statuses(session, release):
        item = status.item
        if item.mode != "manual" or item.owner_role not in REVIEW_ROLES:
            continue
        approval = status.latest if status.status == "approved" and status.latest else None
        if approval is None or approval.override:
            continue
        signoff = SignOff(
            item_id=item.id or 0,
            release_id=release.id or 0,
            # The reviewer whose approval is re-opened; who changed the notes is named below.
            user_id=approval.user_id,
            user_email=actor[:254],
            role="notes edit",
            decision=REOPEN,
            comment=f"the notes changed after {approval.user_email}'s review",
        )
        session.add(signoff)
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="signoff.reopen",
            subject_type="release",
            subject_id=release.id,
            before={
                "item": item.title,
                "decision": "approve",
                "by": approval.user_email,
                "reviewed_hash": note_hash(before)[:16],
                "reviewed_markdown": before,
            },
            after={"item": item.title, "status": "pending", "hash": note_hash(note.markdown)[:16]},
            summary=f"re-opened “{item.title}”: the notes changed after "
            f"{approval.user_email}'s review",
            highlight=True,
        )
        reopened.append(signoff)
    return reopened


def changes_since_review(session: Session, release: Release, item: ReleaseItem) -> list[DiffLine]:
    """What changed in the notes since the review ``item``'s ``reopen`` entry re-opened."""
    events = session.exec(
        select(AuditEvent)
        .where(
            AuditEvent.action == "signoff.reopen",
            AuditEvent.subject_type == "release",
            AuditEvent.subject_id == str(release.id),
        )
        .order_by(col(AuditEvent.id).desc())
    )
    event = next((e for e in events if (e.before or {}).get("item") == item.title), None)
    note = note_for(session, release)
    if event is None or note is None:
        return []
    reviewed = str((event.before or {}).get("reviewed_markdown") or "")
    return diff_lines(reviewed, note.markdown, old_label="reviewed", new_label="now")
