"""`mqtt_bridge` node: the factory on MQTT in the fischertechnik topic scheme, both ways.

Role: speaks the fischertechnik Training Factory dialect (`stf_nodes.bridges.fischertechnik`)
to an MQTT broker, so dashboards and tools made for the real factory see and command the twin
(`mode: twin`), or so a real factory drives the graph (`mode: mirror`, hardware in the loop).
The decisions are in `stf_nodes.bridges.mqtt_core` (pure), the connection in
`stf_nodes.bridges.mqtt_link` (paho-mqtt); this node converts and wires them. MQTT traffic
arrives on paho's thread and runs on the node's executor through a guard condition, so every
callback of the node runs one at a time.

Every MQTT topic below is preceded by `topic_prefix` (default empty; `launch/factory.launch.xml`
passes the launch namespace, so the factories of a fleet, `factory_K/f/i/...`, do not publish
over each other while the root factory keeps the plain scheme). Graph names are relative.

**twin** (default):
- graph → MQTT: `stf/hbw/state`, `stf/vgr/state` → `f/i/state/hbw|vgr`; `stf/conveyor/state`
  → `f/i/state/sld` (belt) and `f/i/state/mpo` (oven/process); retained, QoS 1, on change and
  every `state_period_s`. `stf/inventory` → `f/i/stock` (all nine slots; retained, QoS 1).
  `f/i/state/twin` is `online`, retained, and the last will says `offline`.
- MQTT → graph: `f/o/order` `{"type":"RED"}` → `stf/order/process` (ProcessOrder, flavor mapped
  from the colour); its command's `stf/commands` statuses → `f/i/order` (QoS 1: `ORDERED`,
  `IN_PROCESS`, `SHIPPED`, or `FAILED`/`CANCELLED`/`REFUSED` with a `message`, then
  `WAITING_FOR_ORDER`). `f/o/state/ack` → `stf/reset` (std_srvs/Trigger). Other `f/o/...`
  topics are unexpected input.
- An order is acknowledged to the broker (QoS 1 PUBACK) only once the scheduler answered, so a
  bridge or broker that goes away loses nothing acknowledged; redeliveries and repeats (same
  `ts` and colour within `dedup_window_s`) are not ordered twice; more than `order_rate` per
  second (bursts of `order_burst`) are refused on `f/i/order`; a retained order is refused.
  While the scheduler is not there, orders wait up to `order_timeout_s`.

**mirror**: subscribes `f/i/#` of a physical factory and publishes what the stations and the
scheduler would: `f/i/state/hbw|vgr` → `stf/hbw|vgr/state` (HbwState/VgrState: state code,
task = description while active; the HBW's slots from the last stock), `f/i/state/sld` and
`mpo` → `stf/conveyor/state`, `f/i/stock` → `stf/inventory` (transient-local), `f/i/order` →
`stf/commands` (CommandStatus, PROCESS, id = the ORDERED `ts` in ms). A station entering
error raises an ERROR Alert. Run it with `launch/mirror.launch.xml` (no simulated stations).

**routes** (both modes): `mapping_file` adds generic graph ↔ MQTT JSON routes
(`stf_nodes.bridges.topic_map`).

Bad input (malformed JSON, wrong field types, unknown colours, payloads over
`max_payload_bytes`, unexpected topics, retained orders, order floods, refused credentials) is
counted per kind, logged the first time, and reported as a WARNING on `stf/alerts` (then at
most one summary per `alert_interval_s`); it never creates a command. Counters and the
connection state are on `diagnostics` (DiagnosticArray) at `diagnostics_rate`.

Parameters: `mode` (twin|mirror), `broker_host` (env `MQTT_BROKER`, else 127.0.0.1),
`broker_port` (env `MQTT_PORT`, else 1883), `protocol` (3.1.1|5), `client_id` (default
`stf-<mode>[-<namespace>]`, stable for the persistent session), `username`, `password` (env
`MQTT_USERNAME`/`MQTT_PASSWORD` by default: parameters are readable over the parameter
services), `keepalive_s`, `persistent_session`, `tls.enabled`, `tls.ca_file`,
`tls.cert_file`, `tls.key_file`, `tls.insecure`, `topic_prefix`, `max_payload_bytes`,
`order_rate`, `order_burst`, `dedup_window_s`, `order_timeout_s`, `service_timeout_s`,
`state_period_s`, `alert_interval_s`, `colours` / `states` (TWIN:DIALECT pairs),
`mapping_file`, `diagnostics_rate`.
"""

