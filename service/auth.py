"""Who is asking: people log in with a password (session cookie), machines send a token.

Passwords are hashed with Argon2id (argon2-cffi). API tokens are random, shown once, and
stored only as a SHA-256 hash (a token has 256 bits of entropy, so a slow hash adds nothing).
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import (
    Flask,
    abort,
    flash,
    g,
    session,
)
from flask_login import LoginManager, current_user, logout_user
from sqlmodel import Session, col, select
from werkzeug.wrappers import Response
from wtforms import Field
from wtforms.validators import ValidationError

from service import audit, db, sessions
from service.errors import DomainError
from service.models import ROLES, SCOPES, ApiToken, User, utcnow

login_manager = LoginManager()
_hasher = PasswordHasher()  # Argon2id with argon2-cffi's RFC 9106 "low memory" profile


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against when the user does not exist, so that "unknown user" and
    "wrong password" take the same time (made on first use, not at every start-up)."""
    return _hasher.hash("not-a-real-password")


MIN_PASSWORD_LENGTH = 10
TOKEN_PREFIX = "rg_"

P = ParamSpec("P")
R = TypeVar("R")


class AuthError(DomainError):
    """A user or token request that cannot be carried out; the message says why."""


# --- passwords and users -------------------------------------------------------------


def use_fast_hashing_for_tests() -> None:
    """Cheap Argon2 parameters: only ever called when RELGOV_ENV=test."""
    global _hasher
    _hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(user: User | None, password: str) -> bool:
    try:
        return _hasher.verify(user.password_hash if user else _dummy_hash(), password) and bool(
            user
        )
    except (VerificationError, InvalidHashError):
        return False


def validate_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AuthError(
            f"password must be at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )


# The one rule for a person's email, used by the login form, the people page and API and the
# CLI alike: what one of them accepts, the others accept. A domain needs a dot; reserved
# names such as ``x.test`` or ``corp.internal`` are fine (internal accounts use them).
_LOCAL = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
EMAIL_RE = re.compile(rf"{_LOCAL}@{_LABEL}(?:\.{_LABEL})+")


def email_refusal(email: str) -> str | None:
    """Why ``email`` (already stripped and lower-cased) is not a person's email; None if it is."""
    local = email.partition("@")[0]
    if not email:
        return "enter an email address"
    if len(email) > 254 or len(local) > 64 or not EMAIL_RE.fullmatch(email):
        return f"{email!r} is not an email address (name@domain.example)"
    return None


def person_email(form: object, field: Field) -> None:
    """The same rule as a WTForms validator: the login form and the people page accept
    exactly what the CLI and the API accept."""
    refusal = email_refusal((field.data or "").strip().lower())
    if refusal:
        raise ValidationError(refusal)


def normalise_email(email: str) -> str:
    """``email`` as stored (stripped, lower case), or :class:`AuthError` on ``email``."""
    email = email.strip().lower()
    refusal = email_refusal(email)
    if refusal:
        raise AuthError(refusal, field="email")
    return email


def user_snapshot(user: User) -> dict[str, Any]:
    return {"email": user.email, "name": user.name, "role": user.role, "active": user.active}


def create_user(
    *, session: Session, email: str, name: str, role: str, password: str, actor: str
) -> User:
    email = normalise_email(email)
    if role not in ROLES:
        raise AuthError(f"role must be one of {', '.join(ROLES)}", field="role")
    validate_password(password)
    if session.exec(select(User).where(User.email == email)).first():
        raise AuthError(f"a user with email {email} already exists", field="email")
    user = User(
        email=email,
        name=name.strip() or email.split("@")[0],
        role=role,
        password_hash=hash_password(password),
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="user.create",
        subject_type="user",
        subject_id=user.email,
        after=user_snapshot(user),
        summary=f"created {user.email} as {user.role_label}",
    )
    return user


def update_user(
    *,
    session: Session,
    user: User,
    actor: str,
    role: str | None = None,
    active: bool | None = None,
    name: str | None = None,
    password: str | None = None,
    keep_session: str | None = None,
) -> User:
    """Change a person. A password change, a role change and disabling end the person's
    sessions (a password change made by the person in a session, ``keep_session`` (the
    cookie's secret), keeps that one)."""
    before = user_snapshot(user)
    if role is not None:
        if role not in ROLES:
            raise AuthError(f"role must be one of {', '.join(ROLES)}", field="role")
        if user.role == "admin" and role != "admin":
            _keep_an_admin(session, user)
        user.role = role
    if active is not None:
        if not active and user.role == "admin":
            _keep_an_admin(session, user)
        user.active = active
    if name is not None and name.strip():
        user.name = name.strip()
    if password:
        validate_password(password)
        user.password_hash = hash_password(password)
    session.add(user)
    after = user_snapshot(user)
    disabled = before["active"] and not user.active
    ended = suspended = 0
    if password or after["role"] != before["role"] or disabled:
        reason = "password changed" if password else "role changed"
        if not user.active:
            reason = "disabled"
        keep = keep_session if user.active and after["role"] == before["role"] else None
        ended = sessions.end_all(session, user.id or 0, reason=reason, keep=keep)
    if disabled:
        suspended = _suspend_tokens_of(session, user, actor)
    if after != before or password:
        noted = {"sessions_ended": ended, "tokens_suspended": suspended}
        audit.record(
            session,
            actor=actor,
            action="user.update",
            subject_type="user",
            subject_id=user.email,
            before=before,
            after={
                **after,
                **({"password": "changed"} if password else {}),
                **{key: value for key, value in noted.items() if value},
            },
            summary=f"updated {user.email}"
            + (f"; ended {_count(ended, 'session')}" if ended else "")
            + (f"; suspended {_count(suspended, 'token')}" if suspended else ""),
        )
    return user


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'s' if n != 1 else ''}"


