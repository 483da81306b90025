"""Fleet fixtures: tokens with the fleet scopes, an app with releases, a few stores."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from beta import store as fleet
from service.models import utcnow
from service.releases.models import App
from tests.builders import add_release, api_headers
from tests.fleet_builders import freeze


@pytest.fixture
def writer(session, admin) -> dict[str, str]:
    return api_headers(session, creator=admin, scopes=["read", "fleet:write"], name="ops")


@pytest.fixture
def device(session, admin) -> dict[str, str]:
    return api_headers(session, creator=admin, scopes=["heartbeats:write"], name="devices")


@pytest.fixture
def pos(session: Session) -> App:
    """POS with 3.11.0 released and 3.12.0 in beta; minimum supported 3.0.0."""
    app = App(slug="pos", name="POS register", min_supported_version="3.0.0")
    session.add(app)
    session.commit()
    add_release(session, app, "3.11.0", "released", stage_percent=100)
    add_release(session, app, "3.12.0", "beta")
    return app


@pytest.fixture
def stores(session: Session) -> dict[str, object]:
    """S0001 enrolled in beta, S0002 not, S0003 not and frozen for a day; two devices each."""
    now = utcnow()
    result = {}
    for n, name in enumerate(["Sakura Ramen Shibuya", "Umi Sushi Namba", "Kaze Izakaya Tenjin"], 1):
        ext = f"S{n:04d}"
        change = fleet.create_store(
            session=session, external_id=ext, name=name, region="Tokyo", actor="test", now=now
        )
        for kind in ("pos", "handy"):
            fleet.create_device(
                session=session,
                store=change.store,
                device_id=f"{ext}-{kind}-1",
                kind=kind,
                actor="test",
                now=now,
            )
        result[ext] = change.store
    fleet.enrol_store(
        session=session, store=result["S0001"], reason="owner asked", actor="test", now=now
    )
    freeze(session, result["S0003"], now, reason="New Year's Eve rush")
    session.commit()
    return result
