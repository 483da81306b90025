"""The same history on SQLite and on PostgreSQL gives the same results: the same documents,
in the same order, with the same scores (bit for bit) and the same totals.

Runs where ``RELGOV_TEST_DATABASE_URL`` names a PostgreSQL server (CI's second run), next to
a SQLite file made here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlmodel import Session

from service import migrate
from service.app import create_app
from service.search import index
from service.search import query as search_query
from service.settings import Settings
from tests import search_corpus
from tests.conftest import PG_URL, pg_database

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason="needs RELGOV_TEST_DATABASE_URL (PostgreSQL)"),
]

QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("split bill", {}),
    ('"split bill"', {}),
    ("割り勘", {}),
    ("会計", {}),
    ("税", {}),
    ("QR", {}),
    ("レシート 修正", {}),
    ("checkout times out", {}),
    ("端数処理", {}),
    ("printer", {"kind": "fix,store"}),
    ("refund", {"app": "handy"}),
    ("割引", {"since": date(2017, 1, 1), "until": date(2017, 3, 31)}),
    ("店舗スタッフの方へ", {}),  # the edited notes
    ("リリース確認会", {"kind": "minutes"}),
    ("fails at some stores", {"kind": "incident"}),
    ("zzz", {}),
]


def _app(url: str, folder: Path) -> Flask:
    settings = Settings(
        env="test",
        instance_path=folder / "instance",
        database_url=url,
        secret_key="test-secret-key-that-is-long-enough-0123456789",
        repo_cache=folder / "repos",
    )
    return create_app(settings)


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Flask]]:
    """Two apps, on SQLite and on PostgreSQL, with the same history, indexed."""
    tmp_path = tmp_path_factory.mktemp("equivalence")
    name = f"relgov_search_eq_{os.getpid()}"
    with pg_database(name) as pg_url:
        apps = [_app(f"sqlite:///{tmp_path}/eq.db", tmp_path / "a"), _app(pg_url, tmp_path / "b")]
        for app in apps:
            engine = app.extensions["relgov.engine"]
            migrate.upgrade(engine)
            with app.app_context(), Session(engine) as session:
                for chunk in search_corpus.build(weeks=12, commits_per_release=40):
                    search_corpus.insert_history(session.connection(), chunk)
                index.rebuild(session, index.sources_of(app).values())
                session.commit()
        yield apps
        for app in apps:
            app.extensions["relgov.engine"].dispose()


def _results(app: Flask, words: str, filters: dict[str, Any], offset: int) -> Any:
    with app.test_request_context(), Session(app.extensions["relgov.engine"]) as session:
        found = search_query.search(
            session,
            search_query.parse(words),
            search_query.parse_filters(session, **filters),
            index.sources_of(app),
            limit=25,
            offset=offset,
        )
        hits = [
            (h.doc.source, h.doc.owner_key, h.doc.position, h.score, h.url, h.snippet_html)
            for h in found.hits
        ]
        return found.total, hits


@pytest.mark.parametrize(("words", "filters"), QUERIES)
def test_sqlite_and_postgresql_agree(
    both: list[Flask], words: str, filters: dict[str, Any]
) -> None:
    sqlite, postgresql = both
    for offset in (0, 25):
        expected = _results(sqlite, words, filters, offset)
        assert _results(postgresql, words, filters, offset) == expected
    total, hits = _results(sqlite, words, filters, 0)
    if words != "zzz":
        assert total > 0 and hits
