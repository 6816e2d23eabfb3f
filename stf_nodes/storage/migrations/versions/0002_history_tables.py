"""History tables: recorder telemetry and bookkeeping, generator ground truth and runs.

See ``stf_nodes/storage/history.py`` for what each table holds.

Revision ID: 0002_history_tables
Revises: 0001_scheduler_baseline
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from stf_nodes.storage.models import BigIntId, UtcDateTime

revision: str = '0002_history_tables'
down_revision: str | Sequence[str] | None = '0001_scheduler_baseline'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL = {'mysql_engine': 'InnoDB', 'mysql_charset': 'utf8mb4'}
TABLES = (
    'alerts',
    'command_transitions',
    'diagnostic_changes',
    'forecasts',
    'ground_truth_faults',
    'ground_truth_health',
    'ground_truth_maintenance',
    'history_runs',
    'inventory_changes',
    'logs',
    'motor_samples',
    'recorder_gaps',
    'recorder_streams',
    'sensor_edges',
    'station_states',
)


def upgrade() -> None:
    op.create_table(
        'alerts',
        sa.Column('id', BigIntId, autoincrement=True, nullable=False),
        sa.Column('time', UtcDateTime(), nullable=False),
        sa.Column('factory', sa.String(length=64), nullable=False),
        sa.Column('severity', sa.SmallInteger(), nullable=False),
        sa.Column('component_id', sa.String(length=64), nullable=False),
        sa.Column('code', sa.String(length=64), nullable=False),
        sa.Column('message', sa.String(length=500), nullable=False),
        sa.Column('value', sa.Double(), nullable=True),
        sa.Column('threshold', sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        **MYSQL,
    )
    op.create_index(
        'ix_alerts_factory_component_time', 'alerts', ['factory', 'component_id', 'time']
    )
    op.create_index('ix_alerts_time', 'alerts', ['time'])

    op.create_table(
        'command_transitions',
        sa.Column('id', BigIntId, autoincrement=True, nullable=False),
        sa.Column('time', UtcDateTime(), nullable=False),
        sa.Column('factory', sa.String(length=64), nullable=False),
        sa.Column('command_id', sa.BigInteger(), nullable=False),
        sa.Column('kind', sa.SmallInteger(), nullable=False),
        sa.Column('status', sa.SmallInteger(), nullable=False),
        sa.Column('priority', sa.Integer(), nullable=False),
        sa.Column('source_slot', sa.String(length=2), nullable=False),
        sa.Column('target_slot', sa.String(length=2), nullable=False),
        sa.Column('flavor', sa.String(length=16), nullable=False),
        sa.Column('workpiece_id', sa.String(length=32), nullable=False),
        sa.Column('step', sa.String(length=128), nullable=False),
        sa.Column('message', sa.String(length=500), nullable=False),
        sa.Column('created_at', UtcDateTime(), nullable=True),
        sa.Column('started_at', UtcDateTime(), nullable=True),
        sa.Column('finished_at', UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        **MYSQL,
    )
    op.create_index(
        'ix_command_transitions_factory_command_time',
        'command_transitions',
        ['factory', 'command_id', 'time'],
    )
    op.create_index('ix_command_transitions_time', 'command_transitions', ['time'])

    op.create_table(
        'diagnostic_changes',
        sa.Column('id', BigIntId, autoincrement=True, nullable=False),
        sa.Column('time', UtcDateTime(), nullable=False),
        sa.Column('factory', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('hardware_id', sa.String(length=64), nullable=False),
        sa.Column('level', sa.SmallInteger(), nullable=False),
        sa.Column('message', sa.String(length=500), nullable=False),
        sa.Column('key_values', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        **MYSQL,
    )
    op.create_index(
        'ix_diagnostic_changes_factory_name_time', 'diagnostic_changes', ['factory', 'name', 'time']
    )

    op.create_table(
        'forecasts',
        sa.Column('id', BigIntId, autoincrement=True, nullable=False),
        sa.Column('time', UtcDateTime(), nullable=False),
        sa.Column('factory', sa.String(length=64), nullable=False),
        sa.Column('component_id', sa.String(length=64), nullable=False),
        sa.Column('health', sa.Double(), nullable=True),
        sa.Column('degradation_per_h', sa.Double(), nullable=True),
        sa.Column('remaining_useful_life_h', sa.Double(), nullable=True),
        sa.Column('recommendation', sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        **MYSQL,
    )
    op.create_index(
        'ix_forecasts_factory_component_time', 'forecasts', ['factory', 'component_id', 'time']
    )

    op.create_table(
        'ground_truth_faults',
        sa.Column('id', BigIntId, autoincrement=True, nullable=False),
        sa.Column('factory', sa.String(length=64), nullable=False),
        sa.Column('component_id', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('magnitude', sa.Double(), nullable=False),
        sa.Column('onset_at', UtcDateTime(), nullable=True),
        sa.Column('started_at', UtcDateTime(), nullable=False),
        sa.Column('ended_at', UtcDateTime(), nullable=True),
        sa.Column('ended_by', sa.String(length=64), nullable=False),
        sa.Column('scenario', sa.String(length=255), nullable=False),
        sa.Column('event_index', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        **MYSQL,
    )
    op.create_index(
        'ix_ground_truth_faults_factory_component_time',
        'ground_truth_faults',
        ['factory', 'component_id', 'started_at'],
    )

    op.create_table(
        'ground_truth_health',
        sa.Column('id', BigIntId, autoincrement=True, nullable=False),
        sa.Column('time', UtcDateTime(), nullable=False),
        sa.Column('factory', sa.String(length=64), nullable=False),
        sa.Column('motor_id', sa.String(length=64), nullable=False),
        sa.Column('health', sa.Double(), nullable=False),
        sa.Column('temperature_c', sa.Double(), nullable=False),
        sa.Column('fault', sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        **MYSQL,
    )
    op.create_index(
        'ix_ground_truth_health_factory_motor_time',
        'ground_truth_health',
        ['factory', 'motor_id', 'time'],
    )

    op.create_table(
        'ground_truth_maintenance',
        sa.Column('id', BigIntId, autoincrement=True, nullable=False),
        sa.Column('time', UtcDateTime(), nullable=False),
        sa.Column('factory', sa.String(length=64), nullable=False),
        sa.Column('component_id', sa.String(length=64), nullable=False),
        sa.Column('health_before', sa.Double(), nullable=True),
        sa.Column('scenario', sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        **MYSQL,
    )
    op.create_index(
        'ix_ground_truth_maintenance_factory_component_time',
        'ground_truth_maintenance',
        ['factory', 'component_id', 'time'],
    )

    op.create_table(
        'history_runs',
        sa.Column('id', BigIntId, autoincrement=True, nullable=False),
        sa.Column('created_at', UtcDateTime(), nullable=False),
        sa.Column('factory', sa.String(length=64), nullable=False),
        sa.Column('scenario', sa.String(length=255), nullable=False),
        sa.Column('seed', sa.BigInteger(), nullable=False),
        sa.Column('days', sa.Integer(), nullable=False),
        sa.Column('orders_per_day', sa.Integer(), nullable=False),
        sa.Column('history_start', UtcDateTime(), nullable=False),
        sa.Column('history_end', UtcDateTime(), nullable=False),
        sa.Column('row_counts', sa.Text(), nullable=False),
        sa.Column('software_version', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        **MYSQL,
    )
    op.create_table(
        'inventory_changes',
        sa.Column('id', BigIntId, autoincrement=True, nullable=False),
        sa.Column('time', UtcDateTime(), nullable=False),
        sa.Column('factory', sa.String(length=64), nullable=False),
        sa.Column('slot', sa.String(length=32), nullable=False),
        sa.Column('carrier_id', sa.String(length=32), nullable=False),
        sa.Column('workpiece_id', sa.String(length=32), nullable=False),
        sa.Column('flavor', sa.String(length=16), nullable=False),
        sa.Column('status', sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        **MYSQL,
    )
    op.create_index(
        'ix_inventory_changes_factory_slot_time', 'inventory_changes', ['factory', 'slot', 'time']
    )

    op.create_table(
        'logs',
        sa.Column('id', BigIntId, autoincrement=True, nullable=False),
        sa.Column('time', UtcDateTime(), nullable=False),
        sa.Column('factory', sa.String(length=64), nullable=False),
        sa.Column('level', sa.SmallInteger(), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('message', sa.Text(), nullable=False),
        sa.Column('file', sa.String(length=255), nullable=False),
        sa.Column('function', sa.String(length=255), nullable=False),
        sa.Column('line', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        **MYSQL,
    )
    op.create_index('ix_logs_factory_time', 'logs', ['factory', 'time'])
    op.create_index('ix_logs_level_time', 'logs', ['level', 'time'])

    op.create_table(
        'motor_samples',
        sa.Column('id', BigIntId, autoincrement=True, nullable=False),
        sa.Column('time', UtcDateTime(), nullable=False),
        sa.Column('factory', sa.String(length=64), nullable=False),
        sa.Column('station', sa.String(length=32), nullable=False),
        sa.Column('motor_id', sa.String(length=64), nullable=False),
        sa.Column('running', sa.Boolean(), nullable=False),
        sa.Column('direction', sa.SmallInteger(), nullable=False),
        sa.Column('current_a', sa.Double(), nullable=True),
        sa.Column('voltage_v', sa.Double(), nullable=True),
        sa.Column('power_w', sa.Double(), nullable=True),
        sa.Column('energy_wh', sa.Double(), nullable=True),
        sa.Column('temperature_c', sa.Double(), nullable=True),
        sa.Column('health', sa.Double(), nullable=True),
        sa.Column('encoder_pulses', sa.BigInteger(), nullable=False),
        sa.Column('start_count', sa.BigInteger(), nullable=False),
        sa.Column('runtime_h', sa.Double(), nullable=True),
        sa.Column('fault', sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        **MYSQL,
    )
    op.create_index(
        'ix_motor_samples_factory_motor_time', 'motor_samples', ['factory', 'motor_id', 'time']
    )

    op.create_table(
        'recorder_gaps',
        sa.Column('id', BigIntId, autoincrement=True, nullable=False),
        sa.Column('time', UtcDateTime(), nullable=False),
        sa.Column('factory', sa.String(length=64), nullable=False),
        sa.Column('topic', sa.String(length=255), nullable=False),
        sa.Column('publisher_gid', sa.String(length=32), nullable=False),
        sa.Column('first_sequence', sa.BigInteger(), nullable=False),
        sa.Column('last_sequence', sa.BigInteger(), nullable=False),
        sa.Column('count', sa.BigInteger(), nullable=False),
        sa.Column('reason', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        **MYSQL,
    )
    op.create_index('ix_recorder_gaps_factory_time', 'recorder_gaps', ['factory', 'time'])

    op.create_table(
        'recorder_streams',
        sa.Column('topic', sa.String(length=255), nullable=False),
        sa.Column('publisher_gid', sa.String(length=32), nullable=False),
        sa.Column('factory', sa.String(length=64), nullable=False),
        sa.Column('last_sequence', sa.BigInteger(), nullable=False),
        sa.Column('last_time', UtcDateTime(), nullable=False),
        sa.Column('received', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('topic', 'publisher_gid'),
        **MYSQL,
    )
    op.create_table(
        'sensor_edges',
        sa.Column('id', BigIntId, autoincrement=True, nullable=False),
        sa.Column('time', UtcDateTime(), nullable=False),
        sa.Column('factory', sa.String(length=64), nullable=False),
        sa.Column('station', sa.String(length=32), nullable=False),
        sa.Column('sensor_id', sa.String(length=64), nullable=False),
        sa.Column('triggered', sa.Boolean(), nullable=False),
        sa.Column('value', sa.Double(), nullable=True),
        sa.Column('fault', sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        **MYSQL,
    )
    op.create_index(
        'ix_sensor_edges_factory_sensor_time', 'sensor_edges', ['factory', 'sensor_id', 'time']
    )

    op.create_table(
        'station_states',
        sa.Column('id', BigIntId, autoincrement=True, nullable=False),
        sa.Column('time', UtcDateTime(), nullable=False),
        sa.Column('factory', sa.String(length=64), nullable=False),
        sa.Column('station', sa.String(length=32), nullable=False),
        sa.Column('state', sa.SmallInteger(), nullable=False),
        sa.Column('task', sa.String(length=128), nullable=False),
        sa.Column('task_id', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        **MYSQL,
    )
    op.create_index(
        'ix_station_states_factory_station_time', 'station_states', ['factory', 'station', 'time']
    )


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
