"""Fleet pages: the beta cohort, stores and devices, freezes, CSV import, rollout stage.

Everyone logged in may look; support, release managers and admins may change the fleet.
Every change is one beta function plus one audit event, committed together; a rejected
input re-renders the form with the message next to the field and changes nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func
from sqlmodel import Session, col, select
from werkzeug.wrappers import Response

from beta import store as beta_store
from beta.cohort import REMOVAL_REASONS, FillPlan, FillRequest
from beta.csv_import import ImportHasErrors, ImportReport, preview_import
from beta.errors import BetaError, Conflict, InvalidInput, NotFound
from beta.models import DEVICE_KINDS, Device, Store, StoreFreeze
from beta.rollout import UpdateAnswer
from service import db
from service.auth import current_actor, login_required, roles_required
from service.beta import services
from service.beta.answers import snapshot
from service.beta.stages import advance_consequence, advance_stage, rollout_summary
from service.errors import refusal_goes_back
from service.models import utcnow
from service.releases.models import App, Release
from versioning import InvalidVersion, parse_version

bp = Blueprint("beta", __name__)
FLEET_EDITORS = ("support", "release_manager")
fleet_editor = roles_required(*FLEET_EDITORS)
STORES_PER_PAGE = 50
MEMBERS_PER_PAGE = 100


def can_edit() -> bool:
    return bool(
        current_user.is_authenticated
        and (current_user.role in FLEET_EDITORS or current_user.role == "admin")
    )


@bp.app_context_processor
def _fleet_context() -> dict[str, Any]:
    return {"fleet_can_edit": can_edit}


def rollout_panel(session: Session, release: Release) -> dict[str, Any]:
    """The release page's rollout panel (``beta/_release_rollout.html``), with what advancing
    the stage would do (said before the release manager confirms it)."""
    return rollout_summary(session, release) | {
        "advance_what": advance_consequence(session, release)
    }


def _store_or_404(external_id: str) -> Store:
    store = beta_store.get_store(session=db.session(), external_id=external_id)
    if store is None:
        abort(404)
    return store


def _int(value: str | None, default: int) -> int:
    try:
        return max(1, int(value or default))
    except ValueError:
        return default


# --- the cohort --------------------------------------------------------------------------


def _cohort_page(
    *,
    plan: FillPlan | None = None,
    fill: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    session = db.session()
    page = _int(request.args.get("page"), 1)
    member_query = select(Store).where(Store.in_beta == True)  # noqa: E712
    size = session.exec(select(func.count()).select_from(member_query.subquery())).one()
    members = session.exec(
        member_query.order_by(col(Store.external_id))
        .offset((page - 1) * MEMBERS_PER_PAGE)
        .limit(MEMBERS_PER_PAGE)
    ).all()
    ids = [s.id or 0 for s in members]
    total = session.exec(select(func.count()).select_from(Store)).one()
    devices_total = session.exec(select(func.count()).select_from(Device)).one()
    beta_devices = session.exec(
        select(func.count())
        .select_from(Device)
        .join(Store, col(Store.id) == col(Device.store_id))
        .where(Store.in_beta == True)  # noqa: E712
    ).one()
    regions, tags = services.facets(session)
    preview: dict[str, list[Store]] = {}
    if plan is not None:
        by_id = beta_store.stores_by_external_id(
            session=session, external_ids=[*plan.add, *plan.remove]
        )
        preview = {
            "add": [by_id[e] for e in plan.add],
            "remove": [by_id[e] for e in plan.remove],
        }
    html = render_template(
        "beta/cohort.html",
        members=members,
        counts=services.device_counts(session, ids),
        since=services.member_since(session, ids),
        size=size,
        total=total,
        devices_total=devices_total,
        beta_devices=beta_devices,
        page=page,
        pages=max(1, -(-size // MEMBERS_PER_PAGE)),
        history=beta_store.cohort_history(session=session, limit=15),
        regions=regions,
        tags=tags,
        plan=plan,
        preview=preview,
        removal_reasons=REMOVAL_REASONS,
        digest=services.plan_digest(plan) if plan is not None else "",
        fill=fill or {"mode": "percent", "target": "5"},
        errors=errors or {},
        frozen=beta_store.list_freezes(session=session, current_at=utcnow()),
        stores_by_pk={s.id: s for s in _freeze_stores(session)},
    )
    return html, status


def _freeze_stores(session: Any) -> list[Store]:
    freezes = beta_store.list_freezes(session=session, current_at=utcnow())
    if not freezes:
        return []
    ids = {f.store_id for f in freezes}
    return list(session.exec(select(Store).where(col(Store.id).in_(ids))))


@bp.get("/beta")
@login_required
def cohort() -> tuple[str, int]:
    return _cohort_page()


def _fill_form() -> tuple[dict[str, Any], FillRequest]:
    form = request.form
    fill: dict[str, Any] = {
        "mode": form.get("mode", "percent"),
        "target": form.get("target", "").strip(),
        "regions": form.getlist("regions"),
        "tags_any": form.getlist("tags_any"),
        "tags_all": form.getlist("tags_all"),
        "exclude": form.get("exclude", ""),
        "reason": form.get("reason", ""),
    }
    target_count: int | None = None
    target_percent: float | None = None
    try:
        if fill["mode"] == "count":
            target_count = int(fill["target"])
        else:
            target_percent = float(fill["target"].rstrip("% "))
    except ValueError:
        raise InvalidInput(
            f"enter a {'whole number' if fill['mode'] == 'count' else 'percentage'}",
            field="target",
        ) from None
    excluded = [p for p in fill["exclude"].replace(",", " ").split() if p]
    request_ = services.fill_request(
        target_count=target_count,
        target_percent=target_percent,
        regions=fill["regions"],
        tags_any=fill["tags_any"],
        tags_all=fill["tags_all"],
        exclude_ids=excluded,
    )
    return fill, request_


@bp.post("/beta/fill")
@fleet_editor
def fill() -> tuple[str, int] | Response:
    session = db.session()
    fill: dict[str, Any] = {}
    try:
        fill, request_ = _fill_form()
        if request.form.get("action") != "apply":
            return _cohort_page(plan=services.preview_fill(session, request_), fill=fill)
        plan = services.apply_fill(
            session,
            request_,
            reason=fill["reason"],
            actor=current_actor(),
            digest=request.form.get("digest", ""),
        )
    except BetaError as error:
        session.rollback()
        field = {"target_count": "target", "target_percent": "target", "exclude_ids": "exclude"}
        name = field.get(error.field, error.field)
        plan_now = None
        if name in ("reason", "plan_digest"):
            try:
                plan_now = services.preview_fill(session, _fill_form()[1])
            except BetaError:
                plan_now = None
        return _cohort_page(
            plan=plan_now, fill=fill or None, errors={name: error.message}, status=422
        )
    session.commit()
    flash(
        f"Beta cohort filled to {len(plan.cohort)} stores: {len(plan.add)} added, "
        f"{len(plan.remove)} removed.",
        "success",
    )
    return redirect(url_for("beta.cohort"))


# --- stores ------------------------------------------------------------------------------


@bp.get("/beta/stores")
@login_required
def stores() -> str:
    session = db.session()
    args = {k: v for k, v in request.args.items() if v != "" and k != "page"}
    in_beta = {"yes": True, "no": False}.get(args.get("in_beta", ""))
    page = _int(request.args.get("page"), 1)
    rows, total = services.search_stores(
        session,
        q=args.get("q", ""),
        region=args.get("region", ""),
        tag=args.get("tag", ""),
        in_beta=in_beta,
        page=page,
        per_page=STORES_PER_PAGE,
    )
    regions, tags = services.facets(session)
    return render_template(
        "beta/stores.html",
        rows=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // STORES_PER_PAGE)),
        args=args,
        counts=services.device_counts(session, [s.id or 0 for s in rows]),
        regions=regions,
        tags=tags,
    )


def _store_values() -> dict[str, Any]:
    """The store form's fields; an empty time zone or window means "not given" (default)."""
    form = request.form
    values: dict[str, Any] = {
        "name": form.get("name", ""),
        "region": form.get("region", ""),
        "tags": [t for t in form.get("tags", "").replace(";", ",").split(",") if t.strip()],
    }
    for key in ("timezone", "update_window_start", "update_window_end"):
        if form.get(key, "").strip():
            values[key] = form[key]
    return values


