"""Meeting pages: the week (its agenda, snapshots, decisions, attendees, minutes, action
items), the list of meetings, the printable records, and the release page's meeting panel.

Every form here has an API operation doing the same (``service/meetings/api.py``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlmodel import Session, col, select
from werkzeug.wrappers import Response

from service import db
from service.auth import login_required, roles_required
from service.errors import refusal_goes_back
from service.meetings import inbox, notifications, services
from service.meetings import minutes as minutes_notion
from service.meetings.models import DECISION_LABELS, DECISIONS, ActionItem
from service.meetings.weeks import WEEK_HELP, Week, WeekError, parse_week
from service.models import ROLE_LABELS, User
from service.notifications import outbox
from service.notifications import views as slack_views
from service.releases.checklist import item_statuses, progress
from service.releases.models import App, Release

bp = Blueprint("meetings", __name__)
RUNNER_ROLES = ("release_manager",)  # admins always pass
CLOSER_ROLES = ("release_manager", "engineer", "qa", "support")
REASON_LABELS = {
    "train": "train this week",
    "hotfix": "hotfix",
    "carried": "carried over",
    "added": "added to the agenda",
}


def _user() -> User:
    user: User = current_user._get_current_object()
    return user


def _week_page(week: str, anchor: str = "", **_: Any) -> str:
    return url_for("meetings.week", week=week) + anchor


def _release_anchor(week: str, **_: Any) -> str:
    release_id = request.form.get("release_id", "")
    return _week_page(week, f"#release-{release_id}" if release_id.isdigit() else "")


def _week_or_400(text: str) -> Week | tuple[str, int]:
    try:
        return parse_week(text)
    except WeekError as exc:
        return _index(error=exc.message, asked=text), 400


def _index(*, error: str = "", asked: str = "") -> str:
    session = db.session()
    return render_template(
        "meetings/index.html",
        meetings=services.recent_meetings(session),
        this_week=services.current_week(session),
        error=error,
        asked=asked,
        week_help=WEEK_HELP,
    )


@bp.get("/meeting")
@login_required
def current() -> Response | tuple[str, int]:
    """This week's meeting, or the week asked for (``?week=2026-W42`` or a date of it)."""
    asked = request.args.get("week")
    if asked is None:
        week = services.current_week(db.session())
    else:
        parsed = _week_or_400(asked)
        if not isinstance(parsed, Week):
            return parsed
        week = parsed
    return redirect(url_for("meetings.week", week=week.label, app=request.args.get("app") or None))


@bp.get("/meetings")
@login_required
def index() -> str:
    return _index()


@bp.get("/meetings/<week>")
@login_required
def week(week: str) -> Response | str | tuple[str, int]:
    parsed = _week_or_400(week)
    if not isinstance(parsed, Week):
        return parsed
    if week != parsed.label:
        kept: dict[str, Any] = {k: v for k, v in request.args.items() if k != "week"}
        return redirect(url_for("meetings.week", week=parsed.label, **kept))
    session = db.session()
    view = services.week_view(session, parsed)
    app_filter = request.args.get("app", "")
    trains = [t for t in view.trains if not app_filter or t.slug == app_filter]
    user = _user()
    runner = user.role in services.RUNNERS
    on_agenda = {i.release_id for i in view.items}
    addable = []
    if runner and view.meeting is not None and view.meeting.state == "open":
        addable = [
            (r, a)
            for r, a in session.exec(
                select(Release, App)
                .join(App, col(App.id) == col(Release.app_id))
                .where(
                    col(Release.state).in_(
                        ("draft", "in_review", "approved", "beta", "rolling_out", "halted")
                    )
                )
                .order_by(App.name, col(Release.created_at).desc())
            ).all()
            if r.id not in on_agenda
        ]
    people = session.exec(
        select(User).where(User.active == True).order_by(col(User.name))  # noqa: E712
    ).all()
    attending = {a.user_id for a in view.attendees if a.user_id is not None}
    messages = notifications.for_meeting(session, view.meeting) if view.meeting else []
    return render_template(
        "meetings/week.html",
        view=view,
        meeting=view.meeting,
        trains=trains,
        app_filter=app_filter,
        apps=[(t.slug, t.name) for t in view.trains],
        runner=runner,
        closer=user.role in services.CLOSERS,
        addable=addable,
        people=people,
        owners=[p for p in people if p.role in services.OWNER_ROLES],
        attending=attending,
        guests=", ".join(a.name for a in view.attendees if a.user_id is None),
        decisions=DECISIONS,
        decision_labels=DECISION_LABELS,
        reason_labels=REASON_LABELS,
        role_labels=ROLE_LABELS,
        previous_week=parsed.shifted(-1).label,
        next_week=parsed.shifted(1).label,
        today=services.today(session).isoformat(),
        week_help=WEEK_HELP,
        messages=messages,
        message_counts=[
            (outbox.STATE_LABELS[state], n)
            for state in outbox.STATE_LABELS
            if (n := sum(1 for m in messages if m.state == state))
        ],
        slack_configured=outbox.settings_of().slack_configured,
        not_configured_text=outbox.NOT_CONFIGURED,
        badges=outbox.STATE_BADGES,
        slack_html=slack_views.slack_html,
        members=slack_views.member_names(session) if messages else {},
        meeting_at=inbox.meeting_at(parsed, view.zone),
        minutes_panel=(
            minutes_notion.minutes_status(session, view.meeting) if view.meeting else None
        ),
    )


