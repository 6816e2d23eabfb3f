"""The recorder core without transport or database: accounting, changes only, bad input."""

from __future__ import annotations

import math

from stf_nodes import interfaces
from stf_nodes.recorder.core import Batch, MessageBuffer, Received, RecorderCore, Source

MotorState = interfaces.get_message_class('stf_msgs/msg/MotorState')
SensorState = interfaces.get_message_class('stf_msgs/msg/SensorState')
ConveyorState = interfaces.get_message_class('stf_msgs/msg/ConveyorState')
Inventory = interfaces.get_message_class('stf_msgs/msg/Inventory')
InventorySlot = interfaces.get_message_class('stf_msgs/msg/InventorySlot')
Workpiece = interfaces.get_message_class('stf_msgs/msg/Workpiece')
Log = interfaces.get_message_class('rcl_interfaces/msg/Log')
Alert = interfaces.get_message_class('stf_msgs/msg/Alert')
DiagnosticArray = interfaces.get_message_class('diagnostic_msgs/msg/DiagnosticArray')
DiagnosticStatus = interfaces.get_message_class('diagnostic_msgs/msg/DiagnosticStatus')
HealthForecast = interfaces.get_message_class('stf_msgs/msg/HealthForecast')

MOTORS = Source('/stf/motors', 'stf_msgs/msg/MotorState', 'factory_1')
CONVEYOR = Source('/factory_2/stf/conveyor/state', 'stf_msgs/msg/ConveyorState', 'factory_2',
                  'conveyor')  # fmt: skip


def received(source: Source, message: object, sequence: int | None, gid: str = 'aa') -> Received:
    return Received(source, interfaces.serialize(message), sequence, gid, 5_000_000_000)


def motor(sequence: int, gid: str = 'aa', **fields: object) -> Received:
    return received(MOTORS, MotorState(motor_id='CONV_M1', **fields), sequence, gid)


def test_rows_carry_every_motor_state_field() -> None:
    core = RecorderCore()
    batch = core.process([motor(1, current_a=1.2, running=True, direction=-1, start_count=7)], [])
    row = {name: values[0] for name, values in batch.tables['motor_samples'].items()}
    assert set(row) - {'time', 'factory', 'station'} == set(MotorState.__dataclass_fields__)
    assert (row['factory'], row['current_a'], row['direction'], row['start_count']) == (
        'factory_1',
        1.2,
        -1,
        7,
    )
    assert row['time'] == 5_000_000  # reception time (no header), microseconds


def test_sequence_gaps_and_duplicates_are_accounted() -> None:
    core = RecorderCore()
    core.load_streams([('/stf/motors', 'aa', 10)])
    batch = core.process([motor(9), motor(11), motor(15), motor(15), motor(16)], [])
    assert batch.messages == 3  # 9 and the second 15 were recorded before / twice
    assert [(g.first, g.last, g.reason) for g in batch.gaps] == [(12, 14, 'not_received')]
    assert core.counters.not_received == 3 and core.counters.duplicates == 2
    assert batch.streams[('/stf/motors', 'aa')][1] == 16
    core.committed(batch)
    assert core.counters.recorded == 3


def test_a_new_publisher_starts_where_it_is_first_heard() -> None:
    core = RecorderCore()
    batch = core.process([motor(500, gid='bb'), motor(501, gid='bb')], [])
    assert batch.gaps == [] and batch.messages == 2


def test_buffer_drops_the_oldest_and_the_core_turns_drops_into_gaps() -> None:
    buffer = MessageBuffer(3)
    for sequence in range(1, 8):
        buffer.put(motor(sequence))
    assert buffer.dropped == 4 and len(buffer) == 3
    items, drops = buffer.take(100, 0.0)
    assert [item.sequence for item in items] == [5, 6, 7]
    core = RecorderCore()
    batch = core.process(items, drops)
    assert [(g.first, g.last, g.count, g.reason) for g in batch.gaps] == [
        (1, 4, 4, 'buffer_overflow')
    ]
    assert core.counters.dropped == 4 and core.counters.not_received == 0  # not counted twice
    assert batch.messages == 3


def test_malformed_cdr_is_counted_and_logged_once() -> None:
    warnings: list[str] = []
    core = RecorderCore(warn=warnings.append)
    garbage = [Received(MOTORS, b'\x00\x01\x00\x00\xff', n, 'aa', 0) for n in (1, 2)]
    batch = core.process([*garbage, motor(3)], [])
    assert core.counters.malformed == 2 and len(warnings) == 1 and 'malformed' in warnings[0]
    assert batch.messages == 1


def test_nan_readings_are_kept_as_null_and_counted() -> None:
    warnings: list[str] = []
    core = RecorderCore(warn=warnings.append)
    batch = core.process([motor(1, current_a=math.nan), motor(2, health=math.inf)], [])
    assert core.counters.non_finite == 2 and len(warnings) == 1
    assert math.isnan(batch.tables['motor_samples']['current_a'][0])  # the writer stores NULL


def test_unknown_and_invalid_ids() -> None:
    warnings: list[str] = []
    core = RecorderCore(known_components=['CONV_M1'], warn=warnings.append)
    messages = [
        received(MOTORS, MotorState(motor_id='XYZ_M9'), 1),
        received(MOTORS, MotorState(motor_id='XYZ_M9'), 2),
        received(MOTORS, MotorState(motor_id=''), 3),
        received(MOTORS, MotorState(motor_id='A' * 500), 4),
        received(MOTORS, MotorState(motor_id='bad\nid'), 5),
    ]
    batch = core.process(messages, [])
    assert batch.tables['motor_samples']['motor_id'] == ['XYZ_M9', 'XYZ_M9']
    assert core.counters.unknown_ids == 1 and core.counters.malformed == 3
    assert len(warnings) == 2  # once for the unknown id, once for invalid ids


