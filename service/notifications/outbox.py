"""The outbox: a Slack message is a row written in the transaction of the event that causes
it, and the job worker sends it.

:func:`record` adds the row (and, when Slack is configured, its job) to the caller's
transaction: a decision that rolls back sends nothing, one that commits has its message
queued, and nothing in the request talks to Slack. A second record of the same event (its
``dedupe_key``) records nothing.

:func:`handle_send` is the job (kind ``slack_send``, one per message, key
``notification:<id>``):

1. (transaction) waits while the ``slack`` breaker is open; marks the row ``sending`` and
   stamps ``sending_since``;
2. (no transaction held) one call through ``slack_sdk``, bounded by
   ``SLACK_TIMEOUT_SECONDS``;
3. (transaction) ``sent`` with Slack's ``ts``; or the attempt is retried (429 honouring
   ``Retry-After``, 5xx, unreachable, a timeout: the breaker counts these) or fails for good
   (Slack refused it: ``channel_not_found``, ``invalid_auth``...).

An attempt that finds the row already ``sending`` follows one whose outcome is unknown (a
timeout after the message went out, or a worker that died mid-call). With the bot token it
first looks for the message in the channel's history by its metadata (the channel's id: the
one configured, or the one Slack gave when a message last went to that name) and, when
found, only records it as sent. Otherwise (the webhook, which has no history; the first
message ever to a channel given by name; no ``*:history`` scope) it sends again: such a
message can arrive twice, never zero times.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Flask, current_app, has_app_context
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from service import audit, db, jobs
from service.errors import DomainError
from service.jobs import breaker
from service.jobs.models import Job
from service.models import utcnow
from service.notifications import slack
from service.notifications.models import AppChannel, Notification
from service.releases.models import App
from service.settings import Settings

KIND = "slack_send"
BREAKER = "slack"
ACTOR = "system:slack"
MAX_ATTEMPTS = 8
STATE_LABELS = {
    "queued": "Queued",
    "sending": "Sending",
    "sent": "Sent",
    "failed": "Failed",
    "not_configured": "Not configured",
}
STATE_BADGES = {
    "queued": "info",
    "sending": "info",
    "sent": "good",
    "failed": "bad",
    "not_configured": "",
}
NOT_CONFIGURED = (
    "Slack is not configured: set SLACK_BOT_TOKEN (chat.postMessage to each app's channel) "
    "and/or SLACK_WEBHOOK_URL (the webhook's channel)"
)


def settings_of(app: Flask | None = None) -> Settings:
    """The app's settings; outside an app (a script) Slack counts as not configured."""
    if app is None and not has_app_context():
        return Settings()
    result: Settings = (app or current_app).config["RELGOV_SETTINGS"]
    return result


def job_key(notification_id: int | None) -> str:
    return f"notification:{notification_id}"


class NotificationError(DomainError):
    """A refused change to notifications (422 naming the field unless said otherwise)."""


# --- where a message goes ------------------------------------------------------------------


def app_channel(session: Session, app_id: int | None) -> AppChannel | None:
    return session.get(AppChannel, app_id) if app_id is not None else None


def route(
    settings: Settings,
    channel: str,
    *,
    person_id: str | None = None,
    unnamed: str = "the app's channel",
) -> tuple[str, str, str]:
    """(via, channel, what people are told) for a message to an app's ``channel`` ("" for
    none), or to a person's Slack member id ``person_id`` (a direct message; only the bot
    can send one: otherwise it goes where the app's messages go)."""
    bot, hook = bool(settings.slack_bot_token), bool(settings.slack_webhook_url)
    if person_id and bot:
        return "bot", person_id, f"direct message to <@{person_id}>"
    target = channel or settings.slack_default_channel
    if bot and target:
        return "bot", target, f"{target} (chat.postMessage)"
    if hook:
        return "webhook", "", "the incoming webhook's channel"
    if bot:
        return "none", "", "nowhere: set the app's channel or SLACK_DEFAULT_CHANNEL"
    where = f"{target}" if target else f"{unnamed} (none set)"
    return "none", channel, f"would go to {where}; Slack is not configured"


# --- recording -----------------------------------------------------------------------------


