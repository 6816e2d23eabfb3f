"""The live ROS graph as the source of a `FoxgloveServer` (the foxglove_bridge node's work).

What clients see:

- **Topics.** Every topic with a publisher and a known type is a channel with its `ros2msg`
  schema; samples are forwarded as CDR without decoding. Channels follow the graph: a topic
  that appears is advertised, one whose last publisher leaves is removed. A graph subscription
  exists only while a client is subscribed (transient-local when a publisher is, so latched
  state such as `/stf/inventory` arrives at once; the last latched sample is also replayed to
  clients that subscribe later).
- **Derived channels** (`derived.py`, the same for bag playback): `/foxglove/rosout`
  (`foxglove.Log` from `/rosout`); per factory namespace `NS` with station states,
  `NS/foxglove/scene` (`foxglove.SceneUpdate`, see `scene.py`) and `NS/foxglove/tf`
  (`foxglove.FrameTransforms` from `NS/tf`). They decode only while subscribed.
- **Services** of the graph, callable with CDR requests; each request is checked against its
  type, then forwarded as CDR with a timeout; the reply goes back as CDR.
- **Parameters** of every node that serves the standard parameter services, named
  `/node.parameter`; set requests go to the node, refusals come back as status messages;
  subscribed parameters are polled and changes pushed.
- **Connection graph**: publishers, subscribers and service providers by node.
- **Client publishing** into graph topics, CDR or JSON, checked against the type first.

Threads: graph changes, parameter polling and slow look-ups run on one worker thread; samples
are handled by the node's executor; SDK callbacks arrive on the SDK's threads.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import foxglove

from stf_nodes import interfaces, runtime
from stf_nodes.bridges.foxglove.derived import (
    SCENE,
    STATIONS,
    DerivedChannel,
    derived_channels,
)
from stf_nodes.bridges.foxglove.scene import FactoryGeometry
from stf_nodes.bridges.foxglove.schemas import (
    BadRequestError,
    GraphSummary,
    from_foxglove_parameter,
    parameter_name,
    ros_schema,
    split_parameter_name,
    to_cdr,
    to_foxglove_parameter,
)
from stf_nodes.bridges.foxglove.server import ClientChannelInfo, FoxgloveServer, ServerHandler
from stf_nodes.runtime import names
from stf_nodes.runtime.entities import MAX_MESSAGE_BYTES
from stf_nodes.runtime.names import InvalidNameError, Token
from stf_nodes.runtime.parameters import Parameter, value_from_msg

#: How long graph changes are collected before channels are updated (a factory starting up
#: declares hundreds of tokens within a few milliseconds).
SETTLE_S = 0.05


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The bridge node's parameters that shape what clients see."""

    topic_whitelist: tuple[str, ...] = ('.*',)
    service_whitelist: tuple[str, ...] = ('.*',)
    param_whitelist: tuple[str, ...] = ('.*',)
    subscription_depth: int = 100
    service_timeout_s: float = 5.0
    parameter_timeout_s: float = 2.0
    parameter_poll_s: float = 2.0


def _matcher(patterns: Iterable[str]) -> Callable[[str], bool]:
    compiled = [re.compile(p) for p in patterns]
    return lambda name: any(p.fullmatch(name) for p in compiled)


@dataclass
class _Tap:
    """One graph subscription shared by every consumer of a topic."""

    topic: str
    type_name: str
    latched: bool
    subscription: Any = None
    consumers: dict[str, Callable[[bytes, int], None]] = field(default_factory=dict)
    last: bytes | None = None  # the last sample of a latched topic, for late clients


