"""What the team hears on Slack, and when: each event becomes an outbox row
(:func:`service.notifications.outbox.record`) in the transaction that caused it.

- :func:`on_audit_event` (an audit listener, named in ``service/wiring.py``): approvals,
  rejections, halts, incidents at or above the app's score, Notion publish failures: every
  one of them is an audited change, so the message is written with its audit event;
- :func:`queue_meeting_reminders`: N hours before a meeting, one reminder per person with a
  pending sign-off; :func:`periodic_reminders` calls it for each app's next train departure
  (the meeting time until the weekly meeting has its own);
- :func:`periodic_digest`: the weekly straggler digest of each app;
- :func:`notify_meeting_decisions`: the meeting's decisions, one message per app.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

import utc
from service import db, jobs
from service.adoption import services as adoption
from service.incidents.models import Incident
from service.models import AuditEvent, User, utcnow
from service.notifications import messages, outbox
from service.notifications.models import Notification
from service.releases import checklist, trains
from service.releases.models import App, Release
from service.settings import Settings

ACTOR = "system:notifications"
REMINDER_EVERY_SECONDS = 600.0
DIGEST_EVERY_SECONDS = 3600.0
# The weekly digest goes out on Monday from 09:00 in each app's train time zone.
DIGEST_WEEKDAY, DIGEST_HOUR = 0, 9
DIGEST_STORES = 10
# Releases still waiting for sign-offs before their meeting.
AWAITING = ("draft", "in_review")


def _base(settings: Settings) -> str:
    return settings.base_url.rstrip("/")


def release_url(settings: Settings, release_id: int | None) -> str:
    return f"{_base(settings)}/releases/{release_id}"


# --- audited events -------------------------------------------------------------------------


def on_audit_event(session: Session, event: AuditEvent) -> None:
    """Audit listener: the events the team hears about (others are ignored)."""
    if event.action in ("release.approve", "release.reject", "release.halt"):
        _release_event(session, event)
    elif event.action in ("incident.record", "incident.update"):
        _incident_event(session, event)
    elif event.action == "notes.publish_failed":
        _publish_failed(session, event)


def _release_and_app(session: Session, subject_id: str) -> tuple[Release, App] | None:
    release = session.get(Release, int(subject_id)) if subject_id.isdigit() else None
    app = session.get(App, release.app_id) if release is not None else None
    if release is None or app is None:
        return None
    return release, app


def _release_event(session: Session, event: AuditEvent) -> None:
    found = _release_and_app(session, event.subject_id)
    if found is None:
        return
    release, app = found
    settings = outbox.settings_of()
    by = messages.person_of(session, event.actor)
    url = release_url(settings, release.id)
    reason = str((event.after or {}).get("reason") or "")
    action = event.action.removeprefix("release.")
    if action == "approve":
        text, kind = messages.approved(app.name, release.version, by, url), "approved"
    elif action == "reject":
        text, kind = messages.rejected(app.name, release.version, by, reason, url), "rejected"
    else:
        where = release.halted_from or ""
        text = messages.halted(
            app.name, release.version, by, reason, where, release.stage_percent, url
        )
        kind = "halted"
    outbox.record(
        session,
        event=kind,
        dedupe_key=f"release:{release.id}:{action}:{release.lock_version}",
        text=text,
        actor=event.actor,
        app_id=app.id,
        release_id=release.id,
    )


def incident_threshold(session: Session, app_id: int, settings: Settings) -> int:
    row = outbox.app_channel(session, app_id)
    if row is not None and row.incident_min_score is not None:
        return row.incident_min_score
    return settings.slack_incident_min_score


def _incident_event(session: Session, event: AuditEvent) -> None:
    if not event.subject_id.isdigit():
        return
    incident = session.get(Incident, int(event.subject_id))
    if incident is None:
        return
    before = (event.before or {}).get("score")
    if event.action == "incident.update" and "score" not in (event.after or {}):
        return
    settings = outbox.settings_of()
    threshold = incident_threshold(session, incident.app_id, settings)
    if incident.score < threshold or (isinstance(before, int) and before >= threshold):
        return
    app = session.get(App, incident.app_id)
    release = session.get(Release, incident.release_id) if incident.release_id else None
    if app is None:
        return
    scope = {1: "a few stores", 2: "100 stores to half", 3: "half to all stores"}
    derivation = (
        f"impact {incident.impact} × scope {incident.scope}, {scope.get(incident.scope, '')}"
    )
    text = messages.incident(
        incident.id or 0,
        app.name,
        release.version if release else None,
        incident.title,
        incident.score,
        derivation,
        threshold,
        messages.person_of(session, event.actor),
        f"{_base(settings)}/incidents/{incident.id}",
    )
    outbox.record(
        session,
        event="incident",
        dedupe_key=f"incident:{incident.id}",
        text=text,
        actor=event.actor,
        app_id=app.id,
        release_id=release.id if release else None,
    )


def _publish_failed(session: Session, event: AuditEvent) -> None:
    found = _release_and_app(session, event.subject_id)
    if found is None:
        return
    release, app = found
    after = event.after or {}
    settings = outbox.settings_of()
    outbox.record(
        session,
        event="publish_failed",
        dedupe_key=f"publish_failed:{release.id}:job{after.get('job')}",
        text=messages.publish_failed(
            app.name,
            release.version,
            str(after.get("error") or ""),
            release_url(settings, release.id),
        ),
        actor=event.actor,
        app_id=app.id,
        release_id=release.id,
    )


# --- reminders before the meeting -------------------------------------------------------------


@dataclass(frozen=True)
class Waiting:
    """A person whose sign-off is missing, and on what."""

    user: User
    releases: tuple[tuple[Release, App, tuple[str, ...]], ...]


def pending_sign_offs(session: Session, releases: Sequence[Release]) -> list[Waiting]:
    """Each active person holding the owner role of a required manual item still pending
    on one of ``releases`` (admins override, they do not sign), with those items."""
    by_role: dict[str, list[tuple[Release, App, str]]] = {}
    for release in releases:
        app = session.get(App, release.app_id)
        if app is None:
            continue
        for status in checklist.item_statuses(session, release):
            item = status.item
            if item.mode == "manual" and item.required and status.status == "pending":
                by_role.setdefault(item.owner_role, []).append((release, app, item.title))
    if not by_role:
        return []
    users = session.exec(
        select(User)
        .where(col(User.active).is_(True), col(User.role).in_(sorted(by_role)))
        .order_by(col(User.email))
    ).all()
    out = []
    for user in users:
        grouped: dict[int, tuple[Release, App, list[str]]] = {}
        for release, app, title in by_role[user.role]:
            grouped.setdefault(release.id or 0, (release, app, []))[2].append(title)
        out.append(
            Waiting(
                user=user,
                releases=tuple((r, a, tuple(titles)) for r, a, titles in grouped.values()),
            )
        )
    return out


def reminder_due(meeting_at: datetime, now: datetime, hours_before: float) -> bool:
    """Whether the reminders of a meeting at ``meeting_at`` go out at ``now``."""
    meeting, moment = utc.aware(meeting_at), utc.aware(now)
    return meeting - timedelta(hours=hours_before) <= moment < meeting


def queue_meeting_reminders(
    session: Session,
    *,
    meeting_at: datetime,
    meeting_local: str,
    releases: Sequence[Release],
    now: datetime | None = None,
    hours_before: float | None = None,
) -> list[Notification]:
    """Queue one reminder per person with a pending sign-off on ``releases``, for the meeting
    at ``meeting_at`` (shown as ``meeting_local``), when ``now`` is within ``hours_before``
    (``SLACK_REMINDER_HOURS``) of it. Once per person and meeting, however often called;
    the weekly meeting calls it with its own time and agenda."""
    settings = outbox.settings_of()
    now = now or utcnow()
    hours = hours_before if hours_before is not None else float(settings.slack_reminder_hours)
    if not reminder_due(meeting_at, now, hours):
        return []
    left = (utc.aware(meeting_at) - utc.aware(now)).total_seconds() / 3600
    stamp = f"{utc.aware(meeting_at):%Y-%m-%dT%H:%MZ}"
    queued = []
    for waiting in pending_sign_offs(session, releases):
        (who,) = messages.people_of(session, [waiting.user])
        pending = [
            messages.PendingRelease(
                app.name, release.version, release_url(settings, release.id), items
            )
            for release, app, items in waiting.releases
        ]
        first_release, first_app, _ = waiting.releases[0]
        row = outbox.record(
            session,
            event="reminder",
            dedupe_key=f"reminder:{stamp}:{who.email}",
            text=messages.reminder(who, meeting_local, left, pending),
            actor=ACTOR,
            app_id=first_app.id,
            release_id=first_release.id if len(waiting.releases) == 1 else None,
            recipient=who.email,
            person_id=who.slack_user_id,
            now=now,
        )
        if row is not None:
            queued.append(row)
    return queued


def next_meetings(session: Session, now: datetime) -> dict[datetime, list[App]]:
    """Each app's next train departure (its meeting time for now), apps grouped by it."""
    grouped: dict[datetime, list[App]] = {}
    for app in session.exec(select(App).order_by(col(App.id))).all():
        try:
            slot = trains.next_train_slot(session, app, after=now, horizon_weeks=2)
        except trains.TrainError:
            continue
        if slot is not None:
            grouped.setdefault(slot.at, []).append(app)
    return grouped


