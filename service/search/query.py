"""Searching the index, and the store-facing changes across a span of versions.

**Matching.** Every term of the query must be in a document
(:mod:`service.search.text`). Each database answers with its own full-text index, never by
scanning ``search_doc``: on SQLite the FTS5 tables (``search_fts MATCH '"term"'`` for terms
of three characters or more, trigram tokenizer; ``search_gram_fts MATCH`` for the shorter
ones); on PostgreSQL ``text LIKE '%term%'`` answered by the ``pg_trgm`` GIN index (the
pattern always holds a trigram: :func:`~service.search.text.parse_query` keeps only such
terms) and the grams' ``tsvector`` GIN index (``@@``). Both match exactly the documents that
contain every term, so both find the same documents.

**Ranking.** A BM25-style score computed by the same SQL on both databases, so that both
order the same way (SQLite's ``bm25()`` and PostgreSQL's ``ts_rank`` would not agree, and
trigram statistics rank oddly anyway). For each term: its occurrences in the document
(counted with ``replace``), those in the title counting three times, saturated and
normalised by the document's length (k1 = 1.2, b = 0.75, against a typical length of 120
characters); summed over the terms; times the kind's weight (:data:`KIND_WEIGHTS`:
store-facing notes first among equals, other commits last). The occurrences are whole
numbers and the rest are IEEE additions, multiplications and divisions of the same operands
in the same order, so both databases compute the same bits. Ties are broken by date (newest
first), version (highest first), place in the owner, then id.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    Select,
    bindparam,
    case,
    cast,
    func,
    intersect,
    literal_column,
    table,
    text,
)
from sqlalchemy import select as core_select
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlmodel import Session, col, select

from service.errors import DomainError
from service.releases.models import App, Release
from service.search.index import Source
from service.search.models import KIND_LABELS, KINDS, SearchDoc, search_doc_table
from service.search.text import (
    Query,
    QueryError,
    Term,
    app_token,
    highlight,
    kind_token,
    parse_query,
)
from versioning import InvalidVersion, parse_version
from versioning.storage_key import key_of

# BM25 (see the module docstring).
K1 = 1.2
B = 0.75
TYPICAL_CHARS = 120.0
TITLE_WEIGHT = 3  # an occurrence in the title counts this many times
# What support reads first among equally good matches: what stores were told, then features,
# fixes and incidents, then edited notes and minutes, then every other commit.
KIND_WEIGHTS = {
    "store": 1.6,
    "feature": 1.3,
    "fix": 1.3,
    "incident": 1.3,
    "notes": 1.2,
    "minutes": 1.1,
    "change": 1.0,
}
SNIPPET_CHARS = 180
MAX_LIMIT = 100
MAX_OFFSET = 10_000
# Releases that never reach stores have no store-facing changes.
NOT_SHIPPED = ("cancelled", "rejected")


class SearchError(DomainError):
    """A search request that cannot be answered (a bad filter, nothing to search for)."""


@dataclass(frozen=True)
class Filters:
    app: App | None = None
    kinds: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None


def parse_filters(
    session: Session,
    *,
    app: str | None = None,
    kind: str | None = None,
    since: date | None = None,
    until: date | None = None,
) -> Filters:
    """The filters of a request; :class:`SearchError` naming the field when one is wrong."""
    found: App | None = None
    if app:
        found = session.exec(select(App).where(App.slug == app.strip())).first()
        if found is None:
            raise SearchError(f"no app {app.strip()!r}", field="app")
    kinds = tuple(dict.fromkeys(k.strip() for k in (kind or "").split(",") if k.strip()))
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise SearchError(f"unknown kind {unknown[0]!r}: use {', '.join(KINDS)}", field="kind")
    if since and until and since > until:
        raise SearchError("the end of the date range is before its start", field="until")
    return Filters(found, kinds, since, until)


def parse(raw: str) -> Query:
    """The query's terms; :class:`SearchError` on the field ``q`` when it has none."""
    try:
        return parse_query(raw)
    except QueryError as exc:
        raise SearchError(exc.message, field="q") from None


