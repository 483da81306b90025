"""API: the Slack messages (sent, queued, failed, or what would have gone), each app's
channel, and the email → Slack member mapping."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import select

from service import db
from service.api.errors import ApiError
from service.api.operations import Routes
from service.api.person_session import require_person
from service.notifications import outbox, services
from service.notifications.models import EVENTS, STATES, Notification
from service.releases.models import App

routes = Routes(tag="Notifications")


class NotificationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    event: str = Field(description=" | ".join(EVENTS))
    state: str = Field(description=" | ".join(STATES))
    app_id: int | None
    release_id: int | None
    recipient: str | None = Field(description="the person a reminder is for")
    via: str = Field(description="bot (chat.postMessage) | webhook | none")
    channel: str
    destination: str = Field(description="where it goes (or would go), for people")
    text: str = Field(description="the message, in Slack mrkdwn")
    attempts: int
    last_error: str | None
    slack_ts: str | None
    created_at: datetime
    sent_at: datetime | None


class NotificationsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: str | None = Field(default=None, description=" | ".join(STATES))
    event: str | None = Field(default=None, description=" | ".join(EVENTS))
    app: str | None = Field(default=None, max_length=32, description="an app's slug")
    before_id: int | None = Field(default=None, ge=1, le=2**31 - 1, description="older pages")
    limit: int = Field(default=50, ge=1, le=500)


class AppChannelOut(BaseModel):
    app: str
    channel: str = Field(description="the app's channel; empty: the default or the webhook's")
    incident_min_score: int = Field(description="incidents from this score are announced")
    own_threshold: bool = Field(description="false: SLACK_INCIDENT_MIN_SCORE applies")
    via: str = Field(description="bot | webhook | none")
    destination: str


class NotificationsOut(BaseModel):
    configured: bool = Field(description="SLACK_BOT_TOKEN and/or SLACK_WEBHOOK_URL is set")
    bot: bool
    webhook: bool
    breaker_state: str = Field(description="closed | open | half_open")
    apps: list[AppChannelOut]
    messages: list[NotificationOut]


class AppChannelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str = Field(
        max_length=200, description="#name or channel id (C…); empty: the default channel"
    )
    incident_min_score: int | None = Field(
        default=None, description="1 to 15; null: SLACK_INCIDENT_MIN_SCORE"
    )


class SlackUserOut(BaseModel):
    email: str
    name: str
    role: str
    active: bool
    slack_user_id: str = Field(description="empty: named in plain text, not mentioned")


class SlackUserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=3, max_length=254)
    slack_user_id: str = Field(max_length=32, description="U0123ABCD; empty removes it")


def _app(slug: str) -> App:
    app = db.session().exec(select(App).where(App.slug == slug)).first()
    if app is None:
        raise ApiError(404, "not_found", f"unknown app {slug!r}")
    return app


def _apps(config: dict[str, Any]) -> list[AppChannelOut]:
    return [
        AppChannelOut(
            app=row["app"].slug,
            channel=row["channel"],
            incident_min_score=row["incident_min_score"],
            own_threshold=row["own_threshold"],
            via=row["via"],
            destination=row["destination"],
        )
        for row in config["apps"]
    ]


@routes.operation(
    "/notifications",
    summary="Recent Slack messages: sent, queued, failed, or not configured (what would have gone)",
    query=NotificationsQuery,
    response=NotificationsOut,
)
def list_notifications(query: NotificationsQuery) -> NotificationsOut:
    session = db.session()
    if query.state is not None and query.state not in STATES:
        raise outbox.NotificationError(f"state is one of {', '.join(STATES)}", field="state")
    if query.event is not None and query.event not in EVENTS:
        raise outbox.NotificationError(f"event is one of {', '.join(EVENTS)}", field="event")
    app_id = None
    if query.app:
        found = session.exec(select(App).where(App.slug == query.app)).first()
        if found is None:
            raise outbox.NotificationError(f"unknown app {query.app!r}", field="app")
        app_id = found.id
    config = outbox.configuration(session)
    rows = outbox.recent(
        session,
        limit=query.limit,
        state=query.state,
        event=query.event,
        app_id=app_id,
        before_id=query.before_id,
    )
    return NotificationsOut(
        configured=config["configured"],
        bot=config["bot"],
        webhook=config["webhook"],
        breaker_state=config["breaker"]["state"],
        apps=_apps(config),
        messages=[NotificationOut.model_validate(r) for r in rows],
    )


@routes.operation(
    "/notifications/<int:notification_id>/resend",
    "POST",
    summary="Queue a failed or never-sent Slack message again (admins)",
    scope=None,
    response=NotificationOut,
    status=202,
    errors=(401, 403, 409),
)
def resend_notification(notification_id: int) -> NotificationOut:
    """Acts for a person: a logged-in admin session with ``X-CSRFToken``."""
    admin = require_person()
    session = db.session()
    row = session.get(Notification, notification_id)
    if row is None:
        raise ApiError(404, "not_found", f"no notification {notification_id}")
    outbox.resend(session, row, actor=admin.actor)
    return NotificationOut.model_validate(row)


@routes.operation(
    "/apps/<slug>/notifications",
    summary="Where an app's Slack messages go, and from which incident score",
    response=AppChannelOut,
)
def get_app_notifications(slug: str) -> AppChannelOut:
    app = _app(slug)
    config = outbox.configuration(db.session())
    (row,) = [r for r in _apps(config) if r.app == app.slug]
    return row


@routes.operation(
    "/apps/<slug>/notifications",
    "PUT",
    summary="Set an app's Slack channel and incident score (admins)",
    scope=None,
    body=AppChannelIn,
    response=AppChannelOut,
    errors=(401, 403),
)
def put_app_notifications(slug: str, body: AppChannelIn) -> AppChannelOut:
    """Acts for a person: a logged-in admin session with ``X-CSRFToken``."""
    admin = require_person()
    session = db.session()
    app = _app(slug)
    services.set_app_channel(
        session,
        app,
        channel=body.channel,
        incident_min_score=body.incident_min_score,
        actor=admin.actor,
    )
    session.flush()
    (row,) = [r for r in _apps(outbox.configuration(session)) if r.app == app.slug]
    return row


@routes.operation(
    "/notifications/slack-users",
    summary="Every person and their Slack member id (admins)",
    scope=None,
    response=list[SlackUserOut],
    errors=(401, 403),
)
def list_slack_users() -> list[SlackUserOut]:
    return [
        SlackUserOut(
            email=user.email, name=user.name, role=user.role, active=user.active, slack_user_id=sid
        )
        for user, sid in services.slack_people(db.session())
    ]


@routes.operation(
    "/notifications/slack-users",
    "PUT",
    summary="Map a person's email to their Slack member id, or remove it (admins)",
    scope=None,
    body=SlackUserIn,
    response=SlackUserOut,
    errors=(401, 403),
)
def put_slack_user(body: SlackUserIn) -> SlackUserOut:
    """Acts for a person: a logged-in admin session with ``X-CSRFToken``."""
    admin = require_person()
    session = db.session()
    user = services.set_slack_user(
        session, email=body.email, slack_user_id=body.slack_user_id, actor=admin.actor
    )
    session.flush()
    sid = dict((u.email, s) for u, s in services.slack_people(session)).get(user.email, "")
    return SlackUserOut(
        email=user.email, name=user.name, role=user.role, active=user.active, slack_user_id=sid
    )