@bp.route("/beta/stores/new", methods=["GET", "POST"])
@fleet_editor
def new_store() -> tuple[str, int] | Response:
    values: dict[str, Any] = {"timezone": "Asia/Tokyo"}
    errors: dict[str, str] = {}
    if request.method == "POST":
        session = db.session()
        values = {"external_id": request.form.get("external_id", ""), **_store_values()}
        try:
            store = services.create_store(session, actor=current_actor(), **values)
        except BetaError as error:
            session.rollback()
            errors = {error.field: error.message}
        else:
            session.commit()
            flash(f"Created store {store.external_id} {store.name}.", "success")
            return redirect(url_for("beta.store", external_id=store.external_id))
    html = render_template("beta/store_new.html", values=values, errors=errors)
    return html, 422 if errors else 200


def _offers(store: Store) -> list[dict[str, Any]]:
    """What a device of this store running each app's released version is offered now."""
    fleet_snapshot = snapshot(db.session())
    rows = []
    for slug, app_releases in sorted(fleet_snapshot.apps.items()):
        released = [o for o in app_releases.releases if o.state == "released"]
        current = released[0].version if released else "0.0.0"
        answer: UpdateAnswer = fleet_snapshot.decide(
            app=slug, store_id=store.external_id, current_version=current, now=utcnow()
        )
        rows.append({"app": slug, "current": current, "answer": answer})
    return rows


