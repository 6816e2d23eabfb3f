"""A generated history as a rosbag2 MCAP bag (``stf history generate --bag DIR``).

Each day's rows become the messages the live graph would have carried, stamped with their
time: ``stf/<station>/state`` at every motor sample (motors with every ``MotorState`` field,
sensors as their latest edge says, state code and task from the station state changes; the
positions and workpieces the rows do not hold stay empty), ``stf/commands``, ``stf/alerts``,
``stf/inventory`` (the whole rack after every change) and ``rosout``; names under the factory's
namespace. Written with the project's bag writer (:func:`stf_nodes.bag.writer.open_bag`), zstd
chunks. Telemetry is thinned to the generator's motor samples (one state per station and
sample instant, not the live 10 Hz) while every event is kept, so a 30-day bag stays small and
fluid in Foxglove (README: Bags).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from stf_nodes import interfaces
from stf_nodes.bag.writer import StorageOptions, open_bag
from stf_nodes.messages import STATE_TYPES
from stf_nodes.runtime import QoSProfile, qos_profile_latched

_MSG = {
    name: interfaces.get_message_class(f'stf_msgs/msg/{name}')
    for name in ('MotorState', 'SensorState', 'CommandStatus', 'Alert', 'Inventory',
                 'InventorySlot', 'Workpiece')
}  # fmt: skip
_HBW, _VGR, _CONVEYOR = (interfaces.get_message_class(t) for t in STATE_TYPES.values())
_LOG = interfaces.get_message_class('rcl_interfaces/msg/Log')
_TIME = interfaces.get_message_class('builtin_interfaces/msg/Time')
_HEADER = interfaces.get_message_class('std_msgs/msg/Header')


def _stamp(micros: int) -> Any:
    return _TIME(sec=micros // 1_000_000, nanosec=(micros % 1_000_000) * 1000)


class HistoryBag:
    """Collects day batches of history rows into a bag."""

    def __init__(self, path: Path, *, factory: str, slots: Iterable[str]) -> None:
        self.prefix = f'/{factory}' if factory else ''
        self.bag = open_bag(path, StorageOptions(compression='zstd'))
        self.bag.add_topic(
            f'{self.prefix}/stf/inventory', 'stf_msgs/msg/Inventory', qos=qos_profile_latched
        )
        self.station_state: dict[str, tuple[int, str, int]] = {}
        self.sensors: dict[str, dict[str, Any]] = defaultdict(dict)
        self.rack: dict[str, Any] = {slot: _MSG['InventorySlot'](slot=slot) for slot in slots}

    def close(self) -> int:
        self.bag.close()
        return self.bag.message_count

    def _write(self, topic: str, message: Any, micros: int) -> None:
        self._write_message(f'{self.prefix}{topic}', message, int(micros) * 1000)

    def _write_message(self, topic: str, message: Any, stamp_ns: int) -> None:
        """Serialize and write ``message``; its topic is added on first use."""
        self.bag.add_topic(topic, message.__msgtype__, qos=QoSProfile(depth=10))
        self.bag.write(topic, interfaces.serialize(message), stamp_ns)

    def add(self, tables: dict[str, dict[str, Any]]) -> None:
        """Write one day's rows, in time order per topic."""
        events: list[tuple[int, int, Any]] = []  # (time, order, callable)
        for name, kind in (('station_states', 0), ('sensor_edges', 1), ('motor_samples', 2)):
            columns = tables.get(name)
            if columns:
                for index, at in enumerate(np.asarray(columns['time']).tolist()):
                    events.append((at, kind, (name, index)))
        events.sort(key=lambda e: (e[0], e[1]))
        pending: dict[tuple[str, int], list[Any]] = defaultdict(list)
        for at, _, (name, index) in events:
            columns = tables[name]
            if name == 'station_states':
                self.station_state[columns['station'][index]] = (
                    int(columns['state'][index]),
                    columns['task'][index],
                    int(columns['task_id'][index]),
                )
            elif name == 'sensor_edges':
                self.sensors[columns['station'][index]][columns['sensor_id'][index]] = _MSG[
                    'SensorState'
                ](
                    sensor_id=columns['sensor_id'][index],
                    triggered=bool(columns['triggered'][index]),
                    value=float(columns['value'][index]),
                    fault=columns['fault'][index],
                )
            else:
                station = columns['station'][index]
                pending[(station, at)].append(self._motor(columns, index))
        for (station, at), motors in sorted(pending.items(), key=lambda item: item[0][1]):
            self._state(station, at, motors)
        self._commands(tables.get('command_transitions'))
        self._alerts(tables.get('alerts'))
        self._inventory(tables.get('inventory_changes'))
        self._logs(tables.get('logs'))

    @staticmethod
    def _motor(columns: dict[str, Any], index: int) -> Any:
        return _MSG['MotorState'](
            motor_id=columns['motor_id'][index],
            running=bool(columns['running'][index]),
            direction=int(columns['direction'][index]),
            current_a=float(columns['current_a'][index]),
            voltage_v=float(columns['voltage_v'][index]),
            power_w=float(columns['power_w'][index]),
            energy_wh=float(columns['energy_wh'][index]),
            temperature_c=float(columns['temperature_c'][index]),
            health=float(columns['health'][index]),
            encoder_pulses=int(columns['encoder_pulses'][index]),
            start_count=int(columns['start_count'][index]),
            runtime_h=float(columns['runtime_h'][index]),
            fault=columns['fault'][index],
        )

    def _state(self, station: str, at: int, motors: list[Any]) -> None:
        cls = {'hbw': _HBW, 'vgr': _VGR, 'conveyor': _CONVEYOR}[station]
        code, task, task_id = self.station_state.get(station, (1, '', 0))
        message = cls(
            header=_HEADER(stamp=_stamp(at), frame_id=station),
            state=code,
            task=task,
            task_id=task_id,
            motors=motors,
            sensors=list(self.sensors[station].values()),
        )
        self._write(f'/stf/{station}/state', message, at)

    def _commands(self, columns: dict[str, Any] | None) -> None:
        if not columns:
            return
        for index, at in enumerate(columns['time']):
            message = _MSG['CommandStatus'](
                command_id=int(columns['command_id'][index]),
                kind=int(columns['kind'][index]),
                status=int(columns['status'][index]),
                priority=int(columns['priority'][index]),
                source_slot=columns['source_slot'][index],
                target_slot=columns['target_slot'][index],
                flavor=columns['flavor'][index],
                workpiece_id=columns['workpiece_id'][index],
                step=columns['step'][index],
                message=columns['message'][index],
                created=_stamp(columns['created_at'][index] or 0),
                started=_stamp(columns['started_at'][index] or 0),
                finished=_stamp(columns['finished_at'][index] or 0),
            )
            self._write('/stf/commands', message, at)

    def _alerts(self, columns: dict[str, Any] | None) -> None:
        if not columns:
            return
        for index, at in enumerate(columns['time']):
            message = _MSG['Alert'](
                header=_HEADER(stamp=_stamp(at)),
                severity=int(columns['severity'][index]),
                component_id=columns['component_id'][index],
                code=columns['code'][index],
                message=columns['message'][index],
                value=float(columns['value'][index]),
                threshold=float(columns['threshold'][index]),
            )
            self._write('/stf/alerts', message, at)

    def _inventory(self, columns: dict[str, Any] | None) -> None:
        if not columns:
            return
        for index, at in enumerate(columns['time']):
            slot = columns['slot'][index]
            self.rack[slot] = _MSG['InventorySlot'](
                slot=slot,
                carrier_id=columns['carrier_id'][index],
                workpiece=_MSG['Workpiece'](
                    id=columns['workpiece_id'][index],
                    flavor=columns['flavor'][index],
                    status=int(columns['status'][index]),
                ),
            )
            inventory = _MSG['Inventory'](
                header=_HEADER(stamp=_stamp(at)), slots=list(self.rack.values())
            )
            self._write('/stf/inventory', inventory, at)

    def _logs(self, columns: dict[str, Any] | None) -> None:
        if not columns:
            return
        for index, at in enumerate(columns['time']):
            message = _LOG(
                stamp=_stamp(at),
                level=int(columns['level'][index]),
                name=columns['name'][index],
                msg=columns['message'][index],
            )
            self._write_message('/rosout', message, int(at) * 1000)