def periodic_reminders(ctx: jobs.JobContext) -> str:
    """Every ten minutes: the reminders of each coming train departure that are due."""
    queued = 0
    with db.session_scope() as session:
        for meeting_at, apps in next_meetings(session, ctx.now).items():
            releases = list(
                session.exec(
                    select(Release)
                    .where(
                        col(Release.app_id).in_([a.id for a in apps]),
                        col(Release.state).in_(AWAITING),
                    )
                    .order_by(col(Release.id))
                ).all()
            )
            if not releases:
                continue
            local = trains.train_slots(apps[0], start=meeting_at, weeks=1)[0].local
            queued += len(
                queue_meeting_reminders(
                    session,
                    meeting_at=meeting_at,
                    meeting_local=local,
                    releases=releases,
                    now=ctx.now,
                )
            )
    return f"{queued} reminders queued"


# --- the weekly straggler digest --------------------------------------------------------------


def digest_week(app: App, now: datetime) -> str | None:
    """The ISO week whose digest is due for ``app`` at ``now`` (Monday from 09:00 in the
    app's time zone, and later that week), or None when it is not due yet."""
    try:
        local = utc.aware(now).astimezone(trains.zone(app.train_timezone))
    except trains.TrainError:
        return None
    if (local.weekday(), local.hour) < (DIGEST_WEEKDAY, DIGEST_HOUR):
        return None
    year, week, _ = local.isocalendar()
    return f"{year}-W{week:02d}"


