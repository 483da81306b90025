"""Release pages: the list, one release (checklist, sign-offs, actions); the weekly meeting
is ``service.meetings``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
from sqlmodel import Session, col, select
from werkzeug.wrappers import Response

from release_notes.markdown_doc import render_html
from service import db
from service.auth import login_required, roles_required
from service.errors import refusal_goes_back
from service.models import AuditEvent, User
from service.releases import checklist, notes, services
from service.releases.lifecycle import (
    ACTION_LABELS,
    NEEDS_CONFIRMATION,
    allowed_actions,
    preflight,
    reason_needed,
    transition,
    what_happens,
)
from service.releases.models import STATES, App, Release, ReleaseItem

bp = Blueprint("releases", __name__)
STATE_BADGES = {
    "draft": "",
    "in_review": "info",
    "approved": "good",
    "beta": "info",
    "rolling_out": "info",
    "released": "good",
    "rejected": "bad",
    "halted": "bad",
    "cancelled": "",
}
# A section other features add to the release page: its template, and a function of
# (session, release) that gives the template its ``panel``.
Panel = tuple[str, Callable[[Session, Release], Any]]
# The promotion gates of a release (objects with key, title, status, evidence, ok), as the
# decision area shows them; the incidents feature evaluates them (``service/wiring.py``).
GatesOf = Callable[[Session, Release], Sequence[Any]]
_PANELS_KEY = "relgov.release_panels"
_GATES_KEY = "relgov.release_gates"


def init_app(app: Flask, *, panels: Sequence[Panel], gates: GatesOf | None = None) -> None:
    """The sections other features add to the release page, in order, and who evaluates its
    promotion gates (``service/wiring.py``)."""
    app.extensions[_PANELS_KEY] = tuple(panels)
    app.extensions[_GATES_KEY] = gates


def _user() -> User:
    user: User = current_user._get_current_object()
    return user


def _release_or_404(release_id: int) -> tuple[Release, App]:
    session = db.session()
    release = session.get(Release, release_id) or abort(404)
    app = session.get(App, release.app_id) or abort(404)
    return release, app


def _item_or_404(release_id: int, item_id: int) -> tuple[Release, ReleaseItem]:
    release, _ = _release_or_404(release_id)
    return release, checklist.release_item(db.session(), release, item_id) or abort(404)


@bp.app_template_filter("state_label")
def state_label(state: str) -> str:
    return state.replace("_", " ")


@bp.app_context_processor
def _badges() -> dict[str, Any]:
    return {"STATE_BADGES": STATE_BADGES}


@bp.get("/releases")
@login_required
def release_list() -> str:
    session = db.session()
    apps = session.exec(select(App).order_by(App.name)).all()
    app_filter = request.args.get("app", "")
    state_filter = request.args.get("state", "")
    stmt = select(Release, App).join(App, col(App.id) == col(Release.app_id))
    if app_filter:
        stmt = stmt.where(App.slug == app_filter)
    if state_filter in STATES:
        stmt = stmt.where(Release.state == state_filter)
    rows = session.exec(stmt.order_by(col(Release.created_at).desc()).limit(500)).all()
    return render_template(
        "releases/list.html",
        rows=rows,
        apps=apps,
        states=STATES,
        app_filter=app_filter,
        state_filter=state_filter,
        can_register=current_user.role in ("release_manager", "admin", "engineer"),
    )


@bp.route("/releases/new", methods=["GET", "POST"])
@roles_required("release_manager", "engineer")
def release_new() -> str | Response:
    session = db.session()
    apps = session.exec(select(App).order_by(App.name)).all()
    form = {
        "app": request.form.get("app", ""),
        "version": request.form.get("version", ""),
        "git_ref": request.form.get("git_ref", ""),
        "kind": request.form.get("kind", "weekly"),
    }
    errors: dict[str, str] = {}
    if request.method == "POST":
        app = next((a for a in apps if a.slug == form["app"]), None)
        if app is None:
            errors["app"] = "choose an app"
        else:
            try:
                release, created = services.register_checked(
                    session,
                    app=app,
                    version=form["version"],
                    git_ref=form["git_ref"] or form["version"],
                    kind=form["kind"],
                    actor=services.actor_for(_user()),
                    policy=notes.repo_policy(),
                )
            except checklist.ReleaseError as exc:
                session.rollback()
                errors[exc.field or "version"] = exc.message
            else:
                session.commit()
                app = session.get(App, release.app_id) or app
                flash(
                    f"Registered {app.name} {release.version}; its notes are being generated "
                    "from git (notes pending)."
                    if created
                    else f"{app.name} {release.version} was already registered.",
                    "success" if created else "info",
                )
                return redirect(url_for("releases.release_detail", release_id=release.id))
    status = 422 if errors else 200
    return render_template(  # type: ignore[return-value]
        "releases/new.html", apps=apps, form=form, errors=errors
    ), status


@bp.get("/releases/<int:release_id>")
@login_required
def release_detail(release_id: int) -> str:
    session = db.session()
    record = _decision_record(release_id)
    release = record["release"]
    note = notes.note_for(session, release)
    history = session.exec(
        select(AuditEvent)
        .where(AuditEvent.subject_type == "release", AuditEvent.subject_id == str(release.id))
        .order_by(col(AuditEvent.at).desc(), col(AuditEvent.id).desc())
        .limit(100)
    ).all()
    panels = []
    for template, context in current_app.extensions[_PANELS_KEY]:
        try:
            panels.append((template, context(session, release)))
        except Exception as exc:  # a broken panel must not take the release page down
            panels.append(("releases/_panel_error.html", {"error": str(exc)}))
    preview = render_html(note.markdown) if note is not None and note.markdown else ""
    user = _user()
    gates_of: GatesOf | None = current_app.extensions.get(_GATES_KEY)
    gates = list(gates_of(session, release)) if gates_of is not None else []
    return render_template(
        "releases/detail.html",
        **record,
        note=note,
        notes_state=notes.notes_state(session, release, note),
        notes_job=notes.generation_job(session, release),
        editor_roles=notes.EDITOR_ROLES,
        preview=preview,
        history=history,
        panels=panels,
        decisions=_decisions(session, release, gates, user),
        gates=gates,
        review_changes={
            s.item.id: checklist.changes_since_review(session, release, s.item)
            for s in record["statuses"]
            if s.reopened is not None
        },
        gate_failures=_gate_failures(release, gates),
        user=user,
    )


def _gate_failures(release: Release, gates: Sequence[Any]) -> list[Any]:
    """The promotion gates known to fail (measured, not overridden) while in beta."""
    if release.state != "beta":
        return []
    return [g for g in gates if g.status == "failed" and not g.ok]


def _decisions(
    session: Session, release: Release, gates: Sequence[Any], user: User
) -> list[dict[str, Any]]:
    """The moves ``user`` may make on the page, each with what it does and whether it asks
    for a reason and a confirmation; Promote is not the primary move while a gate fails."""
    failing = bool(_gate_failures(release, gates))
    out = []
    for action in allowed_actions(release):
        if not _may(user, action):
            continue
        out.append(
            {
                "action": action,
                "label": ACTION_LABELS[action],
                "reason": reason_needed(release, action),
                "confirm": action in NEEDS_CONFIRMATION,
                "what": what_happens(session, release, action),
                "style": _style(action, failing),
            }
        )
    return out


def _style(action: str, gates_failing: bool) -> str:
    if action in ("reject", "halt", "cancel") or (action == "promote" and gates_failing):
        return "secondary"
    if action in ("reopen", "resume"):
        return "secondary outline"
    return ""


def _may(user: User, action: str) -> bool:
    if user.role == "admin":
        return True
    if action == "submit":
        return user.role in ("release_manager", "engineer")
    return user.role == "release_manager"


def _release_page(release_id: int, **_view_args: Any) -> str:
    return url_for("releases.release_detail", release_id=release_id)


def _item_on_page(release_id: int, item_id: int) -> str:
    return url_for("releases.release_detail", release_id=release_id) + f"#item-{item_id}"


def _action_failed() -> str:
    action = request.form.get("action", "")
    return f"Could not {ACTION_LABELS.get(action, action).lower()}"


@bp.post("/releases/<int:release_id>/transition")
@roles_required("release_manager", "engineer")
@refusal_goes_back(_action_failed, _release_page)
def release_transition(release_id: int) -> Response | tuple[str, int]:
    """Take a move. Approve, Promote, Mark released and Halt happen only with ``confirm=yes``
    (the page's "Yes, …" button, after it said what will happen); a form without it gets the
    confirmation page instead, so a stray or replayed post never moves a release."""
    session = db.session()
    release, app = _release_or_404(release_id)
    action = request.form.get("action", "")
    actor = services.actor_for(_user())
    lock = _int(request.form.get("lock_version"))
    if action in NEEDS_CONFIRMATION and request.form.get("confirm") != "yes":
        preflight(session, release, action, actor=actor, expected_lock=lock)
        return render_template(
            "releases/confirm.html",
            release=release,
            app=app,
            action=action,
            label=ACTION_LABELS[action],
            what=what_happens(session, release, action),
            needs_reason=reason_needed(release, action),
            reason=request.form.get("reason", ""),
            lock_version=release.lock_version,
        ), 200
    transition(
        session,
        release,
        action,
        actor=actor,
        reason=request.form.get("reason", ""),
        expected_lock=lock,
    )
    session.commit()
    flash(f"{app.name} {release.version} is now {release.state.replace('_', ' ')}.", "success")
    return redirect(_release_page(release_id))


@bp.post("/releases/<int:release_id>/git-ref")
@roles_required("release_manager", "engineer")
@refusal_goes_back("Git ref not corrected", _release_page)
def release_git_ref(release_id: int) -> Response:
    """Correct a draft's git ref: resolved in the repository first (no transaction open),
    then the notes are generated again."""
    session = db.session()
    release, app = _release_or_404(release_id)
    services.check_correctable(release)
    git_ref = request.form.get("git_ref", "")
    actor = services.actor_for(_user())
    sha = services.resolve_git_ref(session, app, git_ref, notes.repo_policy())
    release, app = _release_or_404(release_id)
    changed = services.correct_git_ref(
        session, release=release, git_ref=git_ref, to_sha=sha, actor=actor
    )
    session.commit()
    if changed:
        flash(
            f"{app.name} {release.version} now points at {release.git_ref}; notes pending.",
            "success",
        )
    else:
        flash(f"{app.name} {release.version} already points at {release.git_ref}.", "info")
    return redirect(_release_page(release_id))


@bp.post("/releases/<int:release_id>/items/<int:item_id>/sign")
@login_required
@refusal_goes_back("Not recorded", _item_on_page)
def item_sign(release_id: int, item_id: int) -> Response:
    release, item = _item_or_404(release_id, item_id)
    _, created = checklist.sign_off(
        db.session(),
        release=release,
        item=item,
        user=_user(),
        decision=request.form.get("decision", ""),
        comment=request.form.get("comment", ""),
        expected_lock=_int(request.form.get("lock_version")),
    )
    db.session().commit()
    if created:
        flash(f"Recorded your decision on “{item.title}”.", "success")
    else:
        flash(f"Your decision on “{item.title}” was already recorded; nothing changed.", "info")
    return redirect(_item_on_page(release_id, item_id))


@bp.post("/releases/<int:release_id>/items/<int:item_id>/override")
@roles_required("admin")
@refusal_goes_back("Not overridden", _release_page)
def item_override(release_id: int, item_id: int) -> Response:
    release, item = _item_or_404(release_id, item_id)
    reason = request.form.get("reason", "")
    checklist.override_item(db.session(), release=release, item=item, user=_user(), reason=reason)
    db.session().commit()
    flash(f"Overrode “{item.title}”. The override is highlighted in the audit log.", "warning")
    return redirect(_release_page(release_id))


def _decision_record(release_id: int) -> dict[str, Any]:
    """The release, its checklist and progress (its meeting decisions are the meetings
    feature's panel)."""
    session = db.session()
    release, app = _release_or_404(release_id)
    statuses = checklist.item_statuses(session, release)
    return {
        "release": release,
        "app": app,
        "statuses": statuses,
        "progress": checklist.progress(statuses),
    }


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None