from __future__ import annotations

import os
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from stf_nodes import interfaces, runtime
from stf_nodes.bridges import fischertechnik as ft
from stf_nodes.bridges.mqtt_core import (
    CommandEvent,
    Delivery,
    Incidents,
    MirrorCommands,
    OpenOrder,
    OrderBook,
    conveyor_from,
    conveyor_statuses,
    request_key,
    station_status,
)
from stf_nodes.bridges.mqtt_link import Inbound, LinkEvent, LinkSettings, PahoLink, Publication
from stf_nodes.bridges.topic_map import Route, load_routes
from stf_nodes.process import exit_process

ProcessOrder = interfaces.get_service('stf_msgs/srv/ProcessOrder')
Trigger = interfaces.get_service('std_srvs/srv/Trigger')
HbwState = interfaces.get_message_class('stf_msgs/msg/HbwState')
VgrState = interfaces.get_message_class('stf_msgs/msg/VgrState')
ConveyorState = interfaces.get_message_class('stf_msgs/msg/ConveyorState')
Inventory = interfaces.get_message_class('stf_msgs/msg/Inventory')
InventorySlot = interfaces.get_message_class('stf_msgs/msg/InventorySlot')
Workpiece = interfaces.get_message_class('stf_msgs/msg/Workpiece')
CommandStatus = interfaces.get_message_class('stf_msgs/msg/CommandStatus')
Alert = interfaces.get_message_class('stf_msgs/msg/Alert')
DiagnosticArray = interfaces.get_message_class('diagnostic_msgs/msg/DiagnosticArray')
DiagnosticStatus = interfaces.get_message_class('diagnostic_msgs/msg/DiagnosticStatus')
KeyValue = interfaces.get_message_class('diagnostic_msgs/msg/KeyValue')
Time = interfaces.get_message_class('builtin_interfaces/msg/Time')

RELIABLE_EVENTS = runtime.QoSProfile(depth=100)
MODES = ('twin', 'mirror')
CONNECTION_REFUSED = 'CONNECTION_REFUSED'
#: f/i topics of a real factory that have no twin counterpart: received and counted, not used.
MIRROR_IGNORED = ('f/i/state/dsi', 'f/i/state/dso', 'f/i/nfc/ds', 'f/i/alert', 'f/i/state/twin')
_STATUS_OF = {
    name: int(getattr(Workpiece, name))
    for name in ('RAW_DOUGH', 'BAKED', 'PACKAGED', 'STORED', 'SHIPPED')
}
_STATUS_NAME = {value: name for name, value in _STATUS_OF.items()}


def _prefix(text: str) -> str:
    text = text.strip().strip('/')
    return f'{text}/' if text else ''


