"""What the meeting tells the team on Slack: one message per meeting event, written to the
Slack outbox (``service/notifications/outbox.py``) in the event's transaction and sent by
the job worker, like every other Slack message.

Nothing here talks to Slack: recording is a row (and its job) in the same transaction as the
decision, so Slack being slow or down never holds a decision up. A release's message goes to
its app's channel; the meeting's own (opened, closed) to ``SLACK_MEETINGS_CHANNEL`` (else
``SLACK_DEFAULT_CHANNEL`` or the webhook's). People are mentioned through the email → Slack
member mapping (named in plain text when not mapped); what people typed is escaped. The
outbox's key names the event (``meeting:decided:42``), so recording the same event twice
records one message.

Events: the meeting opened, a release decided (or the decision amended after the meeting
closed), an action item created or closed, the meeting closed (its decisions in one message).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

import utc
from service import timezones
from service.meetings.models import (
    DECISION_LABELS,
    Meeting,
    MeetingDecision,
    MeetingItem,
)
from service.meetings.services import MeetingEvent
from service.models import User, utcnow
from service.notifications import messages, outbox
from service.notifications.models import MEETING_EVENT_PREFIX, Notification
from service.releases.models import App, Release

MEETINGS_CHANNEL = "meetings"
# Slack's emoji codes (Slack shows the emoji; the pages leave them out).
DECISION_ICONS = {
    "go": ":white_check_mark:",
    "go_with_conditions": ":ballot_box_with_check:",
    "no_go": ":no_entry:",
    "defer": ":next_track_button:",
}
KEY_PREFIX = "meeting:"


def week_path(meeting: Meeting, release_id: int | None = None) -> str:
    return f"/meetings/{meeting.week}" + (f"#release-{release_id}" if release_id else "")


def record(session: Session, event: MeetingEvent) -> None:
    """The meeting reaction (``service/wiring.py`` ``MEETING_REACTIONS``): the message for
    ``event`` into the Slack outbox, once."""
    made = _message(session, event)
    if made is None:
        return
    key, at, channel, text, mentions, payload, release_id = made
    app = (
        session.exec(select(App).where(App.slug == channel)).first()
        if channel != MEETINGS_CHANNEL
        else None
    )
    settings = outbox.settings_of()
    payload = {
        **payload,
        "channel": channel,
        "url": outbox.link_base(settings) + str(payload["path"]),
    }
    outbox.record(
        session,
        event=MEETING_EVENT_PREFIX + event.kind,
        dedupe_key=KEY_PREFIX + key,
        text=text + f"\n{messages.link(payload['url'], 'Open the meeting')}",
        actor=event.actor,
        app_id=app.id if app else None,
        release_id=release_id,
        meeting_id=event.meeting.id,
        mentions=mentions,
        payload=payload,
        channel=None if app else settings.slack_meetings_channel,
        now=utc.aware(at),
    )


Message = tuple[str, datetime, str, str, list[str], dict[str, Any], int | None]


def _message(session: Session, event: MeetingEvent) -> Message | None:
    meeting = event.meeting
    base: dict[str, Any] = {"week": meeting.week, "actor": event.actor}
    if event.kind in ("decided", "amended") and event.decision and event.release:
        d, release = event.decision, event.release
        app = session.get(App, release.app_id)
        assert app is not None
        label = DECISION_LABELS[d.decision]
        effect = d.effect or {}
        moved = effect.get("state")
        by = _person(session, d.decided_by)
        text = (
            f"{DECISION_ICONS[d.decision]} {messages.release_title(app.name, release.version)}: "
            f"*{label}* "
            + ("(amended after the meeting) " if d.amendment else "")
            + f"in the release meeting of {meeting.week}, by {by.mention}.\n"
            + f"Reason: {messages.escape(d.reason)}"
            + (f"\nConditions: {messages.escape(d.conditions)}" if d.conditions else "")
            + (f"\nThe release is now {moved[1].replace('_', ' ')}." if moved else "")
            + (
                "\nNext train: "
                + timezones.text(
                    datetime.fromisoformat(effect["scheduled_for"][1]), app.train_timezone, "day"
                )
                if d.decision == "defer" and (effect.get("scheduled_for") or [None, None])[1]
                else ""
            )
        )
        payload = {
            **base,
            "app": app.slug,
            "release_id": release.id,
            "version": release.version,
            "decision": d.decision,
            "label": label,
            "reason": d.reason,
            "conditions": d.conditions,
            "decided_by": d.decided_by,
            "amendment": d.amendment,
            "effect": effect,
            "path": week_path(meeting, release.id),
        }
        return (
            f"{event.kind}:{d.id}",
            utc.aware(d.at),
            app.slug,
            text,
            [by.email] if by.email else [],
            payload,
            release.id,
        )
    if event.kind in ("action_item_created", "action_item_closed") and event.action_item:
        item = event.action_item
        owner = session.get(User, item.owner_id)
        email = owner.email if owner else ""
        about_release = session.get(Release, item.release_id) if item.release_id else None
        app = session.get(App, about_release.app_id) if about_release else None
        about = (
            f" ({messages.escape(app.name)} {messages.escape(about_release.version)})"
            if app and about_release
            else ""
        )
        who = _person(session, email)
        if event.kind == "action_item_created":
            at = utc.aware(item.created_at)
            text = (
                f":memo: New action item for {who.mention}{about}: "
                f"*{messages.escape(item.title)}*, due "
                f"{item.due_on.isoformat()} (release meeting {meeting.week})."
            )
        else:
            at = utc.aware(item.closed_at or utcnow())
            closer = _person(session, item.closed_by or event.actor)
            text = (
                f":heavy_check_mark: Action item closed by {closer.mention}{about}: "
                f"*{messages.escape(item.title)}*"
                + (f" — {messages.escape(item.close_note)}" if item.close_note else "")
            )
        payload = {
            **base,
            "action_item_id": item.id,
            "title": item.title,
            "owner": email,
            "due_on": item.due_on.isoformat(),
            "closed": item.closed_at is not None,
            "close_note": item.close_note,
            "path": week_path(meeting) + "#actions",
        }
        return (
            f"{event.kind}:{item.id}",
            at,
            app.slug if app else MEETINGS_CHANNEL,
            text,
            [email] if email else [],
            payload,
            item.release_id,
        )
    if event.kind == "opened":
        count = len(
            session.exec(select(MeetingItem.id).where(MeetingItem.meeting_id == meeting.id)).all()
        )
        text = (
            f":clipboard: The release meeting of {meeting.week} is open "
            f"({_person(session, meeting.opened_by).mention}): "
            f"{count} release{'s' if count != 1 else ''} on the agenda."
        )
        payload = {**base, "releases": count, "path": week_path(meeting)}
        return (
            f"opened:{meeting.id}",
            utc.aware(meeting.opened_at),
            MEETINGS_CHANNEL,
            text,
            [],
            payload,
            None,
        )
    if event.kind == "closed":
        return _closed(session, meeting, base)
    return None


def _closed(session: Session, meeting: Meeting, base: dict[str, Any]) -> Message:
    rows = session.exec(
        select(MeetingDecision, Release, App)
        .join(Release, col(Release.id) == col(MeetingDecision.release_id))
        .join(App, col(App.id) == col(Release.app_id))
        .where(MeetingDecision.meeting_id == meeting.id)
        .order_by(col(MeetingDecision.id))
    ).all()
    latest: dict[int, tuple[MeetingDecision, Release, App]] = {}
    for decision, release, app in rows:
        latest[release.id or 0] = (decision, release, app)
    counts = Counter(d.decision for d, _, _ in latest.values())
    lines = [
        f"• {DECISION_ICONS[d.decision]} {messages.escape(app.name)} "
        f"{messages.escape(release.version)}: {DECISION_LABELS[d.decision]}"
        + (f" — {messages.escape(d.conditions)}" if d.conditions else "")
        for d, release, app in sorted(latest.values(), key=lambda r: (r[2].name, r[1].version))
    ]
    summary = ", ".join(
        f"{counts[k]} {DECISION_LABELS[k].lower()}" for k in DECISION_LABELS if counts[k]
    )
    text = (
        f":checkered_flag: The release meeting of {meeting.week} is closed "
        f"({_person(session, meeting.closed_by or '').mention}): "
        + (summary or "no decision")
        + "."
        + ("\n" + "\n".join(lines) if lines else "")
    )
    payload = {
        **base,
        "decisions": [
            {
                "app": app.slug,
                "release_id": release.id,
                "version": release.version,
                "decision": d.decision,
                "conditions": d.conditions,
            }
            for d, release, app in latest.values()
        ],
        "path": week_path(meeting),
    }
    return (
        f"closed:{meeting.id}",
        utc.aware(meeting.closed_at or utcnow()),
        MEETINGS_CHANNEL,
        text,
        [],
        payload,
        None,
    )


def _person(session: Session, who: str) -> messages.Person:
    """An audit actor (``user:rm@example.com``) or an email, as Slack names them."""
    if "@" in who and ":" not in who:
        who = f"user:{who}"
    return messages.person_of(session, who)


@dataclass(frozen=True)
class MeetingMessage:
    """One of a meeting's Slack messages, as its week page and API show it."""

    id: int
    event: str  # opened, decided, amended, closed, action_item_created, action_item_closed
    channel: str  # an app's slug, or ``meetings``
    destination: str  # where it goes (or would go)
    text: str  # Slack mrkdwn
    mentions: list[str]
    payload: dict[str, Any]
    at: datetime
    state: str  # queued | sending | sent | failed | not_configured
    state_label: str
    attempts: int
    error: str | None
    sent_at: datetime | None
    release_id: int | None


def for_meeting(session: Session, meeting: Meeting) -> list[MeetingMessage]:
    """The Slack messages of a meeting's events, in their order, with their delivery state."""
    rows = session.exec(
        select(Notification)
        .where(Notification.meeting_id == meeting.id)
        .order_by(col(Notification.created_at), col(Notification.id))
    ).all()
    return [
        MeetingMessage(
            id=row.id or 0,
            event=row.event.removeprefix(MEETING_EVENT_PREFIX),
            channel=str(row.payload.get("channel") or MEETINGS_CHANNEL),
            destination=row.destination,
            text=row.text,
            mentions=list(row.mentions),
            payload=dict(row.payload),
            at=utc.aware(row.created_at),
            state=row.state,
            state_label=outbox.STATE_LABELS.get(row.state, row.state),
            attempts=row.attempts,
            error=row.last_error,
            sent_at=row.sent_at,
            release_id=row.release_id,
        )
        for row in rows
    ]
