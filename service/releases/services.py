"""Release registration, checklist status, sign-offs, approval and meeting records.

Functions take the session and never commit: the caller (a request or a CLI command)
commits once, so a refused action leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from service import audit
from service.models import User, utcnow
from service.releases.apps import current_template, template_items
from service.releases.lifecycle import Actor, TransitionError, add_guard
from service.releases.models import (
    DECISIONS,
    RELEASE_KINDS,
    App,
    MeetingRecord,
    Release,
    ReleaseItem,
    ReleaseNote,
    SignOff,
)
from service.releases.repos import RepoError, resolve_repo
from service.releases.trains import next_train_slot
from versioning import InvalidVersion, parse_version

# Automatic items measured in beta: they cannot pass before it and gate the promotion.
PROMOTION_RULES = frozenset({"beta_adoption", "beta_soak", "incident_score"})
ACTIVE_STATES = ("draft", "in_review", "approved", "beta", "rolling_out", "halted")
MEETING_DECISIONS = ("go", "no_go", "postponed")


class ReleaseError(Exception):
    """A refused request about a release; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, *, status: int = 422, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field


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
    generate: bool = True,
) -> tuple[Release, bool]:
    """Register a candidate (idempotent per app+version); returns (release, created)."""
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
                    position=item.position,
                    title=item.title,
                    help=item.help,
                    owner_role=item.owner_role,
                    required=item.required,
                    mode=item.mode,
                    rule=item.rule,
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
    if generate:
        generate_notes_for(session, release, actor=actor)
    return release, True


def _scheduled_for(session: Session, app: App) -> datetime | None:
    slot = next_train_slot(session, app, after=utcnow())
    return slot.at if slot else None


# --- notes -----------------------------------------------------------------------------


def repo_cache_dir() -> Path:
    from flask import current_app

    settings = current_app.config["RELGOV_SETTINGS"]
    return Path(settings.repo_cache)


def generate_notes_for(session: Session, release: Release, *, actor: Actor) -> ReleaseNote:
    """(Re)generate the notes from git; an edit is kept (its base shows any conflict)."""
    from release_notes.config import config_from_dict
    from release_notes.errors import NotesError
    from release_notes.generate import generate_for_range, no_gc, render_notes
    from release_notes.render import to_json_dict

    app = session.get(App, release.app_id)
    assert app is not None
    note = note_for(session, release)
    if note is None:
        note = ReleaseNote(release_id=release.id or 0)
    before = {"generated_hash": _hash(note.generated_markdown), "error": note.generation_error}
    try:
        repo = _resolve_repo(app)
        config_data: dict[str, Any] = {"areas": dict(app.area_map)}
        if app.pr_url_template:
            config_data["pr_url"] = app.pr_url_template
        config = config_from_dict(config_data)
        with no_gc():  # one pause across parse, render and JSON (see no_gc)
            notes = generate_for_range(
                repo, release.from_ref, release.git_ref, version=release.version, config=config
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
        after={"generated_hash": _hash(markdown), "commits": note.commit_count},
        summary=f"generated notes: {note.commit_count} commits, {note.pr_count} PRs",
    )
    return note


def _resolve_repo(app: App) -> Path:
    if not app.repo_url:
        raise RepoError(f"{app.slug} has no git repository configured")
    return Path(resolve_repo(app, cache_dir=repo_cache_dir()))


def _hash(text: str | None) -> str | None:
    return hashlib.sha256(text.encode()).hexdigest()[:16] if text else None


# --- checklist status ------------------------------------------------------------------


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


Evaluator = Callable[[Session, Release, App], tuple[str, str, list[str]]]
EVALUATORS: dict[str, Evaluator] = {}


def evaluator(rule: str) -> Callable[[Evaluator], Evaluator]:
    def register(fn: Evaluator) -> Evaluator:
        EVALUATORS[rule] = fn
        return fn

    return register


def note_for(session: Session, release: Release) -> ReleaseNote | None:
    return session.exec(select(ReleaseNote).where(ReleaseNote.release_id == release.id)).first()


