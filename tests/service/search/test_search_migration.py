"""Migration 0011: the rows already indexed get ``weighted`` (the title three times, then the
body) in place of ``title_chars``, so they rank as a reindex would; downgrade gives the
title's length back."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from alembic import command

from service import db, migrate
from service.search import index
from tests.service.meetings.test_migration_and_zones import empty_database_url

__all__ = ["empty_database_url"]  # the fixture: a fresh database (PostgreSQL in its run)

OLD = sa.table(
    "search_doc",
    sa.column("source", sa.String()),
    sa.column("owner_key", sa.Integer()),
    sa.column("position", sa.Integer()),
    sa.column("kind", sa.String()),
    sa.column("on_date", sa.Date()),
    sa.column("section", sa.String()),
    sa.column("title", sa.Text()),
    sa.column("body", sa.Text()),
    sa.column("target", sa.String()),
    sa.column("text", sa.Text()),
    sa.column("chars", sa.Integer()),
    sa.column("title_chars", sa.Integer()),
    sa.column("grams", sa.Text()),
)


def test_0011_fills_the_weighted_text_of_the_rows_already_indexed(
    empty_database_url: str,
) -> None:
    engine = db.make_engine(empty_database_url)
    migrate.upgrade(engine, "0009")
    entry = index.Entry(kind="fix", section="Fixes", title="割り勘 Split", body="bill 割り勘")
    (row,) = index.rows_of("release", index.Owner(key=7, on_date=date(2026, 1, 5), entries=[entry]))
    values = dict(zip(index.COLUMNS, row, strict=True))
    old = {k: v for k, v in values.items() if k in OLD.c and k != "title_chars"}
    with engine.begin() as connection:
        connection.execute(OLD.insert(), [{**old, "title_chars": len("割り勘 split")}])

    migrate.upgrade(engine)
    with engine.connect() as connection:
        found = connection.execute(sa.text("SELECT weighted FROM search_doc")).scalar_one()
        columns = {c["name"] for c in sa.inspect(connection).get_columns("search_doc")}
    assert found == values["weighted"] == "割り勘 split\n割り勘 split\n割り勘 split\nbill 割り勘"
    assert "title_chars" not in columns

    with engine.begin() as connection:
        command.downgrade(migrate.alembic_config(connection=connection), "0009")
    with engine.connect() as connection:
        title_chars = connection.execute(sa.text("SELECT title_chars FROM search_doc")).scalar()
    assert title_chars == len("割り勘 split")
    engine.dispose()
