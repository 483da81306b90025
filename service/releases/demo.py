"""Demo releases for ``make run``: three store apps with real git history and releases in
every state, signed and moved through the real services so the audit log is lived-in too.

Each release is decided in its week's release meeting (``service.meetings``), at the time it
was held: go approves it, a no-go rejects one, a defer moves one to the next train, and one
go follows an admin's override of a blocked checklist item. The meetings demo
(``service/meetings/demo.py``, run last) adds attendees, minutes and action items and closes
them.

Runs after the demo people exist (``service.demo``); the adoption seeder runs after this
one and simulates device adoption against the beta/rollout/release times set here.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flask import has_app_context
from sqlmodel import Session, select

from service import timezones
from service.meetings import services as meetings
from service.meetings.weeks import week_at
from service.models import User, utcnow
from service.releases import checklist, services
from service.releases.apps import create_app_record
from service.releases.demo_repo import DemoTag, build_demo_repo
from service.releases.lifecycle import Actor, transition
from service.releases.models import STATES, App, Release, SignOff
from service.releases.notes import generate_now, note_for, repo_policy
from service.releases.trains import monday_of, next_train_slot, skip_week

ACTOR = "system:demo"
CI = Actor(name="token:ci-github-actions")
APPS: list[dict[str, Any]] = [
    {
        "slug": "pos",
        "name": "POS register",
        "train_weekday": 2,
        "train_time": "14:00",
        "min_supported_version": "3.12.0",
        "area_map": {
            "order": "Ordering",
            "payment": "Payments",
            "menu": "Menu",
            "table": "Tables",
            "printer": "Printing",
            "kds": "Kitchen display",
            "sync": "Sync",
            "auth": "Staff login",
        },
    },
    {
        "slug": "handy",
        "name": "Handheld order terminal",
        "train_weekday": 3,
        "train_time": "11:00",
        "min_supported_version": "2.5.0",
        "area_map": {"order": "Ordering", "menu": "Menu", "payment": "Payments"},
    },
    {
        "slug": "kds",
        "name": "Kitchen display",
        "train_weekday": 3,
        "train_time": "15:00",
        "rollout_stages": "25, 100",
        "area_map": {"kds": "Kitchen display", "printer": "Printing"},
    },
]
# (version, target state); registered in this order, so earlier ones are in place first.
PLAN: dict[str, list[tuple[str, str]]] = {
    "pos": [
        ("3.10.0", "released"),
        ("3.11.0", "released"),
        ("3.12.0", "released"),
        ("3.12.1", "released"),
        ("3.13.0", "released"),
        ("3.14.0", "released"),
        ("3.15.0", "rolling_out"),
        ("3.16.0", "beta"),
        ("3.17.0", "in_review"),
    ],
    "handy": [
        ("2.4.0", "released"),
        ("2.5.0", "released"),
        ("2.6.0", "halted"),
        ("2.7.0", "approved"),
        ("2.8.0", "draft"),
    ],
    "kds": [
        ("1.8.0", "released"),
        ("1.9.0", "rejected"),
        ("1.10.0", "cancelled"),
        ("1.11.0", "in_review"),
    ],
}
REACHES = {
    "approved": {"approved", "beta", "rolling_out", "released", "halted"},
    "beta": {"beta", "rolling_out", "released", "halted"},
    "rolling_out": {"rolling_out", "released", "halted"},
}
# What each week's meeting decided, and why: (app, version) -> (decision, reason, conditions).
# A release not listed here that reaches approval gets a plain go.
MEETING: dict[tuple[str, str], tuple[str, str, str]] = {
    ("pos", "3.12.0"): (
        "go_with_conditions",
        "Breaking change to the receipt layout; checklist complete.",
        "Support sends the new receipt sample to the beta stores before the train.",
    ),
    ("pos", "3.12.1"): (
        "go",
        "Hotfix: a zero tip was refused at checkout in 14 stores.",
        "",
    ),
    ("kds", "1.8.0"): (
        "go_with_conditions",
        "Regression suite blocked by the broken bump-bar rig; the admin's override stands "
        "on a manual run.",
        "Watch bump-bar incidents in beta; halt at the first one with a score of 3 or more.",
    ),
    ("handy", "2.6.0"): (
        "go_with_conditions",
        "Payments at the table rewritten; QA green on current handhelds.",
        "Halt at the first report of a payment timeout on older handhelds.",
    ),
    ("kds", "1.9.0"): (
        "no_go",
        "Tickets appear twice after a reconnect in the lab; fix before shipping.",
        "",
    ),
    ("kds", "1.10.0"): (
        "defer",
        "The allergy warning colour is not confirmed by the restaurant owners yet.",
        "",
    ),
}
OVERRIDDEN = ("kds", "1.8.0")  # QA blocked an item; an admin overrode it with a reason
COMMENTS = {
    "qa": "Regression suite green on TM-m30III, Sunmi T2 and iPad 10th gen.",
    "support": "Read the notes; the store-facing changes are in the FAQ draft.",
    "engineer": "Rollback: re-offer the previous version from the rollout page.",
}


def repo_root() -> Path:
    """Where the demo builds its repositories: under ``RELGOV_REPO_ROOT`` (local
    repositories are allowed nowhere else)."""
    base = repo_policy().root if has_app_context() else Path("instance")
    return Path(base) / "demo-repos"


def seed(session: Session, *, repos: Path | None = None, now: datetime | None = None) -> list[str]:
    """Create the demo apps, their git repositories and releases; report what was made."""
    if session.exec(select(App)).first() is not None:
        return ["releases: apps already exist, nothing seeded"]
    now = now or utcnow()
    root = repos or repo_root()
    people = {u.email: u for u in session.exec(select(User)).all()}

    def person(email: str, role: str) -> User:
        user = people.get(email) or next((u for u in people.values() if u.role == role), None)
        if user is None:
            raise RuntimeError(f"the demo needs a {role} (seed the demo people first)")
        return user

    team = {
        "admin": person("admin@example.com", "admin"),
        "rm": person("rm@example.com", "release_manager"),
        "engineer": person("eng@example.com", "engineer"),
        "qa": person("qa@example.com", "qa"),
        "support": person("support@example.com", "support"),
    }
    lines = ["demo releases:"]
    counts: dict[str, int] = {}
    planned: list[tuple[App, DemoTag, str]] = []
    for spec in APPS:
        fields = dict(spec)
        slug, name = fields.pop("slug"), fields.pop("name")
        repo = build_demo_repo(root / slug, slug, now=now)
        app = create_app_record(
            session,
            slug=slug,
            name=name,
            actor=ACTOR,
            repo_url=str(repo.path),
            pr_url_template=f"https://github.com/example-restaurant/{slug}/pull/{{number}}",
            train_timezone="Asia/Tokyo",
            # The demo's history is written as it happened, before gates were enforced;
            # the incidents demo then switches them on for POS.
            promotion_gates=False,
            **fields,
        )
        tags = {t.version: t for t in repo.tags}
        planned += [(app, tags[version], state) for version, state in PLAN[slug]]
        lines.append(f"  {slug:6} repository {repo.path} ({repo.commits} commits)")
    # Week by week, as it happened: every candidate of the week is registered and signed,
    # then the week's meeting decides them (so each is on its agenda when it opens), then
    # they move on. A hotfix comes after its week's weekly releases.
    zone = timezones.zone(meetings.meeting_zone_name(session))
    rounds: dict[tuple[object, str], list[tuple[App, DemoTag, str]]] = {}
    for app, tag, state in sorted(planned, key=lambda p: p[1].at):
        rounds.setdefault((week_at(tag.at, zone), tag.kind), []).append((app, tag, state))
    for (_, _kind), batch in sorted(rounds.items(), key=lambda r: (r[0][0], r[0][1] != "weekly")):
        prepared = [
            (app, tag, state, _prepare(session, app, tag, state, team)) for app, tag, state in batch
        ]
        for app, tag, state, release in prepared:
            _conclude(session, app, tag, state, release, team, now)
            counts[state] = counts.get(state, 0) + 1
            lines.append(f"  {app.slug:6} {tag.version:8} {release.state}")
    pos = session.exec(select(App).where(App.slug == "pos")).one()
    freeze = monday_of((now + timedelta(weeks=3)).date())
    skip_week(
        session,
        app=pos,
        week_of=freeze,
        reason="Year-end freeze: the busiest week for restaurants",
        actor=ACTOR,
    )
    lines.append(f"  pos train skipped in the week of {freeze} (freeze)")
    session.flush()
    missing = [s for s in STATES if s not in counts]
    assert not missing, f"demo plan misses states {missing}"
    return lines


def _sign_all(
    session: Session, release: Release, team: dict[str, User], at: datetime, *, only: int = 999
) -> None:
    signed = 0
    for item in checklist.release_items(session, release):
        if item.mode != "manual" or signed >= only:
            continue
        user = next((u for u in team.values() if u.role == item.owner_role), None)
        if user is None:
            continue
        signoff, _ = checklist.sign_off(
            session,
            release=release,
            item=item,
            user=user,
            decision="approve",
            comment=COMMENTS.get(item.owner_role, ""),
        )
        signoff.at = at + timedelta(hours=signed + 1)
        session.add(signoff)
        signed += 1


def _meeting_time(tag: DemoTag) -> datetime:
    """The week's meeting: Wednesday noon in Tokyo, before the trains leave (a hotfix is
    decided the day it is cut)."""
    return tag.at + (
        timedelta(hours=1, minutes=30) if tag.kind == "hotfix" else timedelta(hours=18)
    )


def _prepare(
    session: Session, app: App, tag: DemoTag, state: str, team: dict[str, User]
) -> Release:
    """Register the candidate and walk its checklist, as far as its target state needs."""
    engineer = services.actor_for(team["engineer"])
    release, _ = services.register_release(
        session,
        app=app,
        version=tag.version,
        git_ref=tag.name,
        kind=tag.kind,
        actor=CI,
        queue_notes=False,
    )
    # The notes now, as the job worker would make them (approval needs them): committed
    # first, so that no transaction is open while git runs.
    session.commit()
    generate_now(release.id or 0, actor=CI.name)
    session.refresh(release)
    cut = tag.at
    release.created_at = cut + timedelta(minutes=12)
    if tag.kind == "weekly":
        # The train after the cut (registering now would pick the next one from today).
        slot = next_train_slot(session, app, after=release.created_at)
        release.scheduled_for = slot.at if slot else None
    session.add(release)
    if state in ("draft", "cancelled"):
        return release
    transition(session, release, "submit", actor=engineer)
    if state == "in_review":
        # Part-way through the meeting: QA signed, support is still reading, one block.
        _sign_all(session, release, team, cut, only=1)
        items = checklist.release_items(session, release)
        support_item = next(
            (i for i in items if i.owner_role == "support" and i.mode == "manual"), None
        )
        if support_item is not None and app.slug == "kds":
            checklist.sign_off(
                session,
                release=release,
                item=support_item,
                user=team["support"],
                decision="block",
                comment="The allergy warning colour needs sign-off from the restaurant owners.",
            )
    elif state == "rejected":
        _sign_all(session, release, team, cut, only=1)
    else:
        _sign_all(session, release, team, cut)
        if (app.slug, tag.version) == OVERRIDDEN:
            _block_and_override(session, release, team, cut)
    session.flush()
    return release


def _conclude(
    session: Session,
    app: App,
    tag: DemoTag,
    state: str,
    release: Release,
    team: dict[str, User],
    now: datetime,
) -> Release:
    """The meeting's decision on the release, then the rest of its way to ``state``."""
    rm = services.actor_for(team["rm"])
    meeting = _meeting_time(tag)
    decision, reason, conditions = MEETING.get(
        (app.slug, tag.version), ("go", "Checklist complete; support has read the notes.", "")
    )
    if state in ("draft", "in_review"):
        return _stamp(session, release, now)  # this week's meeting has not been held yet
    _decide(session, release, team["rm"], decision, reason, conditions, at=meeting)
    if state == "cancelled":
        transition(
            session,
            release,
            "cancel",
            actor=rm,
            reason="Superseded: the fixes ship with the next release.",
        )
    if state in ("rejected", "cancelled"):
        return _stamp(session, release, now)
    release.approved_at = meeting
    if state in REACHES["beta"]:
        transition(session, release, "start_beta", actor=rm)
        release.beta_at = meeting + timedelta(hours=3)
    if state in REACHES["rolling_out"]:
        transition(session, release, "promote", actor=rm)
        release.rollout_started_at = meeting + timedelta(days=2, hours=3)
        release.stage_percent = app.rollout_stages[0]
    if state == "rolling_out":
        release.stage_percent = app.rollout_stages[min(1, len(app.rollout_stages) - 1)]
    if state == "released":
        release.stage_percent = 100  # the demo's releases went through every stage
        transition(session, release, "complete", actor=rm)
        release.released_at = meeting + timedelta(days=5, hours=3)
    if state == "halted":
        transition(
            session,
            release,
            "halt",
            actor=rm,
            reason="Card payments at the table time out on older handhelds (score 9).",
        )
    if app.slug == "pos" and state == "beta":
        _edit_note(session, release, team["support"])
    return _stamp(session, release, now)


