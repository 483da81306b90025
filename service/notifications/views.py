"""Pages: the Slack messages (/notifications), who is who on Slack (admins), each app's
channel (a panel on the app's page), and "Send again"."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup, escape
from sqlmodel import Session, col, select
from werkzeug.wrappers import Response

from service import db
from service.auth import current_actor, login_required, roles_required
from service.errors import refusal_goes_back
from service.notifications import outbox, services
from service.notifications.models import EVENTS, STATES, Notification
from service.releases.models import App, Release

bp = Blueprint("notifications", __name__)
admin_required = roles_required("admin")
EVENT_LABELS = {
    "approved": "Approval",
    "rejected": "Rejection",
    "halted": "Halt",
    "incident": "Incident",
    "publish_failed": "Notion publish failure",
    "reminder": "Sign-off reminder",
    "digest": "Straggler digest",
    "meeting_opened": "Meeting opened",
    "meeting_decided": "Meeting decision",
    "meeting_amended": "Meeting decision amended",
    "meeting_closed": "Meeting closed",
    "meeting_action_item_created": "Action item",
    "meeting_action_item_closed": "Action item closed",
}


def app_panel(session: Session, app: App) -> dict[str, Any]:
    """The app page's Slack panel (``notifications/_app_panel.html``)."""
    config = outbox.configuration(session)
    (row,) = [r for r in config["apps"] if r["app"].id == app.id]
    return {
        "config": config,
        "row": row,
        "recent": outbox.recent(session, app_id=app.id, limit=5),
        "labels": outbox.STATE_LABELS,
        "badges": outbox.STATE_BADGES,
        "events": EVENT_LABELS,
    }


def release_panel(session: Session, release: Release) -> dict[str, Any]:
    """The release page's Slack panel (``notifications/_release_panel.html``): the messages
    about this release, and where the next would go."""
    config = outbox.configuration(session)
    (row,) = [r for r in config["apps"] if r["app"].id == release.app_id]
    rows = session.exec(
        select(Notification)
        .where(Notification.release_id == release.id)
        .order_by(col(Notification.id).desc())
        .limit(10)
    ).all()
    return {
        "config": config,
        "row": row,
        "rows": rows,
        "labels": outbox.STATE_LABELS,
        "badges": outbox.STATE_BADGES,
        "events": EVENT_LABELS,
    }


def _page_args() -> dict[str, str]:
    return {k: v for k, v in request.args.items() if k in ("state", "event", "app") and v}


@bp.get("/notifications")
@login_required
def index() -> str:
    session = db.session()
    state = request.args.get("state") or None
    event = request.args.get("event") or None
    slug = request.args.get("app") or None
    errors = []
    if state is not None and state not in STATES:
        errors.append(f"unknown state {state!r}: showing every state")
        state = None
    if event is not None and event not in EVENTS:
        errors.append(f"unknown event {event!r}: showing every event")
        event = None
    apps = session.exec(select(App).order_by(col(App.name))).all()
    app = next((a for a in apps if a.slug == slug), None)
    if slug and app is None:
        errors.append(f"unknown app {slug!r}: showing every app")
    rows = outbox.recent(
        session, limit=100, state=state, event=event, app_id=app.id if app else None
    )
    release_ids = {r.release_id for r in rows if r.release_id}
    releases = (
        {
            r.id: r
            for r in session.exec(
                select(Release).where(col(Release.id).in_(sorted(release_ids)))
            ).all()
        }
        if release_ids
        else {}
    )
    return render_template(
        "notifications/index.html",
        config=outbox.configuration(session),
        rows=rows,
        counts=outbox.counts(session),
        releases=releases,
        apps=apps,
        app_names={a.id: a.name for a in apps},
        filters={"state": state or "", "event": event or "", "app": app.slug if app else ""},
        errors=errors,
        states=STATES,
        events=EVENT_LABELS,
        labels=outbox.STATE_LABELS,
        badges=outbox.STATE_BADGES,
        is_admin=current_user.role == "admin",
        slack_html=slack_html,
        members=member_names(session),
    )


