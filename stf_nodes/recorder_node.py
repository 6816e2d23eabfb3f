"""`recorder` node: persists the factory's telemetry, commands, alerts and logs to SQL.

Role: subscribes to the topics of `topics` (every factory of a fleet with `factories`), hands
each message undecoded to a bounded buffer and returns at once, so the graph is never slowed
down; a writer thread decodes batches (`stf_nodes.recorder.core`) and writes them in one
transaction each (`stf_nodes.recorder.database`) into the history tables
(`stf_nodes/storage/history.py`), upgrading the schema first. A slow or unreachable database
fills the buffer, which then drops its oldest messages: the drops are counted and written as
gaps once the database is back, the node publishes a WARNING `Alert` and an ERROR/WARN
diagnostics status, retries with backoff and recovers by itself. Publishers' sequence numbers
account for every message: rows recorded plus gaps equal what was published (see the core).

Topics (relative names resolve in the node's namespace; a leading `/` is absolute):
- subscribes (default `topics`): `stf/hbw/state`, `stf/vgr/state`, `stf/conveyor/state`,
  `stf/inventory`, `stf/commands`, `stf/alerts`, `stf/maintenance/forecast`, `diagnostics`,
  `/rosout`; also records `stf_msgs/MotorState` and `SensorState` topics listed there. A
  relative topic whose type is not known by its name is subscribed once the graph shows its
  publisher.
- publishes `stf/alerts` (Alert: DATABASE_UNAVAILABLE, RECORDER_DROPPED as WARNING,
  DATABASE_RECOVERED as INFO; component `recorder`) and `diagnostics` (status
  `recorder: database` at `diagnostics_rate`, with the counters).

Parameters: `db_url` (default: env `DATABASE_URL`, else `sqlite:///./stf_digital_twin.db`),
`topics`, `factories` (namespace patterns such as `factory_*`: record those factories' relative
topics, found in the graph every `discovery_period_s`; empty: the node's own namespace),
`buffer_messages` (capacity of the buffer), `batch_messages` (most messages per transaction),
`flush_period_s` (longest a message waits for its transaction, wall time), `retry_max_s`
(longest pause between attempts while the database is unusable), `diagnostics_rate` (Hz),
`known_components` (motor and sensor ids; others are recorded and logged once; default: those
of the station models).
"""

from __future__ import annotations

import fnmatch
import os
import threading
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from stf_nodes import interfaces, runtime
from stf_nodes.process import exit_process
from stf_nodes.recorder.core import (
    STATE_TYPE_NAMES,
    SUPPORTED_TYPES,
    MessageBuffer,
    Received,
    RecorderCore,
    Source,
)
from stf_nodes.recorder.database import RecorderDatabase
from stf_nodes.runtime import names
from stf_nodes.runtime.qos import DurabilityPolicy, HistoryPolicy, QoSProfile
from stf_nodes.sim import Conveyor, Hbw, Vgr
from stf_nodes.storage import DEFAULT_DATABASE_URL, SchemaError, shown_url

Alert = interfaces.get_message_class('stf_msgs/msg/Alert')
Header = interfaces.get_message_class('std_msgs/msg/Header')
DiagnosticArray = interfaces.get_message_class('diagnostic_msgs/msg/DiagnosticArray')
DiagnosticStatus = interfaces.get_message_class('diagnostic_msgs/msg/DiagnosticStatus')
KeyValue = interfaces.get_message_class('diagnostic_msgs/msg/KeyValue')

