"""Fleet set-up shared by the tests and the benchmarks (``beta.store`` only: no Flask)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from beta.models import Store
from beta.store import FreezeChange, freeze_store


def freeze(
    session: Session,
    store: Store,
    now: datetime,
    *,
    reason: str,
    days: int = 1,
    actor: str = "test",
) -> FreezeChange:
    """Freeze ``store`` from an hour before ``now`` for ``days`` days after it."""
    return freeze_store(
        session=session,
        store=store,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=days),
        reason=reason,
        actor=actor,
        now=now,
    )
