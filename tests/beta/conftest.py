"""Fixtures for the beta package: a fresh SQLite database per test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlmodel import Session, SQLModel

import beta.models  # noqa: F401  (registers the tables)
from beta.models import Store
from beta.store import create_store
from tests import domain_db

NOW = datetime(2025, 6, 2, 3, 0, tzinfo=UTC)
session = domain_db.session  # the fixture: a session on this conftest's engine


def _foreign_keys_on(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = domain_db.memory_engine()
    event.listen(engine, "connect", _foreign_keys_on)
    SQLModel.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture
def make_store(session: Session, now: datetime) -> Any:
    """Build a store with sensible defaults: ``make_store("S001", region="kanto")``."""

    def build(external_id: str, **fields: Any) -> Store:
        fields.setdefault("name", f"Store {external_id}")
        return create_store(
            session=session, external_id=external_id, actor="tester", now=now, **fields
        ).store

    return build
