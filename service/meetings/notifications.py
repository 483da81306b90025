"""What the meeting would tell the team in chat: one message per meeting event, recorded in
the event's transaction (``meeting_notification``), for a sender to post later.

Nothing here talks to Slack: recording is a row in the same transaction as the decision, so
chat being slow or down can never hold a decision up. A sender (the job worker) picks the
``pending`` rows, maps ``channel`` (an app's slug, or ``meetings``) to a chat channel and
the ``mentions`` (emails) to chat users, posts ``text`` and sets ``sent_at``. ``key`` names
the event (``decided:42``), so recording the same event twice records one message.

Events: the meeting opened, a release decided (or the decision amended after the meeting
closed), an action item created or closed, the meeting closed (its decisions in one message).
"""

from __future__ import annotations

from collections import Counter
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
    MeetingNotification,
)
from service.meetings.services import MeetingEvent
from service.models import User, utcnow
from service.releases.models import App, Release

MEETINGS_CHANNEL = "meetings"
# Slack's emoji codes (Slack shows the emoji; anywhere else the text still reads).
DECISION_ICONS = {
    "go": ":white_check_mark:",
    "go_with_conditions": ":ballot_box_with_check:",
    "no_go": ":no_entry:",
    "defer": ":next_track_button:",
}


def week_path(meeting: Meeting, release_id: int | None = None) -> str:
    return f"/meetings/{meeting.week}" + (f"#release-{release_id}" if release_id else "")


def record(session: Session, event: MeetingEvent) -> None:
    """The meeting reaction (``service/wiring.py`` ``MEETING_REACTIONS``): record the message
    for ``event``, once."""
    made = _message(session, event)
    if made is None:
        return
    key, at, channel, text, mentions, payload, release_id = made
    if session.exec(select(MeetingNotification.id).where(MeetingNotification.key == key)).first():
        return
    session.add(
        MeetingNotification(
            key=key,
            event=event.kind,
            meeting_id=event.meeting.id or 0,
            release_id=release_id,
            channel=channel,
            text=text,
            mentions=mentions,
            payload=payload,
            at=at,
        )
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
        text = (
            f"{DECISION_ICONS[d.decision]} *{app.name} {release.version}*: *{label}* "
            + ("(amended after the meeting) " if d.amendment else "")
            + f"in the release meeting of {meeting.week}, by {_who(d.decided_by)}.\n"
            + f"Reason: {d.reason}"
            + (f"\nConditions: {d.conditions}" if d.conditions else "")
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
            [],
            payload,
            release.id,
        )
    if event.kind in ("action_item_created", "action_item_closed") and event.action_item:
        item = event.action_item
        owner = session.get(User, item.owner_id)
        email = owner.email if owner else ""
        about_release = session.get(Release, item.release_id) if item.release_id else None
        app = session.get(App, about_release.app_id) if about_release else None
        about = f" ({app.name} {about_release.version})" if app and about_release else ""
        if event.kind == "action_item_created":
            at = utc.aware(item.created_at)
            text = (
                f":memo: New action item for @{email}{about}: *{item.title}*, due "
                f"{item.due_on.isoformat()} (release meeting {meeting.week})."
            )
        else:
            at = utc.aware(item.closed_at or utcnow())
            text = (
                ":heavy_check_mark: Action item closed by "
                f"{_who(item.closed_by or event.actor)}{about}: "
                f"*{item.title}*" + (f" — {item.close_note}" if item.close_note else "")
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
            f"({_who(meeting.opened_by)}): {count} release{'s' if count != 1 else ''} on "
            "the agenda."
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
        f"• {DECISION_ICONS[d.decision]} {app.name} {release.version}: "
        f"{DECISION_LABELS[d.decision]}" + (f" — {d.conditions}" if d.conditions else "")
        for d, release, app in sorted(latest.values(), key=lambda r: (r[2].name, r[1].version))
    ]
    summary = ", ".join(
        f"{counts[k]} {DECISION_LABELS[k].lower()}" for k in DECISION_LABELS if counts[k]
    )
    text = (
        f":checkered_flag: The release meeting of {meeting.week} is closed "
        f"({_who(meeting.closed_by or '')}): "
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


def _who(actor: str) -> str:
    """``user:rm@example.com`` → ``rm@example.com``."""
    return actor.split(":", 1)[1] if actor.startswith("user:") else actor


def for_meeting(session: Session, meeting: Meeting) -> list[MeetingNotification]:
    """The messages a meeting recorded, in the order of their events."""
    return list(
        session.exec(
            select(MeetingNotification)
            .where(MeetingNotification.meeting_id == meeting.id)
            .order_by(col(MeetingNotification.at), col(MeetingNotification.id))
        ).all()
    )


def mark_not_sent(session: Session) -> int:
    """Mark every pending message as ``not_sent`` (the demo's history: never to be sent)."""
    rows = session.exec(
        select(MeetingNotification).where(MeetingNotification.state == "pending")
    ).all()
    for row in rows:
        row.state = "not_sent"
        session.add(row)
    return len(rows)
