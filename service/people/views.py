"""Admin pages: people and their roles, API tokens."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlmodel import col, select
from werkzeug.wrappers import Response
from wtforms import (
    BooleanField,
    EmailField,
    IntegerField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    widgets,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from service import db, security, sessions
from service.auth import (
    MIN_PASSWORD_LENGTH,
    AuthError,
    create_user,
    hand_over_token,
    issue_token,
    log_out_everywhere,
    person_email,
    revoke_token,
    roles_required,
    update_user,
)
from service.errors import refusal_goes_back
from service.models import ROLE_LABELS, ROLES, SCOPE_LABELS, SCOPES, ApiToken, User

bp = Blueprint("admin", __name__, url_prefix="/admin")
DEFAULT_ROLE = "viewer"
admin_required = roles_required("admin")
ROLE_CHOICES = [SelectChoice(role, ROLE_LABELS[role]) for role in ROLES]


class UserForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), person_email])
    name = StringField("Name", validators=[Length(max=200)])
    # The least a new person can do; an admin raises it on purpose.
    role = SelectField("Role", choices=ROLE_CHOICES, default=DEFAULT_ROLE)
    password = PasswordField(
        "Initial password",
        validators=[DataRequired(), Length(min=MIN_PASSWORD_LENGTH)],
        description=f"At least {MIN_PASSWORD_LENGTH} characters; share it privately.",
    )


class EditUserForm(FlaskForm):
    name = StringField("Name", validators=[Length(max=200)])
    role = SelectField("Role", choices=ROLE_CHOICES)
    active = BooleanField("Active (may log in)")
    password = PasswordField(
        "New password",
        validators=[Optional(), Length(min=MIN_PASSWORD_LENGTH)],
        description="Leave empty to keep the current password.",
    )


class TokenForm(FlaskForm):
    name = StringField(
        "Name",
        validators=[DataRequired(), Length(max=200)],
        description="Who uses it, e.g. 'CI pos-app' or 'store devices'.",
    )
    scopes = SelectMultipleField(
        "Scopes",
        choices=[SelectChoice(s, f"{s} — {SCOPE_LABELS[s]}") for s in SCOPES],
        widget=widgets.ListWidget(prefix_label=False),
        option_widget=widgets.CheckboxInput(),
    )
    expires_in_days = IntegerField(
        "Expires after (days)",
        validators=[Optional(), NumberRange(min=1, max=3650)],
        description="Leave empty for a token that lasts until revoked.",
    )


@bp.route("/users", methods=["GET", "POST"])
@admin_required
def users() -> str | Response:
    session = db.session()
    form = UserForm()
    if form.validate_on_submit():
        try:
            user = create_user(
                session=session,
                email=form.email.data or "",
                name=form.name.data or "",
                role=form.role.data or "",
                password=form.password.data or "",
                actor=current_user.actor,
            )
        except AuthError as exc:
            _field_error(form, exc)
        else:
            session.commit()
            flash(f"Created {user.email} as {user.role_label}.", "success")
            return redirect(url_for("admin.users"))
    people = session.exec(select(User).order_by(User.email)).all()
    return render_template(
        "admin/users.html", form=form, people=people, paused=security.paused_accounts(session)
    )


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@admin_required
def edit_user(user_id: int) -> str | Response:
    db_session = db.session()
    user = db_session.get(User, user_id) or abort(404)
    form = EditUserForm(obj=user)
    if form.validate_on_submit():
        # An admin changing their own password stays logged in here (their other sessions end).
        mine = session.get(sessions.COOKIE_KEY) if user.id == current_user.id else None
        try:
            update_user(
                session=db_session,
                user=user,
                actor=current_user.actor,
                role=form.role.data,
                active=form.active.data,
                name=form.name.data,
                password=form.password.data or None,
                keep_session=mine,
            )
        except AuthError as exc:
            db_session.rollback()
            _field_error(form, exc)
        else:
            db_session.commit()
            flash(f"Saved {user.email}.", "success")
            return redirect(url_for("admin.users"))
    return render_template(
        "admin/user_edit.html",
        form=form,
        user=user,
        live_sessions=sessions.live(db_session, user.id or 0),
        pauses=security.login_pauses(db_session, user.email),
    )


@bp.post("/users/<int:user_id>/logout-everywhere")
@admin_required
def logout_everywhere(user_id: int) -> Response:
    db_session = db.session()
    user = db_session.get(User, user_id) or abort(404)
    ended = log_out_everywhere(session=db_session, user=user, actor=current_user.actor)
    db_session.commit()
    flash(
        f"Logged {user.email} out everywhere: {ended} session{'s' if ended != 1 else ''} ended.",
        "success",
    )
    return redirect(url_for("admin.edit_user", user_id=user_id))


@bp.route("/tokens", methods=["GET", "POST"])
@admin_required
def tokens() -> str | Response:
    session = db.session()
    form = TokenForm()
    if form.validate_on_submit():
        try:
            token, raw = issue_token(
                session=session,
                name=form.name.data or "",
                scopes=form.scopes.data or [],
                creator=current_user._get_current_object(),
                expires_in_days=form.expires_in_days.data,
            )
        except AuthError as exc:
            _field_error(form, exc)
        else:
            session.commit()
            return render_template("admin/token_created.html", token=token, raw=raw)
    rows = session.exec(select(ApiToken).order_by(col(ApiToken.created_at).desc())).all()
    people = {u.id: u for u in session.exec(select(User).order_by(User.email)).all()}
    return render_template(
        "admin/tokens.html",
        form=form,
        tokens=rows,
        suspended=[t for t in rows if t.suspended_at is not None and t.revoked_at is None],
        people=people,
        admins=[u for u in people.values() if u.active and u.role == "admin"],
    )


@bp.post("/tokens/<int:token_id>/revoke")
@admin_required
def revoke(token_id: int) -> Response:
    session = db.session()
    token = session.get(ApiToken, token_id) or abort(404)
    try:
        revoke_token(session=session, token=token, actor=current_user._get_current_object())
    except AuthError as exc:
        flash(str(exc), "warning")
    else:
        session.commit()
        flash(f"Revoked {token.name}. Clients using it now get 401.", "success")
    return redirect(url_for("admin.tokens"))


@bp.post("/users/<int:user_id>/lift-login-pause")
@admin_required
def lift_login_pause(user_id: int) -> Response:
    db_session = db.session()
    user = db_session.get(User, user_id) or abort(404)
    lifted = security.lift_login_pauses(db_session, email=user.email, actor=current_user.actor)
    db_session.commit()
    where = ", ".join(pause.address for pause in lifted)
    flash(
        f"Lifted the login pause on {user.email}"
        + (f" (from {where})." if lifted else "; none was on."),
        "success",
    )
    return redirect(url_for("admin.edit_user", user_id=user_id))


@bp.post("/tokens/<int:token_id>/owner")
@admin_required
@refusal_goes_back("Not handed over", lambda **_: url_for("admin.tokens"))
def hand_over(token_id: int) -> Response:
    db_session = db.session()
    token = db_session.get(ApiToken, token_id) or abort(404)
    owner_id = request.form.get("owner_id", type=int)
    owner = db_session.get(User, owner_id) if owner_id else None
    if owner is None:
        raise AuthError("choose the admin who will answer for it", field="owner")
    resumed = token.suspended_at is not None
    hand_over_token(session=db_session, token=token, owner=owner, actor=current_user.actor)
    db_session.commit()
    flash(
        f"{token.name} now belongs to {owner.email}" + ("; it works again." if resumed else "."),
        "success",
    )
    return redirect(url_for("admin.tokens"))


def _field_error(form: FlaskForm, exc: AuthError) -> None:
    field = getattr(form, exc.field or "", None)
    if field is not None:
        field.errors = [*field.errors, str(exc)]
    else:
        flash(str(exc), "error")