def _meeting_for(week: str) -> Any:
    return services.meeting_or_refuse(db.session(), parse_week(week))


def _release_field() -> Release:
    raw = request.form.get("release_id", "")
    release = db.session().get(Release, int(raw)) if raw.isdigit() and len(raw) < 10 else None
    if release is None:
        raise services.MeetingError("choose a release of the agenda", field="release_id")
    return release


@bp.post("/meetings/<week>/open")
@roles_required(*RUNNER_ROLES)
@refusal_goes_back("Not opened", _week_page)
def open_meeting(week: str) -> Response:
    parsed = parse_week(week)
    meeting = services.open_meeting(db.session(), week=parsed, user=_user())
    db.session().commit()
    flash(f"Opened the meeting of {meeting.week}: the agenda below is frozen as of now.", "success")
    return redirect(_week_page(meeting.week))


@bp.post("/meetings/<week>/releases")
@roles_required(*RUNNER_ROLES)
@refusal_goes_back("Not added", _week_page)
def add_release(week: str) -> Response:
    meeting = _meeting_for(week)
    release = _release_field()
    services.add_release(db.session(), meeting=meeting, release=release, user=_user())
    db.session().commit()
    flash(f"Added {release.version} to the agenda.", "success")
    return redirect(_week_page(meeting.week, f"#release-{release.id}"))


def _decide(week: str, *, amendment: bool) -> Response:
    meeting = _meeting_for(week)
    release = _release_field()
    row = services.decide(
        db.session(),
        meeting=meeting,
        release=release,
        user=_user(),
        decision=request.form.get("decision", ""),
        reason=request.form.get("reason", ""),
        conditions=request.form.get("conditions", ""),
        amendment=amendment,
    )
    db.session().commit()
    said = [f"{'Amended' if amendment else 'Recorded'}: {release.version} "]
    said.append(f"{DECISION_LABELS[row.decision].lower()}.")
    if "transition" in row.effect:
        said.append(f" It is now {release.state.replace('_', ' ')}.")
    if "train" in row.effect:
        said.append(f" Moved to the train of {row.effect['train']}.")
    if "note" in row.effect:
        said.append(f" ({row.effect['note'][:1].upper()}{row.effect['note'][1:]}.)")
    flash("".join(said), "success")
    return redirect(_week_page(meeting.week, f"#release-{release.id}"))


@bp.post("/meetings/<week>/decisions")
@roles_required(*RUNNER_ROLES)
@refusal_goes_back("Not decided", _release_anchor)
def decide(week: str) -> Response:
    return _decide(week, amendment=False)


@bp.post("/meetings/<week>/amendments")
@roles_required(*RUNNER_ROLES)
@refusal_goes_back("Not amended", _release_anchor)
def amend(week: str) -> Response:
    return _decide(week, amendment=True)


@bp.post("/meetings/<week>/attendees")
@roles_required(*RUNNER_ROLES)
@refusal_goes_back("Attendees not saved", lambda week, **_: _week_page(week, "#attendees"))
def attendees(week: str) -> Response:
    meeting = _meeting_for(week)
    services.set_attendees(
        db.session(),
        meeting=meeting,
        user=_user(),
        people=request.form.getlist("people"),
        guests=request.form.get("guests", "").split(","),
    )
    db.session().commit()
    flash("Attendees saved.", "success")
    return redirect(_week_page(meeting.week, "#attendees"))


@bp.post("/meetings/<week>/minutes")
@roles_required(*RUNNER_ROLES)
@refusal_goes_back("Minutes not saved", lambda week, **_: _week_page(week, "#minutes"))
def minutes(week: str) -> Response:
    meeting = _meeting_for(week)
    raw = request.form.get("revision", "")
    services.save_minutes(
        db.session(),
        meeting=meeting,
        user=_user(),
        minutes=request.form.get("minutes", ""),
        revision=int(raw) if raw.isdigit() and len(raw) < 10 else None,
    )
    db.session().commit()
    flash("Minutes saved.", "success")
    return redirect(_week_page(meeting.week, "#minutes"))


