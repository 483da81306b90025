"""The fleet: stores and their devices, the beta cohort's history, and freezes.

Apps are referred to by their slug (``"pos"``); the ``service`` package owns the app table.
Datetime columns are SQLModel's ``UTCDateTime``: the database holds UTC (timestamptz on
PostgreSQL, UTC text on SQLite) and Python sees timezone-aware UTC datetimes. The functions in
``beta.store`` accept aware datetimes, or naive ones meaning UTC, and store them aware.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

DEVICE_KINDS = ("pos", "handy", "kds", "kiosk")


class Store(SQLModel, table=True):
    __tablename__ = "store"

    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(max_length=64, unique=True, index=True)
    name: str = Field(max_length=200)
    region: str = Field(default="", max_length=64, index=True)
    timezone: str = Field(default="Asia/Tokyo", max_length=64)
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    update_window_start: str = Field(default="02:00", max_length=5)
    update_window_end: str = Field(default="05:00", max_length=5)
    # Current cohort flag, derived from the latest CohortEvent; kept for fast queries.
    in_beta: bool = Field(default=False, index=True)
    beta_pinned: bool = Field(default=False)  # a manual decision that wins over the hash
    created_at: datetime
    updated_at: datetime


class Device(SQLModel, table=True):
    __tablename__ = "device"

    id: int | None = Field(default=None, primary_key=True)
    device_id: str = Field(max_length=128, unique=True, index=True)
    store_id: int = Field(foreign_key="store.id", index=True)
    kind: str = Field(max_length=16)
    label: str = Field(default="", max_length=200)
    created_at: datetime


class CohortEvent(SQLModel, table=True):
    """Append-only history of the beta cohort: who enrolled or removed a store, and why."""

    __tablename__ = "cohort_event"
    __table_args__ = (Index("ix_cohort_event_store_at", "store_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    store_id: int = Field(foreign_key="store.id")
    action: str = Field(max_length=16)  # enrol | remove
    source: str = Field(max_length=16)  # manual | fill
    reason: str = Field(max_length=1000)
    actor: str = Field(max_length=200)
    at: datetime


class StoreFreeze(SQLModel, table=True):
    """A store gets no new version between ``starts_at`` and ``ends_at``."""

    __tablename__ = "store_freeze"
    __table_args__ = (UniqueConstraint("store_id", "starts_at", name="uq_store_freeze_start"),)

    id: int | None = Field(default=None, primary_key=True)
    store_id: int = Field(foreign_key="store.id", index=True)
    starts_at: datetime
    ends_at: datetime
    reason: str = Field(max_length=1000)
    actor: str = Field(max_length=200)
    created_at: datetime
    lifted_at: datetime | None = None
    lifted_by: str | None = Field(default=None, max_length=200)
