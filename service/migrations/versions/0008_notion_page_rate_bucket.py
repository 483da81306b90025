"""notion_page: what was published to each release's Notion page; rate_bucket: a shared
rate limit

``notion_page`` keeps, per release, the page id, its publish key (the page's "Publish key"
property) and the page's top-level blocks as last written (ids and content fingerprints)
with the step under way, so a publish writes only what changed and a retry goes on from
where the failed attempt stopped. Pages published before this revision have no row: the
first publish reads such a page once and keeps the blocks that already say the right thing.

``rate_bucket`` holds token buckets every worker and process share (Notion: one limit for
the whole integration).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('notion_page',
    sa.Column('release_id', sa.Integer(), nullable=False),
    sa.Column('page_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('publish_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('state', sa.JSON(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['release_id'], ['release.id'], ),
    sa.PrimaryKeyConstraint('release_id')
    )
    op.create_table('rate_bucket',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('tokens', sa.Float(), nullable=False),
    sa.Column('stamp', sa.Float(), nullable=False),
    sa.Column('paused_until', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('rate_bucket')
    op.drop_table('notion_page')
