"""notifications: the Slack outbox, each app's channel, email → Slack user

``notification`` (one row per Slack message, written with the event that causes it),
``notification_app_channel`` and ``notification_slack_user``.

The weekly meeting's messages (``meeting_notification``, 0007) move into ``notification``
(its ``meeting_id``, ``mentions`` and ``payload``): one table for every Slack message, one
sender. Rows recorded before this revision were never sent and are not sent now (state
``not_configured``, saying so; "Send again" sends one), so an upgrade does not post a
backlog of old meeting events. ``meeting_notification`` is dropped; downgrade puts the
meeting's messages back into it.

Revision ID: 0009
Revises: 0010
Create Date: 2026-12-06 09:27:52.302059
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0009'
down_revision: str | None = '0010'
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
    sa.Column('meeting_id', sa.Integer(), nullable=True),
    sa.Column('mentions', sa.JSON(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
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
    sa.ForeignKeyConstraint(['meeting_id'], ['meeting.id'], ),
    sa.ForeignKeyConstraint(['release_id'], ['release.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedupe_key')
    )
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notification_app_id'), ['app_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notification_event'), ['event'], unique=False)
        batch_op.create_index(batch_op.f('ix_notification_meeting_id'), ['meeting_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notification_release_id'), ['release_id'], unique=False)
        batch_op.create_index('ix_notification_state_created', ['state', 'created_at'], unique=False)

    _meeting_messages_into_outbox()
    with op.batch_alter_table('meeting_notification', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_meeting_notification_state'))
        batch_op.drop_index(batch_op.f('ix_meeting_notification_meeting_id'))
    op.drop_table('meeting_notification')



def downgrade() -> None:
    op.create_table('meeting_notification',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('event', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('meeting_id', sa.Integer(), nullable=False),
    sa.Column('release_id', sa.Integer(), nullable=True),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('mentions', sa.JSON(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('sent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.ForeignKeyConstraint(['meeting_id'], ['meeting.id'], ),
    sa.ForeignKeyConstraint(['release_id'], ['release.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('meeting_notification', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_meeting_notification_meeting_id'), ['meeting_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_meeting_notification_state'), ['state'], unique=False)
    _meeting_messages_back()

    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_index('ix_notification_state_created')
        batch_op.drop_index(batch_op.f('ix_notification_meeting_id'))
        batch_op.drop_index(batch_op.f('ix_notification_release_id'))
        batch_op.drop_index(batch_op.f('ix_notification_event'))
        batch_op.drop_index(batch_op.f('ix_notification_app_id'))

    op.drop_table('notification')
    op.drop_table('notification_app_channel')
    op.drop_table('notification_slack_user')


_OLD = sa.table(
    'meeting_notification',
    sa.column('id', sa.Integer()),
    sa.column('key', sa.String()),
    sa.column('event', sa.String()),
    sa.column('meeting_id', sa.Integer()),
    sa.column('release_id', sa.Integer()),
    sa.column('channel', sa.String()),
    sa.column('text', sa.Text()),
    sa.column('mentions', sa.JSON()),
    sa.column('payload', sa.JSON()),
    sa.column('at', sqlmodel.sql.sqltypes.UTCDateTime()),
    sa.column('state', sa.String()),
    sa.column('sent_at', sqlmodel.sql.sqltypes.UTCDateTime()),
    sa.column('error', sa.String()),
)
_NEW = sa.table(
    'notification',
    sa.column('id', sa.Integer()),
    sa.column('dedupe_key', sa.String()),
    sa.column('event', sa.String()),
    sa.column('app_id', sa.Integer()),
    sa.column('release_id', sa.Integer()),
    sa.column('meeting_id', sa.Integer()),
    sa.column('mentions', sa.JSON()),
    sa.column('payload', sa.JSON()),
    sa.column('via', sa.String()),
    sa.column('channel', sa.String()),
    sa.column('destination', sa.String()),
    sa.column('text', sa.Text()),
    sa.column('state', sa.String()),
    sa.column('attempts', sa.Integer()),
    sa.column('last_error', sa.String()),
    sa.column('actor', sa.String()),
    sa.column('created_at', sqlmodel.sql.sqltypes.UTCDateTime()),
    sa.column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime()),
    sa.column('sent_at', sqlmodel.sql.sqltypes.UTCDateTime()),
)
_APPS = sa.table('app', sa.column('id', sa.Integer()), sa.column('slug', sa.String()))
MEETINGS_CHANNEL = 'meetings'
NOT_SENT = (
    'Recorded before meeting messages went to Slack: not sent (Send again sends it)'
)


def _meeting_messages_into_outbox() -> None:
    """Each ``meeting_notification`` row becomes a ``notification`` row (never sent)."""
    bind = op.get_bind()
    apps = {slug: app_id for app_id, slug in bind.execute(sa.select(_APPS.c.id, _APPS.c.slug))}
    rows = bind.execute(sa.select(_OLD).order_by(_OLD.c.id)).mappings().all()
    for row in rows:
        payload = dict(row['payload'] or {})
        app_id = apps.get(row['channel']) if row['channel'] != MEETINGS_CHANNEL else None
        sent = row['sent_at'] is not None
        bind.execute(
            _NEW.insert().values(
                dedupe_key=f"meeting:{row['key']}"[:200],
                event=f"meeting_{row['event']}"[:32],
                app_id=app_id,
                release_id=row['release_id'],
                meeting_id=row['meeting_id'],
                mentions=list(row['mentions'] or []),
                payload=payload,
                via='none',
                channel='',
                destination=f"#{row['channel']}"[:300],
                text=row['text'],
                state='sent' if sent else 'not_configured',
                attempts=0,
                last_error=None if sent else (row['error'] or NOT_SENT)[:2000],
                actor=str(payload.get('actor') or 'system:meetings')[:254],
                created_at=row['at'],
                updated_at=row['at'],
                sent_at=row['sent_at'],
            )
        )


def _meeting_messages_back() -> None:
    """Downgrade: the meeting's messages back into ``meeting_notification``."""
    bind = op.get_bind()
    apps = {app_id: slug for app_id, slug in bind.execute(sa.select(_APPS.c.id, _APPS.c.slug))}
    rows = bind.execute(
        sa.select(_NEW).where(_NEW.c.meeting_id.is_not(None)).order_by(_NEW.c.id)
    ).mappings().all()
    for row in rows:
        bind.execute(
            _OLD.insert().values(
                key=row['dedupe_key'].removeprefix('meeting:')[:120],
                event=row['event'].removeprefix('meeting_'),
                meeting_id=row['meeting_id'],
                release_id=row['release_id'],
                channel=apps.get(row['app_id'], MEETINGS_CHANNEL)[:64],
                text=row['text'],
                mentions=list(row['mentions'] or []),
                payload=dict(row['payload'] or {}),
                at=row['created_at'],
                state='not_sent' if row['state'] in ('not_configured', 'failed') else 'pending',
                sent_at=row['sent_at'],
                error=row['last_error'] or '',
            )
        )
