"""Adoption tables: the latest state per device, the version-change log, daily rollups.

There is deliberately no raw log of heartbeats. A heartbeat updates one ``DeviceState`` row
(one per device and app); a ``VersionChange`` row is written only when the version differs
from the previous one (and once when a device is first seen, with ``from_version`` empty,
so the log alone says which version a device ran at any moment). ``AdoptionDaily`` holds
the per-day counts the reports read, ``AdoptionDayTotal`` the same summed over device kinds.

Every version column has a ``*_key`` companion (see :mod:`versioning.storage_key`) whose
byte order is version order; on PostgreSQL it is collated ``"C"`` so that byte order holds
whatever the database's locale. Datetimes are naive UTC (``NaiveDatetime`` columns: plain
``TIMESTAMP``, not SQLModel's timezone-aware default).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import NaiveDatetime
from sqlalchemy import BigInteger, Column, Index, String, UniqueConstraint, event
from sqlalchemy.types import TypeEngine
from sqlmodel import Field, SQLModel

import beta.models  # noqa: F401  (the fleet tables these refer to)
from version_monitor.seen import seen_hour
from versioning.storage_key import VERSION_KEY_LENGTH

__all__ = [
    "CHANNELS",
    "AdoptionDaily",
    "AdoptionDayTotal",
    "AdoptionRollupStamp",
    "DeviceState",
    "VersionChange",
    "adoption_daily_table",
    "adoption_day_total_table",
    "adoption_rollup_stamp_table",
    "device_state_table",
    "device_table",
    "store_table",
    "version_change_table",
]

CHANNELS = ("beta", "stable")


def _version_key_type() -> TypeEngine[str]:
    return String(VERSION_KEY_LENGTH).with_variant(
        String(VERSION_KEY_LENGTH, collation="C"), "postgresql"
    )


# The covering index of both day tables (``AdoptionDaily`` and ``AdoptionDayTotal``): their
# rows are read and grouped per app over a range of days, in version and channel order,
# taking the version and the devices.
_DAY_READ_ORDER = ("app", "day", "version_key", "channel", "version", "devices")


class DeviceState(SQLModel, table=True):
    """What a device last reported for one app."""

    __tablename__ = "device_state"
    __table_args__ = (
        UniqueConstraint("device_id", "app", name="uq_device_state_device_app"),
        # The indexes hold ``seen_hour``, not ``last_seen``: a heartbeat that moves only
        # ``last_seen`` (most of them) rewrites the table row and no index entry (SQLite
        # rewrites an index whose column an UPDATE sets; PostgreSQL updates in place, HOT).
        # Reports test ``last_seen`` exactly through :mod:`version_monitor.seen`.
        Index("ix_device_state_app_seen_hour", "app", "seen_hour"),
        # Covering indexes: the census and straggler queries group in index order instead of
        # sorting 100,000 rows (SQLite) and read no table rows (but those of devices last
        # seen in the hour of the report's cutoff).
        Index("ix_device_state_app_version", "app", "version_key", "store_id", "seen_hour"),
        Index("ix_device_state_app_store", "app", "store_id", "version_key", "seen_hour"),
        Index("ix_device_state_app_kind", "app", "device_kind", "version_key", "seen_hour"),
        Index("ix_device_state_app_channel_seen_hour", "app", "channel", "seen_hour"),
    )

    id: int | None = Field(default=None, primary_key=True)
    device_id: int = Field(foreign_key="device.id")
    app: str = Field(max_length=64)
    store_id: int = Field(foreign_key="store.id")
    device_kind: str = Field(max_length=16)
    # The store's cohort ("beta" | "stable") when the device last reported.
    channel: str = Field(max_length=8)
    version: str = Field(max_length=128)
    version_key: str = Field(sa_column=Column("version_key", _version_key_type(), nullable=False))
    # When the current version was first reported (the ``at`` of its VersionChange).
    version_since: NaiveDatetime
    # first_seen / last_seen are the device's sent_at, capped at the time we received it.
    first_seen: NaiveDatetime
    last_seen: NaiveDatetime
    # ``last_seen`` truncated to the hour (:func:`version_monitor.seen.seen_hour`): what the
    # indexes hold. Writers set both; ORM writes get it from ``last_seen`` (below).
    seen_hour: NaiveDatetime | None = Field(default=None, nullable=False)
    # The raw sent_at of the newest accepted heartbeat: older or equal ones change nothing.
    last_sent_at: NaiveDatetime
    received_at: NaiveDatetime


class VersionChange(SQLModel, table=True):
    """A device started reporting another version of an app (or was first seen)."""

    __tablename__ = "version_change"
    __table_args__ = (
        Index("ix_version_change_device_app_at", "device_id", "app", "at"),
        Index("ix_version_change_app_at", "app", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    device_id: int = Field(foreign_key="device.id")
    app: str = Field(max_length=64)
    store_id: int = Field(foreign_key="store.id")
    from_version: str | None = Field(default=None, max_length=128)
    to_version: str = Field(max_length=128)
    to_key: str = Field(sa_column=Column("to_key", _version_key_type(), nullable=False))
    at: NaiveDatetime


class AdoptionDaily(SQLModel, table=True):
    """Devices and stores seen on ``day`` per app, version, channel and device kind."""

    __tablename__ = "adoption_daily"
    __table_args__ = (
        UniqueConstraint(
            "day", "app", "version", "channel", "device_kind", name="uq_adoption_daily"
        ),
        Index("ix_adoption_daily_app_day", *_DAY_READ_ORDER),
    )

    id: int | None = Field(default=None, primary_key=True)
    day: date
    app: str = Field(max_length=64)
    version: str = Field(max_length=128)
    version_key: str = Field(sa_column=Column("version_key", _version_key_type(), nullable=False))
    channel: str = Field(max_length=8)
    device_kind: str = Field(max_length=16)
    devices: int
    stores: int


class AdoptionDayTotal(SQLModel, table=True):
    """``AdoptionDaily`` summed over device kinds: devices per day, app, version and channel.

    Written with the day's rollup (:mod:`version_monitor.rollup`); the series and the time
    to 50/80/95 % read these rows (a quarter as many, and no grouping) instead.
    """

    __tablename__ = "adoption_day_total"
    __table_args__ = (
        UniqueConstraint("app", "day", "version_key", "channel", name="uq_adoption_day_total"),
        Index("ix_adoption_day_total_read", *_DAY_READ_ORDER),
    )

    id: int | None = Field(default=None, primary_key=True)
    day: date
    app: str = Field(max_length=64)
    version_key: str = Field(sa_column=Column("version_key", _version_key_type(), nullable=False))
    channel: str = Field(max_length=8)
    # The smallest spelling of the version among the day's rows with this key.
    version: str = Field(max_length=128)
    devices: int


class AdoptionRollupStamp(SQLModel, table=True):
    """One row (id 1) whose ``stamp`` takes a new random value whenever day totals are
    written: what was computed from the totals under one stamp holds until it changes."""

    __tablename__ = "adoption_rollup_stamp"

    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    stamp: int = Field(sa_column=Column("stamp", BigInteger, nullable=False))


# Core handles for set-based statements (the ORM classes type their columns as values).
device_state_table = SQLModel.metadata.tables["device_state"]
version_change_table = SQLModel.metadata.tables["version_change"]
adoption_daily_table = SQLModel.metadata.tables["adoption_daily"]
adoption_day_total_table = SQLModel.metadata.tables["adoption_day_total"]
adoption_rollup_stamp_table = SQLModel.metadata.tables["adoption_rollup_stamp"]
store_table = SQLModel.metadata.tables["store"]
device_table = SQLModel.metadata.tables["device"]


@event.listens_for(DeviceState, "before_insert")
@event.listens_for(DeviceState, "before_update")
def _seen_hour_follows_last_seen(_mapper: Any, _connection: Any, state: DeviceState) -> None:
    state.seen_hour = seen_hour(state.last_seen)