def _store_page(
    store: Store, *, errors: dict[str, dict[str, str]] | None = None, status: int = 200
) -> tuple[str, int]:
    session = db.session()
    ask: dict[str, Any] | None = None
    if request.method == "GET" and request.args.get("app"):
        ask = {"app": request.args["app"], "version": request.args.get("version", "").strip()}
        try:
            parse_version(ask["version"])
            ask["answer"] = snapshot(session).decide(
                app=ask["app"],
                store_id=store.external_id,
                current_version=ask["version"],
                now=utcnow(),
            )
        except InvalidVersion as error:
            ask["error"] = str(error)
        except NotFound as error:
            ask["error"] = error.message
    now = utcnow()
    zone = ZoneInfo(store.timezone)
    html = render_template(
        "beta/store.html",
        store=store,
        devices=beta_store.list_devices(session=session, store=store),
        freezes=beta_store.list_freezes(session=session, store=store),
        active=beta_store.active_freeze(session=session, store=store, now=now),
        history=beta_store.cohort_history(session=session, store=store),
        offers=_offers(store),
        ask=ask,
        now=now,
        zone=zone,
        local_now=now.astimezone(zone),
        default_end=(now + timedelta(days=1)).astimezone(zone),
        kinds=DEVICE_KINDS,
        errors=errors or {},
        form=request.form if request.method == "POST" else {},
        apps=sorted(snapshot(session).apps),
    )
    return html, status


def _failed(store: Store, form_name: str, error: BetaError) -> tuple[str, int]:
    db.session().rollback()
    db.session().refresh(store)
    return _store_page(store, errors={form_name: {error.field or "": error.message}}, status=422)


@bp.get("/beta/stores/<external_id>")
@login_required
def store(external_id: str) -> tuple[str, int]:
    return _store_page(_store_or_404(external_id))


