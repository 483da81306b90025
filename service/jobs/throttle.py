"""A rate limit every worker and process shares: a token bucket kept in one database row.

Taking a token is one atomic ``UPDATE ... WHERE <a token is there>`` in a short transaction
of its own (never around the outside call it paces): on PostgreSQL the row lock makes
concurrent takers queue and re-check, on SQLite the write lock does. Whoever finds no token
reads how long until the next one and sleeps outside any transaction, then tries again.
``pause`` holds everyone back (Notion's ``Retry-After``). Workers on several machines
compare with their own clocks: keep them in sync (NTP), as for job leases.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Engine, case, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from service.jobs.models import RateBucket

# Float rounding: a wait of exactly (1 - tokens) / rate must be enough.
_EPSILON = 1e-6


class SharedTokenBucket:
    """At most ``rate`` requests per second on average, across every process using the
    database, with bursts of at most ``capacity`` (1: evenly spaced)."""

    def __init__(
        self,
        engine: Engine,
        name: str,
        *,
        rate: float,
        capacity: float = 1.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("rate must be > 0 and capacity ≥ 1")
        self.engine = engine
        self.name = name
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._sleep = sleep
        self.waited = 0.0

    def acquire(self) -> None:
        """Take one token, sleeping (outside any transaction) until one is there."""
        while True:
            wait = self._try_take(self._clock())
            if wait <= 0:
                return
            self.waited += wait
            self._sleep(wait)

    def pause(self, seconds: float) -> None:
        """Nobody takes a token for ``seconds`` from now."""
        until = self._clock() + seconds
        with Session(self.engine) as session:
            self._ensure_row(session)
            session.connection().execute(
                update(RateBucket)
                .where(col(RateBucket.name) == self.name, col(RateBucket.paused_until) < until)
                .values(paused_until=until)
            )
            session.commit()

    def _try_take(self, now: float) -> float:
        """0 when a token was taken, else the seconds to wait before trying again."""
        bucket = RateBucket.__table__.c  # type: ignore[attr-defined]
        elapsed = case((bucket.stamp < now, now - bucket.stamp), else_=0.0)
        level = bucket.tokens + elapsed * self.rate
        capped = case((level > self.capacity, self.capacity), else_=level)
        with Session(self.engine) as session:
            taken = session.connection().execute(
                update(RateBucket.__table__)  # type: ignore[attr-defined]
                .where(
                    bucket.name == self.name,
                    bucket.paused_until <= now,
                    level >= 1 - _EPSILON,
                )
                .values(
                    tokens=capped - 1,
                    stamp=case((bucket.stamp < now, now), else_=bucket.stamp),
                )
            )
            if taken.rowcount == 1:
                session.commit()
                return 0.0
            row = session.get(RateBucket, self.name)
            if row is None:  # the first taker ever: make the row, then try again
                self._ensure_row(session)
                session.commit()
                return _EPSILON
            session.commit()
            level_now = min(self.capacity, row.tokens + max(0.0, now - row.stamp) * self.rate)
            return max(row.paused_until - now, (1 - level_now) / self.rate, _EPSILON)

    def _ensure_row(self, session: Session) -> None:
        if session.get(RateBucket, self.name) is not None:
            return
        try:
            with session.begin_nested():
                # Starts full: the first request goes at once.
                session.add(RateBucket(name=self.name, tokens=self.capacity, stamp=self._clock()))
        except IntegrityError:  # another worker made it first
            pass
