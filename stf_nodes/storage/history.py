"""The history schema: what the recorder writes, what the history generator writes, and the
ground truth only the generator knows. One schema for live and generated data, so the
maintenance node and the reports cannot tell them apart.

Conventions (shared with ``models.py``):

- ``time`` is the moment the data describes: the message's ``header.stamp`` (node clock: sim
  time under ``use_sim_time``), or the recorder's clock for messages without a stamp. UTC with
  microseconds on every backend. Every table has an index on ``(factory, <component>, time)``
  for time-range queries per component; the big ones (motor samples, sensor edges) have no
  index on ``time`` alone, which would cost a quarter of their insert rate for queries across
  all components that a scan of one table answers as well.
- ``factory`` is the ROS namespace of the publisher without slashes (``factory_2``), the empty
  string for the root namespace. One database can hold a whole fleet.
- Floating-point columns are ``DOUBLE``; NaN and infinities (which MySQL/MariaDB cannot store
  and SQLite turns into NULL) are stored as NULL on every backend.
- Text columns are bounded; ids longer than their column are refused by the writers, free text
  is cut to the column width.

Telemetry (one row per message element, recorder and generator):

- ``motor_samples``: every ``stf_msgs/MotorState`` field of every motor in a station state
  message (or a bare ``MotorState`` message), with the station it came from.
- ``sensor_edges``: one row per change of a sensor's ``triggered`` state or fault, with the
  analog value at the change; the first reading of each sensor after the recorder starts is
  recorded too. Changes only, none lost: every change visible in the received messages is a row.
- ``station_states``: one row per change of a station's state code or running task.
- ``command_transitions``: every ``stf_msgs/CommandStatus`` published on ``/stf/commands`` (one
  per committed transition or step change of a scheduler command).
- ``alerts``: every ``stf_msgs/Alert``. ``forecasts``: every ``stf_msgs/HealthForecast``.
- ``inventory_changes``: one row per rack slot whose contents differ from the previous
  ``/stf/inventory`` message of the same factory (all slots for the first one).
- ``diagnostic_changes``: one row per change of a ``diagnostic_msgs/DiagnosticStatus`` level or
  message (per factory and status name), its key/values as JSON.
- ``logs``: every ``rcl_interfaces/Log`` on ``/rosout``.

Recorder bookkeeping (how nothing lost is proven):

- ``recorder_streams``: per topic and publisher (rmw GID), the last sequence number committed.
  Written in the same transaction as the rows, so after a crash the recorder knows exactly what
  it has; a later sample of the same publisher with a higher number reveals the gap.
- ``recorder_gaps``: every run of messages that did not reach the database, with the
  publisher's sequence numbers and the reason: ``not_received`` (lost between publisher and
  recorder, or published while the recorder was down), ``buffer_overflow`` (dropped, oldest
  first, while the database was slow or unreachable).

Ground truth and provenance (history generator only):

- ``ground_truth_health``: the model's true health, temperature and fault of every motor at
  every whole minute.
- ``ground_truth_faults``: every fault interval of the scenario as simulated: component, kind,
  magnitude, when its onset began, when it was fully present, when it ended and why.
- ``ground_truth_maintenance``: every maintenance action of the scenario and the health it
  restored from.
- ``history_runs``: one row per ``stf history generate`` run (seed, scenario, period, rows).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Double, Index, Integer, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stf_nodes.storage.models import (
    _MYSQL_OPTIONS,
    FLAVOR_LEN,
    ID_LEN,
    SLOT_LEN,
    STEP_LEN,
    TEXT_LEN,
    Base,
    BigIntId,
    UtcDateTime,
)

FACTORY_LEN = 64
COMPONENT_LEN = 64
STATION_LEN = 32
FAULT_LEN = 32
CODE_LEN = 64
TOPIC_LEN = 255
GID_LEN = 32
NAME_LEN = 255


def _factory() -> Mapped[str]:
    return mapped_column(String(FACTORY_LEN), default='')


def _time() -> Mapped[datetime]:
    return mapped_column(UtcDateTime())


def _measurement() -> Mapped[float | None]:
    return mapped_column(Double())


class MotorSampleRow(Base):
    """One motor at one instant: every ``MotorState`` field."""

    __tablename__ = 'motor_samples'
    __table_args__ = (
        Index('ix_motor_samples_factory_motor_time', 'factory', 'motor_id', 'time'),
        _MYSQL_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = _time()
    factory: Mapped[str] = _factory()
    station: Mapped[str] = mapped_column(String(STATION_LEN), default='')
    motor_id: Mapped[str] = mapped_column(String(COMPONENT_LEN))
    running: Mapped[bool] = mapped_column(Boolean)
    direction: Mapped[int] = mapped_column(SmallInteger)
    current_a: Mapped[float | None] = _measurement()
    voltage_v: Mapped[float | None] = _measurement()
    power_w: Mapped[float | None] = _measurement()
    energy_wh: Mapped[float | None] = _measurement()
    temperature_c: Mapped[float | None] = _measurement()
    health: Mapped[float | None] = _measurement()
    encoder_pulses: Mapped[int] = mapped_column(BigInteger)
    start_count: Mapped[int] = mapped_column(BigInteger)
    runtime_h: Mapped[float | None] = _measurement()
    fault: Mapped[str] = mapped_column(String(FAULT_LEN), default='')


class SensorEdgeRow(Base):
    """A change of one sensor's binary state (or of its fault)."""

    __tablename__ = 'sensor_edges'
    __table_args__ = (
        Index('ix_sensor_edges_factory_sensor_time', 'factory', 'sensor_id', 'time'),
        _MYSQL_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = _time()
    factory: Mapped[str] = _factory()
    station: Mapped[str] = mapped_column(String(STATION_LEN), default='')
    sensor_id: Mapped[str] = mapped_column(String(COMPONENT_LEN))
    triggered: Mapped[bool] = mapped_column(Boolean)
    value: Mapped[float | None] = _measurement()
    fault: Mapped[str] = mapped_column(String(FAULT_LEN), default='')


class StationStateRow(Base):
    """A change of a station's state code (``*State.STATE_*``) or running task."""

    __tablename__ = 'station_states'
    __table_args__ = (
        Index('ix_station_states_factory_station_time', 'factory', 'station', 'time'),
        _MYSQL_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = _time()
    factory: Mapped[str] = _factory()
    station: Mapped[str] = mapped_column(String(STATION_LEN))
    state: Mapped[int] = mapped_column(SmallInteger)
    task: Mapped[str] = mapped_column(String(STEP_LEN), default='')
    task_id: Mapped[int] = mapped_column(BigInteger, default=0)


class CommandTransitionRow(Base):
    """One ``CommandStatus`` message: a command's transition or step change."""

    __tablename__ = 'command_transitions'
    __table_args__ = (
        Index('ix_command_transitions_factory_command_time', 'factory', 'command_id', 'time'),
        Index('ix_command_transitions_time', 'time'),
        _MYSQL_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = _time()
    factory: Mapped[str] = _factory()
    command_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[int] = mapped_column(SmallInteger)
    status: Mapped[int] = mapped_column(SmallInteger)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    source_slot: Mapped[str] = mapped_column(String(SLOT_LEN), default='')
    target_slot: Mapped[str] = mapped_column(String(SLOT_LEN), default='')
    flavor: Mapped[str] = mapped_column(String(FLAVOR_LEN), default='')
    workpiece_id: Mapped[str] = mapped_column(String(ID_LEN), default='')
    step: Mapped[str] = mapped_column(String(STEP_LEN), default='')
    message: Mapped[str] = mapped_column(String(TEXT_LEN), default='')
    created_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class AlertRow(Base):
    """One ``Alert`` (severity values as ``stf_msgs/Alert``)."""

    __tablename__ = 'alerts'
    __table_args__ = (
        Index('ix_alerts_factory_component_time', 'factory', 'component_id', 'time'),
        Index('ix_alerts_time', 'time'),
        _MYSQL_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = _time()
    factory: Mapped[str] = _factory()
    severity: Mapped[int] = mapped_column(SmallInteger)
    component_id: Mapped[str] = mapped_column(String(COMPONENT_LEN))
    code: Mapped[str] = mapped_column(String(CODE_LEN))
    message: Mapped[str] = mapped_column(String(TEXT_LEN), default='')
    value: Mapped[float | None] = _measurement()
    threshold: Mapped[float | None] = _measurement()


class ForecastRow(Base):
    """One ``HealthForecast`` of the maintenance node."""

    __tablename__ = 'forecasts'
    __table_args__ = (
        Index('ix_forecasts_factory_component_time', 'factory', 'component_id', 'time'),
        _MYSQL_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = _time()
    factory: Mapped[str] = _factory()
    component_id: Mapped[str] = mapped_column(String(COMPONENT_LEN))
    health: Mapped[float | None] = _measurement()
    degradation_per_h: Mapped[float | None] = _measurement()
    remaining_useful_life_h: Mapped[float | None] = _measurement()
    rul_lower_h: Mapped[float | None] = _measurement()
    rul_upper_h: Mapped[float | None] = _measurement()
    confidence: Mapped[float | None] = _measurement()
    method: Mapped[str] = mapped_column(String(CODE_LEN), default='')
    severity: Mapped[int] = mapped_column(SmallInteger, default=255)
    recommendation: Mapped[str] = mapped_column(String(TEXT_LEN), default='')


class InventoryChangeRow(Base):
    """A slot whose contents changed between two ``/stf/inventory`` messages."""

    __tablename__ = 'inventory_changes'
    __table_args__ = (
        Index('ix_inventory_changes_factory_slot_time', 'factory', 'slot', 'time'),
        _MYSQL_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = _time()
    factory: Mapped[str] = _factory()
    slot: Mapped[str] = mapped_column(String(ID_LEN))
    carrier_id: Mapped[str] = mapped_column(String(ID_LEN), default='')
    workpiece_id: Mapped[str] = mapped_column(String(ID_LEN), default='')
    flavor: Mapped[str] = mapped_column(String(FLAVOR_LEN), default='')
    status: Mapped[int] = mapped_column(SmallInteger, default=0)


class DiagnosticChangeRow(Base):
    """A change of one diagnostic status (level values as ``DiagnosticStatus``)."""

    __tablename__ = 'diagnostic_changes'
    __table_args__ = (
        Index('ix_diagnostic_changes_factory_name_time', 'factory', 'name', 'time'),
        _MYSQL_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = _time()
    factory: Mapped[str] = _factory()
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    hardware_id: Mapped[str] = mapped_column(String(COMPONENT_LEN), default='')
    level: Mapped[int] = mapped_column(SmallInteger)
    message: Mapped[str] = mapped_column(String(TEXT_LEN), default='')
    key_values: Mapped[str] = mapped_column(Text, default='{}')


class LogRow(Base):
    """One ``rcl_interfaces/Log`` (level values as its constants: 10 DEBUG ... 50 FATAL)."""

    __tablename__ = 'logs'
    __table_args__ = (
        Index('ix_logs_factory_time', 'factory', 'time'),
        Index('ix_logs_level_time', 'level', 'time'),
        _MYSQL_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = _time()
    factory: Mapped[str] = _factory()
    level: Mapped[int] = mapped_column(SmallInteger)
    name: Mapped[str] = mapped_column(String(NAME_LEN), default='')
    message: Mapped[str] = mapped_column(Text, default='')
    file: Mapped[str] = mapped_column(String(NAME_LEN), default='')
    function: Mapped[str] = mapped_column(String(NAME_LEN), default='')
    line: Mapped[int] = mapped_column(BigInteger, default=0)


class RecorderStreamRow(Base):
    """The last sequence number committed per topic and publisher."""

    __tablename__ = 'recorder_streams'
    __table_args__ = (_MYSQL_OPTIONS,)

    topic: Mapped[str] = mapped_column(String(TOPIC_LEN), primary_key=True)
    publisher_gid: Mapped[str] = mapped_column(String(GID_LEN), primary_key=True)
    factory: Mapped[str] = _factory()
    last_sequence: Mapped[int] = mapped_column(BigInteger)
    last_time: Mapped[datetime] = _time()
    received: Mapped[int] = mapped_column(BigInteger, default=0)


class RecorderGapRow(Base):
    """Messages of one publisher that did not reach the database, and why."""

    __tablename__ = 'recorder_gaps'
    __table_args__ = (
        Index('ix_recorder_gaps_factory_time', 'factory', 'time'),
        _MYSQL_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = _time()
    factory: Mapped[str] = _factory()
    topic: Mapped[str] = mapped_column(String(TOPIC_LEN))
    publisher_gid: Mapped[str] = mapped_column(String(GID_LEN))
    first_sequence: Mapped[int] = mapped_column(BigInteger)
    last_sequence: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(CODE_LEN))


class GroundTruthHealthRow(Base):
    """True state of one motor at a whole minute (generator only)."""

    __tablename__ = 'ground_truth_health'
    __table_args__ = (
        Index('ix_ground_truth_health_factory_motor_time', 'factory', 'motor_id', 'time'),
        _MYSQL_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = _time()
    factory: Mapped[str] = _factory()
    motor_id: Mapped[str] = mapped_column(String(COMPONENT_LEN))
    health: Mapped[float] = mapped_column(Double())
    temperature_c: Mapped[float] = mapped_column(Double())
    fault: Mapped[str] = mapped_column(String(FAULT_LEN), default='')


class GroundTruthFaultRow(Base):
    """One fault interval as simulated (generator only).

    ``onset_at`` is when the magnitude began to grow from 0 (NULL without onset), ``started_at``
    when it reached ``magnitude``, ``ended_at`` when the fault was removed (NULL: still active at
    the end of the history) and ``ended_by`` why: ``duration``, ``maintenance`` or
    ``end_of_history``.
    """

    __tablename__ = 'ground_truth_faults'
    __table_args__ = (
        Index(
            'ix_ground_truth_faults_factory_component_time', 'factory', 'component_id', 'started_at'
        ),
        _MYSQL_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    factory: Mapped[str] = _factory()
    component_id: Mapped[str] = mapped_column(String(COMPONENT_LEN))
    kind: Mapped[str] = mapped_column(String(FAULT_LEN))
    magnitude: Mapped[float] = mapped_column(Double())
    onset_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ended_by: Mapped[str] = mapped_column(String(CODE_LEN))
    scenario: Mapped[str] = mapped_column(String(NAME_LEN), default='')
    event_index: Mapped[int] = mapped_column(Integer)


class GroundTruthMaintenanceRow(Base):
    """One maintenance action of the scenario (generator only)."""

    __tablename__ = 'ground_truth_maintenance'
    __table_args__ = (
        Index(
            'ix_ground_truth_maintenance_factory_component_time', 'factory', 'component_id', 'time'
        ),
        _MYSQL_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = _time()
    factory: Mapped[str] = _factory()
    component_id: Mapped[str] = mapped_column(String(COMPONENT_LEN))
    health_before: Mapped[float | None] = _measurement()
    scenario: Mapped[str] = mapped_column(String(NAME_LEN), default='')


class HistoryRunRow(Base):
    """One run of the history generator; ``row_counts`` is JSON ``{table: rows}``."""

    __tablename__ = 'history_runs'
    __table_args__ = (_MYSQL_OPTIONS,)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    factory: Mapped[str] = _factory()
    scenario: Mapped[str] = mapped_column(String(NAME_LEN))
    seed: Mapped[int] = mapped_column(BigInteger)
    days: Mapped[int] = mapped_column(Integer)
    orders_per_day: Mapped[int] = mapped_column(Integer)
    history_start: Mapped[datetime] = mapped_column(UtcDateTime())
    history_end: Mapped[datetime] = mapped_column(UtcDateTime())
    row_counts: Mapped[str] = mapped_column(Text, default='{}')
    software_version: Mapped[str] = mapped_column(String(CODE_LEN), default='')


#: Tables holding history (live or generated): a generator run refuses a database where any of
#: them has rows unless told to append or replace.
HISTORY_TABLES = (
    'motor_samples',
    'sensor_edges',
    'station_states',
    'command_transitions',
    'alerts',
    'forecasts',
    'inventory_changes',
    'diagnostic_changes',
    'logs',
    'recorder_gaps',
    'recorder_streams',
    'ground_truth_health',
    'ground_truth_faults',
    'ground_truth_maintenance',
    'history_runs',
)
