"""notifications: the Slack outbox, each app's channel, email → Slack user

New tables only (expand): ``notification`` (one row per Slack message, written with the event
that causes it), ``notification_app_channel`` and ``notification_slack_user``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 09:27:52.302059
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('notification_slack_user',
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('slack_user_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('updated_by', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('email')
    )
    op.create_table('notification_app_channel',
    sa.Column('app_id', sa.Integer(), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('incident_min_score', sa.Integer(), nullable=True),
    sa.Column('updated_by', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['app_id'], ['app.id'], ),
    sa.PrimaryKeyConstraint('app_id')
    )
    op.create_table('notification',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dedupe_key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('event', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('app_id', sa.Integer(), nullable=True),
    sa.Column('release_id', sa.Integer(), nullable=True),
    sa.Column('recipient', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True),
    sa.Column('via', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('destination', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('sending_since', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('slack_ts', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('slack_channel', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('sent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['app_id'], ['app.id'], ),
    sa.ForeignKeyConstraint(['release_id'], ['release.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedupe_key')
    )
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notification_app_id'), ['app_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notification_event'), ['event'], unique=False)
        batch_op.create_index(batch_op.f('ix_notification_release_id'), ['release_id'], unique=False)
        batch_op.create_index('ix_notification_state_created', ['state', 'created_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_index('ix_notification_state_created')
        batch_op.drop_index(batch_op.f('ix_notification_release_id'))
        batch_op.drop_index(batch_op.f('ix_notification_event'))
        batch_op.drop_index(batch_op.f('ix_notification_app_id'))

    op.drop_table('notification')
    op.drop_table('notification_app_channel')
    op.drop_table('notification_slack_user')
