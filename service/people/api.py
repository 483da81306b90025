"""Who the caller is: ``GET /api/v1/me``."""

from __future__ import annotations

from flask import g
from flask_login import current_user
from pydantic import BaseModel, Field

from service.api.operations import Routes

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
