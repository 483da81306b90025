"""The dashboard and the navigation every page shows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from flask import Blueprint, Flask, current_app, render_template, url_for
from flask_login import current_user
from sqlalchemy import func
from sqlmodel import Session, col, select

from service import db
from service.adoption.services import stall_summary
from service.auth import login_required
from service.models import ApiToken, AuditEvent, User
from service.releases import checklist, services
from service.releases.models import App, Release

bp = Blueprint("pages", __name__)

# A section other features put at the top of the dashboard: its template, and a function of
# (session, person) that gives the template its ``panel``.
DashboardPanel = tuple[str, Callable[[Session, User], Any]]
_PANELS_KEY = "relgov.dashboard_panels"

# (endpoint, label, roles allowed; empty = everyone logged in)
NAVIGATION: list[tuple[str, str, tuple[str, ...]]] = [
    ("pages.dashboard", "Dashboard", ()),
    ("releases.release_list", "Releases", ()),
    ("meetings.current", "Meeting", ()),
    ("calendar.calendar", "Calendar", ()),
    ("notes.notes_list", "Notes", ()),
    ("beta.cohort", "Beta", ()),
    ("adoption.index", "Adoption", ()),
    ("incidents.index", "Incidents", ()),
    ("apps.app_list", "Apps", ()),
    ("audit.audit_log", "Audit log", ()),
    ("admin.users", "Admin", ("admin",)),
]


def init_app(app: Flask, *, panels: Sequence[DashboardPanel] = ()) -> None:
    """The dashboard (with the sections other features add, in order: ``service/wiring.py``)
    and the navigation."""
    app.extensions[_PANELS_KEY] = tuple(panels)
    app.register_blueprint(bp)
    app.context_processor(_navigation)


def _navigation() -> dict[str, Any]:
    if not current_user.is_authenticated:
        return {"navigation": []}
    items = [
        (endpoint, url_for(endpoint), label)
        for endpoint, label, roles in NAVIGATION
        if not roles or current_user.role in roles
    ]
    return {"navigation": items}


@bp.get("/")
@login_required
def dashboard() -> str:
    session = db.session()
    recent = session.exec(
        select(AuditEvent).order_by(col(AuditEvent.at).desc(), col(AuditEvent.id).desc()).limit(10)
    ).all()
    counts = {
        "users": session.exec(
            select(func.count()).select_from(User).where(User.active == True)  # noqa: E712
        ).one(),
        "tokens": session.exec(
            select(func.count()).select_from(ApiToken).where(col(ApiToken.revoked_at).is_(None))
        ).one(),
        "events": session.exec(select(func.count()).select_from(AuditEvent)).one(),
    }
    active = session.exec(
        select(Release, App)
        .join(App, col(App.id) == col(Release.app_id))
        .where(col(Release.state).in_(services.ACTIVE_STATES))
        .order_by(App.name, col(Release.created_at).desc())
    ).all()
    in_progress = [
        (release, app, checklist.progress(checklist.item_statuses(session, release)))
        for release, app in active
    ]
    panels = []
    for template, context in current_app.extensions[_PANELS_KEY]:
        try:
            panels.append((template, context(session, current_user._get_current_object())))
        except Exception as exc:  # a broken panel must not take the dashboard down
            panels.append(("releases/_panel_error.html", {"error": str(exc)}))
    return render_template(
        "dashboard.html",
        panels=panels,
        recent=recent,
        counts=counts,
        in_progress=in_progress,
        by_state=services.count_by_state(session),
        stalls=stall_summary(session),
    )
