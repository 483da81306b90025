"""Pages for apps: the list, settings, the coming trains, and the checklist template editor.

Everyone logged in may look; only admins change anything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, timedelta
from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func
from sqlmodel import Session, col, select
from werkzeug.wrappers import Response
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice

from service import db
from service.auth import current_actor, login_required, roles_required
from service.errors import refusal_goes_back
from service.models import ROLE_LABELS, ROLES, utcnow
from service.releases import apps as app_records
from service.releases.models import AUTOMATIC_RULES, RELEASE_KINDS, App, Release
from service.releases.trains import (
    WEEKDAYS,
    TrainError,
    skip_week,
    skips_for,
    train_slots,
    unskip_week,
)

bp = Blueprint("apps", __name__)
admin_required = roles_required("admin")
TRAIN_WEEKS = 6
BLANK_ROWS = 2
# A section other features add to an app's page: its template, and a function of
# (session, app) that gives the template its ``panel``.
AppPanel = tuple[str, Callable[[Session, App], Any]]
_PANELS_KEY = "relgov.app_panels"


def init_app(app: Flask, *, panels: Sequence[AppPanel]) -> None:
    """The sections other features add to an app's page, in order (``service/wiring.py``)."""
    app.extensions[_PANELS_KEY] = tuple(panels)


def _panels(session: Session, app: App) -> list[tuple[str, Any]]:
    panels = []
    for template, context in current_app.extensions.get(_PANELS_KEY, ()):
        try:
            panels.append((template, context(session, app)))
        except Exception as exc:  # a broken panel must not take the app page down
            panels.append(("releases/_panel_error.html", {"error": str(exc)}))
    return panels


class AppForm(FlaskForm):
    slug = StringField("Slug", description="Short name used in URLs and the API, e.g. pos.")
    name = StringField("Name")
    repo_url = StringField(
        "Git repository",
        description="A URL mirrored into the repository cache (https://, ssh://, "
        "git@host:org/repo; http:// only for the hosts the service allows), or a local path "
        "or file:// URL under the service's repository root (RELGOV_REPO_ROOT).",
    )
    default_branch = StringField("Default branch")
    version_scheme = SelectField(
        "Version scheme",
        choices=[
            SelectChoice("semver", "Semantic (3.12.0)"),
            SelectChoice("calver", "Calendar (2025.07.1)"),
        ],
    )
    area_map = TextAreaField(
        "Product areas",
        description="One per line: scope = Area name (order = Ordering). Commit scopes not "
        "listed keep their own name.",
        render_kw={"rows": 6},
    )
    pr_url_template = StringField(
        "PR URL template", description="e.g. https://github.com/org/pos/pull/{number}"
    )
    train_weekday = SelectField(
        "Train weekday", choices=[SelectChoice(str(i), day) for i, day in enumerate(WEEKDAYS)]
    )
    train_time = StringField("Train time (HH:MM)")
    train_timezone = StringField("Time zone", description="An IANA name, e.g. Asia/Tokyo.")
    min_supported_version = StringField(
        "Minimum supported version", description="Devices below it are stragglers to contact."
    )
    rollout_stages = StringField(
        "Rollout stages (%)", description="Increasing, ending at 100, e.g. 10, 50, 100."
    )
    beta_adoption_target = StringField("Beta adoption target (%)")
    beta_stall_hours = StringField(
        "Beta stall (hours)", description="Adoption that does not move this long is flagged."
    )
    beta_soak_days = StringField("Beta soak (business days)")
    incident_score_threshold = StringField(
        "Incident score threshold",
        description="Impact (1/3/5) × stores affected (1/2/3); a beta incident at or above "
        "it blocks the rollout.",
    )
    separation_of_duties = BooleanField(
        "Separation of duties (whoever registered a release cannot approve it)"
    )
    auto_publish = BooleanField("Publish notes to Notion automatically when approved")
    holiday_calendar = StringField(
        "Holiday calendar",
        description="Country code for business days of the beta soak (JP, US-CA, none).",
    )
    promotion_gates = BooleanField(
        "Enforce the promotion gates (beta soak, adoption, incidents) when promoting"
    )


def _form_data(app: App) -> dict[str, Any]:
    return {
        "slug": app.slug,
        "name": app.name,
        "repo_url": app.repo_url,
        "default_branch": app.default_branch,
        "version_scheme": app.version_scheme,
        "area_map": app_records.area_map_text(app.area_map),
        "pr_url_template": app.pr_url_template,
        "train_weekday": str(app.train_weekday),
        "train_time": app.train_time,
        "train_timezone": app.train_timezone,
        "min_supported_version": app.min_supported_version or "",
        "rollout_stages": ", ".join(str(s) for s in app.rollout_stages),
        "beta_adoption_target": f"{app.beta_adoption_target:g}",
        "beta_stall_hours": str(app.beta_stall_hours),
        "beta_soak_days": str(app.beta_soak_days),
        "incident_score_threshold": str(app.incident_score_threshold),
        "separation_of_duties": app.separation_of_duties,
        "auto_publish": app.auto_publish,
        "holiday_calendar": app.holiday_calendar,
        "promotion_gates": app.promotion_gates,
    }


