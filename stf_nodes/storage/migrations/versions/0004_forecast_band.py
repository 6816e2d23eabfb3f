"""Forecast band: the ``forecasts`` table gains the ``HealthForecast`` fields of issue 10.

``rul_lower_h`` / ``rul_upper_h`` (the RUL band, NULL when unbounded), ``confidence``,
``method`` (the model that gave the RUL) and ``severity`` (the estimate's alert level, 255 for
none). Rows written before have NULL measurements, an empty method and severity 255.

Revision ID: 0004_forecast_band
Revises: 0003_resumable_scheduler
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004_forecast_band'
down_revision: str | Sequence[str] | None = '0003_resumable_scheduler'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    sa.Column('rul_lower_h', sa.Double(), nullable=True),
    sa.Column('rul_upper_h', sa.Double(), nullable=True),
    sa.Column('confidence', sa.Double(), nullable=True),
    sa.Column('method', sa.String(64), nullable=False, server_default=''),
    sa.Column('severity', sa.SmallInteger(), nullable=False, server_default='255'),
)


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column('forecasts', column)


def downgrade() -> None:
    with op.batch_alter_table('forecasts') as batch:
        for column in COLUMNS:
            batch.drop_column(column.name)
