"""search_doc.weighted: the text the score counts a term's occurrences in

The title twice more (each followed by a line break), then the document's matched ``text``,
so that one ``replace`` counts an occurrence in the title three times and one in the body
once (service.search.query): it replaces ``title_chars``, which the score used to cut the
title out of ``text``. Filled from the rows already there (the index is derived data, a
``relgov search reindex`` writes the same), the full-text indexes are untouched (they index
``text`` and ``grams``). The column keeps a server default of '' (the writers always set it).

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-06 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0011'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        'search_doc', sa.Column('weighted', sa.Text(), nullable=False, server_default='')
    )
    newline = "char(10)" if op.get_bind().dialect.name == "sqlite" else "chr(10)"
    title = "substr(text, 1, title_chars)"
    op.execute(
        f"UPDATE search_doc SET weighted = {title} || {newline} || {title} || {newline} || text"
    )
    op.drop_column('search_doc', 'title_chars')


def downgrade() -> None:
    op.add_column(
        'search_doc', sa.Column('title_chars', sa.Integer(), nullable=False, server_default='0')
    )
    # The title is what precedes the first line break of ``text`` (titles hold none).
    if op.get_bind().dialect.name == "sqlite":
        found = "instr(text, char(10)) - 1"
    else:
        found = "strpos(text, chr(10)) - 1"
    op.execute(f"UPDATE search_doc SET title_chars = {found}")
    op.drop_column('search_doc', 'weighted')
