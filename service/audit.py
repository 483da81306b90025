"""The one way a state change is recorded: ``record(...)``.

Audit events are append-only. A SQLAlchemy guard (:func:`install`, called by
``create_app``) refuses any UPDATE or DELETE of an ``AuditEvent`` through the ORM, so no code
path of the application can rewrite history.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session

from service.models import AuditEvent, utcnow


class AuditLogIsAppendOnly(RuntimeError):
    pass


# listener(session, event): runs in the transaction of every recorded event, after it is
# added (e.g. a Slack message written with the decision it announces). Installed by
# ``service/wiring.py`` through :func:`listen`; the process's apps are all wired the same.
Listener = Callable[[Session, AuditEvent], None]
_listeners: tuple[Listener, ...] = ()


def listen(listeners: Sequence[Listener]) -> None:
    """Who hears each recorded audit event, in order (replaces those given before)."""
    global _listeners
    _listeners = tuple(listeners)


_TOLD_ELSEWHERE = "relgov.audit.told_elsewhere"


@contextmanager
def told_elsewhere(session: Session, subject_type: str, subject_id: object) -> Iterator[None]:
    """Changes to this subject recorded inside the block are announced by the caller's own
    message (a meeting's decision that approves or rejects its release): listeners that
    announce changes skip them (:func:`is_told_elsewhere`). They are audited as ever."""
    quiet: set[tuple[str, str]] = session.info.setdefault(_TOLD_ELSEWHERE, set())
    key = (subject_type, str(subject_id))
    quiet.add(key)
    try:
        yield
    finally:
        quiet.discard(key)


def is_told_elsewhere(session: Session, event: AuditEvent) -> bool:
    quiet: set[tuple[str, str]] = session.info.get(_TOLD_ELSEWHERE, set())
    return (event.subject_type, str(event.subject_id)) in quiet


def _jsonable(value: Any) -> Any:
    if value is None:
        return None
    return json.loads(json.dumps(value, default=_default))


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    return str(value)


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: object,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    summary: str = "",
    highlight: bool = False,
) -> AuditEvent:
    """Add an audit event to ``session`` (committed with the change it describes)."""
    if not actor:
        raise ValueError("an audit event needs an actor")
    audit_event = AuditEvent(
        at=utcnow(),
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=str(subject_id),
        summary=summary[:500],
        before=_jsonable(dict(before)) if before is not None else None,
        after=_jsonable(dict(after)) if after is not None else None,
        highlight=highlight,
    )
    session.add(audit_event)
    for listener in _listeners:
        listener(session, audit_event)
    return audit_event


def _refuse_rewrites(session: OrmSession, _context: Any, _instances: Any) -> None:
    for obj in session.dirty:
        if isinstance(obj, AuditEvent) and session.is_modified(obj):
            raise AuditLogIsAppendOnly("audit events cannot be changed")
    for obj in session.deleted:
        if isinstance(obj, AuditEvent):
            raise AuditLogIsAppendOnly("audit events cannot be deleted")


def install() -> None:
    """Refuse, in every ORM session of this process, to update or delete an audit event
    (idempotent; ``create_app`` calls it)."""
    if not event.contains(OrmSession, "before_flush", _refuse_rewrites):
        event.listen(OrmSession, "before_flush", _refuse_rewrites)