@evaluator("notes_generated")
def _notes_generated(session: Session, release: Release, app: App) -> tuple[str, str, list[str]]:
    note = note_for(session, release)
    if note is None or (note.generated_at is None and not note.generation_error):
        return "unavailable", "not available yet: notes have not been generated", []
    if note.generation_error:
        return "failed", f"generation failed: {note.generation_error}", []
    return (
        "passed",
        f"{note.commit_count} commits, {note.pr_count} PRs, {note.breaking_count} breaking",
        [],
    )


@evaluator("commits_linked")
def _commits_linked(session: Session, release: Release, app: App) -> tuple[str, str, list[str]]:
    note = note_for(session, release)
    if note is None or note.generated_at is None:
        return "unavailable", "not available yet: notes have not been generated", []
    if note.unlinked_commits:
        lines = [f"{c['sha']} {c['subject']}" for c in note.unlinked_commits]
        return "failed", f"{len(lines)} commit(s) without a pull request", lines
    return "passed", f"all {note.commit_count} commits link to a pull request", []


@evaluator("notes_published")
def _notes_published(session: Session, release: Release, app: App) -> tuple[str, str, list[str]]:
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


# "beta_adoption", "beta_soak" and "incident_score" (with gate overrides) are registered by
# service.incidents.services, imported by its init_app.


def release_items(session: Session, release: Release) -> list[ReleaseItem]:
    return list(
        session.exec(
            select(ReleaseItem)
            .where(ReleaseItem.release_id == release.id)
            .order_by(col(ReleaseItem.position), col(ReleaseItem.id))
        ).all()
    )


def release_item(session: Session, release: Release, item_id: int) -> ReleaseItem | None:
    item = session.get(ReleaseItem, item_id)
    return item if item is not None and item.release_id == release.id else None


