"""The recorder's core: received messages in, rows of the history tables out (no transport, no
database; ``stf_nodes/recorder_node.py`` is the node around it).

Flow. Subscriptions hand every message, undecoded, with its publisher's GID and sequence number
and the reception time, to a :class:`MessageBuffer`: bounded, first in first out, dropping the
oldest message when full and remembering exactly which (publisher, sequence numbers) it
dropped. The writer thread takes batches from it and :meth:`RecorderCore.process` turns them
into rows (``stf_nodes/storage/history.py``); the node writes the rows, the gaps and the
publishers' last sequence numbers in one transaction and then calls
:meth:`RecorderCore.committed`.

Accounting (nothing lost silently). Per topic and publisher the core tracks the last sequence
number seen; a jump means messages that never arrived (``not_received``: lost in transport, or
published while the recorder was down: after a restart it continues from the numbers the
database holds). Messages the buffer dropped are gaps of reason ``buffer_overflow``. A sample
whose number the database already holds (a latched topic replayed after a restart) is not
recorded twice. Every gap becomes a ``recorder_gaps`` row; the counters add up to what the
publishers sent. A stream the database has never seen starts where the recorder first hears
it.

Bad input from foreign peers is counted and logged once per topic (or id), never fatal:
undecodable CDR (``malformed``), ids that are empty, too long or not printable (that element is
skipped, ``malformed``), NaN or infinite readings (stored as NULL, ``non_finite``), motor or
sensor ids the factory does not have (recorded, logged once each, ``unknown_ids``).

Rows: see ``stf_nodes/storage/history.py``. Times are the message's ``header.stamp``, or the
node's clock at reception for messages without one (MotorState, SensorState, CommandStatus) or
with a zero stamp. ``factory`` is the publisher's namespace (for ``/rosout``: the logger name's).
"""

from __future__ import annotations

import collections
import json
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from stf_nodes import interfaces
from stf_nodes.messages import STATE_TYPES
from stf_nodes.storage.history import COMPONENT_LEN

STATE_TYPE_NAMES = frozenset(STATE_TYPES.values())
SUPPORTED_TYPES = STATE_TYPE_NAMES | {
    'stf_msgs/msg/MotorState',
    'stf_msgs/msg/SensorState',
    'stf_msgs/msg/CommandStatus',
    'stf_msgs/msg/Alert',
    'stf_msgs/msg/HealthForecast',
    'stf_msgs/msg/Inventory',
    'diagnostic_msgs/msg/DiagnosticArray',
    'rcl_interfaces/msg/Log',
}
#: Distinct unknown ids logged; past this they are only counted.
UNKNOWN_IDS_LOGGED = 100


@dataclass(frozen=True)
class Source:
    """What one subscription records."""

    topic: str
    type_name: str
    factory: str  # '' for the root namespace
    station: str = ''  # the station of a state topic


@dataclass(frozen=True)
class Received:
    """One message as it arrived."""

    source: Source
    payload: bytes
    sequence: int | None  # the publisher's sequence number, None without an attachment
    gid: str  # the publisher's GID in hex, '' without an attachment
    received_ns: int  # node clock at reception


@dataclass(frozen=True)
class Gap:
    """Messages of one publisher that will not be recorded."""

    source: Source
    gid: str
    first: int
    last: int
    reason: str
    detected_ns: int

    @property
    def count(self) -> int:
        return self.last - self.first + 1


