"""Changing where messages go: each app's Slack channel and incident score, and the email →
Slack member mapping. Every change is audited."""

from __future__ import annotations

import re

from sqlmodel import Session, col, select

from service import audit
from service.models import User, utcnow
from service.notifications.models import AppChannel, SlackUser
from service.notifications.outbox import NotificationError
from service.releases.models import App

# "#releases-pos", "releases-pos" or an id (C0123ABCD); Slack's names: lower-case letters,
# digits, - and _, at most 80.
_CHANNEL = re.compile(r"#?[a-z0-9][a-z0-9_-]{0,79}|[CG][A-Z0-9]{6,20}")
_MEMBER = re.compile(r"[UW][A-Z0-9]{6,20}")


def check_channel(text: str) -> str:
    channel = text.strip()
    if channel and not _CHANNEL.fullmatch(channel):
        raise NotificationError(
            "a Slack channel is a name such as #pos-releases (lower-case letters, digits, - "
            "and _) or a channel id such as C0123ABCD",
            field="channel",
        )
    if channel and not channel.startswith("#") and not re.fullmatch(r"[CG][A-Z0-9]+", channel):
        channel = f"#{channel}"
    return channel


def check_score(value: int | None) -> int | None:
    if value is not None and not 1 <= value <= 15:
        raise NotificationError(
            "an incident score is from 1 to 15 (impact 1, 3 or 5 × scope 1 to 3)",
            field="incident_min_score",
        )
    return value


def set_app_channel(
    session: Session,
    app: App,
    *,
    channel: str,
    incident_min_score: int | None,
    actor: str,
) -> AppChannel:
    """Where ``app``'s messages go ("" : the default channel or the webhook's) and from which
    incident score incidents are announced (None: ``SLACK_INCIDENT_MIN_SCORE``)."""
    channel = check_channel(channel)
    score = check_score(incident_min_score)
    row = session.get(AppChannel, app.id)
    before = {"channel": row.channel, "incident_min_score": row.incident_min_score} if row else None
    if row is None:
        row = AppChannel(app_id=app.id or 0, updated_by=actor)
    after = {"channel": channel, "incident_min_score": score}
    if before == after:
        return row
    row.channel, row.incident_min_score = channel, score
    row.updated_by, row.updated_at = actor, utcnow()
    session.add(row)
    audit.record(
        session,
        actor=actor,
        action="notification.app_channel",
        subject_type="app",
        subject_id=app.slug,
        before=before,
        after=after,
        summary=f"Slack for {app.name}: channel {channel or '(default)'}, incidents from score "
        + (str(score) if score is not None else "(default)"),
    )
    return row


def check_member_id(text: str) -> str:
    value = text.strip().upper()
    if value and not _MEMBER.fullmatch(value):
        raise NotificationError(
            "a Slack member id looks like U0123ABCD (Slack: the person's profile → ⋮ → Copy "
            "member ID)",
            field="slack_user_id",
        )
    return value


def person_by_email(session: Session, email: str) -> User:
    user = session.exec(select(User).where(col(User.email) == email.strip().lower())).first()
    if user is None:
        raise NotificationError(f"no person with the email {email.strip()!r}", field="email")
    return user


def set_slack_user(session: Session, *, email: str, slack_user_id: str, actor: str) -> User:
    """Map a person's email to their Slack member id ("" removes it)."""
    user = person_by_email(session, email)
    member = check_member_id(slack_user_id)
    key = user.email.lower()
    row = session.get(SlackUser, key)
    before = row.slack_user_id if row else ""
    if before == member:
        return user
    if member:
        row = row or SlackUser(email=key, slack_user_id=member, updated_by=actor)
        row.slack_user_id, row.updated_by, row.updated_at = member, actor, utcnow()
        session.add(row)
    elif row is not None:
        session.delete(row)
    audit.record(
        session,
        actor=actor,
        action="notification.slack_user",
        subject_type="user",
        subject_id=user.id,
        before={"email": key, "slack_user_id": before or None},
        after={"email": key, "slack_user_id": member or None},
        summary=f"Slack member of {key}: {member or '(none: named in plain text)'}",
    )
    return user


def slack_people(session: Session) -> list[tuple[User, str]]:
    """Every person and their Slack member id ("" when unmapped)."""
    mapped = {row.email: row.slack_user_id for row in session.exec(select(SlackUser)).all()}
    users = session.exec(select(User).order_by(col(User.active).desc(), col(User.email))).all()
    return [(user, mapped.get(user.email.lower(), "")) for user in users]
