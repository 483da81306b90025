"""Incidents, the stores they hit, and admins' overrides of a release's promotion gates."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.models import utcnow

GATES = ("beta_soak", "beta_adoption", "incident_score")
GATE_TITLES = {
    "beta_soak": "Beta soak",
    "beta_adoption": "Beta adoption",
    "incident_score": "Beta incidents",
}


class Incident(SQLModel, table=True):
    """A problem in stores. The score is computed (impact × scope), never typed; the
    numbers it was computed from are kept with it so the derivation can be shown."""

    __tablename__ = "incident"
    __table_args__ = (Index("ix_incident_app_started", "app_id", "started_at"),)

    id: int | None = Field(default=None, primary_key=True)
    app_id: int = Field(foreign_key="app.id")
    release_id: int | None = Field(default=None, foreign_key="release.id", index=True)
    release_suggested: bool = False  # the release was picked from the stores' versions
    title: str = Field(max_length=300)
    impact: int  # 1 | 3 | 5
    store_count: int  # affected stores
    beta_store_count: int = 0  # of which in the beta cohort when recorded
    stores_listed: bool = False  # the stores are in incident_store (else only a count)
    active_stores: int  # the base of the scope: stores online when it started
    active_basis: str = Field(max_length=300)  # how active_stores was counted
    few_below: int  # thresholds in force when it was scored
    most_share: float
    scope: int
    score: int
    started_at: datetime
    resolved_at: datetime | None = None
    postmortem_url: str = Field(default="", max_length=1000)
    created_by: str = Field(max_length=254)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class IncidentStore(SQLModel, table=True):
    __tablename__ = "incident_store"
    __table_args__ = (UniqueConstraint("incident_id", "store_id", name="uq_incident_store"),)

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    store_id: int = Field(foreign_key="store.id", index=True)
    in_beta: bool = False  # the store's cohort when the incident was recorded


class GateOverride(SQLModel, table=True):
    """An admin let a failing promotion gate pass for one release, with a reason."""

    __tablename__ = "gate_override"

    id: int | None = Field(default=None, primary_key=True)
    release_id: int = Field(foreign_key="release.id", index=True)
    gate: str = Field(max_length=32)
    reason: str = Field(max_length=2000)
    actor: str = Field(max_length=254)
    at: datetime = Field(default_factory=utcnow)
