"""The fleet's change counter: one row whose ``version`` moves with every fleet change.

Every process keeps its update-answer snapshot keyed by this number, so several gunicorn
workers agree on when to rebuild: a change committed by one worker is seen by the others
on their next request.
"""

from __future__ import annotations

from sqlmodel import Field, SQLModel

FLEET_VERSION_ROW = 1


class FleetVersion(SQLModel, table=True):
    __tablename__ = "fleet_version"

    id: int = Field(default=FLEET_VERSION_ROW, primary_key=True)
    version: int = Field(default=0)
