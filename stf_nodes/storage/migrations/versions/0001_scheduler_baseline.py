"""Scheduler baseline: the four tables `create_all` wrote before migrations existed.

A database created that way (no ``alembic_version`` table, these four tables present) is
stamped with this revision by ``upgrade_schema`` and upgraded from here, rows untouched.

Revision ID: 0001_scheduler_baseline
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from stf_nodes.storage.models import BigIntId, UtcDateTime

revision: str = '0001_scheduler_baseline'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL = {'mysql_engine': 'InnoDB', 'mysql_charset': 'utf8mb4'}


def upgrade() -> None:
    op.create_table(
        'commands',
        sa.Column('id', BigIntId, primary_key=True, autoincrement=True),
        sa.Column('kind', sa.SmallInteger(), nullable=False),
        sa.Column('status', sa.SmallInteger(), nullable=False),
        sa.Column('priority', sa.Integer(), nullable=False),
        sa.Column('source_slot', sa.String(2), nullable=False),
        sa.Column('target_slot', sa.String(2), nullable=False),
        sa.Column('flavor', sa.String(16), nullable=False),
        sa.Column('workpiece_id', sa.String(32), nullable=False),
        sa.Column('step', sa.String(128), nullable=False),
        sa.Column('message', sa.String(500), nullable=False),
        sa.Column('cancel_requested', sa.Boolean(), nullable=False),
        sa.Column('created_at', UtcDateTime(), nullable=False),
        sa.Column('started_at', UtcDateTime(), nullable=True),
        sa.Column('finished_at', UtcDateTime(), nullable=True),
        sqlite_autoincrement=True,
        **MYSQL,
    )
    op.create_index('ix_commands_status_priority_id', 'commands', ['status', 'priority', 'id'])
    op.create_table(
        'command_events',
        sa.Column('id', BigIntId, primary_key=True, autoincrement=True),
        sa.Column('command_id', sa.BigInteger(), sa.ForeignKey('commands.id'), nullable=False),
        sa.Column('from_status', sa.SmallInteger(), nullable=True),
        sa.Column('to_status', sa.SmallInteger(), nullable=False),
        sa.Column('step', sa.String(128), nullable=False),
        sa.Column('reason', sa.String(500), nullable=False),
        sa.Column('at', UtcDateTime(), nullable=False),
        **MYSQL,
    )
    op.create_index('ix_command_events_command_id', 'command_events', ['command_id'])
    op.create_table(
        'inventory',
        sa.Column('slot', sa.String(2), primary_key=True),
        sa.Column('carrier_id', sa.String(32), nullable=False),
        sa.Column('workpiece_id', sa.String(32), nullable=False),
        sa.Column('flavor', sa.String(16), nullable=False),
        sa.Column('status', sa.SmallInteger(), nullable=False),
        sa.Column('reserved_by', sa.BigInteger(), sa.ForeignKey('commands.id'), nullable=True),
        sa.Column('updated_at', UtcDateTime(), nullable=False),
        **MYSQL,
    )
    op.create_table(
        'inventory_events',
        sa.Column('id', BigIntId, primary_key=True, autoincrement=True),
        sa.Column('slot', sa.String(2), sa.ForeignKey('inventory.slot'), nullable=False),
        sa.Column('command_id', sa.BigInteger(), sa.ForeignKey('commands.id'), nullable=True),
        sa.Column('carrier_id', sa.String(32), nullable=False),
        sa.Column('workpiece_id', sa.String(32), nullable=False),
        sa.Column('flavor', sa.String(16), nullable=False),
        sa.Column('status', sa.SmallInteger(), nullable=False),
        sa.Column('reason', sa.String(500), nullable=False),
        sa.Column('at', UtcDateTime(), nullable=False),
        **MYSQL,
    )
    op.create_index('ix_inventory_events_slot', 'inventory_events', ['slot'])


def downgrade() -> None:
    for table in ('inventory_events', 'inventory', 'command_events', 'commands'):
        op.drop_table(table)
