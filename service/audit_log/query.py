"""Which audit events a reader asked for: the filter shared by the page and the API."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

from pydantic import BaseModel, Field
from sqlalchemy import func
from sqlmodel import Session, col, select

from service.models import AuditEvent


class AuditFilter(BaseModel):
    actor: str | None = Field(default=None, max_length=254, description="substring of the actor")
    action: str | None = Field(default=None, max_length=64, description="action or its prefix")
    subject_type: str | None = Field(default=None, max_length=64)
    subject_id: str | None = Field(default=None, max_length=128)
    since: date | None = Field(default=None, description="first day, inclusive (UTC)")
    until: date | None = Field(default=None, description="last day, inclusive (UTC)")
    highlighted: bool = Field(default=False, description="only overrides and other highlights")
    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=50, ge=1, le=500)


def audit_query(session: Session, flt: AuditFilter) -> tuple[Sequence[AuditEvent], int]:
    stmt = select(AuditEvent)
    if flt.actor:
        stmt = stmt.where(col(AuditEvent.actor).contains(flt.actor))
    if flt.action:
        stmt = stmt.where(col(AuditEvent.action).startswith(flt.action))
    if flt.subject_type:
        stmt = stmt.where(AuditEvent.subject_type == flt.subject_type)
    if flt.subject_id:
        stmt = stmt.where(AuditEvent.subject_id == flt.subject_id)
    if flt.since:
        stmt = stmt.where(AuditEvent.at >= datetime.combine(flt.since, time.min, tzinfo=UTC))
    if flt.until:
        stmt = stmt.where(
            AuditEvent.at < datetime.combine(flt.until + timedelta(days=1), time.min, tzinfo=UTC)
        )
    if flt.highlighted:
        stmt = stmt.where(AuditEvent.highlight == True)  # noqa: E712
    total = session.exec(select(func.count()).select_from(stmt.subquery())).one()
    rows = session.exec(
        stmt.order_by(col(AuditEvent.at).desc(), col(AuditEvent.id).desc())
        .offset((flt.page - 1) * flt.per_page)
        .limit(flt.per_page)
    ).all()
    return rows, total
