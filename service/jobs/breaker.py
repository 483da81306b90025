"""A circuit breaker whose state is a database row, so every worker obeys the same one.

closed → (``threshold`` consecutive transient failures) → open → (``cool_down`` passes) →
half_open: one worker's call is the probe; its success closes the breaker, its failure
opens it again. While open, callers are told to wait until ``retry_at``; while a probe is
under way, to look again shortly. Each change of state is recorded in the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from service import audit
from service.jobs.models import CircuitBreaker
from service.models import utcnow

THRESHOLD = 5
COOL_DOWN = timedelta(seconds=60)
PROBE_TIMEOUT = timedelta(minutes=2)  # a probe not reported by then counts as lost
PROBE_WAIT = timedelta(seconds=10)  # how long others wait while a probe is under way
ACTOR = "system:circuit-breaker"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    probe: bool = False
    retry_at: datetime | None = None
    state: str = "closed"


def _row(session: Session, name: str, *, lock: bool = True) -> CircuitBreaker:
    stmt = select(CircuitBreaker).where(CircuitBreaker.name == name)
    if lock:
        stmt = stmt.with_for_update()
    row = session.exec(stmt).first()
    if row is not None:
        return row
    try:
        with session.begin_nested():
            row = CircuitBreaker(name=name)
            session.add(row)
    except IntegrityError:  # another worker created it first
        row = session.exec(stmt).one()
    return row


def current(session: Session, name: str) -> CircuitBreaker:
    """The breaker's row as stored (closed when it never tripped), without locking it."""
    row = session.get(CircuitBreaker, name)
    return row if row is not None else CircuitBreaker(name=name)


def before_call(session: Session, name: str, *, now: datetime | None = None) -> Decision:
    """May a call go through now? Takes the probe when the cool-down is over."""
    now = now or utcnow()
    row = _row(session, name)
    if row.state == "closed":
        return Decision(allowed=True)
    if row.retry_at is not None and row.retry_at > now:
        wait_until = row.retry_at if row.state == "open" else min(row.retry_at, now + PROBE_WAIT)
        return Decision(allowed=False, retry_at=wait_until, state=row.state)
    before = row.state
    row.state = "half_open"
    row.retry_at = now + PROBE_TIMEOUT
    row.updated_at = now
    session.add(row)
    _moved(session, row, before, {}, "cool-down over, probing with one call")
    return Decision(allowed=True, probe=True, state="half_open")


def record_success(session: Session, name: str, *, now: datetime | None = None) -> bool:
    """The external system answered: close the breaker. True when this closed it."""
    now = now or utcnow()
    row = _row(session, name)
    was = row.state
    if was == "closed" and row.failures == 0:
        return False
    row.state, row.failures, row.opened_at, row.retry_at = "closed", 0, None, None
    row.updated_at = now
    session.add(row)
    if was != "closed":
        _moved(session, row, was, {}, "probe succeeded, calls go through again")
        return True
    return False


def record_failure(
    session: Session,
    name: str,
    error: str,
    *,
    now: datetime | None = None,
    threshold: int = THRESHOLD,
    cool_down: timedelta = COOL_DOWN,
) -> bool:
    """A transient failure. True when this opened the breaker."""
    now = now or utcnow()
    row = _row(session, name)
    row.failures += 1
    row.last_error = error[:2000]
    row.updated_at = now
    was = row.state
    opens = was == "half_open" or (was == "closed" and row.failures >= threshold)
    if opens:
        row.state = "open"
        row.opened_at = now
        row.retry_at = now + cool_down
    session.add(row)
    if opens:
        why = "the probe failed" if was == "half_open" else f"{row.failures} failures in a row"
        _moved(
            session,
            row,
            was,
            {"retry_at": row.retry_at, "error": error[:300]},
            f"opened after {why}; calls wait until {row.retry_at:%H:%M:%S} UTC",
        )
    return opens


_ACTIONS = {"half_open": "breaker.half_open", "closed": "breaker.close", "open": "breaker.open"}


def _moved(
    session: Session, row: CircuitBreaker, before: str, more: dict[str, object], summary: str
) -> None:
    """Audit a change of state; an opening is highlighted."""
    audit.record(
        session,
        actor=ACTOR,
        action=_ACTIONS[row.state],
        subject_type="circuit_breaker",
        subject_id=row.name,
        before={"state": before},
        after={"state": row.state, **more},
        summary=f"{row.name}: {summary}",
        highlight=row.state == "open",
    )
