"""Resumable scheduler: the step journal, the leader lease, and where each command's workpiece is.

``commands`` gains the workpiece's place and status, the plan progress, ``stranded`` (ended
away from the rack, still to be carried back) and ``uid`` (random; station task keys are built
from it, so existing commands get one here). ``command_steps`` journals every attempt of a
station task; ``scheduler_leases`` holds the lease of the schedulers sharing the database. See
``stf_nodes/scheduler/queue.py``.

Revision ID: 0003_resumable_scheduler
Revises: 0002_history_tables
Create Date: 2026-12-03
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from stf_nodes.storage.models import BigIntId, UtcDateTime

revision: str = '0003_resumable_scheduler'
down_revision: str | Sequence[str] | None = '0002_history_tables'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL = {'mysql_engine': 'InnoDB', 'mysql_charset': 'utf8mb4'}
COMMAND_COLUMNS = (
    sa.Column('location', sa.String(32), nullable=False, server_default=''),
    sa.Column('workpiece_status', sa.SmallInteger(), nullable=False, server_default='0'),
    sa.Column('step_index', sa.Integer(), nullable=False, server_default='0'),
    sa.Column('step_count', sa.Integer(), nullable=False, server_default='0'),
    sa.Column('stranded', sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column('uid', sa.String(32), nullable=False, server_default=''),
)


def upgrade() -> None:
    for column in COMMAND_COLUMNS:
        op.add_column('commands', column)
    op.create_index('ix_commands_stranded', 'commands', ['stranded'])
    commands = sa.table('commands', sa.column('id', sa.BigInteger()), sa.column('uid', sa.String))
    connection = op.get_bind()
    for (command_id,) in connection.execute(sa.select(commands.c.id)).all():
        connection.execute(
            commands.update().where(commands.c.id == command_id).values(uid=uuid.uuid4().hex[:16])
        )
    op.create_table(
        'command_steps',
        sa.Column('id', BigIntId, primary_key=True, autoincrement=True),
        sa.Column('command_id', sa.BigInteger(), sa.ForeignKey('commands.id'), nullable=False),
        sa.Column('phase', sa.SmallInteger(), nullable=False),
        sa.Column('step_index', sa.Integer(), nullable=False),
        sa.Column('attempt', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(64), nullable=False, unique=True),
        sa.Column('station', sa.String(32), nullable=False),
        sa.Column('verb', sa.String(32), nullable=False),
        sa.Column('target', sa.String(32), nullable=False),
        sa.Column('value', sa.Float(), nullable=False),
        sa.Column('source', sa.String(32), nullable=False),
        sa.Column('destination', sa.String(32), nullable=False),
        sa.Column('state', sa.SmallInteger(), nullable=False),
        sa.Column('workpiece_id', sa.String(32), nullable=False),
        sa.Column('flavor', sa.String(16), nullable=False),
        sa.Column('workpiece_status', sa.SmallInteger(), nullable=False),
        sa.Column('message', sa.String(500), nullable=False),
        sa.Column('fencing_token', sa.BigInteger(), nullable=False),
        sa.Column('started_at', UtcDateTime(), nullable=False),
        sa.Column('finished_at', UtcDateTime(), nullable=True),
        **MYSQL,
    )
    op.create_index('ix_command_steps_command_id_id', 'command_steps', ['command_id', 'id'])
    op.create_table(
        'scheduler_leases',
        sa.Column('name', sa.String(125), primary_key=True),
        sa.Column('holder', sa.String(125), nullable=False),
        sa.Column('token', sa.BigInteger(), nullable=False),
        sa.Column('beat', sa.BigInteger(), nullable=False),
        sa.Column('duration_ns', sa.BigInteger(), nullable=False),
        sa.Column('renewed_at', UtcDateTime(), nullable=False),
        **MYSQL,
    )


def downgrade() -> None:
    op.drop_table('scheduler_leases')
    op.drop_index('ix_command_steps_command_id_id', table_name='command_steps')
    op.drop_table('command_steps')
    op.drop_index('ix_commands_stranded', table_name='commands')
    with op.batch_alter_table('commands') as batch:
        for column in COMMAND_COLUMNS:
            batch.drop_column(column.name)
