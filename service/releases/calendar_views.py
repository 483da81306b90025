"""The release calendar page: every app's trains, releases, skips and freezes, week by week."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from sqlmodel import col, select

import utc
from service import db
from service.auth import login_required
from service.releases.calendar import CalendarError, build_calendar, parse_start
from service.releases.models import App

bp = Blueprint("calendar", __name__)


@bp.get("/calendar")
@login_required
def calendar() -> str | tuple[str, int]:
    """Four weeks back and eight ahead from ``?start=`` (a date or ISO week; default: today)."""
    session = db.session()
    apps = session.exec(select(App).order_by(col(App.name))).all()
    asked_app = request.args.get("app") or None
    shown, refusal = None, None
    try:
        start = parse_start(request.args.get("start"), today=utc.now().date())
        shown = build_calendar(session, start=start, app_slug=asked_app)
    except CalendarError as refused:
        refusal = refused
    page = render_template(
        "releases/calendar.html",
        calendar=shown,
        apps=apps,
        app_filter=asked_app,
        error=refusal,
        start_text=request.args.get("start", ""),
    )
    return (page, refusal.status) if refusal else page
