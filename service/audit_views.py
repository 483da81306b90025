"""The audit log page and its filter (shared with the API)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

from flask import Blueprint, render_template, request
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import func
from sqlmodel import Session, col, select

from service import db
from service.auth import login_required
from service.models import AuditEvent

bp = Blueprint("audit", __name__)


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


@bp.get("/audit")
@login_required
def audit_log() -> str:
    args = {k: v for k, v in request.args.items() if v != ""}
    errors: list[str] = []
    try:
        flt = AuditFilter.model_validate(args)
    except ValidationError as exc:
        errors = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        flt = AuditFilter()
    session = db.session()
    rows, total = audit_query(session, flt)
    actions = session.exec(select(AuditEvent.action).distinct().order_by(AuditEvent.action)).all()
    subject_types = session.exec(
        select(AuditEvent.subject_type).distinct().order_by(AuditEvent.subject_type)
    ).all()
    pages = max(1, -(-total // flt.per_page))
    return render_template(
        "audit.html",
        rows=rows,
        total=total,
        flt=flt,
        errors=errors,
        actions=actions,
        subject_types=subject_types,
        pages=pages,
        args=args,
    )
