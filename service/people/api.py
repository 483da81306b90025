"""Who the caller is (``GET /api/v1/me``); people, their roles and API tokens (admins)."""

from __future__ import annotations

from datetime import datetime

from flask import g
from flask_login import current_user
from pydantic import BaseModel, Field
from sqlmodel import col, select

from service import db
from service.api.errors import ApiError
from service.api.operations import Routes
from service.api.person_session import require_person
from service.auth import create_user, issue_token, revoke_token, update_user
from service.models import ROLES, SCOPES, ApiToken, User

routes = Routes()


class Me(BaseModel):
    kind: str = Field(description="token or user")
    name: str
    scopes: list[str]


@routes.operation("/me", summary="Who the credentials belong to", tag="Auth", response=Me)
def me() -> Me:
    token = g.get("api_token")
    if token is not None:
        return Me(kind="token", name=token.name, scopes=token.scopes)
    return Me(kind="user", name=current_user.email, scopes=["read"])


# --- people and their roles, API tokens (admins) ---------------------------------------------

admin_routes = Routes(tag="People and tokens")
DEFAULT_ROLE = "viewer"


class PersonOut(BaseModel):
    id: int
    email: str
    name: str
    role: str
    active: bool
    created_at: datetime
    last_login_at: datetime | None


class PersonIn(BaseModel):
    email: str = Field(min_length=1, max_length=254)
    name: str = Field(default="", max_length=200)
    role: str = Field(
        default=DEFAULT_ROLE, description=f"one of {', '.join(ROLES)}; viewer unless told"
    )
    password: str = Field(min_length=1, max_length=1000, description="the initial password")


class PersonPatch(BaseModel):
    name: str | None = Field(default=None, max_length=200)
    role: str | None = Field(default=None, description=f"one of {', '.join(ROLES)}")
    active: bool | None = None
    password: str | None = Field(default=None, max_length=1000)


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    owner: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    suspended_at: datetime | None
    last_used_at: datetime | None
    active: bool


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[str] = Field(min_length=1, description=f"any of {', '.join(SCOPES)}")
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class TokenCreated(TokenOut):
    token: str = Field(description="the secret: shown once, never stored")


def _person(user: User) -> PersonOut:
    return PersonOut.model_validate(user, from_attributes=True)


def _token(token: ApiToken, owner: User | None) -> TokenOut:
    return TokenOut(
        id=token.id or 0,
        name=token.name,
        prefix=token.prefix,
        scopes=list(token.scopes),
        owner=owner.email if owner else None,
        created_at=token.created_at,
        expires_at=token.expires_at,
        revoked_at=token.revoked_at,
        suspended_at=token.suspended_at,
        last_used_at=token.last_used_at,
        active=token.active,
    )


def _user_or_404(user_id: int) -> User:
    user = db.session().get(User, user_id)
    if user is None:
        raise ApiError(404, "not_found", f"no person {user_id}")
    return user


@admin_routes.operation(
    "/users",
    summary="Everyone who may log in, and their roles",
    scope=None,
    response=list[PersonOut],
    errors=(401, 403),
)
def list_users() -> list[PersonOut]:
    require_person()
    people = db.session().exec(select(User).order_by(User.email)).all()
    return [_person(u) for u in people]


@admin_routes.operation(
    "/users",
    "POST",
    summary="Add a person (viewer unless a role is given)",
    scope=None,
    body=PersonIn,
    response=PersonOut,
    status=201,
    errors=(401, 403, 409),
)
def create_person(body: PersonIn) -> tuple[PersonOut, int]:
    """An admin's session (``X-CSRFToken``). The email follows the same rule as the login
    form and the CLI; an email already in use is 422 naming ``email``."""
    admin = require_person()
    user = create_user(
        session=db.session(),
        email=body.email,
        name=body.name,
        role=body.role,
        password=body.password,
        actor=admin.actor,
    )
    return _person(user), 201


@admin_routes.operation(
    "/users/<int:user_id>",
    "PATCH",
    summary="Change a person's name, role, password, or disable them",
    scope=None,
    body=PersonPatch,
    response=PersonOut,
    errors=(401, 403, 404),
)
def patch_person(user_id: int, body: PersonPatch) -> PersonOut:
    """A role or password change and disabling end the person's sessions; disabling also
    suspends the tokens they answer for."""
    admin = require_person()
    user = _user_or_404(user_id)
    update_user(
        session=db.session(),
        user=user,
        actor=admin.actor,
        role=body.role,
        active=body.active,
        name=body.name,
        password=body.password,
    )
    return _person(user)


@admin_routes.operation(
    "/tokens",
    summary="Every API token (never its secret)",
    scope=None,
    response=list[TokenOut],
    errors=(401, 403),
)
def list_tokens() -> list[TokenOut]:
    require_person()
    session = db.session()
    rows = session.exec(select(ApiToken).order_by(col(ApiToken.created_at).desc())).all()
    people = {u.id: u for u in session.exec(select(User)).all()}
    return [_token(t, people.get(t.owner_id)) for t in rows]


@admin_routes.operation(
    "/tokens",
    "POST",
    summary="Issue an API token; its secret is in this answer only",
    scope=None,
    body=TokenIn,
    response=TokenCreated,
    status=201,
    errors=(401, 403),
)
def create_api_token(body: TokenIn) -> tuple[TokenCreated, int]:
    admin = require_person()
    token, raw = issue_token(
        session=db.session(),
        name=body.name,
        scopes=body.scopes,
        creator=admin,
        expires_in_days=body.expires_in_days,
    )
    out = _token(token, admin)
    return TokenCreated(**out.model_dump(), token=raw), 201


@admin_routes.operation(
    "/tokens/<int:token_id>/revoke",
    "POST",
    summary="Revoke an API token (its clients get 401 within a second)",
    scope=None,
    response=TokenOut,
    errors=(401, 403, 404, 409),
)
def revoke_api_token(token_id: int) -> TokenOut:
    admin = require_person()
    session = db.session()
    token = session.get(ApiToken, token_id)
    if token is None:
        raise ApiError(404, "not_found", f"no token {token_id}")
    if token.revoked_at is not None:
        raise ApiError(409, "conflict", f"token {token.name} is already revoked")
    revoke_token(session=session, token=token, actor=admin)
    return _token(token, session.get(User, token.owner_id))
