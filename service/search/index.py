"""Writing the search index: what a source gives, replacing one owner's documents, rebuilding
everything.

A *source* (:class:`Source`) turns one kind of owner (a release's notes, an incident, a
week's meeting minutes) into documents; ``service/wiring.py`` lists the sources
(:data:`SOURCES_KEY`). Another kind of text is one more source plus a
reaction where it changes, nothing else.

The index is updated **in the transaction of the change**: the reactions in
:mod:`service.search.sources` run inside the service call that changed the text (generating
or editing notes, recording or changing an incident, saving a meeting's minutes) and call
:func:`refresh`. So a committed change is searchable at once, and a change that fails leaves
no index row behind (nor an index row without its change). It is cheap: one release's notes
are a few hundred rows, written in milliseconds, next to generating them from git which
takes far longer; there is no outside system to wait for, so a job queue would add lag and
a second way to fail for nothing.

Functions take the session and never commit; the caller commits (a request, a command).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from flask import Flask, current_app
from sqlalchemy import Connection, delete, func, select, text
from sqlmodel import Session

from service.search.models import FTS_TABLES, PG_INDEX_DDL, SearchDoc, search_doc_table
from service.search.text import app_token, clean, grams, kind_token, normalize
from versioning import InvalidVersion
from versioning.storage_key import key_of

SOURCES_KEY = "relgov.search_sources"
# pg_advisory lock key ("relgovs"): refreshes share it, a rebuild holds it alone.
LOCK_KEY = 0x72656C676F7673
BATCH_ROWS = 5_000
# Each FTS5 table and the column of search_doc it indexes.
_FTS_COLUMNS = dict(zip(FTS_TABLES, ("text", "grams"), strict=True))


@dataclass(frozen=True)
class Entry:
    """One document as a source gives it."""

    kind: str  # one of service.search.models.KINDS
    section: str  # where it is, for people: "Features · Payments", "Meeting 2026-W10"
    title: str
    body: str = ""
    target: str = ""  # where in the owner's page (see the source's ``link``)


@dataclass
class Owner:
    """What one source object (release, incident, weekly meeting) gives the index."""

    key: int
    on_date: date
    app_id: int | None = None
    release_id: int | None = None
    version: str | None = None
    entries: list[Entry] = field(default_factory=list)


class Source(Protocol):
    """A kind of owner the index holds documents of."""

    @property
    def name(self) -> str:
        """Stored in ``search_doc.source``; keep it stable (renaming needs a reindex)."""

    def owners(self, session: Session, keys: Sequence[int] | None) -> Iterator[Owner]:
        """The owners with these keys (all of them with None), each with its entries. A key
        with no owner any more is left out (its documents are removed)."""

    def link(self, doc: SearchDoc) -> str:
        """The URL of a document (needs an app context)."""


def init_app(app: Flask, sources: Sequence[Source]) -> None:
    """Remember the sources ``app`` indexes (for rebuilding and for links)."""
    app.extensions[SOURCES_KEY] = {source.name: source for source in sources}


def sources_of(app: Flask | None = None) -> dict[str, Source]:
    found: dict[str, Source] = (app or current_app).extensions[SOURCES_KEY]
    return found


def _version_key(version: str | None) -> str | None:
    if not version:
        return None
    try:
        return key_of(version)
    except InvalidVersion:
        return None


# The columns written, in the order of :func:`rows_of`'s tuples.
COLUMNS = (
    "source",
    "owner_key",
    "position",
    "kind",
    "app_id",
    "release_id",
    "version",
    "version_key",
    "on_date",
    "section",
    "title",
    "body",
    "target",
    "text",
    "chars",
    "title_chars",
    "grams",
)
Row = tuple[Any, ...]


def rows_of(source: str, owner: Owner) -> list[Row]:
    """The ``search_doc`` rows of ``owner`` (values in the order of :data:`COLUMNS`)."""
    version_key = _version_key(owner.version)
    rows = []
    for position, entry in enumerate(owner.entries):
        title, body = clean(entry.title), clean(entry.body)
        if not title and not body:
            continue
        folded_title = normalize(title)
        matched = folded_title + "\n" + normalize(body)
        rows.append(
            (
                source,
                owner.key,
                position,
                entry.kind,
                owner.app_id,
                owner.release_id,
                owner.version,
                version_key,
                owner.on_date,
                clean(entry.section)[:300],
                title,
                body,
                clean(entry.target)[:500],
                matched,
                len(matched),
                len(folded_title),
                _grams(matched, owner.app_id, entry.kind),
            )
        )
    return rows


def _grams(matched: str, app_id: int | None, kind: str) -> str:
    """The gram index entries: the text's, and its app and kind (the filters use them)."""
    marks = (kind_token(kind),) if app_id is None else (app_token(app_id), kind_token(kind))
    found = grams(matched)
    return " ".join((found, *marks)) if found else " ".join(marks)


