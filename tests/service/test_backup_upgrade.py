"""``relgov db backup`` / ``restore`` on the test's database (SQLite file, or PostgreSQL with
RELGOV_TEST_DATABASE_URL and pg_dump installed), and ``relgov db upgrade`` run by several
processes at once."""

from __future__ import annotations

import os
import shutil
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool
from sqlmodel import Session, select

from service import db, migrate
from service.models import User
from tests.builders import make_user
from tests.conftest import PG_URL, pg_database


def _emails(database_url: str) -> list[str]:
    engine = create_engine(database_url, poolclass=NullPool)
    with Session(engine) as session:
        emails = sorted(u.email for u in session.exec(select(User)).all())
    engine.dispose()
    return emails


def test_backup_then_restore_brings_the_data_back(runner, session, database_url, tmp_path):
    if database_url.startswith("postgresql") and not shutil.which("pg_dump"):
        pytest.skip("pg_dump is not installed")
    make_user(session, email="kept@example.com", role="viewer")
    session.close()
    target = tmp_path / "backups" / "one.backup"
    made = runner.invoke(args=["db", "backup", "--output", str(target)])
    assert made.exit_code == 0, made.output
    assert f"wrote {target}" in made.output and "bytes" in made.output
    assert target.stat().st_size > 0 and (target.stat().st_mode & 0o077) == 0

    engine = db.make_engine(database_url)
    with Session(engine) as later:
        make_user(later, email="after-backup@example.com", role="viewer")
    engine.dispose()
    assert "after-backup@example.com" in _emails(database_url)

    refused = runner.invoke(args=["db", "restore", str(target)], input="n\n")
    assert refused.exit_code != 0 and "after-backup@example.com" in _emails(database_url)
    restored = runner.invoke(args=["db", "restore", str(target), "--yes"])
    assert restored.exit_code == 0, restored.output
    assert _emails(database_url) == ["kept@example.com"]
    check = runner.invoke(args=["db", "check"])
    assert check.exit_code == 0, check.output


def test_backup_names_a_file_in_the_instance_folder_by_default(runner, app):
    made = runner.invoke(args=["db", "backup"])
    if made.exit_code != 0 and "not installed" in made.output:
        pytest.skip("pg_dump is not installed")
    assert made.exit_code == 0, made.output
    written = Path(made.output.split()[1])
    assert written.parent == Path(app.instance_path) / "backups" and written.exists()


def test_a_failed_backup_is_one_clear_line(runner, tmp_path):
    out = runner.invoke(args=["db", "restore", str(tmp_path / "missing.dump"), "--yes"])
    assert out.exit_code == 2 and "does not exist" in out.output


@pytest.fixture
def empty_database_url(tmp_path):
    if not PG_URL:
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    with pg_database(f"relgov_upgrade_{os.getpid()}") as url:
        yield url


