"""Incident fixtures: an app with a release in beta, stores (two in beta) whose devices
report versions, tokens."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session

from beta import store as fleet
from beta.models import Store
from incidents.scoring import ScopeThresholds
from service.incidents import services
from service.incidents.models import Incident
from service.models import utcnow
from service.releases.models import App, Release
from tests.builders import add_release, api_headers
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


def build_world(session: Session, *, stores: int = 6, **app_fields: Any) -> World:
    """POS (with ``app_fields``): 3.11.0 released, 3.12.0 in beta since 30 days; S0001, S0002
    in beta, S0003 up to ``stores`` not. Beta devices moved to 3.12.0 29 days ago; the others
    run 3.11.0. All seen now."""
    now = utcnow()
    app = App(slug="pos", name="POS register", **app_fields)
    session.add(app)
    session.commit()
    old = add_release(session, app, "3.11.0", "released")
    beta = add_release(session, app, "3.12.0", "beta", beta_at=now - timedelta(days=30))
    made = {}
    for n in range(1, stores + 1):
        ext = f"S{n:04d}"
        made[ext] = fleet.create_store(
            session=session, external_id=ext, name=f"Store {n}", actor="test", now=now
        ).store
    in_beta = ("S0001", "S0002")
    for ext in in_beta:
        fleet.enrol_store(session=session, store=made[ext], reason="test", actor="test", now=now)
    session.commit()
    for ext in made:
        heartbeat(session, ext, "3.11.0", now - timedelta(days=40))
        if ext in in_beta:
            heartbeat(session, ext, "3.12.0", now - timedelta(days=29))
        current = "3.12.0" if ext in in_beta else "3.11.0"
        heartbeat(session, ext, current, now - timedelta(minutes=5))
    return World(app=app, old=old, beta=beta, stores=made)


@pytest.fixture
def world(session: Session) -> World:
    return build_world(session)


def record(
    session: Session,
    world: World,
    *,
    title: str = "Tickets print twice",
    impact: int = 5,
    stores: Sequence[str] = ("S0001",),
    ago: timedelta = timedelta(hours=1),
    release: Release | None = None,
    **extra: Any,
) -> Incident:
    """An incident at ``stores`` of ``world``'s app, started ``ago``, suspecting ``release``
    (the beta unless told), recorded by the service and committed."""
    incident = services.record_incident(
        session,
        thresholds=ScopeThresholds(),
        app=world.app,
        title=title,
        impact=impact,
        stores=list(stores),
        started_at=utcnow() - ago,
        actor="test",
        release=release or world.beta,
        **extra,
    )
    session.commit()
    return incident
