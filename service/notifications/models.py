"""The outbox of Slack messages, each app's channel, and who is who on Slack."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text
from sqlmodel import Field, SQLModel

from service.models import utcnow

# queued: waiting for the worker; sending: an attempt is under way (or its worker died in
# it); sent; failed (for good, the error says why); not_configured: recorded while Slack was
# not configured, kept so an admin sees what would have gone.
STATES = ("queued", "sending", "sent", "failed", "not_configured")
EVENTS = (
    "approved",
    "rejected",
    "halted",
    "incident",
    "publish_failed",
    "reminder",
    "digest",
    # The weekly meeting's events (service/meetings/notifications.py).
    "meeting_opened",
    "meeting_decided",
    "meeting_amended",
    "meeting_closed",
    "meeting_action_item_created",
    "meeting_action_item_closed",
)
MEETING_EVENT_PREFIX = "meeting_"
# How a message travels: chat.postMessage with the bot token, the incoming webhook, or
# nowhere yet (Slack not configured).
VIAS = ("bot", "webhook", "none")


class Notification(SQLModel, table=True):
    """One Slack message, written in the transaction of the event that causes it."""

    __tablename__ = "notification"
    __table_args__ = (Index("ix_notification_state_created", "state", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    # One message per event: a second write of the same event (a retried request, a
    # periodic job running twice) finds this key taken and records nothing.
    dedupe_key: str = Field(max_length=200, unique=True)
    event: str = Field(max_length=32, index=True)
    app_id: int | None = Field(default=None, foreign_key="app.id", index=True)
    release_id: int | None = Field(default=None, foreign_key="release.id", index=True)
    # The weekly meeting whose event this tells (its week page lists its messages).
    meeting_id: int | None = Field(default=None, foreign_key="meeting.id", index=True)
    # The people it names (emails; mentioned through the email → Slack member mapping),
    # and the event as data (a meeting's messages carry it for the API).
    mentions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # The person a reminder is for (email), if any.
    recipient: str | None = Field(default=None, max_length=254)
    via: str = Field(default="none", max_length=16)
    # A channel name or id ("#pos-releases", "C0123"), a Slack user id for a direct
    # message, or "" for the webhook's own channel.
    channel: str = Field(default="", max_length=200)
    destination: str = Field(default="", max_length=300)  # said to people: where it goes
    text: str = Field(sa_column=Column(Text, nullable=False))
    state: str = Field(default="queued", max_length=16)
    attempts: int = 0
    # When the current attempt started sending: set before the call, so an attempt that
    # finds it set knows an earlier one may have reached Slack.
    sending_since: datetime | None = None
    last_error: str | None = Field(default=None, max_length=2000)
    slack_ts: str | None = Field(default=None, max_length=64)
    slack_channel: str | None = Field(default=None, max_length=64)
    actor: str = Field(max_length=254)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None


class AppChannel(SQLModel, table=True):
    """Where an app's messages go, and from which incident score they are sent."""

    __tablename__ = "notification_app_channel"

    app_id: int = Field(foreign_key="app.id", primary_key=True)
    channel: str = Field(default="", max_length=200)  # "" : the default channel / the webhook's
    incident_min_score: int | None = None  # None: SLACK_INCIDENT_MIN_SCORE
    updated_by: str = Field(max_length=254)
    updated_at: datetime = Field(default_factory=utcnow)


class SlackUser(SQLModel, table=True):
    """Email → Slack member id, so a message mentions the person (``<@U0123>``)."""

    __tablename__ = "notification_slack_user"

    email: str = Field(max_length=254, primary_key=True)  # lower-case
    slack_user_id: str = Field(max_length=32)
    updated_by: str = Field(max_length=254)
    updated_at: datetime = Field(default_factory=utcnow)