def test_several_processes_upgrading_at_once_migrate_once(empty_database_url):
    engines = [db.make_engine(empty_database_url) for _ in range(3)]
    barrier = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def upgrade(engine):
        barrier.wait()
        try:
            migrate.upgrade(engine)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    # Without the lock, concurrent upgrades on PostgreSQL wait on each other's catalog rows.
    threads = [threading.Thread(target=upgrade, args=(e,), daemon=True) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "an upgrade is stuck"
    assert errors == []
    assert migrate.current_revision(engines[0]) is not None
    assert migrate.pending_differences(engines[0]) == []
    for engine in engines:
        engine.dispose()


def test_upgrading_past_0002_gives_existing_device_states_their_seen_hour(empty_database_url):
    """0002 moves the report indexes from ``last_seen`` to ``seen_hour`` and fills it in."""
    import sqlalchemy as sa
    from alembic import command

    from version_monitor.models import device_state_table

    engine = db.make_engine(empty_database_url)
    migrate.upgrade(engine, "0001")
    moment = datetime(2026, 11, 28, 10, 47, 12, 345678)
    aware = moment.replace(tzinfo=UTC)

    def insert(connection: sa.Connection, table: str, values: dict[str, object]) -> None:
        columns = [
            sa.column(key, sa.DateTime() if isinstance(value, datetime) else sa.JSON())
            if isinstance(value, datetime | list)
            else sa.column(key)
            for key, value in values.items()
        ]
        connection.execute(sa.table(table, *columns).insert().values(**values))

    when = {"created_at": aware}
    seen = dict.fromkeys(("version_since", "first_seen", "last_seen", "last_sent_at"), moment)
    with engine.begin() as connection:
        insert(
            connection,
            "store",
            {"id": 1, "external_id": "S1", "name": "One", "region": "north", "timezone": "UTC"}
            | {"tags": [], "update_window_start": "02:00", "update_window_end": "05:00"}
            | {"in_beta": False, "beta_pinned": False, "updated_at": aware}
            | when,
        )
        device = {"id": 1, "device_id": "d1", "store_id": 1, "kind": "pos", "label": ""}
        insert(connection, "device", device | when)
        insert(
            connection,
            "device_state",
            {"device_id": 1, "app": "pos", "store_id": 1, "device_kind": "pos"}
            | {"channel": "stable", "version": "3.1.0", "version_key": "k"}
            | seen
            | {"received_at": moment},
        )
    migrate.upgrade(engine)
    assert migrate.pending_differences(engine) == []
    with engine.connect() as connection:
        state = connection.execute(sa.select(device_state_table)).one()
    assert state.last_seen == moment
    assert state.seen_hour == datetime(2026, 11, 28, 10)
    with engine.begin() as connection:
        command.downgrade(migrate.alembic_config(connection=connection), "0001")
    with engine.connect() as connection:
        names = {i["name"] for i in sa.inspect(connection).get_indexes("device_state")}
        columns = {c["name"] for c in sa.inspect(connection).get_columns("device_state")}
    assert "ix_device_state_app_last_seen" in names
    assert "seen_hour" not in columns
    engine.dispose()


def test_upgrading_past_0003_gives_existing_tokens_their_issuer_as_owner(empty_database_url):
    """0003 adds people's server-side sessions and a token's owner (its issuer, for the tokens
    already there) and suspension; downgrading removes them again."""
    import sqlalchemy as sa
    from alembic import command

    engine = db.make_engine(empty_database_url)
    migrate.upgrade(engine, "0002")
    moment = datetime(2026, 11, 28, 10, 47, tzinfo=UTC)
    user = sa.table(
        "user_account",
        *(sa.column(c) for c in ("id", "email", "name", "role", "password_hash", "active")),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    token = sa.table(
        "api_token",
        *(sa.column(c) for c in ("id", "name", "prefix", "token_hash", "created_by_id")),
        sa.column("scopes", sa.JSON()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    with engine.begin() as connection:
        for n in (1, 2):
            connection.execute(
                user.insert().values(
                    id=n,
                    email=f"a{n}@example.com",
                    name=f"A{n}",
                    role="admin",
                    password_hash="x",
                    active=True,
                    created_at=moment,
                )
            )
            connection.execute(
                token.insert().values(
                    id=n,
                    name=f"t{n}",
                    prefix=f"rg_{n}",
                    token_hash=f"h{n}",
                    created_by_id=n,
                    scopes=["read"],
                    created_at=moment,
                )
            )
    migrate.upgrade(engine)
    assert migrate.pending_differences(engine) == []
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT id, owner_id, suspended_at FROM api_token ORDER BY id")
        ).all()
        assert [tuple(r) for r in rows] == [(1, 1, None), (2, 2, None)]
        assert connection.execute(sa.text("SELECT count(*) FROM user_session")).scalar() == 0
    with engine.begin() as connection:
        command.downgrade(migrate.alembic_config(connection=connection), "0002")
    with engine.connect() as connection:
        inspector = sa.inspect(connection)
        columns = {c["name"] for c in inspector.get_columns("api_token")}
        assert "user_session" not in inspector.get_table_names()
        count = connection.execute(sa.text("SELECT count(*) FROM api_token")).scalar()
    assert not {"owner_id", "suspended_at", "suspended_reason"} & columns and count == 2
    migrate.upgrade(engine)
    assert migrate.pending_differences(engine) == []
    engine.dispose()
