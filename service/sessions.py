"""People's sessions: a signed cookie naming a session the server keeps; none for machines.

**Server-side sessions.** A login creates a ``user_session`` row; the signed cookie carries
a random secret (``sid``) whose SHA-256 is the row's primary key, so neither the cookie nor
the table alone can be replayed as the other. Every request that carries a session cookie
resolves it with one primary-key lookup (joined to the person): the session must exist, be
neither revoked nor past ``expires_at`` (``RELGOV_SESSION_HOURS`` after the login), and its
person must be active. Logout revokes the row, so a cookie saved before it is refused
afterwards; a password change, a role change and disabling the person revoke all of that
person's sessions (:func:`end_all`, called by ``service.auth.update_user``), and so does an
admin's "log out everywhere". ``last_seen_at`` is written at most once a minute, after the
request's transaction.

**Machines.** A request to the JSON API (``/api/v1/``) that carries a bearer token is a
machine (CI, a store device): it gets Flask's null session, so the cookie is neither decoded
nor written and no session is looked up on the hot paths (heartbeats, update answers). Other
requests, the HTML API docs page among them, keep the person's session.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Literal

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from sqlalchemy import update
from sqlmodel import Session, col, select

from service import db
from service.models import User, UserSession, utcnow

COOKIE_KEY = "sid"  # the key of the session's secret in the signed cookie
TOUCH_SECONDS = 60  # last_seen_at is written at most this often
_KEEP_DEAD_DAYS = 30  # a person's ended sessions older than this are deleted at their next login

Ended = Literal["expired", "revoked"]


class PeopleOnlySessionInterface(SecureCookieSessionInterface):
    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.path.startswith("/api/v1/") and "Authorization" in request.headers:
            return self.make_null_session(app)
        return super().open_session(app, request)


def init_app(app: Flask) -> None:
    app.session_interface = PeopleOnlySessionInterface()


def digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def start(
    db_session: Session,
    user: User,
    *,
    hours: int,
    address: str | None,
    user_agent: str | None,
) -> str:
    """Open a session for ``user``; returns the secret for the cookie (stored only hashed)."""
    now = utcnow()
    db_session.execute(
        UserSession.__table__.delete().where(  # type: ignore[attr-defined]
            col(UserSession.user_id) == user.id,
            col(UserSession.expires_at) < now - timedelta(days=_KEEP_DEAD_DAYS),
        )
    )
    raw = secrets.token_urlsafe(32)
    db_session.add(
        UserSession(
            id=digest(raw),
            user_id=user.id or 0,
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(hours=hours),
            address=(address or "")[:64] or None,
            user_agent=(user_agent or "")[:255] or None,
        )
    )
    return raw


def end(db_session: Session, raw: str | None, reason: str) -> bool:
    """Revoke the session of the cookie's secret ``raw``; whether a live one was ended."""
    if not raw:
        return False
    return bool(_revoke(db_session, reason, col(UserSession.id) == digest(raw)))


def end_all(db_session: Session, user_id: int, *, reason: str, keep: str | None = None) -> int:
    """Revoke every live session of the person ``user_id`` (but the one of the cookie secret
    ``keep``); how many were ended."""
    where = [col(UserSession.user_id) == user_id]
    if keep:
        where.append(col(UserSession.id) != digest(keep))
    return _revoke(db_session, reason, *where)


def _revoke(db_session: Session, reason: str, *where: object) -> int:
    now = utcnow()
    result = db_session.execute(
        update(UserSession)
        .where(
            *where,  # type: ignore[arg-type]
            col(UserSession.revoked_at).is_(None),
            col(UserSession.expires_at) > now,
        )
        .values(revoked_at=now, revoked_reason=reason[:200])
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def live(db_session: Session, user_id: int) -> list[UserSession]:
    """The person's live sessions, newest first (for the admin)."""
    return list(
        db_session.exec(
            select(UserSession)
            .where(
                UserSession.user_id == user_id,
                col(UserSession.revoked_at).is_(None),
                col(UserSession.expires_at) > utcnow(),
            )
            .order_by(col(UserSession.last_seen_at).desc())
        ).all()
    )


def resolve(db_session: Session, raw: str | None, user_id: str) -> tuple[User | None, Ended | None]:
    """The person of a cookie that names the session secret ``raw`` and the person
    ``user_id``, when that session is live and the person active (one primary-key lookup);
    else None, and whether the session had ``"expired"`` or been ``"revoked"``."""
    if not raw:
        return None, None
    row = db_session.exec(
        select(UserSession, User)
        .join(User, col(User.id) == UserSession.user_id)
        .where(UserSession.id == digest(raw))
    ).first()
    if row is None:
        return None, None
    found, user = row
    if str(user.id) != user_id:
        return None, None
    if found.revoked_at is not None or not user.active:
        return None, "revoked"
    now = utcnow()
    if found.expires_at <= now:
        return None, "expired"
    if (now - found.last_seen_at).total_seconds() >= TOUCH_SECONDS:
        _touch(found.id, now)
    return user, None


def _touch(session_id: str, now: datetime) -> None:
    engine = db.engine()

    def write() -> None:
        # Its own short transaction once the request's is over (as for API tokens).
        with engine.begin() as conn:
            conn.execute(
                update(UserSession)
                .where(col(UserSession.id) == session_id)
                .values(last_seen_at=now)
            )

    db.after_request_transaction(write)