@dataclass
class Hit:
    doc: SearchDoc
    score: float
    app: App | None
    release_state: str | None
    url: str
    title_html: str
    snippet_html: str

    @property
    def kind_label(self) -> str:
        return KIND_LABELS.get(self.doc.kind, self.doc.kind)


@dataclass
class Results:
    query: Query
    filters: Filters
    total: int
    limit: int
    offset: int
    hits: list[Hit] = field(default_factory=list)


def _score(dialect: str, doc: Any, terms: Sequence[Term]) -> ColumnElement[Any]:
    """The BM25-style score of the module docstring, as one SQL expression.

    Written so that each costly part is evaluated once per document: a term's occurrences
    appear once (``(k1 + 1) · (1 − norm / (tf + norm))`` is ``tf · (k1 + 1) / (tf + norm)``),
    and lengths come from the stored ``chars`` / ``title_chars`` where SQLite would count
    them character by character. Occurrences are counted as the length ``replace`` removes:
    in bytes on PostgreSQL (``octet_length`` reads a header), in characters on SQLite; the
    count, a whole number, is the same.
    """
    if dialect == "postgresql":
        text_size: Any = func.octet_length(doc.text, type_=Integer)
        size_of: Any = func.octet_length
    else:
        text_size, size_of = doc.chars, func.length
    title = func.substr(doc.text, 1, doc.title_chars)
    title_size = (
        func.octet_length(title, type_=Integer) if dialect == "postgresql" else doc.title_chars
    )
    norm = K1 * (1 - B) + cast(doc.chars, Float) * (K1 * B / TYPICAL_CHARS)
    total: ColumnElement[Any] | None = None
    for i, term in enumerate(terms):
        word: ColumnElement[str] = bindparam(f"score_term_{i}", term.text)
        removed_all = text_size - size_of(func.replace(doc.text, word, ""), type_=Integer)
        removed_title = title_size - size_of(func.replace(title, word, ""), type_=Integer)
        unit = len(term.text.encode()) if dialect == "postgresql" else len(term.text)
        found = (removed_all + (TITLE_WEIGHT - 1) * removed_title) // unit  # exact: whole
        part = (K1 + 1) - (K1 + 1) * norm / (cast(found, Float) + norm)
        total = part if total is None else total + part
    assert total is not None
    weight = case(
        *((doc.kind == kind, w) for kind, w in KIND_WEIGHTS.items() if w != 1.0), else_=1.0
    )
    return total * weight


def _fts_phrase(words: Sequence[str]) -> str:
    return " AND ".join('"' + w.replace('"', '""') + '"' for w in words)


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _tokens_filter(terms: Sequence[Term]) -> bool:
    """Whether the app and kind filters are asked of the gram index (its entries include
    each document's app and kind: :func:`~service.search.text.app_token`). Only alongside
    a short term: one query of one full-text index then intersects them before a row is
    read. Without one, intersecting a term of the trigram index with every document of a
    kind costs more than checking the columns of the rows the term finds."""
    return any(not t.trigram for t in terms)


def _entries(terms: Sequence[Term], filters: Filters) -> list[str]:
    """What the gram index is asked for: the short terms, then the app and the kinds. No
    entry holds a double quote: grams are letters, digits or non-ASCII characters."""
    entries = [f'"{t.text}"' for t in terms if not t.trigram]
    if entries and filters.app is not None:
        entries.append(f'"{app_token(filters.app.id or 0)}"')
    if entries and filters.kinds:
        entries.append("(" + " OR ".join(f'"{kind_token(k)}"' for k in filters.kinds) + ")")
    return entries