@bp.post("/beta/stores/<external_id>/edit")
@fleet_editor
def edit_store(external_id: str) -> tuple[str, int] | Response:
    session = db.session()
    store = _store_or_404(external_id)
    try:
        services.update_store(session, store, actor=current_actor(), **_store_values())
    except BetaError as error:
        return _failed(store, "edit", error)
    session.commit()
    flash(f"Saved store {store.external_id}.", "success")
    return redirect(url_for("beta.store", external_id=external_id))


@bp.post("/beta/stores/<external_id>/devices")
@fleet_editor
def add_device(external_id: str) -> tuple[str, int] | Response:
    session = db.session()
    store = _store_or_404(external_id)
    try:
        device = services.create_device(
            session,
            store,
            actor=current_actor(),
            device_id=request.form.get("device_id", ""),
            kind=request.form.get("kind", ""),
            label=request.form.get("label", ""),
        )
    except BetaError as error:
        return _failed(store, "device", error)
    session.commit()
    flash(f"Added {device.kind} device {device.device_id}.", "success")
    return redirect(url_for("beta.store", external_id=external_id) + "#devices")


def _device_or_404(device_id: str) -> tuple[Device, Store]:
    session = db.session()
    device = beta_store.get_device(session=session, device_id=device_id)
    if device is None:
        abort(404)
    store = session.get(Store, device.store_id)
    assert store is not None
    return device, store


@bp.post("/beta/devices/<device_id>/edit")
@fleet_editor
def edit_device(device_id: str) -> tuple[str, int] | Response:
    session = db.session()
    device, store = _device_or_404(device_id)
    try:
        services.update_device(
            session,
            device,
            actor=current_actor(),
            kind=request.form.get("kind", ""),
            label=request.form.get("label", ""),
        )
    except BetaError as error:
        return _failed(store, f"device-{device_id}", error)
    session.commit()
    flash(f"Saved device {device_id}.", "success")
    return redirect(url_for("beta.store", external_id=store.external_id) + "#devices")


@bp.post("/beta/devices/<device_id>/delete")
@fleet_editor
def delete_device(device_id: str) -> Response:
    session = db.session()
    device, store = _device_or_404(device_id)
    services.delete_device(session, device, actor=current_actor())
    session.commit()
    flash(f"Deleted device {device_id}.", "success")
    return redirect(url_for("beta.store", external_id=store.external_id) + "#devices")


@bp.post("/beta/stores/<external_id>/cohort")
@fleet_editor
def change_cohort(external_id: str) -> tuple[str, int] | Response:
    session = db.session()
    store = _store_or_404(external_id)
    action = request.form.get("action", "")
    try:
        services.change_cohort(
            session,
            store,
            action=action,
            reason=request.form.get("reason", ""),
            actor=current_actor(),
        )
    except BetaError as error:
        return _failed(store, "cohort", error)
    session.commit()
    done = {"enrol": "enrolled in", "remove": "removed from", "unpin": "handed back to the hash in"}
    flash(f"{store.external_id} {done[action]} the beta cohort.", "success")
    return redirect(url_for("beta.store", external_id=external_id))


