"""Fixtures: a freshly migrated database per test, the app, clients and builders.

SQLite by default; with ``RELGOV_TEST_DATABASE_URL`` (a PostgreSQL URL) every test gets its
own database cloned from a migrated template.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from sqlmodel import Session

from service import db, migrate
from service.app import create_app
from service.settings import Settings
from tests import builders

PG_URL = os.environ.get("RELGOV_TEST_DATABASE_URL", "")
_counter = itertools.count()


# One template per test session, so two sessions on one PostgreSQL server don't collide.
PG_TEMPLATE = f"relgov_template_{os.getpid()}"


@pytest.fixture(scope="session")
def _template_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Migrate once; every test starts from a copy."""
    if PG_URL:
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_TEMPLATE}"'))
            conn.execute(text(f'CREATE DATABASE "{PG_TEMPLATE}"'))
        engine = db.make_engine(_pg_url(PG_TEMPLATE))
        migrate.upgrade(engine)
        engine.dispose()
        yield PG_TEMPLATE
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_TEMPLATE}" WITH (FORCE)'))
        admin.dispose()
        return
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = db.make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    yield str(path)


def _pg_url(database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(PG_URL).set(database=database).render_as_string(hide_password=False)


@contextmanager
def pg_database(name: str, *, template: str | None = None) -> Iterator[str]:
    """The URL of database ``name`` on the test server, made afresh (a copy of ``template``,
    or empty) and dropped afterwards."""
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            copy = f' TEMPLATE "{template}"' if template else ""
            conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
        yield _pg_url(name)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def database_url(_template_database: str, tmp_path: Path) -> Iterator[str]:
    if PG_URL:
        name = f"relgov_test_{os.getpid()}_{next(_counter)}"
        with pg_database(name, template=PG_TEMPLATE) as url:
            yield url
        return
    path = tmp_path / "relgov.db"
    shutil.copy(_template_database, path)
    yield f"sqlite:///{path}"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        env="test",
        instance_path=tmp_path / "instance",
        database_url=database_url,
        secret_key="test-secret-key-that-is-long-enough-0123456789",
        repo_cache=tmp_path / "repos",
        # The release tests build their repositories in tmp folders.
        repo_root=tmp_path,
    )


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings)
    yield application
    application.extensions["relgov.engine"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def session(app: Flask, database_url: str) -> Iterator[Session]:
    """The test's own session; on SQLite it holds no lock between statements."""
    engine = db.make_engine(database_url, sqlite_transactions=False)
    with Session(engine, expire_on_commit=False) as db_session:
        yield db_session
    engine.dispose()


@pytest.fixture
def admin(session: Session) -> builders.User:
    return builders.make_user(session, email="admin@example.com", role="admin", name="Ada Admin")


@pytest.fixture
def reader(session: Session, admin: builders.User) -> dict[str, str]:
    """The headers of an API client whose token may only read."""
    return builders.api_headers(session, creator=admin, scopes=["read"], name="reader")


@pytest.fixture
def admin_client(client: FlaskClient, admin: builders.User) -> FlaskClient:
    response = builders.login(client, admin.email)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client
