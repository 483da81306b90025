"""The heartbeat rate limit's counters, shared by every web process on every machine.

A fixed window of one minute: ``window_minute`` is the Unix time divided by 60 and
``heartbeats`` the items the token's accepted requests carried in it. A token's count is
split over a few rows (``shard``: one per web process, by process id) so that two processes
never wait on each other's row lock until their commits; the count is the sum. Rows are
upserted by :mod:`service.adoption.ratelimit` in the heartbeat request's own transaction.
"""

from __future__ import annotations

from sqlmodel import Field, SQLModel

import service.models  # noqa: F401  (api_token, which this refers to)

__all__ = ["HeartbeatRate", "heartbeat_rate_table"]


class HeartbeatRate(SQLModel, table=True):
    """Heartbeats a token sent in one minute through the processes of one shard."""

    __tablename__ = "heartbeat_rate"

    token_id: int = Field(
        foreign_key="api_token.id",
        primary_key=True,
        ondelete="CASCADE",
        sa_column_kwargs={"autoincrement": False},
    )
    shard: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    window_minute: int
    heartbeats: int


heartbeat_rate_table = SQLModel.metadata.tables["heartbeat_rate"]