def _back_to_index(*_args: Any, **_kwargs: Any) -> str:
    return url_for("notifications.index")


@bp.post("/notifications/<int:notification_id>/resend")
@admin_required
@refusal_goes_back("Not queued", _back_to_index)
def resend(notification_id: int) -> Response:
    session = db.session()
    row = session.get(Notification, notification_id) or abort(404)
    outbox.resend(session, row, actor=current_actor())
    session.commit()
    flash(f"Message #{row.id} queued again to {row.destination}.", "success")
    back = url_for("notifications.index")
    args = _page_args()
    return redirect(back + ("?" + urlencode(args) if args else ""))


def _app_page(slug: str) -> str:
    return url_for("apps.app_detail", slug=slug) + "#slack"


@bp.post("/apps/<slug>/notifications")
@admin_required
@refusal_goes_back("Not saved", _app_page)
def app_settings(slug: str) -> Response:
    session = db.session()
    app = session.exec(select(App).where(App.slug == slug)).first() or abort(404)
    raw = (request.form.get("incident_min_score") or "").strip()
    if raw and not raw.isdigit():
        raise outbox.NotificationError(
            "the incident score is a whole number from 1 to 15, or empty for the default",
            field="incident_min_score",
        )
    services.set_app_channel(
        session,
        app,
        channel=request.form.get("channel") or "",
        incident_min_score=int(raw) if raw else None,
        actor=current_actor(),
    )
    session.commit()
    flash(f"Saved where {app.name}'s Slack messages go.", "success")
    return redirect(_app_page(slug))


@bp.get("/notifications/slack-users")
@admin_required
def slack_users() -> str:
    session = db.session()
    return render_template("notifications/slack_users.html", people=services.slack_people(session))


def _back_to_people(*_args: Any, **_kwargs: Any) -> str:
    return url_for("notifications.slack_users")


@bp.post("/notifications/slack-users")
@admin_required
@refusal_goes_back("Not saved", _back_to_people)
def slack_user_save() -> Response:
    session = db.session()
    user = services.set_slack_user(
        session,
        email=request.form.get("email") or "",
        slack_user_id=request.form.get("slack_user_id") or "",
        actor=current_actor(),
    )
    session.commit()
    flash(f"Saved the Slack member of {user.email}.", "success")
    return redirect(url_for("notifications.slack_users") + f"#person-{user.id}")


_TOKEN = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")
_BOLD = re.compile(r"\*([^*\n]+)\*")
# Slack shows these as emoji; a page without an emoji font would show empty boxes, and the
# event column already says what the message is: they are left out on the pages.
_EMOJI = re.compile(r":[a-z_]+: ?")


def _plain(text: str) -> Markup:
    """A stretch of Slack text between links: Slack's entities undone, then escaped for
    HTML, ``*bold*`` kept, emoji codes shown."""
    raw = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    html = str(escape(raw))
    html = _BOLD.sub(r"<strong>\1</strong>", html)
    return Markup(_EMOJI.sub("", html))


def slack_html(text: str, members: dict[str, str] | None = None) -> Markup:
    """A message as Slack would show it, for the pages: links, mentions (by the person's
    name when ``members`` knows the member id), bold; every piece of text escaped (a
    ``javascript:`` link stays text)."""
    out: list[str] = []
    position = 0
    for match in _TOKEN.finditer(text):
        out.append(_plain(text[position : match.start()]))
        target, label = match.group(1), match.group(2)
        if target.startswith("@"):
            member = target[1:]
            shown = (members or {}).get(member, member)
            out.append(
                str(Markup('<span class="mention" title="{}">@{}</span>').format(member, shown))
            )
        elif target.startswith(("http://", "https://")):
            out.append(str(Markup('<a href="{}">{}</a>').format(target, _plain(label or target))))
        else:
            out.append(str(escape(match.group(0))))
        position = match.end()
    out.append(_plain(text[position:]))
    return Markup("".join(out))


def member_names(session: Session) -> dict[str, str]:
    """Slack member id → the person's name, for showing mentions."""
    return {
        member: user.name or user.email for user, member in services.slack_people(session) if member
    }
