"""job: at most one running job per key (uq_job_running_key); the health_probe table

Until now a job queued for a key could be claimed while the key's previous job still
counted as running under a lease that had run out (its worker dead): both could then run
(two publishers of one release). The index makes that impossible in the database.

A database that already holds several running jobs of one key keeps the oldest running;
the newest of the others goes back to the queue (unless a job of the key is queued
already) and the rest are cancelled, so the index can be built. A worker of the previous
release still running one of those finds its lease gone when it records the outcome.

``health_probe`` stays empty: ``/healthz`` inserts a row and rolls it back to learn whether
the database can still write.

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0005'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RUNNING = sa.text("state = 'running'")
_JOB = sa.table(
    'job',
    sa.column('id', sa.Integer()),
    sa.column('key', sa.String()),
    sa.column('state', sa.String()),
    sa.column('locked_by', sa.String()),
    sa.column('locked_until', sqlmodel.sql.sqltypes.UTCDateTime()),
    sa.column('result', sa.String()),
    sa.column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime()),
    sa.column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime()),
)


def _one_running_job_per_key(connection: sa.Connection) -> None:
    job = _JOB.c
    keys = connection.execute(
        sa.select(job.key)
        .where(job.state == 'running', job.key.is_not(None))
        .group_by(job.key)
        .having(sa.func.count() > 1)
    ).scalars().all()
    now = datetime.now(UTC)
    for key in keys:
        ids = connection.execute(
            sa.select(job.id).where(job.key == key, job.state == 'running').order_by(job.id)
        ).scalars().all()
        kept, others = ids[0], list(reversed(ids[1:]))
        queued = connection.execute(
            sa.select(job.id).where(job.key == key, job.state == 'queued')
        ).first()
        if queued is None:
            connection.execute(
                _JOB.update()
                .where(job.id == others.pop(0))
                .values(state='queued', locked_by=None, locked_until=None, updated_at=now)
            )
        for job_id in others:
            connection.execute(
                _JOB.update()
                .where(job.id == job_id)
                .values(
                    state='cancelled',
                    locked_by=None,
                    locked_until=None,
                    updated_at=now,
                    finished_at=now,
                    result=f'cancelled by migration 0005: job {kept} of its key was running',
                )
            )


def upgrade() -> None:
    op.create_table(
        'health_probe',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('payload', sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    _one_running_job_per_key(op.get_bind())
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.create_index(
            'uq_job_running_key',
            ['key'],
            unique=True,
            sqlite_where=_RUNNING,
            postgresql_where=_RUNNING,
        )


def downgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_index(
            'uq_job_running_key', sqlite_where=_RUNNING, postgresql_where=_RUNNING
        )
    op.drop_table('health_probe')