def _decide(
    session: Session,
    release: Release,
    rm: User,
    decision: str,
    reason: str,
    conditions: str,
    *,
    at: datetime,
) -> None:
    """The release's decision in the meeting of its week, opened an hour before if need be."""
    week = week_at(at, timezones.zone(meetings.meeting_zone_name(session)))
    meeting = meetings.get_meeting(session, week)
    if meeting is None:
        meeting = meetings.open_meeting(session, week=week, user=rm, now=at - timedelta(hours=1))
    if not meetings.on_agenda(session, meeting, release):
        meetings.add_release(
            session, meeting=meeting, release=release, user=rm, now=at - timedelta(minutes=5)
        )
    meetings.decide(
        session,
        meeting=meeting,
        release=release,
        user=rm,
        decision=decision,
        reason=reason,
        conditions=conditions,
        now=at,
    )


def _block_and_override(
    session: Session, release: Release, team: dict[str, User], cut: datetime
) -> None:
    """QA blocks its item; an admin overrides the block with a reason (both highlighted)."""
    item = next(
        i
        for i in checklist.release_items(session, release)
        if i.owner_role == "qa" and i.mode == "manual"
    )
    blocked, _ = checklist.sign_off(
        session,
        release=release,
        item=item,
        user=team["qa"],
        decision="block",
        comment="The bump-bar rig in the device lab is broken: the bump-bar cases cannot run.",
    )
    blocked.at = cut + timedelta(hours=6)
    overridden = checklist.override_item(
        session,
        release=release,
        item=item,
        user=team["admin"],
        reason="Bump-bar cases run by hand on the spare unit of S0042; rig repair booked.",
    )
    overridden.at = cut + timedelta(hours=8)
    session.add_all([blocked, overridden])


