"""The search index: one row per searchable piece of text, and the full-text indexes over it.

``search_doc`` holds what a result shows (app, release, date, section, the original title and
body) and what is matched: ``text``, the normalised title and body
(:func:`service.search.text.normalize`), and ``grams``, its short-term entries
(:func:`service.search.text.grams`). The full-text indexes are made by migration ``0006``,
not by the models, because neither SQLModel nor Alembic describes them:

- SQLite: FTS5 tables over ``search_doc`` (external content, kept in step by
  :mod:`service.search.index`): ``search_fts`` (``text``, trigram tokenizer, case-sensitive:
  the text is already folded) and ``search_gram_fts`` (``grams``, ascii tokenizer: one
  token per gram).
- PostgreSQL: a GIN ``gin_trgm_ops`` index on ``text`` (``pg_trgm``) and a GIN index on the
  ``tsvector`` of the grams (``array_to_tsvector(string_to_array(grams, ' '))``).

The rows are derived data: ``relgov search reindex`` rebuilds them all from the notes,
incidents and meetings' minutes.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Column, Index, String, Text
from sqlalchemy.types import TypeEngine
from sqlmodel import Field, SQLModel

from versioning.storage_key import VERSION_KEY_LENGTH

# What a document is (the ``kind`` filter): a commit of the notes by its type, a store-facing
# note, text people wrote into the notes beyond the commits, an incident, meeting minutes.
KINDS = ("feature", "fix", "change", "store", "notes", "incident", "minutes")
KIND_LABELS = {
    "feature": "Feature",
    "fix": "Fix",
    "change": "Other change",
    "store": "Store-facing",
    "notes": "Notes (edited)",
    "incident": "Incident",
    "minutes": "Meeting minutes",
}

# What migration 0006 creates by hand (the models-vs-migrations check leaves these names
# alone). A rebuild on PostgreSQL drops the GIN indexes and makes them again from these
# definitions, the migration's own (a test compares them): building an index once is many
# times faster than growing it row by row.
FTS_TABLES = ("search_fts", "search_gram_fts")
PG_INDEX_DDL = {
    "ix_search_doc_text_trgm": "CREATE INDEX ix_search_doc_text_trgm ON search_doc "
    "USING gin (text gin_trgm_ops)",
    "ix_search_doc_grams": "CREATE INDEX ix_search_doc_grams ON search_doc "
    "USING gin (array_to_tsvector(string_to_array(grams, ' ')))",
}
PG_INDEXES = tuple(PG_INDEX_DDL)


def _version_key_type() -> TypeEngine[str]:
    # Byte order is version order (versioning.storage_key): "C" collation on PostgreSQL.
    return String(VERSION_KEY_LENGTH).with_variant(
        String(VERSION_KEY_LENGTH, collation="C"), "postgresql"
    )


class SearchDoc(SQLModel, table=True):
    """One searchable piece of text of one owner (a release's notes, an incident, a week's
    meeting): an owner's documents are replaced together when it changes."""

    __tablename__ = "search_doc"
    __table_args__ = (
        Index("ix_search_doc_owner", "source", "owner_key"),
        # The store-facing changes of an app across a span of versions.
        Index("ix_search_doc_app_kind_version", "app_id", "kind", "version_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=32)  # the source that made it (service.search.sources)
    owner_key: int  # the id of its owner in that source (release, incident, meeting)
    position: int = 0  # its place among the owner's documents
    kind: str = Field(max_length=16)  # one of KINDS
    app_id: int | None = None
    release_id: int | None = None
    version: str | None = Field(default=None, max_length=128)
    version_key: str | None = Field(
        default=None, sa_column=Column("version_key", _version_key_type(), nullable=True)
    )
    on_date: date  # the release's registration day, the incident's start, the meeting's Monday
    section: str = Field(default="", max_length=300)
    title: str = Field(default="", sa_column=Column(Text, nullable=False))
    body: str = Field(default="", sa_column=Column(Text, nullable=False))
    target: str = Field(default="", max_length=500)  # where in the owner's page it is
    # What is matched: normalize(title) + "\n" + normalize(body), its length and the title's
    # (in characters), and the gram entries of that text.
    text: str = Field(default="", sa_column=Column(Text, nullable=False))
    chars: int = 0
    title_chars: int = 0
    grams: str = Field(default="", sa_column=Column(Text, nullable=False))


# The Core handle for set-based statements (the ORM class types its columns as values).
search_doc_table = SQLModel.metadata.tables["search_doc"]
