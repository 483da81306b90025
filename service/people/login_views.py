"""Logging in and out (the person's session cookie; ``service.auth`` checks passwords and
counts failures through ``service.security``)."""

from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from sqlmodel import select
from werkzeug.wrappers import Response
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired

from service import db, security, sessions
from service.auth import person_email, record_session, verify_password
from service.models import User, utcnow

bp = Blueprint("auth", __name__)


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), person_email])
    password = PasswordField("Password", validators=[DataRequired()])


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response:
    if current_user.is_authenticated:
        return redirect(url_for("pages.dashboard"))
    form = LoginForm()
    error = None
    status = 200
    if form.validate_on_submit():
        db_session = db.session()
        email = (form.email.data or "").strip().lower()
        address = request.remote_addr
        refusal = security.login_refusal(db_session, email=email, address=address)
        if refusal is not None:
            return _refused(form, refusal)
        user = db_session.exec(select(User).where(User.email == email)).first()
        if verify_password(user, form.password.data or "") and user and user.active:
            user.last_login_at = utcnow()
            db_session.add(user)
            secret = sessions.start(
                db_session,
                user,
                hours=current_app.config["RELGOV_SETTINGS"].session_hours,
                address=address,
                user_agent=request.user_agent.string,
            )
            record_session(db_session, user, "user.login", "logged in")
            db_session.commit()
            session.clear()
            login_user(user)
            session.permanent = True
            session[sessions.COOKIE_KEY] = secret
            target = request.args.get("next", "")
            # Only follow local paths, never another site.
            if not target.startswith("/") or target.startswith("//"):
                target = url_for("pages.dashboard")
            return redirect(target)
        refusal = security.record_failure(db_session, email=email, address=address)
        db_session.commit()
        if refusal is not None:
            return _refused(form, refusal)
        error = "Wrong email or password."
        status = 401
    elif request.method == "POST":
        error = "Enter your email address and password."
        status = 400
    return render_template("login.html", form=form, error=error), status  # type: ignore[return-value]


def _refused(form: LoginForm, refusal: security.LoginRefusal) -> Response:
    response = current_app.make_response(
        (render_template("login.html", form=form, error=refusal.message), 429)
    )
    response.headers["Retry-After"] = str(refusal.retry_after)
    return response


@bp.post("/logout")
def logout() -> Response:
    if current_user.is_authenticated:
        db_session = db.session()
        sessions.end(db_session, session.get(sessions.COOKIE_KEY), "logout")
        record_session(db_session, current_user, "user.logout", "logged out")
        db_session.commit()
    logout_user()
    session.clear()
    flash("You have logged out.", "info")
    return redirect(url_for("auth.login"))
