"""What the team hears on Slack, and when: each event becomes an outbox row
(:func:`service.notifications.outbox.record`) in the transaction that caused it.

- :func:`on_audit_event` (an audit listener, named in ``service/wiring.py``): approvals,
  rejections, halts, incidents at or above the app's score, Notion publish failures: every
  one of them is an audited change, so the message is written with its audit event;
- :func:`queue_meeting_reminders`: ``SLACK_REMINDER_HOURS`` before the next weekly meeting
  (``RELGOV_MEETING_TIME`` in the meeting's zone), one reminder per person with a sign-off
  that meeting waits for (their "Waiting for you", ``service/meetings/inbox.py``);
  :func:`periodic_reminders` calls it every ten minutes;
- :func:`periodic_digest`: the weekly straggler digest of each app.

The weekly meeting's own events (opened, decided, closed, action items) are written to the
same outbox by ``service/meetings/notifications.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

import utc
from service import audit, db, jobs, timezones
from service.adoption import services as adoption
from service.incidents.models import Incident
from service.meetings import inbox, weeks
from service.models import AuditEvent, User, utcnow
from service.notifications import messages, outbox
from service.notifications.models import Notification
from service.releases import trains
from service.releases.models import App, Release
from service.settings import Settings

ACTOR = "system:notifications"
REMINDER_EVERY_SECONDS = 600.0
DIGEST_EVERY_SECONDS = 3600.0
# The weekly digest goes out on Monday from 09:00 in each app's train time zone.
DIGEST_WEEKDAY, DIGEST_HOUR = 0, 9
DIGEST_STORES = 10


def release_url(settings: Settings, release_id: int | None) -> str:
    return f"{outbox.link_base(settings)}/releases/{release_id}"


# --- audited events -------------------------------------------------------------------------


def on_audit_event(session: Session, event: AuditEvent) -> None:
    """Audit listener: the events the team hears about (others are ignored)."""
    if event.action in ("release.approve", "release.reject", "release.halt"):
        if audit.is_told_elsewhere(session, event):
            return  # e.g. a meeting's go or no-go: its decision message tells it
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
    return outbox.incident_threshold_of(outbox.app_channel(session, app_id), settings)


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
        f"{outbox.link_base(settings)}/incidents/{incident.id}",
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
    """A person whose sign-off the next meeting waits for, and on what."""

    user: User
    releases: tuple[tuple[Release, App, tuple[str, ...]], ...]


def pending_sign_offs(
    session: Session, upcoming: inbox.NextMeeting, now: datetime
) -> list[Waiting]:
    """Each active person with a sign-off the ``upcoming`` meeting needs, as their
    "Waiting for you" (``service/meetings/inbox.py``) says: a manual item their role owns on
    a release in draft or review whose train is that meeting's (or has left), unsigned."""
    apps = {a.slug: a for a in session.exec(select(App)).all()}
    out = []
    for user in session.exec(
        select(User).where(col(User.active).is_(True)).order_by(col(User.email))
    ).all():
        grouped: dict[int, tuple[Release, App, list[str]]] = {}
        for entry in inbox.inbox(session, user, now=now).entries:
            if entry.kind != "sign_off" or entry.week != upcoming.week or not entry.release_id:
                continue
            release = session.get(Release, entry.release_id)
            app = apps.get(entry.app_slug or "")
            if release is None or app is None:
                continue
            title = entry.title.split(": ", 1)[-1]
            if entry.detail.startswith("optional"):
                title += " (optional)"
            grouped.setdefault(release.id or 0, (release, app, []))[2].append(title)
        if grouped:
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
    session: Session, *, now: datetime | None = None, hours_before: float | None = None
) -> list[Notification]:
    """Queue one reminder per person with a sign-off pending for the next weekly meeting
    (``RELGOV_MEETING_TIME`` in the meeting's zone, ``service/meetings/inbox.py``
    ``next_meeting``), once ``now`` is within ``hours_before`` (``SLACK_REMINDER_HOURS``)
    of it. Once per person and meeting, however often called."""
    settings = outbox.settings_of()
    now = utc.aware(now or utcnow())
    hours = hours_before if hours_before is not None else float(settings.slack_reminder_hours)
    upcoming = inbox.next_meeting(session, now=now)
    if upcoming.state == "closed" or not reminder_due(upcoming.at, now, hours):
        return []
    left = (upcoming.at - now).total_seconds() / 3600
    stamp = f"{upcoming.at:%Y-%m-%dT%H:%MZ}"
    meeting_local = timezones.text(upcoming.at, upcoming.zone, "%a %Y-%m-%d %H:%M")
    meeting_url = f"{outbox.link_base(settings)}/meetings/{upcoming.week.label}"
    queued = []
    for waiting in pending_sign_offs(session, upcoming, now):
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
            text=messages.reminder(who, meeting_local, left, pending, meeting_url),
            actor=ACTOR,
            app_id=first_app.id,
            release_id=first_release.id if len(waiting.releases) == 1 else None,
            recipient=who.email,
            person_id=who.slack_user_id,
            mentions=[who.email],
            payload={"week": upcoming.week.label, "meeting_at": upcoming.at.isoformat()},
            now=now,
        )
        if row is not None:
            queued.append(row)
    return queued


def periodic_reminders(ctx: jobs.JobContext) -> str:
    """Every ten minutes: the reminders before the next weekly meeting, once they are due."""
    with db.session_scope() as session:
        queued = len(queue_meeting_reminders(session, now=ctx.now))
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
    return weeks.week_of(local.date()).label


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
        f"{outbox.link_base(settings)}/adoption/{app.slug}",
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