def _sqlite_ids(terms: Sequence[Term], filters: Filters) -> Any:
    """SQLite: the ids of the documents with every term, as one set made by the FTS5 tables
    before a row is read."""
    long_terms = [t.text for t in terms if t.trigram]
    entries = _entries(terms, filters)
    parts = []
    if long_terms:
        parts.append(_fts_select("search_fts", _fts_phrase(long_terms)))
    if entries:
        parts.append(_fts_select("search_gram_fts", " AND ".join(entries)))
    return parts[0] if len(parts) == 1 else intersect(*parts)


def _matches(
    dialect: str, doc: Any, terms: Sequence[Term], filters: Filters
) -> list[ColumnElement[bool]]:
    """The conditions that every term is in the document and that it is of the app and kinds
    asked for; the terms are answered by the full-text indexes."""
    found: list[ColumnElement[bool]] = []
    if not _tokens_filter(terms):
        if filters.app is not None:
            found.append(doc.app_id == filters.app.id)
        if filters.kinds:
            found.append(doc.kind.in_(filters.kinds))
    if dialect == "sqlite":
        return [doc.id.in_(_sqlite_ids(terms, filters)), *found]
    found += [
        doc.text.like(bindparam(f"like_{i}", _like(t.text)), escape="\\")
        for i, t in enumerate(t for t in terms if t.trigram)
    ]
    entries = _entries(terms, filters)
    if entries:
        # The very expression of the index (migration 0006), so that the planner uses it.
        grams: ColumnElement[Any] = literal_column(
            "array_to_tsvector(string_to_array(search_doc.grams, ' '))"
        )
        wanted = " & ".join(e.replace('"', "'").replace(" OR ", " | ") for e in entries)
        found.append(grams.op("@@")(cast(bindparam("grams_query", wanted), TSQUERY)))
    return found


def _fts_select(name: str, match: str) -> Select[Any]:
    return (
        core_select(literal_column("rowid"))
        .select_from(table(name))
        .where(text(f"{name} MATCH :{name}_match").bindparams(bindparam(f"{name}_match", match)))
    )


def search(
    session: Session,
    query: Query,
    filters: Filters,
    sources: dict[str, Source],
    *,
    limit: int = 20,
    offset: int = 0,
) -> Results:
    """The documents holding every term of ``query`` that pass ``filters``, best first."""
    limit = max(1, min(limit, MAX_LIMIT))
    offset = max(0, min(offset, MAX_OFFSET))
    doc = search_doc_table.c
    dialect = session.connection().dialect.name
    # The total: a window over the rows the ranking reads anyway; but on SQLite, when the
    # FTS5 tables alone can count them, that count (cheaper than the window's copy of every
    # row), and only when the page is full.
    window = dialect == "postgresql" or not _fts_counts(query, filters)
    columns = [doc.id, _score(dialect, doc, query.terms).label("score")]
    if window:
        columns.append(func.count().over().label("total"))
    stmt = _filtered(core_select(*columns), dialect, query, filters)
    stmt = (
        stmt.order_by(
            literal_column("score").desc(),
            doc.on_date.desc(),
            func.coalesce(doc.version_key, "").desc(),
            doc.position,
            doc.id,
        )
        .limit(limit)
        .offset(offset)
    )
    ranked = session.connection().execute(stmt).all()
    if window and ranked:
        total = int(ranked[0].total)
    elif ranked and len(ranked) < limit:
        total = offset + len(ranked)
    elif not ranked and not offset:
        total = 0
    else:
        total = _count(session, dialect, query, filters)
    results = Results(query, filters, total, limit, offset)
    if not ranked:
        return results
    ids = [row.id for row in ranked]
    # populate_existing: an id may be reused by a document written since this session read it.
    docs = {
        d.id: d
        for d in session.exec(
            select(SearchDoc)
            .where(col(SearchDoc.id).in_(ids))
            .execution_options(populate_existing=True)
        )
    }
    apps = {a.id: a for a in session.exec(select(App)).all()}
    release_ids = {d.release_id for d in docs.values() if d.release_id is not None}
    states = dict(
        session.exec(
            select(Release.id, Release.state).where(col(Release.id).in_(release_ids))
        ).all()
    )
    for row in ranked:
        found = docs[row.id]
        source = sources.get(found.source)
        results.hits.append(
            Hit(
                doc=found,
                score=float(row.score),
                app=apps.get(found.app_id) if found.app_id is not None else None,
                release_state=states.get(found.release_id) if found.release_id else None,
                url=source.link(found) if source is not None else "",
                title_html=highlight(found.title, query.terms),
                snippet_html=highlight(found.body, query.terms, size=SNIPPET_CHARS),
            )
        )
    return results


