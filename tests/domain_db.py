"""Database fixtures for the domain packages' tests (beta, version_monitor): their tables on
a bare engine, no app. A package's conftest imports ``session`` and defines ``engine``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import StaticPool
from sqlmodel import Session


def memory_engine() -> Engine:
    """An in-memory SQLite database shared by every connection of the engine."""
    return create_engine(
        "sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool
    )


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as session:
        yield session
