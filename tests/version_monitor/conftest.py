"""Fixtures: a fresh database per test (SQLite, and PostgreSQL when configured) and a fleet."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, SQLModel
from vm_fleet import Fleet

import beta.models
import version_monitor.models  # noqa: F401  (registers the tables)

_BACKENDS = ["sqlite"]
if os.environ.get("RELGOV_TEST_DATABASE_URL"):
    _BACKENDS.append("postgresql")


@pytest.fixture(params=_BACKENDS)
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = create_engine(
            "sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool
        )
    else:
        engine = create_engine(os.environ["RELGOV_TEST_DATABASE_URL"])
        SQLModel.metadata.drop_all(engine)
    SQLModel.metadata.create_all(engine)
    yield engine
    if request.param != "sqlite":
        SQLModel.metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as session:
        yield session


@pytest.fixture
def fleet(session: Session) -> Fleet:
    assert beta.models.DEVICE_KINDS
    return Fleet(session)