def _submitted(form: AppForm) -> dict[str, Any]:
    return {name: form[name].data for name in app_records.EDITABLE_FIELDS}


def _show_error(form: AppForm, exc: app_records.AppError) -> None:
    if exc.field and exc.field in form:
        form[exc.field].errors = [*form[exc.field].errors, exc.message]
    else:
        flash(exc.message, "error")


def _app_or_404(session: Session, slug: str) -> App:
    app = session.exec(select(App).where(App.slug == slug)).first()
    if app is None:
        abort(404)
    return app


@bp.get("/apps")
@login_required
def app_list() -> str:
    session = db.session()
    apps = session.exec(select(App).order_by(App.slug)).all()
    counts = {
        app_id: count
        for app_id, count in session.exec(
            select(Release.app_id, func.count()).group_by(col(Release.app_id))
        ).all()
    }
    now = utcnow()
    next_trains = {}
    for app in apps:
        try:
            slots = train_slots(app, start=now, weeks=TRAIN_WEEKS, skips=skips_for(session, app))
        except TrainError:
            slots = []
        next_trains[app.id] = next((s for s in slots if s.skipped is None), None)
    return render_template(
        "releases/app_list.html",
        apps=apps,
        counts=counts,
        next_trains=next_trains,
        weekdays=WEEKDAYS,
    )


@bp.route("/apps/new", methods=["GET", "POST"])
@admin_required
def app_new() -> str | Response:
    session = db.session()
    form = AppForm(
        data={
            "default_branch": "main",
            "version_scheme": "semver",
            "train_weekday": "2",
            "train_time": "14:00",
            "train_timezone": "Asia/Tokyo",
            "rollout_stages": "10, 50, 100",
            "beta_adoption_target": "80",
            "beta_stall_hours": "48",
            "beta_soak_days": "2",
            "incident_score_threshold": "6",
            "separation_of_duties": True,
            "auto_publish": True,
            "holiday_calendar": "JP",
            "promotion_gates": True,
        }
        if request.method == "GET"
        else None
    )
    if form.validate_on_submit():
        values = _submitted(form)
        name = values.pop("name")
        try:
            app = app_records.create_app_record(
                session, slug=form.slug.data or "", name=name, actor=current_actor(), **values
            )
        except app_records.AppError as exc:
            session.rollback()
            _show_error(form, exc)
        else:
            session.commit()
            flash(f"Created {app.name} with default weekly and hotfix checklists.", "success")
            return redirect(url_for("apps.app_detail", slug=app.slug))
    return render_template("releases/app_form.html", form=form, app=None, can_edit=True), (
        422 if form.errors or request.method == "POST" else 200
    )  # type: ignore[return-value]


@bp.route("/apps/<slug>", methods=["GET", "POST"])
@login_required
def app_detail(slug: str) -> str | Response:
    session = db.session()
    app = _app_or_404(session, slug)
    can_edit = current_user.role == "admin"
    form = AppForm(data=_form_data(app) if request.method == "GET" else None)
    status = 200
    if request.method == "POST":
        if not can_edit:
            abort(403)
        if form.validate_on_submit():
            try:
                app_records.update_app_record(
                    session, app=app, actor=current_actor(), **_submitted(form)
                )
            except app_records.AppError as exc:
                session.rollback()
                _show_error(form, exc)
                status = 422
            else:
                session.commit()
                flash(f"Saved the settings of {app.name}.", "success")
                return redirect(url_for("apps.app_detail", slug=app.slug))
        else:
            status = 422
    return render_template(
        "releases/app_form.html", form=form, **_detail_context(session, app), can_edit=can_edit
    ), status  # type: ignore[return-value]


def _detail_context(session: Session, app: App) -> dict[str, Any]:
    session.refresh(app)
    try:
        slots = train_slots(
            app,
            start=utcnow(),
            weeks=TRAIN_WEEKS,
            skips=skips_for(session, app, since=date.today() - timedelta(days=7)),
        )
    except TrainError:
        slots = []
    templates = {}
    for kind in RELEASE_KINDS:
        current = app_records.current_template(session, app, kind)
        templates[kind] = (
            current,
            len(app_records.template_items(session, current)) if current else 0,
        )
    return {"app": app, "slots": slots, "templates": templates, "panels": _panels(session, app)}