def _write(connection: Connection, rows: Sequence[Row]) -> None:
    """Insert ``rows`` as they are, past SQLAlchemy's per-row parameter handling (a rebuild
    writes hundreds of thousands): ``COPY`` on PostgreSQL, ``executemany`` on SQLite."""
    if not rows:
        return
    names = ", ".join(COLUMNS)
    raw: Any = connection.connection.dbapi_connection  # psycopg's or sqlite3's
    if connection.dialect.name == "postgresql":
        with raw.cursor() as cursor, cursor.copy(f"COPY search_doc ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    date_at = COLUMNS.index("on_date")  # SQLAlchemy's Date is ISO text on SQLite
    marks = ", ".join("?" * len(COLUMNS))
    cursor = raw.cursor()
    try:
        cursor.executemany(
            f"INSERT INTO search_doc ({names}) VALUES ({marks})",
            [(*row[:date_at], row[date_at].isoformat(), *row[date_at + 1 :]) for row in rows],
        )
    finally:
        cursor.close()


def _is_sqlite(connection: Connection) -> bool:
    return connection.dialect.name == "sqlite"


def _lock(connection: Connection, *, exclusive: bool) -> None:
    """On PostgreSQL, refreshes wait for a rebuild (and a rebuild for them), so that a
    refresh never writes an owner's rows beside the rebuild's. SQLite has one writer."""
    if connection.dialect.name == "postgresql":
        name = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        connection.execute(select(getattr(func, name)(LOCK_KEY)))


def _fts_owner(connection: Connection, command: str, source: str, key: int) -> None:
    """Take an owner's rows out of the FTS5 tables (``delete``) or put them in (``insert``):
    external-content tables are kept in step by hand, here and nowhere else."""
    for table, column in _FTS_COLUMNS.items():
        if command == "delete":
            head = f"INSERT INTO {table}({table}, rowid, {column}) SELECT 'delete', id, {column}"
        else:
            head = f"INSERT INTO {table}(rowid, {column}) SELECT id, {column}"
        connection.execute(
            text(f"{head} FROM search_doc WHERE source = :source AND owner_key = :key"),
            {"source": source, "key": key},
        )


def refresh(session: Session, source: Source, key: int) -> int:
    """Replace the documents of ``source``'s owner ``key`` (none when it is gone); returns
    how many it has now."""
    rows = [row for owner in source.owners(session, [key]) for row in rows_of(source.name, owner)]
    connection = session.connection()
    _lock(connection, exclusive=False)
    sqlite = _is_sqlite(connection)
    if sqlite:
        _fts_owner(connection, "delete", source.name, key)
    doc = search_doc_table.c
    connection.execute(
        delete(search_doc_table).where(doc.source == source.name, doc.owner_key == key)
    )
    if rows:
        _write(connection, rows)
        if sqlite:
            _fts_owner(connection, "insert", source.name, key)
    return len(rows)


@dataclass
class Rebuilt:
    documents: dict[str, int]  # per source
    owners: dict[str, int]


def rebuild(session: Session, sources: Iterable[Source]) -> Rebuilt:
    """Empty the index and write every source's documents again (``relgov search reindex``).

    One transaction. On SQLite searches keep reading the old index until it commits; the
    FTS5 tables are emptied, then built in one pass from ``search_doc`` (``rebuild``). On
    PostgreSQL the table is emptied and its GIN indexes dropped, then made again once the
    rows are in (many times faster than growing them row by row); searches wait for the
    rebuild to commit (the dropped indexes lock the table).
    """
    connection = session.connection()
    _lock(connection, exclusive=True)
    sqlite = _is_sqlite(connection)
    if sqlite:
        for table in FTS_TABLES:
            connection.execute(text(f"INSERT INTO {table}({table}) VALUES ('delete-all')"))
        connection.execute(delete(search_doc_table))
    else:
        connection.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
        for name in PG_INDEX_DDL:
            connection.execute(text(f"DROP INDEX IF EXISTS {name}"))
        connection.execute(text("TRUNCATE search_doc"))
    result = Rebuilt({}, {})
    for source in sources:
        batch: list[Row] = []
        documents = owners = 0
        for owner in source.owners(session, None):
            owners += 1
            batch.extend(rows_of(source.name, owner))
            if len(batch) >= BATCH_ROWS:
                _write(connection, batch)
                documents += len(batch)
                batch = []
        if batch:
            _write(connection, batch)
            documents += len(batch)
        result.documents[source.name] = documents
        result.owners[source.name] = owners
    if sqlite:
        for table in FTS_TABLES:
            connection.execute(text(f"INSERT INTO {table}({table}) VALUES ('rebuild')"))
    else:
        for ddl in PG_INDEX_DDL.values():
            connection.execute(text(ddl))
        connection.execute(text("ANALYZE search_doc"))
    return result
