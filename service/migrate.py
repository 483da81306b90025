"""Alembic driven from code: ``relgov db upgrade`` and the test that models match migrations."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, text

from service.schema import include_name, metadata

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine | None = None, connection: Any = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        cfg.set_main_option(
            "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
        )
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


# pg_advisory_xact_lock key: "relgov" in ASCII. Held by ``upgrade`` until its transaction ends.
UPGRADE_LOCK_KEY = 0x72656C676F76


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate to ``revision`` in one transaction; safe to run from several processes at once.

    On PostgreSQL the transaction first takes an advisory lock, so when several workers run
    ``relgov db upgrade`` as they start, one migrates and the others wait, then find the
    schema at head and do nothing. (PostgreSQL DDL is transactional: a failed migration
    leaves the schema as it was.) On SQLite the migration's transaction is itself the lock.
    """
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": UPGRADE_LOCK_KEY}
            )
        command.upgrade(alembic_config(connection=connection), revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def pending_differences(engine: Engine) -> list[Any]:
    """What autogenerate would still add: empty when the migrations match the models."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": True, "render_as_batch": True, "include_name": include_name},
        )
        return list(compare_metadata(context, metadata()))


def revision(engine: Engine, message: str, rev_id: str | None = None) -> None:
    """Autogenerate a migration (a developer tool; review the file it writes)."""
    with engine.begin() as connection:
        command.revision(
            alembic_config(connection=connection),
            message=message,
            autogenerate=True,
            rev_id=rev_id,
        )


INITIAL = "0001"


def regenerate_initial() -> Path:
    """Rewrite the single initial migration from the models.

    Until the first deployment the schema is one migration, regenerated whenever a model
    changes; after that, new migrations are added with ``relgov db revision``.
    """
    for old in (MIGRATIONS / "versions").glob(f"{INITIAL}_*.py"):
        old.unlink()
    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine(f"sqlite:///{folder}/empty.db")
        revision(engine, "initial schema", rev_id=INITIAL)
        engine.dispose()
    return next((MIGRATIONS / "versions").glob(f"{INITIAL}_*.py"))