class MqttBridgeNode(runtime.Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__('mqtt_bridge', **kwargs)
        declare = self.declare_parameter
        mode = declare('mode', 'twin', description='twin (command the twin) or mirror').value
        host = declare(
            'broker_host',
            os.environ.get('MQTT_BROKER', '127.0.0.1'),
            description='MQTT broker host (default: env MQTT_BROKER, else 127.0.0.1)',
        ).value
        port = declare(
            'broker_port',
            int(os.environ.get('MQTT_PORT', '1883')),
            description='MQTT broker port (default: env MQTT_PORT, else 1883)',
        ).value
        protocol = str(
            declare(
                'protocol', '3.1.1', description='MQTT version: 3.1.1 or 5', dynamic_typing=True
            ).value
        )
        namespace = self.get_namespace().strip('/').replace('/', '-')
        client_id = declare(
            'client_id',
            f'stf-{mode}-{namespace}' if namespace else f'stf-{mode}',
            description='MQTT client id (stable: the broker keeps the session under it)',
        ).value
        username = declare(
            'username', os.environ.get('MQTT_USERNAME', ''), description='MQTT user name'
        ).value
        password = declare(
            'password',
            os.environ.get('MQTT_PASSWORD', ''),
            description='MQTT password (default: env MQTT_PASSWORD); the graph sees *** only',
            secret=lambda _: '***',
        ).value
        keepalive_s = declare(
            'keepalive_s', 60, description='MQTT keep-alive', unit='s', low=0
        ).value
        persistent = declare(
            'persistent_session',
            True,
            description='ask the broker to keep the session (queued QoS 1 orders) while away',
        ).value
        tls = declare('tls.enabled', False, description='connect with TLS').value
        tls_ca = declare(
            'tls.ca_file', '', description='CA certificates (PEM); empty: system'
        ).value
        tls_cert = declare('tls.cert_file', '', description='client certificate (PEM)').value
        tls_key = declare('tls.key_file', '', description='client key (PEM)').value
        tls_insecure = declare(
            'tls.insecure', False, description='skip the broker host name check'
        ).value
        self._prefix = _prefix(
            str(
                declare(
                    'topic_prefix',
                    '',
                    description='prefix of every MQTT topic (e.g. factory_2)',
                    dynamic_typing=True,
                ).value
            )
        )
        self._max_payload = declare(
            'max_payload_bytes',
            65536,
            description='larger MQTT payloads are refused',
            unit='bytes',
            low=0,
        ).value
        order_rate = declare(
            'order_rate', 2.0, description='orders per second admitted on average'
        ).value
        order_burst = declare('order_burst', 10, description='orders admitted in a burst').value
        dedup_window_s = declare(
            'dedup_window_s',
            300.0,
            description='an order repeated (same ts and type) within this is a duplicate',
            unit='s',
            low=0,
        ).value
        self._order_timeout_s = declare(
            'order_timeout_s',
            30.0,
            description='wall time an order waits for the scheduler',
            unit='s',
            low=0,
        ).value
        self._service_timeout_s = declare(
            'service_timeout_s',
            10.0,
            description='wall time a service call may take',
            unit='s',
            low=0,
        ).value
        self._state_period_s = declare(
            'state_period_s',
            1.0,
            description='station states are republished at least this often (wall time)',
            unit='s',
            low=0,
        ).value
        alert_interval_s = declare(
            'alert_interval_s',
            60.0,
            description='at most one alert per kind of bad input in this',
            unit='s',
            low=0,
        ).value
        colours = declare(
            'colours',
            ['STRAWBERRY:RED', 'VANILLA:WHITE', 'CHOCO:BLUE'],
            description='flavor:colour pairs',
        ).value
        states = declare(
            'states', ['RAW_DOUGH:RAW', 'BAKED:PROCESSED'], description='status:state pairs'
        ).value
        mapping_file = declare(
            'mapping_file', '', description='YAML file of generic graph <-> MQTT routes'
        ).value
        diagnostics_rate = declare(
            'diagnostics_rate', 1.0, description='diagnostics messages per second'
        ).value
        if mode not in MODES:
            raise ValueError(f'mode must be one of {", ".join(MODES)}, got {mode!r}')
        if self._max_payload < 256 or order_rate <= 0 or order_burst < 1 or diagnostics_rate <= 0:
            raise ValueError(
                'max_payload_bytes >= 256, order_rate > 0, order_burst >= 1 and '
                'diagnostics_rate > 0 are required'
            )
        self._mode = mode
        self._dialect = ft.Dialect.from_pairs(colours, states)
        self._incidents = Incidents(alert_interval_s=alert_interval_s)
        self._orders = OrderBook(dedup_window_s=dedup_window_s, rate=order_rate, burst=order_burst)
        self._traffic: Counter[str] = Counter()
        self._inbox: deque[Any] = deque()
        self._wake = self.create_guard_condition(self._on_mqtt)
        self._handlers: dict[str, Callable[[Inbound], bool]] = {}
        self._last_state: dict[str, tuple[ft.StationStatus, float]] = {}
        self._link_state = 'connecting'
        self._connections = 0

        self._alert_pub = self.create_publisher(Alert, 'stf/alerts', RELIABLE_EVENTS)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, 'diagnostics', 10)
        if mode == 'twin':
            self._setup_twin()
            subscriptions = [f'{self._prefix}f/o/#']
        else:
            self._setup_mirror()
            subscriptions = [f'{self._prefix}f/i/#']
        routes = load_routes(mapping_file) if mapping_file else ()
        subscriptions += self._setup_routes(routes)

        twin_state = f'{self._prefix}f/i/state/twin'
        now_ns = time.time_ns()
        settings = LinkSettings(
            host=host,
            port=port,
            client_id=client_id,
            protocol=str(protocol),
            username=username,
            password=password,
            keepalive_s=keepalive_s,
            persistent=persistent,
            tls=tls,
            tls_ca_file=tls_ca,
            tls_cert_file=tls_cert,
            tls_key_file=tls_key,
            tls_insecure=tls_insecure,
            subscriptions=tuple(subscriptions),
            will=Publication(
                topic=twin_state,
                payload=ft.StationStatus('twin', ft.CODE_OFF, 'offline').payload(now_ns),
                qos=1,
                retain=True,
            ),
            online=Publication(
                topic=twin_state,
                payload=ft.StationStatus('twin', ft.CODE_READY, f'online ({mode})', 1).payload(
                    now_ns
                ),
                qos=1,
                retain=True,
            ),
        )
        self._settings = settings
        self._link = PahoLink(settings, on_message=self._enqueue, on_event=self._enqueue)
        self.create_timer(0.2, self._on_tick)
        self.create_timer(1.0 / diagnostics_rate, self._on_diagnostics)
        self._link.start()
        self.get_logger().info(
            f'{mode} bridge to {settings.address} (MQTT {protocol}, client id {client_id!r}, '
            f'topics {self._prefix or "(no prefix)"}f/...)'
        )

    # -- set-up -----------------------------------------------------------------------------

    def _setup_twin(self) -> None:
        self._process_client = self.create_client(ProcessOrder, 'stf/order/process')
        self._reset_client = self.create_client(Trigger, 'stf/reset')
        self.create_subscription(HbwState, 'stf/hbw/state', self._on_hbw_state, 10)
        self.create_subscription(VgrState, 'stf/vgr/state', self._on_vgr_state, 10)
        self.create_subscription(ConveyorState, 'stf/conveyor/state', self._on_conveyor_state, 10)
        self.create_subscription(
            Inventory, 'stf/inventory', self._on_inventory, runtime.qos_profile_latched
        )
        self.create_subscription(CommandStatus, 'stf/commands', self._on_commands, RELIABLE_EVENTS)
        self._handlers[f'{self._prefix}f/o/order'] = self._on_order
        self._handlers[f'{self._prefix}f/o/state/ack'] = self._on_ack

    def _setup_mirror(self) -> None:
        self._mirror_pubs = {
            'hbw': self.create_publisher(HbwState, 'stf/hbw/state', 10),
            'vgr': self.create_publisher(VgrState, 'stf/vgr/state', 10),
            'conveyor': self.create_publisher(ConveyorState, 'stf/conveyor/state', 10),
        }
        self._inventory_pub = self.create_publisher(
            Inventory, 'stf/inventory', runtime.qos_profile_latched
        )
        self._commands_pub = self.create_publisher(CommandStatus, 'stf/commands', RELIABLE_EVENTS)
        self._mirror_commands = MirrorCommands()
        self._mirror_states: dict[str, ft.StationStatus] = {}
        self._mirror_slots: list[Any] = []
        for station in ('hbw', 'vgr', 'sld', 'mpo'):
            self._handlers[f'{self._prefix}f/i/state/{station}'] = self._on_mirror_state
        self._handlers[f'{self._prefix}f/i/stock'] = self._on_mirror_stock
        self._handlers[f'{self._prefix}f/i/order'] = self._on_mirror_order
        for topic in MIRROR_IGNORED:
            self._handlers[f'{self._prefix}{topic}'] = self._on_ignored

    def _setup_routes(self, routes: tuple[Route, ...]) -> list[str]:
        """Graph ↔ MQTT routes of the mapping file; returns the MQTT topics to subscribe."""
        subscribed = []
        for route in routes:
            topic = f'{self._prefix}{route.mqtt}'
            if route.direction == 'out':
                self.create_subscription(
                    interfaces.get_message_class(route.type_name),
                    route.graph,
                    lambda message, route=route, topic=topic: self._route_out(
                        route, topic, message
                    ),
                    RELIABLE_EVENTS,
                )
                continue
            if topic in self._handlers:
                raise ValueError(f'mapping file: MQTT topic {topic!r} is already bridged')
            if route.service:
                client = self.create_client(interfaces.get_service(route.type_name), route.service)
                self._handlers[topic] = lambda inbound, route=route, client=client: (
                    self._route_call(route, client, inbound)
                )
            else:
                publisher = self.create_publisher(
                    interfaces.get_message_class(route.type_name), route.graph, RELIABLE_EVENTS
                )
                self._handlers[topic] = lambda inbound, route=route, publisher=publisher: (
                    self._route_publish(route, publisher, inbound)
                )
            subscribed.append(topic)
        return subscribed

    # -- MQTT → executor ----------------------------------------------------------------------

    def _enqueue(self, item: Inbound | LinkEvent | Callable[[], None]) -> None:
        """From paho's or Zenoh's threads: queue, then run on the executor."""
        self._inbox.append(item)
        self._wake.trigger()

    def _on_mqtt(self) -> None:
        while self._inbox:
            item = self._inbox.popleft()
            try:
                if isinstance(item, Inbound):
                    self._on_inbound(item)
                elif isinstance(item, LinkEvent):
                    self._on_link_event(item)
                else:
                    item()
            except Exception as exc:  # this may run on paho's thread, which must stay alive
                self._incident('INTERNAL_ERROR', f'{type(exc).__name__}: {exc}')

    def _on_inbound(self, inbound: Inbound) -> None:
        self._traffic['received'] += 1
        acknowledge = True
        try:
            if len(inbound.payload) > self._max_payload:
                raise ft.BadInputError(
                    ft.OVERSIZED,
                    f'payload of {len(inbound.payload)} bytes (limit {self._max_payload})',
                )
            handler = self._handlers.get(inbound.topic)
            if handler is None:
                raise ft.BadInputError(ft.UNEXPECTED_TOPIC, 'no such topic in this bridge')
            acknowledge = handler(inbound)
        except ft.BadInputError as exc:
            self._incident(exc.kind, f'{inbound.topic[:120]}: {exc.message}')
            if inbound.topic == f'{self._prefix}f/o/order':
                self._publish_order(ft.OrderUpdate(ft.REFUSED, message=exc.message))
        finally:
            if acknowledge:
                self._link.ack(inbound.generation, inbound.mid, inbound.qos)

    def _ack(self, deliveries: tuple[Delivery, ...]) -> None:
        for delivery in deliveries:
            self._link.ack(delivery.generation, delivery.mid, delivery.qos)

    def _on_link_event(self, event: LinkEvent) -> None:
        logger = self.get_logger()
        if event.kind == 'connected':
            self._connections += 1
            self._link_state = 'connected'
            again = 'reconnected' if self._connections > 1 else 'connected'
            logger.info(
                f'{again} to {self._settings.address} (session present: {event.session_present})'
            )
            return
        if event.kind == 'refused':
            self._link_state = f'refused: {event.reason}'
            self._incident(CONNECTION_REFUSED, f'{self._settings.address} refused: {event.reason}')
            return
        if self._link_state == 'connected':
            logger.warning(
                f'lost {self._settings.address} ({event.reason}); reconnecting with backoff'
            )
        self._link_state = f'disconnected: {event.reason}'
        self._orders.lost_connection()

    # -- bad input --------------------------------------------------------------------------

    def _incident(self, kind: str, detail: str) -> None:
        notice = self._incidents.record(kind, detail, time.monotonic())
        if notice is None:
            return
        if notice.first:
            self.get_logger().warning(
                f'{kind}: {detail} (further {kind} incidents are counted, not logged)'
            )
            message = detail
        else:
            message = (
                f'{notice.since_last} more {kind} incidents ({notice.count} in all); last: {detail}'
            )
        self._alert_pub.publish(
            Alert(
                header=self._header(),
                severity=Alert.WARNING,
                component_id=self.get_name(),
                code=f'MQTT_{kind}',
                message=message[:500],
                value=float(notice.count),
                threshold=0.0,
            )
        )

    # -- publishing -------------------------------------------------------------------------

    def _header(self, frame_id: str = '') -> Any:
        header = interfaces.get_message_class('std_msgs/msg/Header')(frame_id=frame_id)
        header.stamp = self.get_clock().now().to_msg()
        return header

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _publish(self, topic: str, payload: bytes, *, qos: int, retain: bool = False) -> None:
        self._traffic['sent'] += 1
        self._link.publish(
            Publication(topic=f'{self._prefix}{topic}', payload=payload, qos=qos, retain=retain)
        )

    def _publish_order(self, update: ft.OrderUpdate) -> None:
        self._publish('f/i/order', self._dialect.order_payload(update, self._now_ns()), qos=1)

    # -- twin: graph → MQTT -----------------------------------------------------------------

    def _publish_station(self, status: ft.StationStatus) -> None:
        # On change, and as a heartbeat in wall time: under a fast sim clock the stations
        # publish many times a wall second, which a dashboard does not need.
        now_s = time.monotonic()
        last = self._last_state.get(status.station)
        if last is not None and last[0] == status and now_s - last[1] < self._state_period_s:
            return
        self._last_state[status.station] = (status, now_s)
        payload = status.payload(self._now_ns())
        self._publish(f'f/i/state/{status.station}', payload, qos=1, retain=True)

    def _on_hbw_state(self, message: Any) -> None:
        self._publish_station(station_status('hbw', message.state, message.task))

    def _on_vgr_state(self, message: Any) -> None:
        self._publish_station(station_status('vgr', message.state, message.task))

    def _on_conveyor_state(self, message: Any) -> None:
        for status in conveyor_statuses(message.state, message.task, message.oven_busy):
            self._publish_station(status)

    def _on_inventory(self, message: Any) -> None:
        items = [
            ft.StockItem(
                location=entry.slot,
                workpiece_id=entry.workpiece.id,
                flavor=entry.workpiece.flavor,
                status=_STATUS_NAME.get(entry.workpiece.status, 'UNKNOWN'),
            )
            for entry in message.slots
        ]
        payload = self._dialect.stock_payload(items, self._now_ns())
        self._publish('f/i/stock', payload, qos=1, retain=True)

    def _on_commands(self, message: Any) -> None:
        for update in self._orders.on_command(message.command_id, message.status, message.message):
            self._publish_order(update)

    # -- twin: MQTT → graph -----------------------------------------------------------------

    def _on_order(self, inbound: Inbound) -> bool:
        order = self._dialect.parse_order(inbound.payload)
        if inbound.retain:
            raise ft.BadInputError(
                ft.RETAINED_ORDER,
                'retained order ignored: an order is a command, publish it without the retain flag',
            )
        delivery = Delivery(inbound.generation, inbound.mid, inbound.qos) if inbound.qos else None
        admission = self._orders.admit(order, delivery, dup=inbound.dup, now_s=time.monotonic())
        self._ack(admission.ack_now)
        if admission.status == 'refused':
            assert admission.refusal is not None
            self._incident(ft.RATE_LIMITED, admission.refusal.message)
            self._publish_order(admission.refusal)
        elif admission.status == 'duplicate':
            self.get_logger().info(
                f'duplicate order {order.colour} (ts {order.ts or "none"}) ignored',
                throttle_duration_sec=10.0,
            )
        else:
            assert admission.order is not None
            self._submit(admission.order)
        return False  # acknowledged above or once the scheduler answers

    def _submit(self, opened: OpenOrder) -> None:
        if not self._process_client.service_is_ready():
            self.get_logger().info(
                f'order {opened.order.colour} waits for the scheduler (stf/order/process)',
                throttle_duration_sec=10.0,
            )
            return  # retried by _on_tick until order_timeout_s
        opened.in_flight = True
        key = request_key(f'{self._prefix}f/o/order', opened.order)
        future = self._process_client.call_async(
            ProcessOrder.Request(flavor=opened.order.flavor, request_key=key),
            timeout_sec=self._service_timeout_s,
        )
        future.add_done_callback(
            lambda done: self._enqueue(lambda: self._on_process_reply(opened, done))
        )

    def _on_process_reply(self, opened: OpenOrder, future: runtime.Future) -> None:
        opened.in_flight = False
        error = future.exception()
        if error is None:
            reply = future.result()
            if reply.accepted:
                deliveries, updates = self._orders.accepted(opened, reply.command_id)
                self.get_logger().info(f'order {opened.order.colour} → command {reply.command_id}')
            else:
                deliveries, updates = self._orders.refused(opened, reply.message)
                self.get_logger().info(f'order {opened.order.colour} refused: {reply.message}')
        elif not self._process_client.service_is_ready():
            return  # the scheduler went away before answering: retried by _on_tick
        else:
            # Timed out or failed on the way: the scheduler may still have queued it, so it is
            # not sent again; the reason tells where to look.
            message = f'scheduler did not confirm ({error}); see stf/command/list'
            deliveries, updates = self._orders.refused(opened, message, state=ft.FAILED)
            self.get_logger().error(f'order {opened.order.colour}: {message}')
        self._ack(deliveries)
        for update in updates:
            self._publish_order(update)

    def _on_ack(self, inbound: Inbound) -> bool:
        self._dialect.parse_ack(inbound.payload)
        if not self._reset_client.service_is_ready():
            self.get_logger().warning('f/o/state/ack: no scheduler to reset (stf/reset)')
            return True
        future = self._reset_client.call_async(
            Trigger.Request(), timeout_sec=self._service_timeout_s
        )

        def answered(done: runtime.Future) -> None:
            error = done.exception()
            outcome = error if error is not None else done.result().message
            self.get_logger().info(f'f/o/state/ack → stf/reset: {outcome}')
            self._link.ack(inbound.generation, inbound.mid, inbound.qos)

        future.add_done_callback(lambda done: self._enqueue(lambda: answered(done)))
        return False

    # -- mirror: MQTT → graph ---------------------------------------------------------------

    def _stamp(self, ts_ns: int | None) -> Any:
        nanoseconds = ts_ns if ts_ns is not None else self._now_ns()
        return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)

    def _on_mirror_state(self, inbound: Inbound) -> bool:
        station = inbound.topic.rsplit('/', 1)[1]
        status, ts_ns = self._dialect.parse_state(station, inbound.payload)
        previous = self._mirror_states.get(station)
        self._mirror_states[station] = status
        if status.code in (ft.CODE_ERROR, ft.CODE_WAIT_ERROR) and (
            previous is None or previous.code != status.code
        ):
            self._alert_pub.publish(
                Alert(
                    header=self._header(station),
                    severity=Alert.ERROR,
                    component_id=station,
                    code='STATION_ERROR',
                    message=f'{station}: {status.description or "error"} (code {status.code})',
                    value=float(status.code),
                )
            )
        if station in ('sld', 'mpo'):
            code, task, oven_busy = conveyor_from(
                self._mirror_states.get('sld'), self._mirror_states.get('mpo')
            )
            message = ConveyorState(state=code, task=task, oven_busy=oven_busy)
            target = 'conveyor'
        else:
            task = status.description if status.active else ''
            message = (HbwState if station == 'hbw' else VgrState)(state=status.code, task=task)
            if station == 'hbw':
                message.slots = list(self._mirror_slots)
            target = station
        message.header.stamp = self._stamp(ts_ns)
        message.header.frame_id = target
        self._mirror_pubs[target].publish(message)
        return True

    def _on_mirror_stock(self, inbound: Inbound) -> bool:
        items, ts_ns = self._dialect.parse_stock(inbound.payload)
        self._mirror_slots = [
            InventorySlot(
                slot=item.location,
                carrier_id=item.location,  # a real rack has a container in every location
                workpiece=Workpiece(
                    id=item.workpiece_id,
                    flavor=item.flavor,
                    status=_STATUS_OF.get(item.status, Workpiece.STATUS_UNKNOWN),
                )
                if item.workpiece_id
                else Workpiece(),
            )
            for item in items
        ]
        message = Inventory(slots=self._mirror_slots)
        message.header.stamp = self._stamp(ts_ns)
        message.header.frame_id = 'hbw'
        self._inventory_pub.publish(message)
        return True

    def _on_mirror_order(self, inbound: Inbound) -> bool:
        update = self._dialect.parse_order_update(inbound.payload)
        event = self._mirror_commands.update(update, self._now_ns())
        if event is not None:
            self._commands_pub.publish(self._command_message(event))
        return True

    def _command_message(self, event: CommandEvent) -> Any:
        def stamp(nanoseconds: int) -> Any:
            return self._stamp(nanoseconds) if nanoseconds else Time()

        return CommandStatus(
            command_id=event.command_id,
            kind=CommandStatus.PROCESS,
            status=event.status,
            flavor=self._dialect.flavor_of(event.colour) if event.colour else '',
            message=event.message,
            created=stamp(event.created_ns),
            started=stamp(event.started_ns),
            finished=stamp(event.finished_ns),
        )

    def _on_ignored(self, inbound: Inbound) -> bool:
        self._traffic['ignored'] += 1
        return True

    # -- generic routes ---------------------------------------------------------------------

    def _route_out(self, route: Route, topic: str, message: Any) -> None:
        self._traffic['sent'] += 1
        self._link.publish(
            Publication(
                topic=topic,
                payload=ft.dumps(interfaces.to_data(message)),
                qos=route.qos,
                retain=route.retain,
            )
        )

    def _decode_route(self, route: Route, payload: bytes, type_name: str) -> Any:
        try:
            return interfaces.from_data(type_name, ft.loads_object(payload))
        except interfaces.InterfaceError as exc:
            raise ft.BadInputError(ft.INVALID_FIELD, str(exc)[:200]) from None

    def _route_publish(self, route: Route, publisher: runtime.Publisher, inbound: Inbound) -> bool:
        publisher.publish(self._decode_route(route, inbound.payload, route.type_name))
        return True

    def _route_call(self, route: Route, client: runtime.Client, inbound: Inbound) -> bool:
        srv_type = interfaces.get_service(route.type_name)
        request = self._decode_route(route, inbound.payload, srv_type.Request.__msgtype__)
        if not client.service_is_ready():
            self.get_logger().warning(
                f'{inbound.topic}: no server for {route.service}', throttle_duration_sec=10.0
            )
            return True
        future = client.call_async(request, timeout_sec=self._service_timeout_s)

        def answered(done: runtime.Future) -> None:
            error = done.exception()
            if route.reply:
                body = (
                    {'error': str(error)}
                    if error is not None
                    else interfaces.to_data(done.result())
                )
                self._publish(route.reply, ft.dumps(body), qos=1)
            self._link.ack(inbound.generation, inbound.mid, inbound.qos)

        future.add_done_callback(lambda done: self._enqueue(lambda: answered(done)))
        return False

    # -- timers -----------------------------------------------------------------------------

    def _on_tick(self) -> None:
        if self._mode != 'twin':
            return
        now_s = time.monotonic()
        for opened in list(self._orders.waiting):
            if opened.in_flight:
                continue
            if now_s - opened.received_s > self._order_timeout_s:
                message = (
                    f'scheduler (stf/order/process) not available for {self._order_timeout_s:g} s'
                )
                deliveries, updates = self._orders.refused(opened, message)
                self.get_logger().error(f'order {opened.order.colour} refused: {message}')
                self._ack(deliveries)
                for update in updates:
                    self._publish_order(update)
            else:
                self._submit(opened)

    def _on_diagnostics(self) -> None:
        counts = {
            **{f'messages_{name}': value for name, value in self._traffic.items()},
            **{f'orders_{name}': value for name, value in self._orders.counts.items()},
            **{
                f'bad_input_{kind.lower()}': value for kind, value in self._incidents.counts.items()
            },
        }
        connected = self._link.connected
        status = DiagnosticStatus(
            level=DiagnosticStatus.OK if connected else DiagnosticStatus.ERROR,
            name=f'{self.get_name()}: broker',
            message=f'{self._link_state} ({self._settings.address})',
            hardware_id=self._settings.address,
            values=[KeyValue(key='mode', value=self._mode)]
            + [KeyValue(key=key, value=str(value)) for key, value in sorted(counts.items())],
        )
        self._diagnostics_pub.publish(DiagnosticArray(header=self._header(), status=[status]))

    def destroy_node(self) -> None:
        if not self.destroyed and hasattr(self, '_link'):
            now_ns = time.time_ns()
            offline = Publication(
                topic=f'{self._prefix}f/i/state/twin',
                payload=ft.StationStatus('twin', ft.CODE_OFF, 'offline').payload(now_ns),
                qos=1,
                retain=True,
            )
            self._link.stop([offline])
        super().destroy_node()


NODE_CLASS = MqttBridgeNode


def main(args: list[str] | None = None) -> int:
    return runtime.run_node(MqttBridgeNode, args)


if __name__ == '__main__':
    exit_process(main())
