"""meeting_notion_page: each closed meeting's minutes page in Notion

What people see of publishing a week's minutes (state, link, last error, the record digest
last published) and the publisher's ledger of the page's blocks, as ``notion_page`` keeps it
for a release's notes.

Revision ID: 0010
Revises: 0006
Create Date: 2026-12-06 10:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0010'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('meeting_notion_page',
    sa.Column('meeting_id', sa.Integer(), nullable=False),
    sa.Column('page_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('publish_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('state', sa.JSON(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('publish_state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('notion_url', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('published_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('published_digest', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.ForeignKeyConstraint(['meeting_id'], ['meeting.id'], ),
    sa.PrimaryKeyConstraint('meeting_id')
    )


def downgrade() -> None:
    op.drop_table('meeting_notion_page')
