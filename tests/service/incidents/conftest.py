"""Incident fixtures: an app with a release in beta, stores (two in beta) whose devices
report versions, tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session

from beta import store as fleet
from beta.models import Store
from service.models import utcnow
from service.releases.models import App, Release
from tests.builders import api_headers
from version_monitor.ingest import ingest_heartbeats


@pytest.fixture
def writer(session, admin) -> dict[str, str]:
    return api_headers(session, creator=admin, scopes=["read", "incidents:write"], name="inc")


@dataclass
class World:
    app: App
    old: Release  # 3.11.0, released
    beta: Release  # 3.12.0, in beta for 30 days
    stores: dict[str, Store]


def heartbeat(session: Session, store: str, version: str, at: datetime, app: str = "pos") -> None:
    naive = at.astimezone(UTC).replace(tzinfo=None)
    item = {
        "device_id": f"{store}-pos-1",
        "store_id": store,
        "app": app,
        "version": version,
        "device_kind": "pos",
        "sent_at": naive.isoformat(),
    }
    result = ingest_heartbeats(session, [item], known_apps={app}, now=naive + timedelta(seconds=1))
    assert not result.rejected, result.rejected
    session.commit()


@pytest.fixture
def world(session: Session) -> World:
    """POS: 3.11.0 released, 3.12.0 in beta since 30 days; S0001, S0002 in beta, S0003–S0006
    not. Beta devices moved to 3.12.0 29 days ago; the others run 3.11.0. All seen now."""
    now = utcnow()
    app = App(slug="pos", name="POS register")
    session.add(app)
    session.commit()
    old = Release(app_id=app.id, version="3.11.0", state="released", created_by="test")
    beta = Release(
        app_id=app.id,
        version="3.12.0",
        state="beta",
        created_by="test",
        beta_at=now - timedelta(days=30),
    )
    session.add(old)
    session.add(beta)
    session.commit()
    stores = {}
    for n in range(1, 7):
        ext = f"S{n:04d}"
        stores[ext] = fleet.create_store(
            session=session, external_id=ext, name=f"Store {n}", actor="test", now=now
        ).store
    for ext in ("S0001", "S0002"):
        fleet.enrol_store(session=session, store=stores[ext], reason="test", actor="test", now=now)
    session.commit()
    for ext in stores:
        heartbeat(session, ext, "3.11.0", now - timedelta(days=40))
    for ext in ("S0001", "S0002"):
        heartbeat(session, ext, "3.12.0", now - timedelta(days=29))
        heartbeat(session, ext, "3.12.0", now - timedelta(minutes=5))
    for ext in ("S0003", "S0004", "S0005", "S0006"):
        heartbeat(session, ext, "3.11.0", now - timedelta(minutes=5))
    return World(app=app, old=old, beta=beta, stores=stores)