DEFAULT_TOPICS = [
    'stf/hbw/state',
    'stf/vgr/state',
    'stf/conveyor/state',
    'stf/inventory',
    'stf/commands',
    'stf/alerts',
    'stf/maintenance/forecast',
    'diagnostics',
    '/rosout',
]
#: Types of the topics the project names (ARCHITECTURE.md §4); others come from the graph.
KNOWN_TYPES = {
    'stf/hbw/state': 'stf_msgs/msg/HbwState',
    'stf/vgr/state': 'stf_msgs/msg/VgrState',
    'stf/conveyor/state': 'stf_msgs/msg/ConveyorState',
    'stf/inventory': 'stf_msgs/msg/Inventory',
    'stf/commands': 'stf_msgs/msg/CommandStatus',
    'stf/alerts': 'stf_msgs/msg/Alert',
    'stf/maintenance/forecast': 'stf_msgs/msg/HealthForecast',
    'diagnostics': 'diagnostic_msgs/msg/DiagnosticArray',
    '/rosout': 'rcl_interfaces/msg/Log',
}
LATCHED = frozenset({'stf/inventory', '/rosout'})
RELIABLE_EVENTS = QoSProfile(depth=100)


class RecorderNode(runtime.Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__('recorder', **kwargs)
        db_url = self.declare_parameter(
            'db_url',
            os.environ.get('DATABASE_URL', DEFAULT_DATABASE_URL),
            description='SQLAlchemy URL of the database the history goes to',
            secret=shown_url,
        ).value
        self._topics = list(
            self.declare_parameter(
                'topics', DEFAULT_TOPICS, description='topics to record (relative or /absolute)'
            ).value
        )
        self._factories = list(
            self.declare_parameter(
                'factories',
                [''],
                description='namespace patterns of the factories to record (e.g. factory_*); '
                "'' = this node's namespace",
            ).value
        )
        capacity = self.declare_parameter(
            'buffer_messages', 200_000, description='messages waiting for the database, at most'
        ).value
        self._batch = self.declare_parameter(
            'batch_messages', 20_000, description='messages per transaction, at most'
        ).value
        self._flush_s = self.declare_parameter(
            'flush_period_s',
            0.2,
            description='longest wait of a message for its transaction',
            unit='s',
            low=0,
        ).value
        self._retry_max_s = self.declare_parameter(
            'retry_max_s',
            5.0,
            description='longest pause between attempts on database errors',
            unit='s',
            low=0,
        ).value
        discovery_s = self.declare_parameter(
            'discovery_period_s',
            1.0,
            description='how often the graph is searched for topics',
            unit='s',
            low=0,
        ).value
        diagnostics_rate = self.declare_parameter(
            'diagnostics_rate', 1.0, description='diagnostics and alert checks per second'
        ).value
        default_components = [
            *Hbw().component_ids,
            *Vgr().component_ids,
            *Conveyor().component_ids,
        ]
        known = self.declare_parameter(
            'known_components',
            default_components,
            description='motor and sensor ids of the factory; others are logged once',
        ).value
        if capacity < 1 or self._batch < 1 or self._flush_s <= 0 or diagnostics_rate <= 0:
            raise ValueError(
                'buffer_messages and batch_messages must be >= 1, flush_period_s and '
                'diagnostics_rate > 0'
            )
        self._shown_url = shown_url(db_url)
        try:
            self._database = RecorderDatabase(db_url)
        except Exception as exc:  # an unparseable URL or a missing driver: a bad parameter
            raise ValueError(f'db_url {self._shown_url} is not usable: {exc}') from exc

        self._buffer = MessageBuffer(capacity)
        self._core = RecorderCore(known_components=known, warn=self._warn_from_writer)
        self._state_lock = threading.Lock()
        self._db_ok: bool | None = None  # None until the first attempt
        self._last_error = ''
        self._alerted = {'unavailable': False, 'dropping': False}
        self._dropped_at_tick = 0  # buffer drops counted at the last tick
        self._dropped_before = 0  # ... and when the present episode of trouble began
        self._stop = threading.Event()
        self._alert_pub = self.create_publisher(Alert, 'stf/alerts', RELIABLE_EVENTS)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, 'diagnostics', 10)
        self._subscribed: set[str] = set()
        self._own_factory = self.get_namespace().strip('/')
        self._subscribe_known()
        self._discover()
        self.create_timer(discovery_s, self._discover)
        self.create_timer(1.0 / diagnostics_rate, self._on_tick)
        self._writer = threading.Thread(
            target=self._write_loop, name='recorder-writer', daemon=True
        )
        self._writer.start()
        self.get_logger().info(
            f'recording {len(self._subscribed)} topics into {self._shown_url}'
            + (f' (factories {", ".join(self._factories)})' if self._fleet else '')
        )

    # -- subscriptions --------------------------------------------------------------------

    @property
    def _fleet(self) -> bool:
        return any(pattern for pattern in self._factories)

    def _subscribe(self, topic: str, type_name: str, factory: str, entry: str) -> None:
        if topic in self._subscribed or type_name not in SUPPORTED_TYPES:
            return
        parts = entry.strip('/').split('/')
        station = parts[1] if type_name in STATE_TYPE_NAMES and len(parts) == 3 else ''
        source = Source(topic=topic, type_name=type_name, factory=factory, station=station)
        latched = entry in LATCHED or self._offered_latched(topic)
        qos = QoSProfile(
            depth=1000 if latched else 100,
            history=HistoryPolicy.KEEP_LAST if latched else HistoryPolicy.KEEP_ALL,
            durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
        )
        self.create_subscription(
            interfaces.get_message_class(type_name),
            topic,
            lambda payload, info, source=source: self._on_message(source, payload, info),
            qos,
            raw=True,
        )
        self._subscribed.add(topic)

    def _offered_latched(self, topic: str) -> bool:
        for token in self.context.graph.endpoints(topic, names.PUBLISHER):
            if QoSProfile.from_keyexpr(token.qos).durability == DurabilityPolicy.TRANSIENT_LOCAL:
                return True
        return False

    def _subscribe_known(self) -> None:
        """Topics whose type the name tells, subscribed at once (no message missed)."""
        for entry in self._topics:
            type_name = KNOWN_TYPES.get(entry)
            if type_name is None:
                continue
            if entry.startswith('/'):
                self._subscribe(entry, type_name, '', entry)
            elif not self._fleet:
                self._subscribe(self.resolve_name(entry), type_name, self._own_factory, entry)

    def _discover(self) -> None:
        """Subscribe to the listed topics the graph shows (other types, fleet factories)."""
        for name, types in self.context.graph.topic_names_and_types():
            if name in self._subscribed:
                continue
            for entry in self._topics:
                factory = self._factory_of(name, entry)
                if factory is None:
                    continue
                for type_name in types:
                    self._subscribe(name, type_name, factory, entry)

    def _factory_of(self, name: str, entry: str) -> str | None:
        if entry.startswith('/'):
            return '' if name == entry else None
        if not name.endswith('/' + entry):
            return None
        namespace = name[: -len(entry) - 1].strip('/')
        if not self._fleet:
            return namespace if namespace == self._own_factory else None
        if any(fnmatch.fnmatchcase(namespace, pattern) for pattern in self._factories if pattern):
            return namespace
        return None

    def _on_message(self, source: Source, payload: bytes, info: dict[str, Any]) -> None:
        gid = info['publisher_gid']
        self._buffer.put(
            Received(
                source=source,
                payload=payload,
                sequence=info['publication_sequence_number'],
                gid=gid.hex() if gid else '',
                received_ns=self.get_clock().now().nanoseconds,
            )
        )

    # -- the writer thread ----------------------------------------------------------------

    def _warn_from_writer(self, message: str) -> None:
        self.get_logger().warning(message)

    def _set_state(self, ok: bool, error: str = '') -> None:
        with self._state_lock:
            self._db_ok = ok
            if error:
                self._last_error = error

    def _write_loop(self) -> None:
        pause = 0.5
        prepared = False
        batch = None
        while True:
            stopping = self._stop.is_set()
            try:
                if not prepared:
                    self._core.load_streams(self._database.prepare())
                    prepared = True
                if batch is None:
                    items, drops = self._buffer.take(
                        self._batch, 0.0 if stopping else self._flush_s
                    )
                    if not items and not drops:
                        if stopping:
                            return
                        continue
                    batch = self._core.process(items, drops)
                self._database.write(batch)
                self._core.committed(batch)
                batch = None
                pause = 0.5
                self._set_state(True)
            except SchemaError as exc:
                self._set_state(False, str(exc))
                self.get_logger().error(f'cannot record into {self._shown_url}: {exc}', once=True)
                if stopping or self._stop.wait(self._retry_max_s):
                    return
            except SQLAlchemyError as exc:
                reason = str(getattr(exc, 'orig', None) or exc).strip().splitlines()[0][:300]
                self._set_state(False, reason)
                if stopping or self._stop.wait(pause):
                    return
                pause = min(pause * 2, self._retry_max_s)

    # -- alerts and diagnostics -----------------------------------------------------------

    def _on_tick(self) -> None:
        """Alerts on changes of the database's health, and the diagnostics status."""
        with self._state_lock:
            ok, error = self._db_ok, self._last_error
        dropped = self._buffer.dropped
        dropping = dropped > self._dropped_at_tick
        self._dropped_at_tick = dropped
        if not any(self._alerted.values()):
            self._dropped_before = dropped if not dropping else self._dropped_before
        if ok is False and not self._alerted['unavailable']:
            self._alerted['unavailable'] = True
            self._alert(Alert.WARNING, 'DATABASE_UNAVAILABLE', f'cannot write: {error}', 0.0)
        if dropping and not self._alerted['dropping']:
            self._alerted['dropping'] = True
            self._alert(
                Alert.WARNING,
                'RECORDER_DROPPED',
                f'buffer full ({self._buffer.capacity} messages): dropping the oldest; '
                f'{dropped - self._dropped_before} dropped so far',
                float(dropped - self._dropped_before),
            )
        if ok and not dropping and any(self._alerted.values()):
            lost = dropped - self._dropped_before
            self._alert(
                Alert.INFO,
                'DATABASE_RECOVERED',
                f'recording again; {lost} messages dropped meanwhile',
                float(lost),
            )
            self._alerted = dict.fromkeys(self._alerted, False)
            self._dropped_before = dropped
        self._publish_diagnostics(ok, error, dropping)

    def _alert(self, severity: int, code: str, message: str, value: float) -> None:
        self._alert_pub.publish(
            Alert(
                header=Header(stamp=self.get_clock().now().to_msg(), frame_id='recorder'),
                severity=severity,
                component_id='recorder',
                code=code,
                message=message,
                value=value,
            )
        )
        log = self.get_logger().info if severity == Alert.INFO else self.get_logger().warning
        log(f'{code}: {message}')

    def _publish_diagnostics(self, ok: bool | None, error: str, dropping: bool) -> None:
        counters = self._core.counters
        dropped = self._buffer.dropped
        if ok is False:
            level, message = DiagnosticStatus.ERROR, f'database unavailable: {error}'
        elif dropping:
            level, message = DiagnosticStatus.WARN, 'database too slow: dropping the oldest'
        elif ok is None:
            level, message = DiagnosticStatus.WARN, 'connecting to the database'
        else:
            level, message = DiagnosticStatus.OK, 'recording'
        values = {
            'received': counters.received,
            'recorded': counters.recorded,
            'rows': counters.rows,
            'buffered': len(self._buffer),
            'dropped': dropped,
            'not_received': counters.not_received,
            'malformed': counters.malformed,
            'non_finite': counters.non_finite,
            'unknown_ids': counters.unknown_ids,
            'duplicates': counters.duplicates,
            'topics': len(self._subscribed),
            'last_error': error,
        }
        status = DiagnosticStatus(
            level=level,
            name='recorder: database',
            message=message,
            hardware_id=self._shown_url,
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()],
        )
        self._diagnostics_pub.publish(
            DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()), status=[status])
        )

    def destroy_node(self) -> None:
        """Write what is buffered (while the database takes it), then stop."""
        if not self.destroyed:
            self._stop.set()
            self._writer.join(timeout=10.0)
            self._database.dispose()
        super().destroy_node()


NODE_CLASS = RecorderNode


def main(args: list[str] | None = None) -> int:
    return runtime.run_node(RecorderNode, args)


if __name__ == '__main__':
    exit_process(main())
