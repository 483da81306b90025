"""Foundation endpoints: who am I, and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import g
from flask_login import current_user
from pydantic import BaseModel, Field

from service import db
from service.api import operation
from service.audit_views import AuditFilter, audit_query


class Me(BaseModel):
    kind: str = Field(description="token or user")
    name: str
    scopes: list[str]


class AuditEventOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    subject_type: str
    subject_id: str
    summary: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    highlight: bool


class AuditPage(BaseModel):
    items: list[AuditEventOut]
    total: int
    page: int
    per_page: int


@operation("/me", summary="Who the credentials belong to", tag="Auth", response=Me)
def me() -> Me:
    token = g.get("api_token")
    if token is not None:
        return Me(kind="token", name=token.name, scopes=token.scopes)
    return Me(kind="user", name=current_user.email, scopes=["read"])


@operation(
    "/audit-events",
    summary="List audit events, newest first",
    tag="Audit",
    query=AuditFilter,
    response=AuditPage,
)
def list_audit_events(query: AuditFilter) -> AuditPage:
    rows, total = audit_query(db.session(), query)
    return AuditPage(
        items=[AuditEventOut.model_validate(row, from_attributes=True) for row in rows],
        total=total,
        page=query.page,
        per_page=query.per_page,
    )