def _local_datetime(value: str, zone: ZoneInfo, field: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput("enter a date and time", field=field) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment


@bp.post("/beta/stores/<external_id>/freezes")
@fleet_editor
def freeze_store(external_id: str) -> tuple[str, int] | Response:
    session = db.session()
    store = _store_or_404(external_id)
    zone = ZoneInfo(store.timezone)
    try:
        starts = request.form.get("starts_at", "").strip()
        services.freeze(
            session,
            store,
            starts_at=_local_datetime(starts, zone, "starts_at") if starts else utcnow(),
            ends_at=_local_datetime(request.form.get("ends_at", ""), zone, "ends_at"),
            reason=request.form.get("reason", ""),
            actor=current_actor(),
        )
    except BetaError as error:
        return _failed(store, "freeze", error)
    session.commit()
    flash(f"Froze {store.external_id}: its devices get no new version meanwhile.", "success")
    return redirect(url_for("beta.store", external_id=external_id) + "#freezes")


@bp.post("/beta/freezes/<int:freeze_id>/lift")
@fleet_editor
def lift_freeze(freeze_id: int) -> tuple[str, int] | Response:
    session = db.session()
    row = session.get(StoreFreeze, freeze_id) or abort(404)
    store = session.get(Store, row.store_id)
    assert store is not None
    try:
        services.lift(session, row, actor=current_actor())
    except BetaError as error:
        return _failed(store, "freeze", error)
    session.commit()
    flash(f"Lifted the freeze of {store.external_id}.", "success")
    return redirect(url_for("beta.store", external_id=store.external_id) + "#freezes")


# --- CSV import --------------------------------------------------------------------------


@bp.route("/beta/import", methods=["GET", "POST"])
@fleet_editor
def import_stores() -> tuple[str, int] | Response:
    session = db.session()
    text = ""
    report: ImportReport | None = None
    error = ""
    if request.method == "POST":
        upload = request.files.get("file")
        if upload is not None and upload.filename:
            raw = upload.read()
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                error = "The file is not UTF-8 text: save it as 'CSV UTF-8' and upload it again."
        else:
            # The confirm step carries the checked text back in a hidden field.
            text = request.form.get("csv", "")
        if not error and not text.strip():
            error = "Choose a CSV file (or paste its text) first."
        if not error and request.form.get("action") == "apply":
            try:
                report, result = services.import_csv(
                    session,
                    text,
                    actor=current_actor(),
                    accept_valid=request.form.get("accept_valid") == "yes",
                )
            except ImportHasErrors as refused:
                session.rollback()
                report = refused.report
                error = f"Nothing was imported: {refused.message}."
            except BetaError as failure:
                session.rollback()
                error = f"Nothing was imported: {failure.message}."
            else:
                session.commit()
                flash(
                    f"Imported stores: {len(result.created)} created, {len(result.updated)} "
                    f"updated, {len(result.unchanged)} unchanged, "
                    f"{len(result.skipped_lines)} rejected line(s) skipped.",
                    "success",
                )
                return redirect(url_for("beta.stores"))
        elif not error:
            report = preview_import(session=session, data=text)
    html = render_template("beta/import.html", report=report, text=text, error=error)
    return html, 422 if error else 200


# --- rollout -----------------------------------------------------------------------------


def _release_page(release_id: int) -> str:
    # The release page belongs to the releases feature; its path is stable.
    return f"/releases/{release_id}"


@bp.post("/fleet/releases/<int:release_id>/advance-stage")
@roles_required("release_manager")
@refusal_goes_back("Not advanced", _release_page)
def advance_release_stage(release_id: int) -> Response | tuple[str, int]:
    """Advance the rollout, only with ``confirm=yes`` (the panel's "Yes, advance" after it
    said how many stores it adds); without it, the confirmation page says so and asks."""
    session = db.session()
    release = session.get(Release, release_id) or abort(404)
    expected = request.form.get("stage_percent", "")
    if request.form.get("confirm") != "yes":
        summary = rollout_summary(session, release)
        if not summary["can_advance"]:
            raise Conflict(
                "only a release that is rolling out below 100 % can advance", field="state"
            )
        app = session.get(App, release.app_id)
        return render_template(
            "beta/confirm_advance.html",
            release=release,
            app=app,
            rollout=summary,
            what=advance_consequence(session, release),
        ), 200
    target = advance_stage(
        session,
        release,
        current_actor(),
        expected_percent=int(expected) if expected.isdigit() else None,
    )
    session.commit()
    app = session.get(App, release.app_id)
    flash(
        f"{app.slug if app else ''} {release.version} now rolls out to {target:g} % of the "
        "other stores.",
        "success",
    )
    return redirect(_release_page(release_id))