def _trains_of(slug: str) -> str:
    return url_for("apps.app_detail", slug=slug) + "#trains"


@bp.post("/apps/<slug>/trains")
@admin_required
@refusal_goes_back("Nothing was changed", _trains_of)
def train_change(slug: str) -> Response:
    session = db.session()
    app = _app_or_404(session, slug)
    action = request.form.get("action", "")
    reason = request.form.get("reason", "")
    try:
        week = date.fromisoformat(request.form.get("week_of", ""))
    except ValueError:
        flash("Pick a week from the list of coming trains.", "error")
        return redirect(_trains_of(slug))
    if action == "skip":
        skip_week(session, app=app, week_of=week, reason=reason, actor=current_actor())
        message = f"No {app.name} train in the week of {week}."
    elif action == "unskip":
        unskip_week(session, app=app, week_of=week, reason=reason, actor=current_actor())
        message = f"The {app.name} train runs again in the week of {week}."
    else:
        abort(400)
    session.commit()
    flash(message, "success")
    return redirect(_trains_of(slug))


# --- checklist templates ---------------------------------------------------------------


def _rows_from_form() -> list[dict[str, Any]]:
    """The editor's rows in the order of their position numbers (removed rows dropped)."""
    try:
        count = min(int(request.form.get("rows", "0")), 200)
    except ValueError:
        count = 0
    rows = []
    for index in range(count):
        row = {
            "title": request.form.get(f"title-{index}", "").strip(),
            "help": request.form.get(f"help-{index}", "").strip(),
            "owner_role": request.form.get(f"owner_role-{index}", ""),
            "required": request.form.get(f"required-{index}") == "on",
            "mode": request.form.get(f"mode-{index}", "manual"),
            "rule": request.form.get(f"rule-{index}", "") or None,
            "remove": request.form.get(f"remove-{index}") == "on",
            "position": request.form.get(f"position-{index}", "").strip(),
            "index": index,
        }
        rows.append(row)
    return rows


def _ordered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def key(row: dict[str, Any]) -> tuple[float, int]:
        try:
            return (float(row["position"]), row["index"])
        except ValueError:
            return (float("inf"), row["index"])

    kept = [r for r in rows if not r["remove"] and (r["title"] or r["help"])]
    return sorted(kept, key=key)


@bp.route("/apps/<slug>/checklists/<kind>", methods=["GET", "POST"])
@login_required
def template_edit(slug: str, kind: str) -> str | Response:
    session = db.session()
    app = _app_or_404(session, slug)
    if kind not in RELEASE_KINDS:
        abort(404)
    can_edit = current_user.role == "admin"
    versions = app_records.template_versions(session, app, kind)
    shown = versions[0] if versions else None
    requested = request.args.get("version", "")
    if requested.isdigit():
        shown = next((v for v in versions if v.version == int(requested)), None) or abort(404)
    error = None
    status = 200
    if request.method == "POST":
        if not can_edit:
            abort(403)
        rows = _rows_from_form()
        ordered = _ordered(rows)
        try:
            template = app_records.save_template(
                session, app=app, kind=kind, items=ordered, actor=current_actor()
            )
        except app_records.AppError as exc:
            session.rollback()
            error = exc.message
            status = 422
            rows = [r for r in rows if r["title"] or r["help"]]
        else:
            session.commit()
            flash(
                f"Saved the {kind} checklist of {app.name} as version {template.version}. "
                "Releases registered from now on use it; earlier releases keep theirs.",
                "success",
            )
            return redirect(url_for("apps.template_edit", slug=slug, kind=kind))
    else:
        items = app_records.template_items(session, shown) if shown else []
        rows = [
            {
                "title": i.title,
                "help": i.help,
                "owner_role": i.owner_role,
                "required": i.required,
                "mode": i.mode,
                "rule": i.rule,
                "remove": False,
                "position": str(n),
            }
            for n, i in enumerate(items, start=1)
        ]
    latest = versions[0] if versions else None
    editing = can_edit and (shown is None or shown is latest)
    if editing:
        rows = rows + [
            {
                "title": "",
                "help": "",
                "owner_role": "engineer",
                "required": True,
                "mode": "manual",
                "rule": None,
                "remove": False,
                "position": str(len(rows) + n),
            }
            for n in range(1, BLANK_ROWS + 1)
        ]
    return render_template(
        "releases/template_edit.html",
        app=app,
        kind=kind,
        versions=versions,
        shown=shown,
        latest=latest,
        rows=rows,
        editing=editing,
        error=error,
        roles=ROLES,
        role_labels=ROLE_LABELS,
        rules=AUTOMATIC_RULES,
    ), status  # type: ignore[return-value]