def record(
    session: Session,
    *,
    event: str,
    dedupe_key: str,
    text: str,
    actor: str,
    app_id: int | None = None,
    release_id: int | None = None,
    recipient: str | None = None,
    person_id: str | None = None,
    meeting_id: int | None = None,
    mentions: list[str] | None = None,
    payload: dict[str, Any] | None = None,
    channel: str | None = None,
    now: datetime | None = None,
) -> Notification | None:
    """Add the message to the caller's transaction (None when this event was recorded
    already). Queues its job when Slack is configured; otherwise it is kept as
    ``not_configured``, for people to see what would have gone. It goes to ``app_id``'s
    channel, or to ``channel`` when given (a weekly meeting's own messages:
    ``SLACK_MEETINGS_CHANNEL``)."""
    if session.exec(select(Notification.id).where(Notification.dedupe_key == dedupe_key)).first():
        return None
    settings = settings_of()
    unnamed = "the meetings channel"
    if channel is None:
        row = app_channel(session, app_id)
        channel, unnamed = (row.channel if row else ""), "the app's channel"
    via, channel, destination = route(settings, channel, person_id=person_id, unnamed=unnamed)
    now = now or utcnow()
    notification = Notification(
        dedupe_key=dedupe_key[:200],
        event=event,
        app_id=app_id,
        release_id=release_id,
        meeting_id=meeting_id,
        mentions=list(mentions or []),
        payload=dict(payload or {}),
        recipient=recipient,
        via=via,
        channel=channel,
        destination=destination[:300],
        text=text,
        state="queued" if via != "none" else "not_configured",
        last_error=None if via != "none" else _why_not(settings),
        actor=actor,
        created_at=now,
        updated_at=now,
    )
    try:
        with session.begin_nested():
            session.add(notification)
    except IntegrityError:  # the same event, recorded by a concurrent transaction
        return None
    if via != "none":
        _queue_job(session, notification, actor=actor, now=now)
    return notification


def _queue_job(
    session: Session,
    row: Notification,
    *,
    actor: str,
    run_now: bool = False,
    now: datetime | None = None,
) -> Job:
    return jobs.enqueue(
        session,
        KIND,
        key=job_key(row.id),
        payload={"notification_id": row.id},
        run_now=run_now,
        actor=actor,
        now=now,
    )


def _why_not(settings: Settings) -> str:
    if settings.slack_configured:
        return "no channel: set the app's Slack channel or SLACK_DEFAULT_CHANNEL"
    return NOT_CONFIGURED


# --- sending (the job) -----------------------------------------------------------------------


def _load(session: Session, job: Job) -> Notification:
    notification_id = job.payload.get("notification_id")
    row = session.get(Notification, notification_id) if isinstance(notification_id, int) else None
    if row is None:
        raise jobs.PermanentJobError(f"notification {notification_id} no longer exists")
    return row


def handle_send(ctx: jobs.JobContext) -> str:
    """One attempt to send one message (see the module docstring)."""
    settings = settings_of(ctx.app)
    with db.session_scope() as session:
        row = _load(session, ctx.job)
        if row.state == "sent":
            return "already sent"
        if row.state == "not_configured":  # set never to be sent (the demo's history)
            return f"not to be sent: {row.last_error or ''}"
        if not settings.slack_configured:
            raise jobs.PermanentJobError(NOT_CONFIGURED)
        # While the breaker is open, every message waits with it.
        jobs.wait_for_breaker(session, BREAKER, system="Slack", kinds=(KIND,), now=ctx.now)
        earlier = row.sending_since if row.state == "sending" else None
        out = slack.Outgoing(
            notification_id=row.id or 0,
            via=row.via,
            channel=row.channel,
            text=row.text,
            known_channel_id=_known_channel_id(session, row) if earlier else None,
        )
        # After an unknown outcome the first attempt's time stays: the lookup starts there.
        row.state, row.sending_since = "sending", earlier or ctx.now
        row.attempts += 1
        row.updated_at = ctx.now
        session.add(row)
    try:
        found = slack.find_sent(settings, out, earlier) if earlier is not None else None
        delivered = found or slack.send(settings, out)
    except slack.SlackFailure as exc:
        with db.session_scope() as session:
            if exc.transient:
                breaker.record_failure(session, BREAKER, exc.message, now=ctx.now)
            else:  # Slack answered: it is up
                breaker.record_success(session, BREAKER, now=ctx.now)
            if not exc.unknown and earlier is None:
                # Slack has not got it: the next attempt just sends. (After an unknown
                # outcome the row stays "sending", so the next attempt looks first again.)
                row = _load(session, ctx.job)
                row.state, row.sending_since = "queued", None
                session.add(row)
        if exc.transient:
            raise jobs.RetryJob(exc.message, retry_after=exc.retry_after) from exc
        raise jobs.PermanentJobError(exc.message) from exc
    with db.session_scope() as session:
        breaker.record_success(session, BREAKER, now=ctx.now)
        row = _load(session, ctx.job)
        row.state, row.sent_at, row.updated_at = "sent", ctx.now, ctx.now
        row.slack_ts, row.slack_channel = delivered.ts, delivered.channel
        row.last_error = None
        session.add(row)
    how = "found in the channel, not sent again" if found else "sent"
    return f"{how} to {row.destination}" + (f" (ts {delivered.ts})" if delivered.ts else "")


def _known_channel_id(session: Session, row: Notification) -> str | None:
    """The id Slack gave for ``row``'s channel when a message last went there."""
    found = session.exec(
        select(Notification.slack_channel)
        .where(
            Notification.channel == row.channel,
            Notification.via == "bot",
            col(Notification.slack_channel).is_not(None),
        )
        .order_by(col(Notification.id).desc())
        .limit(1)
    ).first()
    return found or None