def log_out_everywhere(*, session: Session, user: User, actor: str) -> int:
    """End every session of ``user`` (an admin's "log out everywhere"); how many ended."""
    ended = sessions.end_all(session, user.id or 0, reason=f"logged out everywhere by {actor}")
    audit.record(
        session,
        actor=actor,
        action="user.logout_everywhere",
        subject_type="user",
        subject_id=user.email,
        after={"sessions_ended": ended},
        summary=f"logged {user.email} out everywhere ({_count(ended, 'session')})",
    )
    return ended


def record_session(session: Session, user: User, action: str, summary: str) -> None:
    """Audit a login or a logout of ``user``."""
    audit.record(
        session,
        actor=user.actor,
        action=action,
        subject_type="user",
        subject_id=user.email,
        summary=summary,
    )


def _keep_an_admin(session: Session, user: User) -> None:
    admins = session.exec(
        select(User).where(User.role == "admin", User.active == True, User.id != user.id)  # noqa: E712
    ).all()
    if not admins:
        raise AuthError("the last active admin cannot be demoted or disabled", field="role")


# --- API tokens ----------------------------------------------------------------------


def _token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def issue_token(
    *,
    session: Session,
    name: str,
    scopes: Iterable[str],
    creator: User,
    expires_in_days: int | None = None,
) -> tuple[ApiToken, str]:
    """Create a token; the raw value is returned once and never stored."""
    name = name.strip()
    if not name:
        raise AuthError("a token needs a name that says who uses it", field="name")
    scope_list = sorted(set(scopes))
    if not scope_list:
        raise AuthError("choose at least one scope", field="scopes")
    unknown = [s for s in scope_list if s not in SCOPES]
    if unknown:
        raise AuthError(f"unknown scope {unknown[0]!r}", field="scopes")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        name=name,
        prefix=raw[: len(TOKEN_PREFIX) + 6],
        token_hash=_token_hash(raw),
        scopes=scope_list,
        created_by_id=creator.id or 0,
        owner_id=creator.id or 0,
        expires_at=utcnow() + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    session.add(token)
    session.flush()
    audit.record(
        session,
        actor=creator.actor,
        action="token.issue",
        subject_type="api_token",
        subject_id=token.id,
        after={"name": token.name, "scopes": token.scopes, "prefix": token.prefix},
        summary=f"issued token {token.name} ({', '.join(token.scopes)})",
    )
    return token, raw


def revoke_token(*, session: Session, token: ApiToken, actor: User) -> ApiToken:
    if token.revoked_at is not None:
        raise AuthError("this token is already revoked")
    token.revoked_at = utcnow()
    token.revoked_by_id = actor.id
    session.add(token)
    audit.record(
        session,
        actor=actor.actor,
        action="token.revoke",
        subject_type="api_token",
        subject_id=token.id,
        before={"revoked": False},
        after={"revoked": True},
        summary=f"revoked token {token.name}",
    )
    return token


