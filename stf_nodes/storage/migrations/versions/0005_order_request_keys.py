"""Order request keys: ``commands.request_key``, the client's key of the request that made a
command; the scheduler answers a request with a known key with that command instead of making
another (an MQTT order the broker delivers again after the bridge died). See
``stf_nodes/scheduler/queue.py``.

Revision ID: 0005_order_request_keys
Revises: 0004_forecast_band
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = '0005_order_request_keys'
down_revision: str | Sequence[str] | None = '0004_forecast_band'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NULL when a command has no key; unique, compared byte for byte (ascii_bin on MySQL).
    key_type = sa.String(64).with_variant(
        mysql.VARCHAR(64, charset='ascii', collation='ascii_bin'), 'mysql', 'mariadb'
    )
    op.add_column('commands', sa.Column('request_key', key_type, nullable=True))
    op.create_index('ix_commands_request_key', 'commands', ['request_key'], unique=True)


def downgrade() -> None:
    op.drop_index('ix_commands_request_key', table_name='commands')
    with op.batch_alter_table('commands') as batch:
        batch.drop_column('request_key')