def test_alert_components_and_slots_are_not_taken_for_unknown_parts() -> None:
    """Stations, nodes and rack slots are not motor or sensor ids: no warning, not counted
    (every factory's recorder warned about the rack's slots and each station's alerts)."""
    warnings: list[str] = []
    core = RecorderCore(known_components=['CONV_M1'], warn=warnings.append)
    alerts = Source('/stf/alerts', 'stf_msgs/msg/Alert', '')
    inventory = Source('/stf/inventory', 'stf_msgs/msg/Inventory', '')
    rack = Inventory(slots=[InventorySlot(slot='A1'), InventorySlot(slot='bad\nslot')])
    batch = core.process(
        [
            received(alerts, Alert(component_id='vgr', code='STATION_UNAVAILABLE'), 1),
            received(alerts, Alert(component_id='recorder', code='RECORDER_DROPPED'), 2),
            received(inventory, rack, 1),
        ],
        [],
    )
    assert batch.tables['alerts']['component_id'] == ['vgr', 'recorder']
    assert batch.tables['inventory_changes']['slot'] == ['A1']
    assert core.counters.unknown_ids == 0 and core.counters.malformed == 1
    assert len(warnings) == 1 and 'invalid id' in warnings[0], warnings


def test_station_state_records_changes_only() -> None:
    core = RecorderCore()
    sensors = [SensorState(sensor_id='CONV_L1_ENTRY', triggered=False, value=0.9)]
    states = []
    for sequence, (triggered, task) in enumerate(
        [(False, ''), (False, ''), (True, 'transport'), (True, 'transport'), (False, '')], 1
    ):
        sensors = [SensorState(sensor_id='CONV_L1_ENTRY', triggered=triggered, value=0.5)]
        message = ConveyorState(state=2 if task else 1, task=task, sensors=sensors,
                                motors=[MotorState(motor_id='CONV_M1')])  # fmt: skip
        message.header.stamp.sec = sequence
        states.append(received(CONVEYOR, message, sequence))
    batch = core.process(states, [])
    assert len(batch.tables['motor_samples']['time']) == 5
    assert batch.tables['sensor_edges']['triggered'] == [False, True, False]
    assert batch.tables['station_states']['task'] == ['', 'transport', '']
    assert batch.tables['station_states']['time'] == [1_000_000, 3_000_000, 5_000_000]
    assert set(batch.tables['motor_samples']['station']) == {'conveyor'}
    assert set(batch.tables['sensor_edges']['factory']) == {'factory_2'}


def test_inventory_changes_and_diagnostics_changes_and_logs() -> None:
    core = RecorderCore()
    inventory = Source('/stf/inventory', 'stf_msgs/msg/Inventory', '')

    def rack(a1: str) -> Inventory:  # fmt: skip
        return Inventory(slots=[
            InventorySlot(slot='A1', carrier_id='C-A1', workpiece=Workpiece(id=a1)),
            InventorySlot(slot='A2', carrier_id='C-A2', workpiece=Workpiece(id='WP2')),
        ])  # fmt: skip

    diagnostics = Source('/diagnostics', 'diagnostic_msgs/msg/DiagnosticArray', '')

    def status(level: int) -> DiagnosticArray:  # fmt: skip
        return DiagnosticArray(status=[DiagnosticStatus(name='hbw: HBW_M1_X', level=level)])

    logs = Source('/rosout', 'rcl_interfaces/msg/Log', '')
    batch: Batch = core.process(
        [
            received(inventory, rack('WP1'), 1),
            received(inventory, rack('WP1'), 2),
            received(inventory, rack(''), 3),
            received(diagnostics, status(0), 1),
            received(diagnostics, status(0), 2),
            received(diagnostics, status(1), 3),
            received(logs, Log(name='factory_3.hbw', msg='hello', level=20), 1),
        ],
        [],
    )
    assert batch.tables['inventory_changes']['slot'] == ['A1', 'A2', 'A1']
    assert batch.tables['inventory_changes']['workpiece_id'] == ['WP1', 'WP2', '']
    assert batch.tables['diagnostic_changes']['level'] == [0, 1]
    assert batch.tables['logs']['factory'] == ['factory_3']


def test_forecast_rows_carry_every_health_forecast_field() -> None:
    core = RecorderCore()
    forecasts = Source('/stf/maintenance/forecast', 'stf_msgs/msg/HealthForecast', '')
    message = HealthForecast(
        component_id='CONV_M1',
        health=0.9,
        degradation_per_h=0.01,
        remaining_useful_life_h=40.0,
        rul_lower_h=30.0,
        rul_upper_h=math.inf,
        confidence=0.8,
        method='friction-trend',
        severity=1,
        recommendation='schedule maintenance of CONV_M1 within 40 h',
    )
    batch = core.process([received(forecasts, message, 1)], [])
    row = {name: values[0] for name, values in batch.tables['forecasts'].items()}
    assert set(row) - {'time', 'factory'} == set(HealthForecast.__dataclass_fields__) - {'header'}
    assert (row['rul_lower_h'], row['rul_upper_h'], row['method'], row['severity']) == (
        30.0,
        math.inf,  # the writer stores a non-finite value as NULL (unbounded)
        'friction-trend',
        1,
    )
