"""Searching: what each kind of term matches, filters and their refusals, the ranking, pages
of results, the store-facing changes across versions, and that the full-text indexes answer
(never a scan of search_doc)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from flask import Flask
from sqlalchemy import text
from sqlmodel import Session

from service.incidents.models import Incident
from service.releases.models import App, Release
from service.search import index, sources
from service.search import query as search_query
from tests.service.search.conftest import Search, register, titles

TITLES = [
    "Split bill rounds the last share up",
    "割り勘の端数処理を修正",
    "QRコード決済が使えない",
    "会計が止まる",
    "軽減税率の表示がずれる",
    "Build the menu faster",
    "UI freezes after a reconnect",
    "Receipt printer prints twice",
    "ＰａｙＰａｙで支払えない",
]


@pytest.fixture
def titled(app: Flask, session: Session, pos: App) -> list[Incident]:
    """One incident per title of :data:`TITLES`, a day apart, indexed."""
    made = []
    for n, title in enumerate(TITLES):
        incident = Incident(
            app_id=pos.id or 0,
            title=title,
            impact=3,
            store_count=5,
            active_stores=100,
            active_basis="test",
            few_below=100,
            most_share=0.5,
            scope=1,
            score=3,
            started_at=datetime(2026, 3, 1 + n, tzinfo=UTC),
            created_by="test",
        )
        session.add(incident)
        session.flush()
        index.refresh(session, sources.INCIDENTS, incident.id or 0)
        made.append(incident)
    session.commit()
    return made


MATCHES = [
    ("split bill", ["Split bill rounds the last share up"]),
    ("bill split", ["Split bill rounds the last share up"]),  # every word, any order
    ('"bill split"', []),  # a phrase, in its order
    ('"split bill"', ["Split bill rounds the last share up"]),
    ("print", ["Receipt printer prints twice"]),  # anywhere in a word
    ("割り勘", ["割り勘の端数処理を修正"]),
    ("端数 割り勘", ["割り勘の端数処理を修正"]),
    ("会計", ["会計が止まる"]),  # two Japanese characters
    ("税", ["軽減税率の表示がずれる"]),  # one kanji
    ("QR", ["QRコード決済が使えない"]),  # a whole two-letter word
    ("ＱＲ", ["QRコード決済が使えない"]),  # full-width is the same
    ("ui", ["UI freezes after a reconnect"]),  # not "Build"
    ("paypay", ["ＰａｙＰａｙで支払えない"]),
    ("カード", []),
    ("a ui", ["UI freezes after a reconnect"]),  # "a" is left out
]


@pytest.mark.parametrize(("words", "expected"), MATCHES)
def test_what_a_query_matches(
    titled: list[Incident], search: Search, words: str, expected: list[str]
) -> None:
    assert titles(search(words)) == expected


def test_the_same_results_however_the_words_are_typed(
    titled: list[Incident], search: Search
) -> None:
    assert titles(search("SPLIT Bill")) == titles(search("split bill"))
    assert titles(search("ｶｲｹｲ")) == titles(search("カイケイ")) == []


def test_filters(releases: dict[str, Release], titled: list[Incident], search: Search) -> None:
    assert {h.doc.kind for h in search("split", kind="incident").hits} == {"incident"}
    assert {h.doc.kind for h in search("split", kind="feature,store").hits} == {
        "feature",
        "store",
    }
    everything = search("split")
    assert everything.total == len(everything.hits) > 3
    # The notes of 1.1.0 (registered on March 4th), not the incident of March 1st.
    in_march = search("split", since=date(2026, 3, 2), until=date(2026, 3, 31))
    assert {h.doc.on_date for h in in_march.hits} == {date(2026, 3, 4)}
    assert 0 < in_march.total < everything.total
    assert search("split", app="pos").total == everything.total


@pytest.mark.parametrize(
    ("filters", "field", "message"),
    [
        ({"app": "nope"}, "app", "no app 'nope'"),
        ({"kind": "feature,bugs"}, "kind", "unknown kind 'bugs'"),
        ({"since": date(2026, 3, 2), "until": date(2026, 3, 1)}, "until", "before its start"),
    ],
)
def test_bad_filters_name_their_field(
    session: Session, pos: App, filters: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(search_query.SearchError, match=message) as refused:
        search_query.parse_filters(session, **filters)  # type: ignore[arg-type]
    assert refused.value.field == field and refused.value.status == 422


def test_ranking(releases: dict[str, Release], search: Search) -> None:
    found = search("split")
    kinds = [h.doc.kind for h in found.hits]
    # What stores were told first, then features, fixes, and the other commits last.
    assert kinds[0] == "store" and kinds[-1] == "change"
    scores = [h.score for h in found.hits]
    assert scores == sorted(scores, reverse=True)
    # A match in the title counts more than one in the body.
    body_only = search("guests at one table")
    assert body_only.hits[0].doc.body.startswith("Guests at one table")


def test_newer_first_among_equals(app: Flask, session: Session, pos: App, search: Search) -> None:
    for day in (3, 9, 5):
        incident = Incident(
            app_id=pos.id or 0,
            title="Drawer stuck",
            impact=1,
            store_count=1,
            active_stores=10,
            active_basis="test",
            few_below=100,
            most_share=0.5,
            scope=1,
            score=1,
            started_at=datetime(2026, 4, day, tzinfo=UTC),
            created_by="test",
        )
        session.add(incident)
        session.flush()
        index.refresh(session, sources.INCIDENTS, incident.id or 0)
    session.commit()
    found = search("drawer")
    assert [h.doc.on_date.day for h in found.hits] == [9, 5, 3]
    assert len({h.score for h in found.hits}) == 1


def test_pages_of_results(titled: list[Incident], search: Search) -> None:
    found = search("the")
    assert found.total >= 2
    one = search("the", limit=1)
    two = search("the", limit=1, offset=1)
    assert one.total == two.total == found.total
    assert [h.doc.id for h in one.hits + two.hits] == [h.doc.id for h in found.hits[:2]]
    past = search("the", offset=100)
    assert past.hits == [] and past.total == found.total


def test_highlighted_snippets_are_escaped(releases: dict[str, Release], search: Search) -> None:
    hit = search("discounts").hits[0]
    assert hit.doc.title == "cover split bills with <b>discounts</b>"
    assert hit.title_html == "cover split bills with &lt;b&gt;<mark>discounts</mark>&lt;/b&gt;"


def test_store_changes_across_versions(
    app: Flask, session: Session, pos: App, team: dict[str, object], search: Search
) -> None:
    engineer = team["engineer"]
    for version, state in (("1.0.0", "released"), ("1.1.0", "released"), ("1.2.0", "cancelled")):
        register(app, session, pos, engineer, version, state=state)  # type: ignore[arg-type]
    with app.app_context():
        found = search_query.store_changes(session, pos, from_version="1.0", to_version=None)
    assert [(r.release.version, [n.title for n in r.notes]) for r in found] == [
        ("1.0.0", []),
        (
            "1.1.0",
            [  # by area: Ordering, Payments
                "Tap Split on the bill screen to divide it between 2–8 guests.",
                "割り勘の端数が正しく配分されるようになりました。",
            ],
        ),
    ]  # 1.2.0 was cancelled: it never reached stores
    only = search_query.store_changes(session, pos, from_version="1.1.0", to_version="1.1.0")
    assert [r.release.version for r in only] == ["1.1.0"]
    with pytest.raises(search_query.SearchError) as refused:
        search_query.store_changes(session, pos, from_version="1.2", to_version="1.1")
    assert refused.value.field == "to_version"
    with pytest.raises(search_query.SearchError) as refused:
        search_query.store_changes(session, pos, from_version="next", to_version=None)
    assert refused.value.field == "from_version"


def _plan(session: Session, words: str, **filters: object) -> str:
    """The query plan of a search's ranking query."""
    dialect = session.connection().dialect.name
    parsed = search_query.parse(words)
    found = search_query.parse_filters(session, **filters)  # type: ignore[arg-type]
    doc = index.search_doc_table.c
    statement = (
        search_query.core_select(doc.id)
        .where(*search_query._matches(dialect, doc, parsed.terms, found))
        .compile(session.connection(), compile_kwargs={"literal_binds": True})
    )
    explain = "EXPLAIN QUERY PLAN " if dialect == "sqlite" else "EXPLAIN "
    rows = session.connection().execute(text(explain + str(statement))).all()
    return "\n".join(str(row[-1]) for row in rows)


