"""device_state.seen_hour: the report indexes hold the hour of last_seen, not last_seen

Most heartbeats move only ``last_seen``; with it out of the indexes they update the row
alone (see ``version_monitor/seen.py``).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 01:10:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (name, columns) of the report indexes, before and after; the last column moves.
_INDEXES = (
    ('app_{}', ()),
    ('app_version', ('version_key', 'store_id')),
    ('app_store', ('store_id', 'version_key')),
    ('app_kind', ('device_kind', 'version_key')),
    ('app_channel_{}', ('channel',)),
)


def _swap(batch_op: Any, old: str, new: str) -> None:
    for name, _ in _INDEXES:
        batch_op.drop_index(f'ix_device_state_{name.format(old)}')
    for name, columns in _INDEXES:
        batch_op.create_index(
            f'ix_device_state_{name.format(new)}', ['app', *columns, new], unique=False
        )


def upgrade() -> None:
    with op.batch_alter_table('device_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seen_hour', sa.DateTime(), nullable=True))
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("UPDATE device_state SET seen_hour = date_trunc('hour', last_seen)")
    else:  # SQLAlchemy's text: YYYY-MM-DD HH:MM:SS.ffffff
        op.execute("UPDATE device_state SET seen_hour = substr(last_seen, 1, 13) || ':00:00.000000'")
    with op.batch_alter_table('device_state', schema=None) as batch_op:
        batch_op.alter_column('seen_hour', existing_type=sa.DateTime(), nullable=False)
        _swap(batch_op, 'last_seen', 'seen_hour')


def downgrade() -> None:
    with op.batch_alter_table('device_state', schema=None) as batch_op:
        _swap(batch_op, 'seen_hour', 'last_seen')
        batch_op.drop_column('seen_hour')
