"""Incident pages: the list, recording one, one incident (resolve, halt its release), the
weekly trend per app, gate overrides and the app's gate settings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlmodel import Session, col, select
from werkzeug.wrappers import Response

import utc
from beta.models import Store
from incidents import scoring
from service import db, timezones
from service.auth import login_required, roles_required
from service.errors import refusal_goes_back
from service.incidents import services
from service.incidents.models import GATE_TITLES, Incident
from service.models import AuditEvent, User
from service.releases.apps import update_app_record
from service.releases.models import App, Release
from service.releases.services import actor_for
from versioning import sort_key

bp = Blueprint("incidents", __name__)
RECORDERS = ("release_manager", "engineer", "qa", "support")
TREND_PERIODS = (12, 26, 52)
STORES_SHOWN = 200


def _user() -> User:
    user: User = current_user._get_current_object()
    return user


def _apps() -> list[App]:
    return list(db.session().exec(select(App).order_by(App.name)).all())


def _incident_or_404(incident_id: int) -> tuple[Incident, App]:
    session = db.session()
    incident = session.get(Incident, incident_id) or abort(404)
    app = session.get(App, incident.app_id) or abort(404)
    return incident, app


def parse_local(value: str, field: str, zone: str) -> datetime | None:
    """A form's ``YYYY-MM-DD HH:MM``, in the app's train time zone ``zone`` (the zone the
    pages show its times in), as aware UTC."""
    value = value.strip()
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise services.IncidentError(
            "not a date and time (YYYY-MM-DD HH:MM)", field=field
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezones.zone(zone))
    return utc.aware(moment)


@bp.get("/incidents")
@login_required
def index() -> str:
    session = db.session()
    apps = _apps()
    slug = request.args.get("app", "")
    app = next((a for a in apps if a.slug == slug), None)
    open_only = request.args.get("open") == "1"
    incidents = services.list_incidents(session, app=app, open_only=open_only)
    return render_template(
        "incidents/index.html",
        apps=apps,
        app_filter=slug,
        open_only=open_only,
        incidents=incidents,
        apps_by_id={a.id: a for a in apps},
        versions=services.release_versions(session, (i.release_id for i in incidents)),
        can_record=current_user.role in (*RECORDERS, "admin"),
    )


def _form_defaults(apps: list[App]) -> dict[str, str]:
    slug = request.args.get("app", "")
    app = next((a for a in apps if a.slug == slug), apps[0] if apps else None)
    now = timezones.local(datetime.now(UTC), app.train_timezone if app else "UTC")
    return {
        "app": slug,
        "title": "",
        "impact": "",
        "stores": "",
        "store_count": "",
        "beta_store_count": "",
        "started_at": now.strftime("%Y-%m-%d %H:%M"),
        "resolved_at": "",
        "postmortem_url": "",
        "release": request.args.get("release", ""),
    }


def _int_field(value: str, field: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise services.IncidentError("a whole number", field=field) from None


@bp.route("/incidents/new", methods=["GET", "POST"])
@roles_required(*RECORDERS)
def new() -> Any:
    session = db.session()
    apps = _apps()
    form = _form_defaults(apps)
    picked: list[str] = []
    errors: dict[str, str] = {}
    if request.method == "POST":
        form = {key: request.form.get(key, "") for key in form}
        picked = request.form.getlist("beta_pick")
        try:
            incident = _record_from_form(session, apps, form, picked)
        except services.IncidentError as exc:
            session.rollback()
            errors[exc.field or "title"] = exc.message
        else:
            session.commit()
            flash(f"Recorded incident #{incident.id} (score {incident.score}).", "success")
            return redirect(url_for("incidents.detail", incident_id=incident.id))
    releases = session.exec(
        select(Release, App)
        .join(App, col(App.id) == col(Release.app_id))
        .where(col(Release.state).notin_(("draft", "cancelled", "rejected")))
        .order_by(App.name, col(Release.created_at).desc())
    ).all()
    beta_stores = session.exec(
        select(Store).where(Store.in_beta == True).order_by(Store.external_id)  # noqa: E712
    ).all()
    return render_template(
        "incidents/new.html",
        apps=apps,
        form=form,
        errors=errors,
        impacts=scoring.IMPACTS,
        releases=releases,
        beta_stores=beta_stores,
        picked=set(picked),
        thresholds=services.scope_thresholds(),
    ), (422 if errors else 200)


def _record_from_form(
    session: Any, apps: list[App], form: dict[str, str], picked: list[str]
) -> Incident:
    app = next((a for a in apps if a.slug == form["app"]), None)
    if app is None:
        raise services.IncidentError("choose an app", field="app")
    impact = _int_field(form["impact"], "impact")
    if impact is None:
        raise services.IncidentError("choose the impact on store work", field="impact")
    imported: list[str] = []
    upload = request.files.get("stores_file")
    if upload is not None and upload.filename:
        try:
            imported = services.parse_store_ids(upload.read().decode("utf-8-sig"), csv_file=True)
        except UnicodeDecodeError:
            raise services.IncidentError(
                "the file is not UTF-8 text (a CSV of store ids)", field="stores"
            ) from None
    pasted = services.parse_store_ids(form["stores"])
    stores = list(dict.fromkeys([*picked, *pasted, *imported]))
    started = parse_local(form["started_at"], "started_at", app.train_timezone)
    if started is None:
        raise services.IncidentError("when did it start?", field="started_at")
    release: Release | None = None
    suggest = form["release"] == ""
    if form["release"] not in ("", "none"):
        release_id = _int_field(form["release"], "release")
        release = session.get(Release, release_id) if release_id else None
        if release is None:
            raise services.IncidentError("unknown release", field="release")
    return services.record_incident(
        session,
        thresholds=services.scope_thresholds(),
        app=app,
        title=form["title"],
        impact=impact,
        started_at=started,
        resolved_at=parse_local(form["resolved_at"], "resolved_at", app.train_timezone),
        actor=_user().actor,
        stores=stores,
        store_count=_int_field(form["store_count"], "store_count"),
        beta_store_count=_int_field(form["beta_store_count"], "beta_store_count"),
        postmortem_url=form["postmortem_url"],
        release=release,
        suggest=suggest,
    )


@bp.get("/incidents/<int:incident_id>")
@login_required
def detail(incident_id: int) -> str:
    session = db.session()
    incident, app = _incident_or_404(incident_id)
    release = session.get(Release, incident.release_id) if incident.release_id else None
    stores = services.incident_stores(session, incident)
    suggestion = None
    if stores:
        suggestion = services.suggest_release(
            session, app, [s.id or 0 for s, _ in stores], incident.started_at
        )
    history = session.exec(
        select(AuditEvent)
        .where(AuditEvent.subject_type == "incident", AuditEvent.subject_id == str(incident.id))
        .order_by(col(AuditEvent.at).desc(), col(AuditEvent.id).desc())
    ).all()
    role = current_user.role
    return render_template(
        "incidents/detail.html",
        incident=incident,
        app=app,
        release=release,
        score=services.derivation(incident),
        impacts=scoring.IMPACTS,
        stores=stores[:STORES_SHOWN],
        store_total=len(stores),
        suggestion=suggestion,
        history=history,
        can_edit=role in (*RECORDERS, "admin"),
        ask_halt=request.args.get("halt") == "1",
        can_halt=role in ("release_manager", "admin")
        and release is not None
        and release.state in ("beta", "rolling_out"),
        releases=session.exec(
            select(Release).where(Release.app_id == app.id).order_by(col(Release.created_at).desc())
        ).all(),
    )


def _incident_page(incident_id: int) -> str:
    return url_for("incidents.detail", incident_id=incident_id)


def _gates_of(release_id: int) -> str:
    return url_for("releases.release_detail", release_id=release_id) + "#gates"


@bp.post("/incidents/<int:incident_id>/update")
@roles_required(*RECORDERS)
@refusal_goes_back("Not saved", _incident_page)
def update(incident_id: int) -> Response:
    changes: dict[str, Any] = {}
    _, app = _incident_or_404(incident_id)
    if "resolved_at" in request.form:
        changes["resolved_at"] = parse_local(
            request.form["resolved_at"], "resolved_at", app.train_timezone
        )
    for name in ("postmortem_url", "title", "release"):
        if name in request.form:
            changes[name] = request.form[name]
    if "impact" in request.form:
        changes["impact"] = _int_field(request.form["impact"], "impact")
    return _change(incident_id, changes, "Saved incident #{id}.")


@bp.post("/incidents/<int:incident_id>/resolve")
@roles_required(*RECORDERS)
@refusal_goes_back("Not resolved", _incident_page)
def resolve(incident_id: int) -> Response:
    _, app = _incident_or_404(incident_id)
    when = parse_local(request.form.get("resolved_at", ""), "resolved_at", app.train_timezone)
    changes: dict[str, Any] = {"resolved_at": when or datetime.now(UTC)}
    if request.form.get("postmortem_url", "").strip():
        changes["postmortem_url"] = request.form["postmortem_url"]
    return _change(incident_id, changes, "Incident #{id} is resolved.")


def _change(incident_id: int, changes: dict[str, Any], done: str) -> Response:
    session = db.session()
    incident, _ = _incident_or_404(incident_id)
    services.update_incident(session, incident, actor=_user().actor, changes=changes)
    session.commit()
    flash(done.format(id=incident.id), "success")
    return redirect(_incident_page(incident_id))


@bp.post("/incidents/<int:incident_id>/halt")
@roles_required("release_manager")
@refusal_goes_back("Not halted", _incident_page)
def halt(incident_id: int) -> Response:
    """Halt the incident's release, only with ``confirm=yes`` (the page's "Yes, halt" after
    it said what happens); without it, back to the incident with the step open."""
    session = db.session()
    incident, app = _incident_or_404(incident_id)
    if request.form.get("confirm") != "yes":
        flash("Not halted yet: read what a halt does and confirm it.", "warning")
        return redirect(url_for("incidents.detail", incident_id=incident_id, halt=1))
    release = services.halt_from_incident(session, incident, actor=actor_for(_user()))
    session.commit()
    flash(f"Halted {app.name} {release.version} (incident #{incident.id}).", "warning")
    return redirect(url_for("releases.release_detail", release_id=release.id))


@bp.post("/releases/<int:release_id>/gates/override")
@roles_required("admin")
@refusal_goes_back("Not overridden", _gates_of)
def override_gate(release_id: int) -> Response:
    session = db.session()
    release = session.get(Release, release_id) or abort(404)
    gate = request.form.get("gate", "")
    services.override_gate(
        session,
        release=release,
        gate=gate,
        reason=request.form.get("reason", ""),
        actor=actor_for(_user()),
    )
    session.commit()
    flash(
        f"Overrode the gate “{GATE_TITLES.get(gate, gate)}”. The override is highlighted "
        "on the release and in the audit log.",
        "warning",
    )
    return redirect(_gates_of(release_id))


@bp.get("/incidents/trend")
@login_required
def trend_index() -> Response:
    apps = _apps()
    if not apps:
        return redirect(url_for("incidents.index"))
    return redirect(url_for("incidents.trend", slug=apps[0].slug))


@bp.get("/incidents/trend/<slug>")
@login_required
def trend(slug: str) -> str:
    session = db.session()
    apps = _apps()
    app = next((a for a in apps if a.slug == slug), None) or abort(404)
    try:
        weeks = int(request.args.get("weeks", "26"))
    except ValueError:
        weeks = 26
    weeks = weeks if weeks in TREND_PERIODS else 26
    data = services.incident_trend(session, app, weeks=weeks)
    chart = {
        "labels": [w["week_start"].isoformat() for w in data["weeks"]],
        "releases": [r or "no release" for r in data["releases"]],
        "series": {
            (r or "no release"): [w["by_release"].get(r, 0) for w in data["weeks"]]
            for r in data["releases"]
        },
        "incidents": [
            [f"#{i.id} {i.title} ({i.score})" for i in w["incidents"]] for w in data["weeks"]
        ],
    }
    by_release: dict[str, dict[str, int]] = {}
    for w in data["weeks"]:
        for i in w["incidents"]:
            label = data["versions"].get(i.release_id or 0, "")
            row = by_release.setdefault(label, {"count": 0, "score": 0, "beta": 0})
            row["count"] += 1
            row["score"] += i.score
            row["beta"] += i.score if i.beta_store_count else 0
    return render_template(
        "incidents/trend.html",
        apps=apps,
        app=app,
        weeks=weeks,
        periods=TREND_PERIODS,
        data=data,
        chart=chart,
        by_release=sorted(by_release.items(), key=lambda kv: sort_key(kv[0] or ""), reverse=True),
        total=sum(w["total"] for w in data["weeks"]),
        count=sum(len(w["incidents"]) for w in data["weeks"]),
        is_admin=current_user.role == "admin",
    )


def _gate_settings(slug: str) -> str:
    return url_for("incidents.trend", slug=slug) + "#gate-settings"


@bp.post("/incidents/settings/<slug>")
@roles_required("admin")
@refusal_goes_back("Not saved", _gate_settings)
def app_settings(slug: str) -> Response:
    session = db.session()
    app = session.exec(select(App).where(App.slug == slug)).first() or abort(404)
    update_app_record(
        session,
        app=app,
        actor=_user().actor,
        holiday_calendar=request.form.get("holiday_calendar", ""),
        promotion_gates=request.form.get("promotion_gates") == "on",
    )
    session.commit()
    flash(f"Saved the gate settings of {app.name}.", "success")
    return redirect(_gate_settings(slug))


# --- the release page panel ------------------------------------------------------------


def release_panel(session: Session, release: Release) -> dict[str, Any]:
    """What ``incidents/_release_incidents.html`` shows on the release page."""
    app = session.get(App, release.app_id)
    assert app is not None
    incidents = services.list_incidents(session, release=release)
    beta = [i for i in incidents if i.beta_store_count > 0]
    rest = [i for i in incidents if i.beta_store_count == 0]
    gates = services.evaluate_gates(session, release)
    role = getattr(current_user, "role", None)
    return {
        "release": release,
        "app": app,
        "beta": beta,
        "rest": rest,
        "beta_score": sum(i.score for i in beta),
        "rest_score": sum(i.score for i in rest),
        "gates": gates,
        "overrides": services.overrides_for(session, release),
        "enforced": app.promotion_gates,
        "can_override": role == "admin" and release.state in services.OVERRIDE_STATES,
        "can_record": role is not None and role != "viewer",
        "gate_titles": GATE_TITLES,
    }
