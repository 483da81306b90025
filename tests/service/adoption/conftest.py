"""Fixtures for the adoption service tests: apps with releases, a small fleet, tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlmodel import Session

from beta.models import Device, Store
from service.adoption import fastpath
from service.releases.models import App, Release
from tests import builders
from tests.builders import bearer
from version_monitor.adoption import ReleaseInfo
from version_monitor.models import DeviceState, VersionChange
from version_monitor.simulate import simulate_adoption


def utcnow_naive() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


@dataclass
class World:
    app: App
    releases: dict[str, Release]
    stores: list[Store]
    now: datetime  # naive UTC


def make_app(session: Session, slug: str = "pos", **fields: object) -> App:
    app = App(slug=slug, name=fields.pop("name", slug.upper()), **fields)  # type: ignore[arg-type]
    session.add(app)
    session.commit()
    return app


def make_release(
    session: Session,
    app: App,
    version: str,
    *,
    state: str,
    beta_at: datetime | None = None,
    rollout_started_at: datetime | None = None,
    released_at: datetime | None = None,
) -> Release:
    """``builders.add_release`` with the moments given as naive UTC (as the simulator's)."""

    def aware(moment: datetime | None) -> datetime | None:
        return moment.replace(tzinfo=UTC) if moment else None

    return builders.add_release(
        session,
        app,
        version,
        state,
        beta_at=aware(beta_at),
        rollout_started_at=aware(rollout_started_at),
        released_at=aware(released_at),
    )


def make_fleet(
    session: Session, *, stores: int = 6, beta: int = 2, per_store: int = 2
) -> list[Store]:
    now = datetime.now(UTC)
    made = []
    for n in range(1, stores + 1):
        store = Store(
            external_id=f"S{n:03d}",
            name=f"Restaurant {n}",
            region="kanto" if n % 2 else "kansai",
            in_beta=n <= beta,
            created_at=now,
            updated_at=now,
        )
        session.add(store)
        session.flush()
        assert store.id is not None
        for d in range(per_store):
            session.add(
                Device(
                    device_id=f"S{n:03d}-pos-{d}",
                    store_id=store.id,
                    kind="pos" if d == 0 else "handy",
                    created_at=now,
                )
            )
        made.append(store)
    session.commit()
    return made


@pytest.fixture
def world(session: Session) -> World:
    return build_world(session)


def build_world(session: Session) -> World:
    """App ``pos`` with five releases (the newest in beta for 36 h) and 60 days of history
    over 30 stores (6 in beta) of 3 devices each."""
    now = utcnow_naive()
    app = make_app(
        session, "pos", name="POS register", min_supported_version="3.1.0", beta_stall_hours=24
    )
    stores = make_fleet(session, stores=30, beta=6, per_store=3)
    releases: dict[str, Release] = {}
    infos = []
    for version, days_ago in (
        ("3.0.0", 50),
        ("3.1.0", 36),
        ("3.2.0", 22),
        ("3.3.0", 8),
        ("3.4.0", 1.5),
    ):
        beta_at = now - timedelta(days=days_ago)
        out = beta_at + timedelta(days=2)
        in_beta = out > now
        releases[version] = make_release(
            session,
            app,
            version,
            state="beta" if in_beta else "released",
            beta_at=beta_at,
            rollout_started_at=None if in_beta else out,
            released_at=None if in_beta else out,
        )
        infos.append(ReleaseInfo(version, beta_at, None if in_beta else out))
    simulate_adoption(
        session, app="pos", releases=infos, start=now - timedelta(days=60), now=now, seed=3
    )
    session.commit()
    return World(app=app, releases=releases, stores=stores, now=now)


@pytest.fixture
def heartbeat_token(session: Session, admin: builders.User) -> str:
    return builders.make_token(session, creator=admin, scopes=["heartbeats:write"], name="devices")


@pytest.fixture
def read_token(session: Session, admin: builders.User) -> str:
    return builders.make_token(session, creator=admin, scopes=["read"], name="reader")


# --- the heartbeat fast path and queue (test_heartbeat_fastpath.py, test_heartbeat_queue.py)

URL = "/api/v1/heartbeats"


def beat(n: int, *, version: str = "3.2.0", **fields: object) -> dict[str, object]:
    store = n % 3 + 1
    sent = datetime.now(UTC) - timedelta(minutes=1) + timedelta(milliseconds=n)
    return {
        "device_id": f"S00{store}-pos-0",
        "store_id": f"S00{store}",
        "app": "pos",
        "version": version,
        "device_kind": "pos",
        "sent_at": sent.isoformat(),
    } | fields


def stored(session: Session) -> tuple[int, int]:
    session.expire_all()
    states = session.execute(select(func.count()).select_from(DeviceState)).scalar_one()
    changes = session.execute(select(func.count()).select_from(VersionChange)).scalar_one()
    return int(states), int(changes)


@pytest.fixture
def fleet(session: Session) -> None:
    make_app(session, "pos")
    make_fleet(session, stores=3, beta=1)


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """The answers the fast path gave (the view's answers are not in it)."""
    answers: list[dict[str, object]] = []
    original = fastpath.HeartbeatFastPath._respond

    def respond(self: Any, environ: Any, start: Any, answer: Any, *args: Any) -> Any:
        answers.append(answer)
        return original(self, environ, start, answer, *args)

    monkeypatch.setattr(fastpath.HeartbeatFastPath, "_respond", respond)
    return answers


@pytest.fixture
def warm(client, fleet, heartbeat_token, fast) -> Any:
    """The first request goes to the view (token not cached yet, its use recorded); the
    next ones qualify for the fast path."""
    response = client.post(
        URL, json=beat(2, device_id="S003-pos-1"), headers=bearer(heartbeat_token)
    )
    assert response.status_code == 200, response.json
    assert fast == []
    return response


__all__ = [
    "URL",
    "FlaskClient",
    "World",
    "bearer",
    "beat",
    "build_world",
    "make_app",
    "make_fleet",
    "make_release",
    "stored",
]