def on_send_error(session: Session, job: Job, message: str, final: bool) -> None:
    """A failed attempt, in the transaction that records it: the row says so."""
    notification_id = job.payload.get("notification_id")
    row = session.get(Notification, notification_id) if isinstance(notification_id, int) else None
    if row is None:
        return
    row.last_error = message[:2000]
    row.updated_at = utcnow()
    if final:
        before = row.state
        row.state = "failed"
        audit.record(
            session,
            actor=ACTOR,
            action="notification.failed",
            subject_type="notification",
            subject_id=row.id,
            before={"state": before},
            after={"state": "failed", "error": message[:500], "job": job.id},
            summary=f"Slack message #{row.id} ({row.event}) was not sent: {message[:200]}",
            highlight=True,
        )
    session.add(row)


def resend(session: Session, row: Notification, *, actor: str) -> Notification:
    """Queue a failed (or never configured) message again, as a person asked."""
    settings = settings_of()
    if row.state in ("queued", "sending"):
        raise NotificationError("this message is waiting to be sent already", status=409)
    if row.state == "sent":
        raise NotificationError("this message was sent already", status=409)
    if not settings.slack_configured:
        raise NotificationError(NOT_CONFIGURED, status=409)
    if row.meeting_id is not None and row.app_id is None:  # the meeting's own message
        target = settings.slack_meetings_channel
    else:
        found = app_channel(session, row.app_id)
        target = found.channel if found else ""
    person = row.channel if row.via == "bot" and slack.is_member_id(row.channel) else None
    via, channel, destination = route(settings, target, person_id=person)
    if via == "none":
        raise NotificationError(destination, status=409)
    before = row.state
    row.via, row.channel, row.destination = via, channel, destination[:300]
    row.state, row.sending_since, row.updated_at = "queued", None, utcnow()
    session.add(row)
    _queue_job(session, row, actor=actor, run_now=True)
    audit.record(
        session,
        actor=actor,
        action="notification.resend",
        subject_type="notification",
        subject_id=row.id,
        before={"state": before},
        after={"state": "queued", "destination": row.destination},
        summary=f"Slack message #{row.id} ({row.event}) queued again to {row.destination}",
    )
    return row


def link_base(settings: Settings) -> str:
    """The service's address for links in messages (``RELGOV_BASE_URL``, no trailing slash)."""
    return settings.base_url.rstrip("/")


def incident_threshold_of(row: AppChannel | None, settings: Settings) -> int:
    """The score from which an app's incidents are announced: its own, else the setting's."""
    if row is not None and row.incident_min_score is not None:
        return row.incident_min_score
    return settings.slack_incident_min_score


def never_send(session: Session, *where: Any, reason: str) -> int:
    """Mark the waiting messages matching ``where`` never to be sent (``not_configured``,
    ``reason`` said); a job already queued for one finds it so and does nothing."""
    rows = session.exec(
        select(Notification).where(col(Notification.state) == "queued", *where)
    ).all()
    for row in rows:
        row.state, row.via, row.last_error = "not_configured", "none", reason[:2000]
        row.updated_at = utcnow()
        session.add(row)
    return len(rows)


# --- status for pages and the API --------------------------------------------------------


def recent(
    session: Session,
    *,
    limit: int = 100,
    state: str | None = None,
    event: str | None = None,
    app_id: int | None = None,
    before_id: int | None = None,
) -> list[Notification]:
    stmt = select(Notification).order_by(col(Notification.id).desc()).limit(limit)
    if state:
        stmt = stmt.where(Notification.state == state)
    if event:
        stmt = stmt.where(Notification.event == event)
    if app_id is not None:
        stmt = stmt.where(Notification.app_id == app_id)
    if before_id is not None:
        stmt = stmt.where(col(Notification.id) < before_id)
    return list(session.exec(stmt).all())


def counts(session: Session) -> dict[str, int]:
    rows = session.exec(
        select(Notification.state, func.count()).group_by(col(Notification.state))
    ).all()
    return {state: int(n) for state, n in rows}


def configuration(session: Session, settings: Settings | None = None) -> dict[str, Any]:
    """What the pages say about where messages go."""
    settings = settings or settings_of()
    apps = session.exec(select(App).order_by(col(App.name))).all()
    channels = {row.app_id: row for row in session.exec(select(AppChannel)).all()}
    per_app = []
    for app in apps:
        row = channels.get(app.id or 0)
        via, _, destination = route(settings, row.channel if row else "")
        per_app.append(
            {
                "app": app,
                "channel": row.channel if row else "",
                "incident_min_score": incident_threshold_of(row, settings),
                "own_threshold": bool(row and row.incident_min_score is not None),
                "via": via,
                "destination": destination,
            }
        )
    state = breaker.current(session, BREAKER)
    return {
        "configured": settings.slack_configured,
        "bot": bool(settings.slack_bot_token),
        "webhook": bool(settings.slack_webhook_url),
        "base_url": settings.slack_base_url,
        "default_channel": settings.slack_default_channel,
        "timeout_seconds": settings.slack_timeout_seconds,
        "incident_min_score": settings.slack_incident_min_score,
        "reminder_hours": settings.slack_reminder_hours,
        "apps": per_app,
        "breaker": {
            "state": state.state,
            "open": state.state != "closed",
            "failures": state.failures,
            "retry_at": state.retry_at,
            "last_error": state.last_error,
        },
    }