def _suspend_tokens_of(session: Session, owner: User, actor: str) -> int:
    """Suspend the usable tokens ``owner`` answers for (they are being disabled); each is
    audited. How many were suspended."""
    tokens = session.exec(
        select(ApiToken).where(
            ApiToken.owner_id == owner.id,
            col(ApiToken.revoked_at).is_(None),
            col(ApiToken.suspended_at).is_(None),
        )
    ).all()
    now = utcnow()
    for token in tokens:
        token.suspended_at = now
        token.suspended_reason = f"its owner {owner.email} was disabled"
        session.add(token)
        audit.record(
            session,
            actor=actor,
            action="token.suspend",
            subject_type="api_token",
            subject_id=token.id,
            before={"suspended": False, "owner": owner.email},
            after={"suspended": True, "reason": token.suspended_reason},
            summary=f"suspended token {token.name}: {token.suspended_reason}",
            highlight=True,
        )
    return len(tokens)


def hand_over_token(*, session: Session, token: ApiToken, owner: User, actor: str) -> ApiToken:
    """Make the active admin ``owner`` answer for ``token``; a suspended token resumes."""
    if token.revoked_at is not None:
        raise AuthError("this token is revoked; issue a new one instead", field="owner")
    if not owner.active or owner.role != "admin":
        raise AuthError(f"{owner.email} is not an active admin", field="owner")
    previous = session.get(User, token.owner_id)
    was_suspended = token.suspended_at is not None
    if token.owner_id == owner.id and not was_suspended:
        raise AuthError(f"{owner.email} already owns this token", field="owner")
    token.owner_id = owner.id or 0
    token.suspended_at = None
    token.suspended_reason = None
    session.add(token)
    audit.record(
        session,
        actor=actor,
        action="token.hand_over",
        subject_type="api_token",
        subject_id=token.id,
        before={"owner": previous.email if previous else None, "suspended": was_suspended},
        after={"owner": owner.email, "suspended": False},
        summary=f"handed token {token.name} to {owner.email}"
        + (" (it resumes)" if was_suspended else ""),
    )
    return token


def find_token(session: Session, raw: str) -> ApiToken | None:
    if not raw.startswith(TOKEN_PREFIX):
        return None
    return session.exec(select(ApiToken).where(ApiToken.token_hash == _token_hash(raw))).first()


# --- Flask wiring --------------------------------------------------------------------


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to see that page."
    login_manager.login_message_category = "info"
    app.before_request(_check_session)


_ENDED = "relgov.session_ended"


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    """The person of the request's cookie, when it names a live session on the server
    (``service.sessions``); a cookie without one (logged out, expired, revoked, or signed
    before sessions were kept on the server) is no login."""
    user, ended = sessions.resolve(db.session(), session.get(sessions.COOKIE_KEY), user_id)
    if ended is not None:
        g.setdefault(_ENDED, ended)
    return user


def _check_session() -> None:
    """A cookie whose session has ended is cleared (once), saying so when it expired."""
    if "_user_id" not in session or current_user.is_authenticated:
        return
    ended = g.pop(_ENDED, None)
    logout_user()
    session.clear()
    if ended == "expired":
        flash("Your session has expired. Please log in again.", "warning")
    elif ended == "revoked":
        flash("Your session was ended. Please log in again.", "warning")


def roles_required(*roles: str) -> Callable[[Callable[P, R]], Callable[P, R | Response]]:
    """Page decorator: logged in, and (admins always) one of ``roles`` when given."""

    def decorator(view: Callable[P, R]) -> Callable[P, R | Response]:
        @functools.wraps(view)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R | Response:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()  # type: ignore[no-any-return]
            if roles and current_user.role not in roles and current_user.role != "admin":
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


login_required = roles_required()


def current_actor() -> str:
    """The actor string for audit events in this request (a user or an API token)."""
    token: ApiToken | None = g.get("api_token")
    if token is not None:
        return token.actor
    if current_user.is_authenticated:
        return str(current_user.actor)
    return "anonymous"