def _filtered(stmt: Select[Any], dialect: str, query: Query, filters: Filters) -> Select[Any]:
    doc = search_doc_table.c
    stmt = stmt.where(*_matches(dialect, doc, query.terms, filters))
    if filters.since is not None:
        stmt = stmt.where(doc.on_date >= filters.since)
    if filters.until is not None:
        stmt = stmt.where(doc.on_date <= filters.until)
    return stmt


def _fts_counts(query: Query, filters: Filters) -> bool:
    """SQLite: whether the FTS5 tables alone can count the results (no filter on a column)."""
    if filters.since is not None or filters.until is not None:
        return False
    return _tokens_filter(query.terms) or (not filters.kinds and filters.app is None)


def _count(session: Session, dialect: str, query: Query, filters: Filters) -> int:
    if dialect == "sqlite" and _fts_counts(query, filters):
        ids = _sqlite_ids(query.terms, filters).subquery()
        stmt: Select[Any] = core_select(func.count()).select_from(ids)
    else:
        stmt = _filtered(
            core_select(func.count()).select_from(search_doc_table), dialect, query, filters
        )
    return int(session.connection().execute(stmt).scalar_one())


# --- what changed for stores -------------------------------------------------------------


@dataclass
class StoreRelease:
    release: Release
    notes: list[SearchDoc]


def _version(value: str | None, name: str) -> str | None:
    if value is None or not value.strip():
        return None
    try:
        parse_version(value)
    except InvalidVersion:
        raise SearchError(f"not a version: {value.strip()!r}", field=name) from None
    return value.strip()


def store_changes(
    session: Session, app: App, *, from_version: str | None, to_version: str | None
) -> list[StoreRelease]:
    """The store-facing notes of ``app``'s releases from ``from_version`` to ``to_version``
    (both included; open-ended when omitted), by version; releases that never shipped
    (cancelled, rejected) are left out, releases without store-facing notes are kept."""
    low, high = _version(from_version, "from_version"), _version(to_version, "to_version")
    if low and high and parse_version(low) > parse_version(high):
        raise SearchError("to_version is below from_version", field="to_version")
    releases = [
        r
        for r in session.exec(
            select(Release).where(Release.app_id == app.id, col(Release.state).not_in(NOT_SHIPPED))
        ).all()
        if (low is None or parse_version(r.version) >= parse_version(low))
        and (high is None or parse_version(r.version) <= parse_version(high))
    ]
    releases.sort(key=lambda r: parse_version(r.version))
    stmt = select(SearchDoc).where(
        SearchDoc.app_id == app.id, SearchDoc.kind == "store", SearchDoc.source == "release"
    )
    if low:
        stmt = stmt.where(col(SearchDoc.version_key) >= key_of(low))
    if high:
        stmt = stmt.where(col(SearchDoc.version_key) <= key_of(high))
    by_release: dict[int, list[SearchDoc]] = defaultdict(list)
    for found in session.exec(stmt.order_by(col(SearchDoc.position), col(SearchDoc.id))).all():
        if found.release_id is not None:
            by_release[found.release_id].append(found)
    return [StoreRelease(r, by_release.get(r.id or 0, [])) for r in releases]


def app_versions(session: Session, app: App) -> list[str]:
    """The versions of ``app``'s releases, newest first (the version span's suggestions)."""
    versions = session.exec(select(Release.version).where(Release.app_id == app.id)).all()
    return sorted(versions, key=parse_version, reverse=True)
