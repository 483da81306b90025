"""The audit log page."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from pydantic import ValidationError
from sqlmodel import select

from service import db
from service.audit_log.query import AuditFilter, audit_query
from service.auth import login_required
from service.models import AuditEvent

bp = Blueprint("audit", __name__)


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