def _date_field(name: str) -> date | None:
    value = request.form.get(name, "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise services.MeetingError(
            f"{value[:20]!r} is not a date: write it as YYYY-MM-DD", field=name
        ) from None


@bp.post("/meetings/<week>/action-items")
@roles_required(*RUNNER_ROLES)
@refusal_goes_back("Action item not created", lambda week, **_: _week_page(week, "#actions"))
def add_action_item(week: str) -> Response:
    meeting = _meeting_for(week)
    raw = request.form.get("release_id", "")
    item = services.add_action_item(
        db.session(),
        meeting=meeting,
        user=_user(),
        title=request.form.get("title", ""),
        owner=request.form.get("owner", ""),
        due_on=_date_field("due_on"),
        release_id=int(raw) if raw.isdigit() and len(raw) < 10 else None,
    )
    db.session().commit()
    flash(f"Action item #{item.id} for {item.owner_name}, due {item.due_on}.", "success")
    return redirect(_week_page(meeting.week, "#actions"))


def _back_to_week(**_: Any) -> str:
    try:
        return _week_page(parse_week(request.form.get("back", "")).label, "#actions")
    except WeekError:
        return url_for("meetings.index")


@bp.post("/action-items/<int:action_item_id>/close")
@roles_required(*CLOSER_ROLES)
@refusal_goes_back("Not closed", _back_to_week)
def close_action_item(action_item_id: int) -> Response:
    session = db.session()
    item = session.get(ActionItem, action_item_id) or abort(404)
    services.close_action_item(session, item=item, user=_user(), note=request.form.get("note", ""))
    session.commit()
    flash(f"Closed action item #{item.id}.", "success")
    return redirect(_back_to_week())


@bp.post("/meetings/<week>/close")
@roles_required(*RUNNER_ROLES)
@refusal_goes_back("Not closed", _week_page)
def close(week: str) -> Response:
    meeting = _meeting_for(week)
    services.close_meeting(db.session(), meeting=meeting, user=_user())
    db.session().commit()
    flash(f"Closed the meeting of {meeting.week}. It now reads back as decided.", "success")
    return redirect(_week_page(meeting.week))


@bp.post("/meetings/<week>/minutes/publish")
@roles_required(*RUNNER_ROLES)
@refusal_goes_back("Not queued", lambda week, **_: _week_page(week, "#minutes-notion"))
def publish_minutes(week: str) -> Response:
    """The minutes panel's "Publish again" / "Retry"."""
    meeting = _meeting_for(week)
    minutes_notion.request_minutes(
        db.session(), meeting, actor=_user().actor, reason="requested on the week page"
    )
    db.session().commit()
    flash(f"Queued publishing the minutes of {meeting.week} to Notion.", "success")
    return redirect(_week_page(meeting.week, "#minutes-notion"))


@bp.get("/meetings/<week>/print")
@login_required
def print_week(week: str) -> str | tuple[str, int]:
    parsed = _week_or_400(week)
    if not isinstance(parsed, Week):
        return parsed
    view = services.week_view(db.session(), parsed)
    return render_template(
        "meetings/week_print.html",
        view=view,
        decision_labels=DECISION_LABELS,
        reason_labels=REASON_LABELS,
    )


@bp.get("/releases/<int:release_id>/meeting/print")
@login_required
def release_print(release_id: int) -> str:
    session = db.session()
    release = session.get(Release, release_id) or abort(404)
    app = session.get(App, release.app_id) or abort(404)
    statuses = item_statuses(session, release)
    return render_template(
        "meetings/release_print.html",
        release=release,
        app=app,
        statuses=statuses,
        progress=progress(statuses),
        decisions=services.decisions_for_release(session, release),
        decision_labels=DECISION_LABELS,
    )


def release_panel(session: Session, release: Release) -> dict[str, Any]:
    """The release page's meeting section: every decision on it and the week it was taken."""
    return {
        "release": release,
        "decisions": services.decisions_for_release(session, release),
        "labels": DECISION_LABELS,
        "this_week": services.current_week(session).label,
    }


def inbox_panel(session: Session, user: User) -> dict[str, Any]:
    """The dashboard's "Waiting for you": what the person has to do, by meeting."""
    found = inbox.inbox(session, user)
    groups: list[tuple[Week, datetime, list[inbox.InboxEntry]]] = []
    for entry in found.entries:
        if not groups or groups[-1][0] != entry.week:
            groups.append((entry.week, entry.meeting_at, []))
        groups[-1][2].append(entry)
    return {
        "inbox": found,
        "groups": groups,
        "url": inbox.url,
        "labels": inbox.KIND_LABELS,
    }