def item_statuses(session: Session, release: Release) -> list[ItemStatus]:
    app = session.get(App, release.app_id)
    assert app is not None
    items = release_items(session, release)
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
            evaluate = EVALUATORS.get(item.rule or "", _not_yet("unknown rule"))
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
) -> SignOff:
    """Append ``user``'s decision on ``item``; earlier decisions stay in the history."""
    if item.release_id != release.id:
        raise ReleaseError("that item belongs to another release", status=404, field="item")
    if expected_lock is not None and expected_lock != release.lock_version:
        raise ReleaseError(
            f"the release changed since you loaded the page (it is now "
            f"{release.state.replace('_', ' ')}); reload and sign again",
            status=409,
        )
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
    if user.role != item.owner_role:
        raise ReleaseError(
            f"only a {item.owner_role.replace('_', ' ')} may sign “{item.title}” "
            f"(you are {user.role.replace('_', ' ')})",
            status=403,
            field="item",
        )
    comment = comment.strip()
    if decision in ("reject", "block") and not comment:
        raise ReleaseError("say why: a reject or block needs a comment", field="comment")
    signoff = SignOff(
        item_id=item.id or 0,
        release_id=release.id or 0,
        user_id=user.id or 0,
        user_email=user.email,
        role=user.role,
        decision=decision,
        comment=comment[:2000],
    )
    session.add(signoff)
    session.flush()
    audit.record(
        session,
        actor=user.actor,
        action=f"signoff.{decision}",
        subject_type="release",
        subject_id=release.id,
        after={"item": item.title, "decision": decision, "comment": comment, "role": user.role},
        summary=f"{decision} “{item.title}”" + (f": {comment}" if comment else ""),
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
    signoff = SignOff(
        item_id=item.id or 0,
        release_id=release.id or 0,
        user_id=user.id or 0,
        user_email=user.email,
        role=user.role,
        decision="approve",
        comment=reason[:2000],
        override=True,
    )
    session.add(signoff)
    session.flush()
    audit.record(
        session,
        actor=user.actor,
        action="signoff.override",
        subject_type="release",
        subject_id=release.id,
        after={"item": item.title, "reason": reason},
        summary=f"OVERRIDE “{item.title}”: {reason}",
        highlight=True,
    )
    return signoff


# --- approval guard --------------------------------------------------------------------


def _approval_guard(session: Session, release: Release, actor: Actor) -> None:
    if actor.role not in ("release_manager", "admin"):
        raise TransitionError("only a release manager may approve a release", status=403)
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


def _manager_guard(session: Session, release: Release, actor: Actor) -> None:
    if actor.role is not None and actor.role not in ("release_manager", "admin"):
        raise TransitionError("only a release manager may do this", status=403)


def _person_guard(session: Session, release: Release, actor: Actor) -> None:
    """A release manager's decision: an actor without a role (an API token) may not take it."""
    _manager_guard(session, release, actor)
    if actor.role is None:
        raise TransitionError(
            "only a release manager may do this; an API token may submit, halt or cancel",
            status=403,
        )


add_guard("approve", _approval_guard)
# CI's token may stop a release (halt, cancel); every other move is a person's decision.
for _action in ("halt", "cancel"):
    add_guard(_action, _manager_guard)
for _action in ("reject", "start_beta", "promote", "complete", "resume", "reopen"):
    add_guard(_action, _person_guard)


def _submit_guard(session: Session, release: Release, actor: Actor) -> None:
    if actor.role is not None and actor.role not in ("release_manager", "admin", "engineer"):
        raise TransitionError("only an engineer or release manager may submit", status=403)


add_guard("submit", _submit_guard)


def actor_for(user: User) -> Actor:
    return Actor(name=user.actor, user_id=user.id, role=user.role)


# --- meeting ---------------------------------------------------------------------------


def record_meeting(
    session: Session,
    *,
    release: Release,
    user: User,
    held_on: date,
    attendees: str,
    decision: str,
    minutes: str,
) -> MeetingRecord:
    if user.role not in ("release_manager", "admin"):
        raise ReleaseError("only a release manager may record the meeting", status=403)
    if decision not in MEETING_DECISIONS:
        raise ReleaseError("decision must be go, no_go or postponed", field="decision")
    if not attendees.strip():
        raise ReleaseError("list who attended", field="attendees")
    record = MeetingRecord(
        release_id=release.id or 0,
        held_on=held_on,
        attendees=attendees.strip()[:2000],
        decision=decision,
        minutes=minutes.strip(),
        recorded_by=user.actor,
    )
    session.add(record)
    session.flush()
    audit.record(
        session,
        actor=user.actor,
        action="meeting.record",
        subject_type="release",
        subject_id=release.id,
        after={"held_on": held_on, "decision": decision, "attendees": record.attendees},
        summary=f"meeting {held_on}: {decision}",
    )
    return record


def meeting_agenda(session: Session, monday: date) -> list[dict[str, Any]]:
    """Per app: the train of the week starting ``monday`` and every release in progress
    with its checklist progress, blocking items and the roles that still have to sign."""
    from zoneinfo import ZoneInfo

    from service.releases.trains import skips_for, train_slots

    rows = []
    for app in session.exec(select(App).order_by(App.name)).all():
        releases = session.exec(
            select(Release).where(Release.app_id == app.id, col(Release.state).in_(ACTIVE_STATES))
        ).all()
        start = datetime.combine(monday, datetime.min.time(), tzinfo=ZoneInfo(app.train_timezone))
        slots = train_slots(app, start=start, weeks=1, skips=skips_for(session, app, since=monday))
        entries = []
        for release in sorted(releases, key=lambda r: parse_version(r.version), reverse=True):
            statuses = item_statuses(session, release)
            waiting = sorted(
                {
                    s.item.owner_role
                    for s in statuses
                    if s.blocking and s.item.mode == "manual" and s.status == "pending"
                }
            )
            entries.append(
                {
                    "release": release,
                    "progress": progress(statuses),
                    "statuses": statuses,
                    "waiting": waiting,
                }
            )
        rows.append({"app": app, "entries": entries, "slots": slots})
    return rows


def count_by_state(session: Session) -> dict[str, int]:
    rows = session.exec(select(Release.state, func.count()).group_by(Release.state)).all()
    return {state: count for state, count in rows}
