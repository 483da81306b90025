"""Fixtures: a fresh database per test (SQLite, and PostgreSQL when configured) and a fleet."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import Session, SQLModel

import beta.models
import version_monitor.models  # noqa: F401  (registers the tables)
from tests import domain_db
from tests.version_monitor.vm_fleet import Fleet

session = domain_db.session  # the fixture: a session on this conftest's engine
_BACKENDS = ["sqlite"]
if os.environ.get("RELGOV_TEST_DATABASE_URL"):
    _BACKENDS.append("postgresql")


@pytest.fixture(scope="session")
def _postgres_url() -> Iterator[str]:
    """A database of our own next to the configured one, so that dropping tables is safe."""
    base = make_url(os.environ["RELGOV_TEST_DATABASE_URL"])
    name = f"relgov_vm_{os.getpid()}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield base.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=_BACKENDS)
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = domain_db.memory_engine()
    else:
        engine = create_engine(request.getfixturevalue("_postgres_url"))
        SQLModel.metadata.drop_all(engine)
    SQLModel.metadata.create_all(engine)
    yield engine
    if request.param != "sqlite":
        SQLModel.metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture
def fleet(session: Session) -> Fleet:
    assert beta.models.DEVICE_KINDS
    return Fleet(session)