@pytest.mark.parametrize(
    ("words", "filters"),
    [
        ("split bill", {}),
        ("会計", {}),
        ("割り勘 会計", {}),
        ("QR", {}),
        ("税", {}),
        ("split", {"app": "pos", "kind": "feature,store"}),
    ],
)
def test_the_full_text_indexes_answer(
    releases: dict[str, Release], session: Session, words: str, filters: dict[str, str]
) -> None:
    """No scan of search_doc: on SQLite the FTS5 tables give the rows by id; on PostgreSQL
    the GIN indexes (pg_trgm, the grams' tsvector) do; the app and kind filters too."""
    if session.connection().dialect.name == "sqlite":
        plan = _plan(session, words, **filters)
        assert "SCAN search_doc" not in plan, plan
        assert "VIRTUAL TABLE INDEX" in plan, plan
        return
    # A few rows: the planner would rather read them all; make it say what it could use.
    session.connection().execute(text("SET LOCAL enable_seqscan = off"))
    plan = _plan(session, words, **filters)
    assert "Seq Scan" not in plan, plan
    used = {"ix_search_doc_text_trgm", "ix_search_doc_grams"}
    if "app" in filters:
        # With an app named, the planner may also start from that app's rows (its B-tree
        # on app and kind), which on a few rows it prefers: still no scan of the table.
        used.add("ix_search_doc_app_kind_version")
    assert any(name in plan for name in used), plan
