"""Background jobs and the circuit breakers that guard the external systems they call.

Both live in the database so that every worker process (``relgov worker``, the in-process
worker of ``make run``, several gunicorn workers) sees the same queue and the same breaker.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, text
from sqlmodel import Field, SQLModel

from service.models import utcnow

JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
BREAKER_STATES = ("closed", "open", "half_open")


class Job(SQLModel, table=True):
    """One unit of background work, claimed by one worker at a time under a lease.

    ``key`` coalesces: at most one *queued* job per key (a partial unique index), so a
    burst of enqueues for ``release:42`` moves that job's ``next_run_at`` instead of
    adding jobs. A running job does not count: work enqueued while it runs gets a new job,
    which waits: at most one job per key is *running* (another partial unique index), so
    two jobs of one key never run at once, not even when a dead worker's job is taken over.
    """

    __tablename__ = "job"
    __table_args__ = (
        Index(
            "uq_job_queued_key",
            "key",
            unique=True,
            sqlite_where=text("state = 'queued'"),
            postgresql_where=text("state = 'queued'"),
        ),
        Index(
            "uq_job_running_key",
            "key",
            unique=True,
            sqlite_where=text("state = 'running'"),
            postgresql_where=text("state = 'running'"),
        ),
        Index("ix_job_state_next_run", "state", "next_run_at"),
        Index("ix_job_key_state", "key", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=64, index=True)
    key: str | None = Field(default=None, max_length=128)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    state: str = Field(default="queued", max_length=16)
    attempts: int = 0
    max_attempts: int = 8
    next_run_at: datetime = Field(default_factory=utcnow)
    locked_by: str | None = Field(default=None, max_length=128)
    locked_until: datetime | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    result: str | None = Field(default=None, max_length=1000)
    created_by: str = Field(default="system", max_length=254)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class CircuitBreaker(SQLModel, table=True):
    """The shared state of one breaker (e.g. ``notion``).

    closed: calls go through, ``failures`` counts consecutive transient failures.
    open: calls wait until ``retry_at``. half_open: one worker's probe call is under way
    (``retry_at`` is then when the probe counts as lost and another may probe).
    """

    __tablename__ = "circuit_breaker"

    name: str = Field(primary_key=True, max_length=64)
    state: str = Field(default="closed", max_length=16)
    failures: int = 0
    opened_at: datetime | None = None
    retry_at: datetime | None = None
    last_error: str | None = Field(default=None, max_length=2000)
    updated_at: datetime = Field(default_factory=utcnow)


class RateBucket(SQLModel, table=True):
    """A token bucket every worker and process shares (e.g. ``notion``): see
    ``service.jobs.throttle``. Times are seconds since the epoch."""

    __tablename__ = "rate_bucket"

    name: str = Field(primary_key=True, max_length=64)
    tokens: float = 0.0
    stamp: float = 0.0  # when ``tokens`` was last brought up to date
    paused_until: float = 0.0  # nobody takes a token before this (a 429's Retry-After)