def queue_digest(session: Session, app: App, *, now: datetime) -> Notification | None:
    """The straggler digest of ``app`` for the week of ``now``, once a week; nothing when
    no store straggles."""
    week = digest_week(app, now)
    if week is None:
        return None
    key = f"digest:{app.slug}:{week}"
    if session.exec(select(Notification.id).where(Notification.dedupe_key == key)).first():
        return None
    report = adoption.stragglers(session, app, now=now, limit=DIGEST_STORES)
    if report.total_stores == 0:
        return None
    settings = outbox.settings_of()
    lines = [
        messages.StragglerLine(
            name=s.name,
            store_id=s.store_id,
            oldest_version=s.oldest_version,
            last_seen=s.last_seen,
            below_minimum="below_minimum" in s.reasons,
        )
        for s in report.stores
    ]
    text = messages.digest(
        app.name,
        week,
        report.total_stores,
        report.minimum_supported,
        report.behind_threshold,
        lines,
        f"{_base(settings)}/adoption/{app.slug}",
    )
    return outbox.record(
        session, event="digest", dedupe_key=key, text=text, actor=ACTOR, app_id=app.id, now=now
    )


def periodic_digest(ctx: jobs.JobContext) -> str:
    """Every hour: each app's weekly straggler digest, once it is due."""
    queued = 0
    with db.session_scope() as session:
        for app in session.exec(select(App).order_by(col(App.id))).all():
            if queue_digest(session, app, now=ctx.now) is not None:
                queued += 1
    return f"{queued} digests queued"


# --- the meeting's decisions --------------------------------------------------------------------


@dataclass(frozen=True)
class MeetingDecision:
    """One decision of a meeting, as the meeting feature gives it."""

    release_id: int
    decision: str  # go | go_with_conditions | no_go | defer
    reason: str
    decided_by: str  # an audit actor ("user:<email>") or an email


def notify_meeting_decisions(
    session: Session,
    *,
    meeting: str,
    decisions: Sequence[MeetingDecision],
    actor: str,
    meeting_url: str | None = None,
) -> list[Notification]:
    """Queue the meeting's decisions, one message per app, in the caller's transaction.
    ``meeting`` names it ("week of 2026-12-07"). The same decisions again record nothing;
    changed ones are a new message."""
    settings = outbox.settings_of()
    by_app: dict[int, tuple[App, list[messages.DecisionLine]]] = {}
    for d in decisions:
        release = session.get(Release, d.release_id)
        app = session.get(App, release.app_id) if release is not None else None
        if release is None or app is None:
            raise outbox.NotificationError(f"no release with id {d.release_id}", field="release_id")
        if d.decision not in messages.DECISION_LABELS:
            raise outbox.NotificationError(f"unknown decision {d.decision!r}", field="decision")
        who = d.decided_by if ":" in d.decided_by else f"user:{d.decided_by}"
        line = messages.DecisionLine(
            version=release.version,
            decision=d.decision,
            reason=d.reason,
            decided_by=messages.person_of(session, who),
            url=release_url(settings, release.id),
        )
        by_app.setdefault(app.id or 0, (app, []))[1].append(line)
    queued = []
    for app, lines in by_app.values():
        text = messages.meeting_decisions(app.name, meeting, lines, meeting_url)
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        row = outbox.record(
            session,
            event="meeting_decisions",
            dedupe_key=f"meeting:{meeting[:80]}:{app.slug}:{digest}",
            text=text,
            actor=actor,
            app_id=app.id,
        )
        if row is not None:
            queued.append(row)
    return queued
