"""Tables the service itself owns: people, their login sessions, API tokens, the audit log and
the health probe."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary
from sqlmodel import Field, SQLModel

import utc

ROLES = ("admin", "release_manager", "engineer", "qa", "support", "viewer")
ROLE_LABELS = {
    "admin": "Admin",
    "release_manager": "Release manager",
    "engineer": "Engineer",
    "qa": "QA",
    "support": "Support",
    "viewer": "Viewer",
}
SCOPES = ("read", "releases:write", "heartbeats:write", "fleet:write", "incidents:write")
SCOPE_LABELS = {
    "read": "Read everything the API exposes",
    "releases:write": "Register release candidates and change releases (CI)",
    "heartbeats:write": "Report device versions (store devices)",
    "fleet:write": "Manage stores, devices and the beta cohort",
    "incidents:write": "Record incidents",
}


# Now, aware UTC: SQLModel stores and returns aware UTC datetimes.
utcnow = utc.now


class User(SQLModel, table=True):
    __tablename__ = "user_account"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True)
    name: str = Field(max_length=200)
    role: str = Field(max_length=32)
    password_hash: str = Field(max_length=255)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    last_login_at: datetime | None = None

    # Flask-Login protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return str(self.id)

    @property
    def role_label(self) -> str:
        return ROLE_LABELS.get(self.role, self.role)

    @property
    def actor(self) -> str:
        return f"user:{self.email}"


class UserSession(SQLModel, table=True):
    """A person's login, on the server: the signed cookie holds a random secret whose SHA-256
    is ``id``. A session is live until it expires or is revoked (logout, a password or role
    change, disabling the person, an admin's "log out everywhere")."""

    __tablename__ = "user_session"

    id: str = Field(max_length=64, primary_key=True)  # SHA-256 hex of the cookie's secret
    user_id: int = Field(foreign_key="user_account.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)
    last_seen_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    revoked_at: datetime | None = None
    revoked_reason: str | None = Field(default=None, max_length=200)
    address: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=255)

    @property
    def live(self) -> bool:
        return self.revoked_at is None and self.expires_at > utcnow()


class ApiToken(SQLModel, table=True):
    """A machine's credential. Its owner (at first the admin who issued it) answers for it:
    disabling the owner suspends the token (``suspended_at``, refused with 401) until an
    admin hands it to another owner; re-enabling the owner does not resume it."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    prefix: str = Field(max_length=16, index=True)
    token_hash: str = Field(max_length=128, unique=True)
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_by_id: int = Field(foreign_key="user_account.id")
    owner_id: int = Field(foreign_key="user_account.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_by_id: int | None = Field(default=None, foreign_key="user_account.id")
    suspended_at: datetime | None = None
    suspended_reason: str | None = Field(default=None, max_length=300)
    last_used_at: datetime | None = None

    @property
    def active(self) -> bool:
        if self.revoked_at is not None or self.suspended_at is not None:
            return False
        return self.expires_at is None or self.expires_at > utcnow()

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= utcnow()

    @property
    def actor(self) -> str:
        return f"token:{self.name}"


TOKEN_GENERATION_ROW = 1


class TokenGeneration(SQLModel, table=True):
    """One row whose ``generation`` moves in the same transaction as every change to a token
    that can refuse it (revoked, suspended, resumed, expiry, scopes, owner, deleted): each
    process's token cache reads it at most every 0.5 s and forgets what it cached when it
    moved (``service/api/tokens.py``)."""

    __tablename__ = "token_generation"

    id: int = Field(default=TOKEN_GENERATION_ROW, primary_key=True)
    generation: int = Field(default=0)


class AuditEvent(SQLModel, table=True):
    """Append-only: the application inserts these and never updates or deletes them."""

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_subject", "subject_type", "subject_id"),
        Index("ix_audit_event_at", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow)
    actor: str = Field(max_length=254, index=True)
    action: str = Field(max_length=64, index=True)
    subject_type: str = Field(max_length=64)
    subject_id: str = Field(max_length=128)
    summary: str = Field(default="", max_length=500)
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    after: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    highlight: bool = False


class HealthProbe(SQLModel, table=True):
    """Always empty: ``/healthz`` inserts a row here and rolls it back, to learn whether
    the database can still write (``service/metrics.py``)."""

    __tablename__ = "health_probe"

    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    payload: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