class GraphSource(ServerHandler):
    """Feeds a FoxgloveServer from the graph seen by `node` (see the module docstring)."""

    def __init__(self, node: runtime.Node, settings: Settings) -> None:
        self.node = node
        self.settings = settings
        self.server: FoxgloveServer | None = None
        self._topic_allowed = _matcher(settings.topic_whitelist)
        self._service_allowed = _matcher(settings.service_whitelist)
        self._param_allowed = _matcher(settings.param_whitelist)
        self._lock = threading.RLock()
        self._channel_types: dict[str, str] = {}  # ROS channels: topic → type
        self._derived: dict[str, DerivedChannel] = {}  # derived channel topic → channel
        self._taps: dict[str, _Tap] = {}
        self._clients: dict[str, runtime.Client] = {}  # service name → client
        self._publishers: dict[str, tuple[runtime.Publisher, int]] = {}  # topic → (pub, users)
        self._param_subscriptions: set[str] = set()
        self._param_values: dict[str, Any] = {}
        self._graph_subscribed = False
        self._last_graph: GraphSummary | None = None
        self._warned: set[str] = set()
        self._tasks: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._graph_changed = threading.Event()
        self._worker = threading.Thread(target=self._work, name='foxglove-graph', daemon=True)

    # -- life cycle -----------------------------------------------------------------------

    def start(self, server: FoxgloveServer) -> None:
        self.server = server
        self.node.context.graph.add_listener(self._graph_changed.set)
        self._graph_changed.set()
        self._worker.start()

    def stop(self) -> None:
        self.node.context.graph.remove_listener(self._graph_changed.set)
        self._tasks.put(None)
        if self._worker.is_alive():
            self._worker.join(timeout=5)
        with self._lock:
            taps, self._taps = list(self._taps.values()), {}
        for tap in taps:
            if tap.subscription is not None:
                self.node.destroy_subscription(tap.subscription)

    def _now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.node.get_logger().warning(message)

    def _work(self) -> None:
        next_poll = time.monotonic()
        while True:
            try:
                task = self._tasks.get(timeout=SETTLE_S)
            except queue.Empty:
                task = None if not self.node.context.ok else _IDLE
            if task is None:
                return
            try:
                if task is not _IDLE:
                    task()
                if self._graph_changed.is_set():
                    time.sleep(SETTLE_S)
                    self._graph_changed.clear()
                    self._reconcile()
                if time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + self.settings.parameter_poll_s
                    self._poll_parameters()
            except Exception as exc:  # the bridge must outlive a failed look-up
                self._warn_once(f'worker {exc!r}', f'foxglove bridge worker: {exc!r}')

    # -- the graph → channels and services ------------------------------------------------

    def _reconcile(self) -> None:
        assert self.server is not None
        tokens = self.node.context.graph.tokens()
        wanted = self._wanted_channels(tokens)
        with self._lock:
            current = dict(self._channel_types)
        for topic, type_name in current.items():
            if wanted.get(topic) != type_name:
                with self._lock:
                    del self._channel_types[topic]
                self.server.unadvertise(topic)
        for topic, type_name in wanted.items():
            if current.get(topic) != type_name:
                try:
                    schema = ros_schema(type_name)
                except interfaces.InterfaceError as exc:
                    self._warn_once(f'schema {type_name}', f'cannot show {topic}: {exc}')
                    continue
                with self._lock:
                    self._channel_types[topic] = type_name
                self.server.advertise_ros(topic, type_name, schema)
        self._reconcile_derived(wanted)
        self._reconcile_services(tokens)
        self._publish_graph(tokens)

    def _wanted_channels(self, tokens: list[Token]) -> dict[str, str]:
        """Topics with a publisher whose type we know: topic → type."""
        types: dict[str, set[str]] = {}
        for token in tokens:
            if token.kind == names.PUBLISHER and self._topic_allowed(token.name):
                types.setdefault(token.name, set()).add(token.type_name)
        wanted = {}
        for topic, found in types.items():
            known = sorted(t for t in found if _known(t))
            if len(found) > 1:
                self._warn_once(
                    f'types {topic}', f'{topic} has several types {sorted(found)}; showing one'
                )
            if not known:
                self._warn_once(
                    f'unknown {topic}', f'cannot show {topic}: no definition of {sorted(found)}'
                )
                continue
            wanted[topic] = known[0]
        return wanted

    def _reconcile_derived(self, channels: dict[str, str]) -> None:
        assert self.server is not None
        wanted = derived_channels(channels)
        with self._lock:
            stale = [t for t, d in self._derived.items() if wanted.get(t) != d.spec]
            for topic in stale:
                del self._derived[topic]
        for topic in stale:
            self.server.unadvertise(topic)
        for topic, spec in wanted.items():
            with self._lock:
                if topic in self._derived:
                    continue
                derived = self._derived[topic] = DerivedChannel(topic, spec)
            self.server.advertise(topic, derived.make)

    def _reconcile_services(self, tokens: list[Token]) -> None:
        assert self.server is not None
        found: dict[str, str] = {}
        for token in tokens:
            if token.kind == names.SERVICE and self._service_allowed(token.name):
                if _known_service(token.type_name):
                    found.setdefault(token.name, token.type_name)
                else:
                    self._warn_once(
                        f'service {token.name}',
                        f'cannot offer {token.name}: no definition of {token.type_name}',
                    )
        self.server.set_services(
            {
                name: (type_name, self._service_call(name, type_name))
                for name, type_name in found.items()
            }
        )
        with self._lock:
            gone = [name for name in self._clients if name not in found]
            clients = [self._clients.pop(name) for name in gone]
        for client in clients:
            self.node.destroy_client(client)

    def _publish_graph(self, tokens: list[Token]) -> None:
        assert self.server is not None
        if not self._graph_subscribed:
            return
        summary = GraphSummary.of(tokens)
        if summary != self._last_graph:
            self._last_graph = summary
            self.server.publish_connection_graph(summary.to_connection_graph())

    # -- subscriptions --------------------------------------------------------------------

    def on_first_subscriber(self, topic: str) -> None:
        with self._lock:
            derived = self._derived.get(topic)
            type_name = self._channel_types.get(topic)
        if derived is not None:
            # A scene builder keeps what it saw last time: a paused factory still has a
            # scene, and the first new state corrects what changed meanwhile (deletions too).
            for source in derived.sources:
                self._consume(source, topic, self._derived_forwarder(derived, source))
            if derived.kind == SCENE:
                self._tasks.put(lambda: self._load_geometry(topic))
        elif type_name is not None:
            self._consume(topic, 'raw', self._forwarder(topic))

    def on_subscribe(self, topic: str) -> None:
        assert self.server is not None
        with self._lock:
            derived = self._derived.get(topic)
            tap = self._taps.get(topic)
            latched = tap.last if tap is not None else None
        snapshot = derived.snapshot() if derived is not None else None
        if snapshot is not None:
            self.server.log(topic, snapshot, self._now_ns())
        elif latched is not None:
            self.server.log(topic, latched, self._now_ns())

    def on_last_unsubscribed(self, topic: str) -> None:
        with self._lock:
            derived = self._derived.get(topic)
        if derived is not None:
            for source in derived.sources:
                self._release(source, topic)
        else:
            self._release(topic, 'raw')

    def subscribed_topics(self) -> dict[str, list[str]]:
        """Graph topics the bridge subscribes to now, with their consumers (for tests)."""
        with self._lock:
            return {t: sorted(tap.consumers) for t, tap in self._taps.items() if tap.subscription}

    def _consume(self, topic: str, key: str, consumer: Callable[[bytes, int], None]) -> None:
        """Add a consumer of `topic`; the first one creates the graph subscription."""
        with self._lock:
            tap = self._taps.get(topic)
            if tap is None:
                publishers = self.node.context.graph.endpoints(topic, names.PUBLISHER)
                known = [p for p in publishers if _known(p.type_name)]
                if not known:
                    return  # not (or no longer) in the graph: the channel is about to go
                latched = any(
                    runtime.QoSProfile.from_keyexpr(p.qos).durability
                    == runtime.DurabilityPolicy.TRANSIENT_LOCAL
                    for p in known
                )
                tap = self._taps[topic] = _Tap(topic, known[0].type_name, latched)
            tap.consumers[key] = consumer
            if tap.subscription is None:
                qos = runtime.QoSProfile(
                    depth=self.settings.subscription_depth,
                    durability=runtime.DurabilityPolicy.TRANSIENT_LOCAL
                    if tap.latched
                    else runtime.DurabilityPolicy.VOLATILE,
                )
                tap.subscription = self.node.create_subscription(
                    interfaces.get_message_class(tap.type_name),
                    topic,
                    lambda payload, t=tap: self._on_sample(t, payload),
                    qos,
                    raw=True,
                )

    def _release(self, topic: str, key: str) -> None:
        with self._lock:
            tap = self._taps.get(topic)
            if tap is None:
                return
            tap.consumers.pop(key, None)
            if tap.consumers:
                return
            del self._taps[topic]
        if tap.subscription is not None:
            self.node.destroy_subscription(tap.subscription)

    def _on_sample(self, tap: _Tap, payload: bytes) -> None:
        if tap.latched:
            tap.last = payload
        now = self._now_ns()
        for key, consumer in list(tap.consumers.items()):
            try:
                consumer(payload, now)
            except interfaces.SerdeError as exc:  # decoders only: raw CDR is never touched
                self._warn_once(f'decode {tap.topic} {key}', f'{tap.topic}: dropped ({exc})')

    def _forwarder(self, topic: str) -> Callable[[bytes, int], None]:
        def forward(payload: bytes, now: int) -> None:
            assert self.server is not None
            self.server.log(topic, payload, now)

        return forward

    def _derived_forwarder(
        self, derived: DerivedChannel, source: str
    ) -> Callable[[bytes, int], None]:
        def forward(payload: bytes, now: int) -> None:
            assert self.server is not None
            with self._lock:
                current = self._derived.get(derived.topic) is derived
            if not current:
                return  # the channel was removed meanwhile
            message = derived.convert(source, payload)
            if message is not None:
                self.server.log(derived.topic, message, now)

        return forward

    def _load_geometry(self, topic: str) -> None:
        """The factory's dimensions from its station nodes' parameters (defaults if absent)."""
        with self._lock:
            scene = self._derived.get(topic)
        if scene is None:
            return
        parameters = {
            station: self._node_parameters(f'{scene.spec.namespace}/{station}')
            for station in STATIONS
        }
        try:
            geometry = FactoryGeometry.from_parameters(**parameters)
        except ValueError as exc:
            self._warn_once(f'geometry {topic}', f'{topic}: default dimensions ({exc})')
            return
        scene.builder.geometry = geometry

    # -- services -------------------------------------------------------------------------

    def _service_call(self, name: str, type_name: str) -> Callable[[str, bytes], bytes]:
        def call(encoding: str, payload: bytes) -> bytes:
            request = to_cdr(f'{type_name}_Request', encoding, payload, limit=MAX_MESSAGE_BYTES)
            client = self._client(name, type_name)
            try:
                reply = client.call_serialized(request, timeout_sec=self.settings.service_timeout_s)
            except (runtime.ServiceError, TimeoutError) as exc:
                raise ServiceCallError(str(exc)) from exc
            return reply

        return call

    def _client(self, name: str, type_name: str) -> runtime.Client:
        with self._lock:
            client = self._clients.get(name)
            if client is None or client.srv_type.name != type_name:
                client = self._clients[name] = self.node.create_client(
                    interfaces.get_service(type_name), name
                )
            return client

    # -- parameters -----------------------------------------------------------------------

    def _parameter_nodes(self) -> list[str]:
        """Nodes that serve the parameter services."""
        return sorted(
            token.name[: -len('/list_parameters')]
            for token in self.node.context.graph.tokens()
            if token.kind == names.SERVICE and token.name.endswith('/list_parameters')
        )

    def _call(self, node_fqn: str, service: str, request: Any) -> Any:
        type_name = f'rcl_interfaces/srv/{service}'
        snake = ''.join('_' + c.lower() if c.isupper() else c for c in service).lstrip('_')
        client = self._client(f'{node_fqn}/{snake}', type_name)
        return client.call(request, timeout_sec=self.settings.parameter_timeout_s)

    def _node_parameters(self, node_fqn: str, wanted: list[str] | None = None) -> dict[str, Any]:
        """Values of a node's parameters (all of them when `wanted` is None); {} if it is gone."""
        try:
            if wanted is None:
                listed = self._call(
                    node_fqn,
                    'ListParameters',
                    interfaces.get_service('rcl_interfaces/srv/ListParameters').Request(),
                )
                wanted = list(listed.result.names)
            got = self._call(
                node_fqn,
                'GetParameters',
                interfaces.get_service('rcl_interfaces/srv/GetParameters').Request(names=wanted),
            )
        except (runtime.ServiceError, TimeoutError) as exc:
            self._warn_once(f'params {node_fqn}', f'parameters of {node_fqn}: {exc}')
            return {}
        values = {}
        for name, message in zip(wanted, got.values, strict=False):
            value = value_from_msg(message)
            if value is not None:
                values[name] = value
        return values

    def _by_node(self, full_names: Iterable[str]) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for full in full_names:
            node_fqn, name = split_parameter_name(full)
            grouped.setdefault(node_fqn, []).append(name)
        return grouped

    def get_parameters(self, names: list[str]) -> list[foxglove.Parameter]:
        if names:
            grouped = self._by_node(n for n in names if self._param_allowed(n))
        else:
            grouped = {node: None for node in self._parameter_nodes()}  # type: ignore[misc]
        found = []
        for node_fqn, wanted in grouped.items():
            for name, value in self._node_parameters(node_fqn, wanted).items():
                full = parameter_name(node_fqn, name)
                if self._param_allowed(full):
                    found.append(to_foxglove_parameter(full, value))
        return found

    def set_parameters(self, parameters: list[foxglove.Parameter]) -> list[foxglove.Parameter]:
        assert self.server is not None
        requested: dict[str, list[Parameter]] = {}
        for parameter in parameters:
            if not self._param_allowed(parameter.name):
                raise BadRequestError(f'{parameter.name} is not exposed (param_whitelist)')
            node_fqn, name = split_parameter_name(parameter.name)
            value = from_foxglove_parameter(parameter)
            requested.setdefault(node_fqn, []).append(Parameter(name, value))
        srv = interfaces.get_service('rcl_interfaces/srv/SetParameters')
        for node_fqn, values in requested.items():
            request = srv.Request(parameters=[p.to_parameter_msg() for p in values])
            try:
                results = self._call(node_fqn, 'SetParameters', request).results
            except (runtime.ServiceError, TimeoutError) as exc:
                raise BadRequestError(f'cannot set parameters of {node_fqn}: {exc}') from exc
            for parameter, result in zip(values, results, strict=False):
                if not result.successful:
                    self.server.report(
                        f'set {node_fqn}.{parameter.name}',
                        f'{node_fqn} refused {parameter.name} = {parameter.value!r}: '
                        f'{result.reason}',
                    )
        return self.get_parameters([p.name for p in parameters])

    def on_parameters_subscribe(self, names: list[str]) -> None:
        with self._lock:
            self._param_subscriptions.update(names)

    def on_parameters_unsubscribe(self, names: list[str]) -> None:
        with self._lock:
            self._param_subscriptions.difference_update(names)

    def _poll_parameters(self) -> None:
        assert self.server is not None
        with self._lock:
            subscribed = sorted(self._param_subscriptions)
        if not subscribed:
            return
        changed = []
        for parameter in self.get_parameters(subscribed):
            value = parameter.get_value()
            if self._param_values.get(parameter.name, _MISSING) != value:
                self._param_values[parameter.name] = value
                changed.append(parameter)
        if changed:
            self.server.publish_parameter_values(changed)

    # -- connection graph -----------------------------------------------------------------

    def on_connection_graph_subscribe(self) -> None:
        self._graph_subscribed = True
        self._last_graph = None
        self._tasks.put(lambda: self._publish_graph(self.node.context.graph.tokens()))

    def on_connection_graph_unsubscribe(self) -> None:
        self._graph_subscribed = False

    # -- client publishing ----------------------------------------------------------------

    def on_client_advertise(self, channel: ClientChannelInfo) -> None:
        type_name = channel.schema_name
        if channel.encoding not in ('cdr', 'json'):
            raise BadRequestError(
                f'cannot publish to {channel.topic}: encoding {channel.encoding!r} is not '
                'supported (use cdr or json)'
            )
        try:
            msg_class = interfaces.get_message_class(type_name)
            topic = names.resolve_name(channel.topic, namespace='/', node_name='_')
        except (interfaces.InterfaceError, InvalidNameError) as exc:
            raise BadRequestError(f'cannot publish to {channel.topic!r}: {exc}') from exc
        in_graph = {
            t.type_name
            for kind in (names.PUBLISHER, names.SUBSCRIPTION)
            for t in self.node.context.graph.endpoints(topic, kind)
        }
        if in_graph and msg_class.__msgtype__ not in in_graph:
            raise BadRequestError(
                f'cannot publish {msg_class.__msgtype__} to {topic}: it carries '
                f'{", ".join(sorted(in_graph))}'
            )
        with self._lock:
            publisher, users = self._publishers.get(topic, (None, 0))
            if publisher is not None and publisher.type_name != msg_class.__msgtype__:
                raise BadRequestError(
                    f'cannot publish {msg_class.__msgtype__} to {topic}: a client publishes '
                    f'{publisher.type_name} there'
                )
            if publisher is None:
                publisher = self.node.create_publisher(msg_class, topic, 10)
            self._publishers[topic] = (publisher, users + 1)

    def on_client_message(self, channel: ClientChannelInfo, data: bytes) -> None:
        topic = names.resolve_name(channel.topic, namespace='/', node_name='_')
        with self._lock:
            publisher, _ = self._publishers.get(topic, (None, 0))
        if publisher is None:
            raise BadRequestError(f'{channel.topic} is not advertised by this client')
        try:
            payload = to_cdr(publisher.type_name, channel.encoding, data, limit=MAX_MESSAGE_BYTES)
        except BadRequestError as exc:
            raise BadRequestError(f'message to {topic} dropped: {exc}') from exc
        publisher.publish_serialized(payload)

    def on_client_unadvertise(self, channel: ClientChannelInfo) -> None:
        topic = names.resolve_name(channel.topic, namespace='/', node_name='_')
        with self._lock:
            publisher, users = self._publishers.get(topic, (None, 0))
            if publisher is None:
                return
            if users > 1:
                self._publishers[topic] = (publisher, users - 1)
                return
            del self._publishers[topic]
        self.node.destroy_publisher(publisher)


class ServiceCallError(RuntimeError):
    """A forwarded service call that failed (no server, timeout, error reply)."""


_IDLE: Any = object()  # the worker's "no task, just look at the graph"
_MISSING: Any = object()


def _known(type_name: str) -> bool:
    try:
        interfaces.get_message_class(type_name)
    except interfaces.InterfaceError:
        return False
    return True


def _known_service(type_name: str) -> bool:
    try:
        interfaces.get_service(type_name)
    except interfaces.InterfaceError:
        return False
    return True