class MessageBuffer:
    """Bounded FIFO between the subscriptions and the writer thread (thread-safe)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f'buffer capacity must be >= 1, got {capacity}')
        self.capacity = capacity
        self._items: collections.deque[Received] = collections.deque()
        self._drops: dict[tuple[str, str], list[Any]] = {}  # runs still growing
        self._pending: list[list[Any]] = []  # finished runs
        self._lock = threading.Condition()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Received) -> bool:
        """Queue a message; False if the oldest had to be dropped for it."""
        with self._lock:
            room = len(self._items) < self.capacity
            if not room:
                self._drop(self._items.popleft())
            self._items.append(item)
            self._lock.notify()
            return room

    def _drop(self, item: Received) -> None:
        self.dropped += 1
        if item.sequence is None:
            key = (item.source.topic, '')
            entry = self._drops.setdefault(key, [item.source, '', 0, 0, 0, item.received_ns])
            entry[4] += 1
            return
        key = (item.source.topic, item.gid)
        entry = self._drops.get(key)
        if entry is None or item.sequence != entry[3] + 1:
            self._flush_drop(key)
            self._drops[key] = [
                item.source,
                item.gid,
                item.sequence,
                item.sequence,
                1,
                item.received_ns,
            ]
        else:
            entry[3] = item.sequence
            entry[4] += 1

    def _flush_drop(self, key: tuple[str, str]) -> None:
        entry = self._drops.pop(key, None)
        if entry is not None:
            self._pending.append(entry)

    def take(self, limit: int, timeout_s: float) -> tuple[list[Received], list[list[Any]]]:
        """Up to ``limit`` messages (waiting up to ``timeout_s`` for the first) and the drops
        made since the last call: [source, gid, first, last, count, when]."""
        with self._lock:
            if not self._items and not self._drops and not self._pending:
                self._lock.wait(timeout_s)
            count = min(limit, len(self._items))
            items = [self._items.popleft() for _ in range(count)]
            for key in list(self._drops):
                self._flush_drop(key)
            drops, self._pending = self._pending, []
            return items, drops


@dataclass
class Counters:
    """What the recorder did since it started."""

    received: int = 0
    recorded: int = 0
    rows: int = 0
    dropped: int = 0  # buffer overflow
    not_received: int = 0  # sequence gaps
    malformed: int = 0
    non_finite: int = 0
    unknown_ids: int = 0
    duplicates: int = 0


@dataclass
class Batch:
    """Rows for one transaction, plus what to remember once it is committed."""

    tables: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    gaps: list[Gap] = field(default_factory=list)
    streams: dict[tuple[str, str], tuple[str, int, int, int]] = field(default_factory=dict)
    messages: int = 0

    def add(self, table: str, **values: Any) -> None:
        columns = self.tables.setdefault(table, {name: [] for name in values})
        for name, value in values.items():
            columns[name].append(value)

    @property
    def rows(self) -> int:
        return sum(len(next(iter(c.values()))) for c in self.tables.values() if c)


def _stamp_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _valid_id(value: str) -> bool:
    return 0 < len(value) <= COMPONENT_LEN and value.isprintable()


class RecorderCore:
    """Turns batches of received messages into rows (see the module docstring)."""

    def __init__(
        self,
        *,
        known_components: Iterable[str] = (),
        warn: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.known = frozenset(known_components)
        self.warn = warn
        self.counters = Counters()
        self._decoders: dict[str, Callable[[bytes], Any]] = {}
        self._persisted: dict[tuple[str, str], int] = {}
        self._seen: dict[tuple[str, str], int] = {}
        self._sensors: dict[tuple[str, str], tuple[bool, str]] = {}
        self._stations: dict[tuple[str, str], tuple[int, str, int]] = {}
        self._inventory: dict[str, dict[str, tuple[str, str, str, int]]] = {}
        self._diagnostics: dict[tuple[str, str], tuple[int, str]] = {}
        self._warned: set[tuple[str, str]] = set()
        self._unknown: set[str] = set()

    def load_streams(self, streams: Iterable[tuple[str, str, int]]) -> None:
        """The (topic, publisher gid, last sequence) the database holds."""
        for topic, gid, last in streams:
            self._persisted[(topic, gid)] = last

    def _warn_once(self, key: tuple[str, str], message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.warn(message)

    # -- batches --------------------------------------------------------------------------

    def process(self, items: list[Received], drops: list[list[Any]]) -> Batch:
        """Rows for ``items`` (oldest first) and ``drops`` (made before them)."""
        batch = Batch()
        for source, gid, first, last, count, when in drops:
            self.counters.dropped += count
            if gid:
                key = (source.topic, gid)
                self._seen[key] = max(self._seen.get(key, self._persisted.get(key, 0)), last)
                batch.gaps.append(Gap(source, gid, first, last, 'buffer_overflow', when))
            else:
                batch.gaps.append(Gap(source, '', 0, count - 1, 'buffer_overflow', when))
        for item in items:
            self.counters.received += 1
            if not self._sequence(item, batch):
                continue
            decoded = self._decode(item)
            if decoded is None:
                continue
            self._rows(item, decoded, batch)
            batch.messages += 1
        return batch

    def committed(self, batch: Batch) -> None:
        """The batch is in the database: its streams are the persisted ones now."""
        for key, (_, last, _, _) in batch.streams.items():
            self._persisted[key] = last
        self.counters.recorded += batch.messages
        self.counters.rows += batch.rows

    def _sequence(self, item: Received, batch: Batch) -> bool:
        """Account for the publisher's sequence number; False for a duplicate."""
        if item.sequence is None:
            return True
        key = (item.source.topic, item.gid)
        last = self._seen.get(key)
        if last is None:
            last = self._persisted.get(key)
        if last is not None:
            if item.sequence <= last:
                self.counters.duplicates += 1
                return False
            if item.sequence > last + 1:
                gap = Gap(
                    item.source,
                    item.gid,
                    last + 1,
                    item.sequence - 1,
                    'not_received',
                    item.received_ns,
                )
                self.counters.not_received += gap.count
                batch.gaps.append(gap)
        self._seen[key] = item.sequence
        previous = batch.streams.get(key)
        received = (previous[3] if previous else 0) + 1
        batch.streams[key] = (item.source.factory, item.sequence, item.received_ns, received)
        return True

    def _decode(self, item: Received) -> Any | None:
        type_name = item.source.type_name
        decode = self._decoders.get(type_name)
        if decode is None:
            decode = self._decoders[type_name] = interfaces.decoder(type_name)
        try:
            return decode(item.payload)
        except interfaces.SerdeError as exc:
            self.counters.malformed += 1
            self._warn_once(
                (item.source.topic, 'malformed'),
                f'{item.source.topic}: dropped a malformed {type_name} ({exc}); further ones '
                'are counted, not logged',
            )
            return None

    # -- rows -----------------------------------------------------------------------------

    def _time_us(self, item: Received, stamp: Any | None) -> int:
        ns = _stamp_ns(stamp) if stamp is not None else 0
        return (ns or item.received_ns) // 1000

    def _finite(self, item: Received, what: str, *values: float) -> None:
        if not all(math.isfinite(v) for v in values):
            self.counters.non_finite += 1
            self._warn_once(
                (item.source.topic, 'non_finite'),
                f'{item.source.topic}: {what} has NaN or infinite readings, stored as NULL '
                '(further ones are counted, not logged)',
            )

    def _check_id(self, item: Received, component: str, what: str, *, part: bool = True) -> bool:
        """False for an invalid id (counted, logged once). ``part``: the id names a motor or
        sensor, so one the factory does not have is logged once; alert components (stations,
        nodes) and rack slots are only checked for validity."""
        if not _valid_id(component):
            self.counters.malformed += 1
            self._warn_once(
                (item.source.topic, 'bad_id'),
                f'{item.source.topic}: skipped a {what} with an invalid id {component[:40]!r} '
                f'(1 to {COMPONENT_LEN} printable characters); further ones are counted',
            )
            return False
        if part and self.known and component not in self.known and component not in self._unknown:
            self._unknown.add(component)
            self.counters.unknown_ids += 1
            if len(self._unknown) <= UNKNOWN_IDS_LOGGED:
                self.warn(
                    f'{item.source.topic}: recording {what} {component!r}, which the '
                    'factory does not have'
                )
        return True

    def _rows(self, item: Received, message: Any, batch: Batch) -> None:
        type_name = item.source.type_name
        if type_name in STATE_TYPE_NAMES:
            self._state_rows(item, message, batch)
        elif type_name == 'stf_msgs/msg/MotorState':
            self._motor_row(item, message, self._time_us(item, None), '', batch)
        elif type_name == 'stf_msgs/msg/SensorState':
            self._sensor_row(item, message, self._time_us(item, None), '', batch)
        elif type_name == 'stf_msgs/msg/CommandStatus':
            self._command_row(item, message, batch)
        elif type_name == 'stf_msgs/msg/Alert':
            self._alert_row(item, message, batch)
        elif type_name == 'stf_msgs/msg/HealthForecast':
            self._forecast_row(item, message, batch)
        elif type_name == 'stf_msgs/msg/Inventory':
            self._inventory_rows(item, message, batch)
        elif type_name == 'diagnostic_msgs/msg/DiagnosticArray':
            self._diagnostic_rows(item, message, batch)
        elif type_name == 'rcl_interfaces/msg/Log':
            self._log_row(item, message, batch)

    def _state_rows(self, item: Received, message: Any, batch: Batch) -> None:
        at = self._time_us(item, message.header.stamp)
        station = item.source.station or message.header.frame_id
        for motor in message.motors:
            self._motor_row(item, motor, at, station, batch)
        for sensor in message.sensors:
            self._sensor_row(item, sensor, at, station, batch)
        key = (item.source.factory, station)
        now = (int(message.state), message.task, int(message.task_id))
        if self._stations.get(key) != now:
            self._stations[key] = now
            batch.add(
                'station_states',
                time=at,
                factory=item.source.factory,
                station=station,
                state=now[0],
                task=now[1],
                task_id=now[2],
            )

    def _motor_row(self, item: Received, m: Any, at: int, station: str, batch: Batch) -> None:
        if not self._check_id(item, m.motor_id, 'motor'):
            return
        floats = (
            m.current_a,
            m.voltage_v,
            m.power_w,
            m.energy_wh,
            m.temperature_c,
            m.health,
            m.runtime_h,
        )
        self._finite(item, f'motor {m.motor_id}', *floats)
        batch.add(
            'motor_samples',
            time=at,
            factory=item.source.factory,
            station=station,
            motor_id=m.motor_id,
            running=bool(m.running),
            direction=int(m.direction),
            current_a=m.current_a,
            voltage_v=m.voltage_v,
            power_w=m.power_w,
            energy_wh=m.energy_wh,
            temperature_c=m.temperature_c,
            health=m.health,
            encoder_pulses=int(m.encoder_pulses),
            start_count=int(m.start_count),
            runtime_h=m.runtime_h,
            fault=m.fault,
        )

    def _sensor_row(self, item: Received, s: Any, at: int, station: str, batch: Batch) -> None:
        if not self._check_id(item, s.sensor_id, 'sensor'):
            return
        key = (item.source.factory, s.sensor_id)
        now = (bool(s.triggered), s.fault)
        if self._sensors.get(key) == now:
            return
        self._sensors[key] = now
        self._finite(item, f'sensor {s.sensor_id}', s.value)
        batch.add(
            'sensor_edges',
            time=at,
            factory=item.source.factory,
            station=station,
            sensor_id=s.sensor_id,
            triggered=now[0],
            value=s.value,
            fault=s.fault,
        )

    def _command_row(self, item: Received, c: Any, batch: Batch) -> None:
        def moment(stamp: Any) -> int | None:
            ns = _stamp_ns(stamp)
            return ns // 1000 if ns else None

        batch.add(
            'command_transitions',
            time=self._time_us(item, None),
            factory=item.source.factory,
            command_id=int(c.command_id),
            kind=int(c.kind),
            status=int(c.status),
            priority=int(c.priority),
            source_slot=c.source_slot,
            target_slot=c.target_slot,
            flavor=c.flavor,
            workpiece_id=c.workpiece_id,
            step=c.step,
            message=c.message,
            created_at=moment(c.created),
            started_at=moment(c.started),
            finished_at=moment(c.finished),
        )

    def _alert_row(self, item: Received, a: Any, batch: Batch) -> None:
        if not self._check_id(item, a.component_id, 'alert component', part=False):
            return
        self._finite(item, f'alert {a.code}', a.value, a.threshold)
        batch.add(
            'alerts',
            time=self._time_us(item, a.header.stamp),
            factory=item.source.factory,
            severity=int(a.severity),
            component_id=a.component_id,
            code=a.code,
            message=a.message,
            value=a.value,
            threshold=a.threshold,
        )

    def _forecast_row(self, item: Received, f: Any, batch: Batch) -> None:
        if not self._check_id(item, f.component_id, 'forecast component'):
            return
        batch.add(
            'forecasts',
            time=self._time_us(item, f.header.stamp),
            factory=item.source.factory,
            component_id=f.component_id,
            health=f.health,
            degradation_per_h=f.degradation_per_h,
            remaining_useful_life_h=f.remaining_useful_life_h,
            rul_lower_h=f.rul_lower_h,
            rul_upper_h=f.rul_upper_h,
            confidence=f.confidence,
            method=f.method,
            severity=int(f.severity),
            recommendation=f.recommendation,
        )

    def _inventory_rows(self, item: Received, inventory: Any, batch: Batch) -> None:
        at = self._time_us(item, inventory.header.stamp)
        known = self._inventory.setdefault(item.source.factory, {})
        for slot in inventory.slots:
            if not self._check_id(item, slot.slot, 'slot', part=False):
                continue
            wp = slot.workpiece
            now = (slot.carrier_id, wp.id, wp.flavor, int(wp.status))
            if known.get(slot.slot) == now:
                continue
            known[slot.slot] = now
            batch.add(
                'inventory_changes',
                time=at,
                factory=item.source.factory,
                slot=slot.slot,
                carrier_id=now[0],
                workpiece_id=now[1],
                flavor=now[2],
                status=now[3],
            )

    def _diagnostic_rows(self, item: Received, array: Any, batch: Batch) -> None:
        at = self._time_us(item, array.header.stamp)
        for status in array.status:
            key = (item.source.factory, status.name)
            now = (int(status.level), status.message)
            if self._diagnostics.get(key) == now:
                continue
            self._diagnostics[key] = now
            values = {kv.key: kv.value for kv in status.values}
            batch.add(
                'diagnostic_changes',
                time=at,
                factory=item.source.factory,
                name=status.name,
                hardware_id=status.hardware_id,
                level=now[0],
                message=now[1],
                key_values=json.dumps(values, ensure_ascii=False),
            )

    def _log_row(self, item: Received, log: Any, batch: Batch) -> None:
        namespace, _, _ = log.name.rpartition('.')
        batch.add(
            'logs',
            time=self._time_us(item, log.stamp),
            factory=namespace.replace('.', '/'),
            level=int(log.level),
            name=log.name,
            message=log.msg,
            file=log.file,
            function=log.function,
            line=int(log.line),
        )