def _edit_note(session: Session, release: Release, editor: User) -> None:
    note = note_for(session, release)
    if note is None or not note.generated_markdown:
        return
    intro = (
        "> **For store staff:** this week adds a waiting list with SMS for walk-in guests. "
        "Ask the store manager to turn it on under Settings → Tables.\n\n"
    )
    head, sep, rest = note.generated_markdown.partition("\n\n")
    note.edited_markdown = head + sep + intro + rest
    note.edit_base_markdown = note.generated_markdown
    note.edited_by = editor.actor
    note.edited_at = (release.beta_at or utcnow()) - timedelta(hours=2)
    session.add(note)


def _stamp(session: Session, release: Release, now: datetime) -> Release:
    stamps = [
        t
        for t in (
            release.created_at,
            release.approved_at,
            release.beta_at,
            release.rollout_started_at,
            release.released_at,
        )
        if t is not None
    ]
    release.updated_at = min(max(stamps), now) if stamps else now
    for name in ("approved_at", "beta_at", "rollout_started_at", "released_at"):
        value = getattr(release, name)
        if value is not None and value > now:
            setattr(release, name, now - timedelta(minutes=5))
    session.add(release)
    session.flush()
    signoffs = session.exec(select(SignOff).where(SignOff.release_id == release.id)).all()
    for signoff in signoffs:
        if signoff.at > now:
            signoff.at = now
            session.add(signoff)
    return release


__all__ = ["APPS", "PLAN", "seed"]
