"""The audit log in the API: ``GET /api/v1/audit-events``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from service import db
from service.api.operations import Routes
from service.audit_log.query import AuditFilter, audit_query

routes = Routes(tag="Audit")


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


@routes.operation(
    "/audit-events",
    summary="List audit events, newest first",
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
