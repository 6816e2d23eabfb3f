"""The graph mirrored onto DDS with real rclpy, and DDS topics mirrored into the graph.

The `dds_bridge` node owns one `DdsMirror`: an rclpy context and node (same name and namespace
as the bridge node, same `ROS_DOMAIN_ID`, rmw_fastrtps_cpp by default) spun by a
multi-threaded rclpy executor, beside the bridge's Zenoh node.

- **Topics, Zenoh → DDS.** Every topic with a publisher in the Zenoh graph gets a raw Zenoh
  subscription and an rclpy publisher; samples are forwarded as CDR bytes (`publish(bytes)`),
  never decoded. The QoS is the Zenoh publishers' (reliable if any is, transient-local if any
  is, the largest depth), so `/stf/inventory` stays latched for late DDS subscribers.
- **Topics, DDS → Zenoh.** Every topic with a publisher in the DDS graph gets a raw rclpy
  subscription (`raw=True`) and a Zenoh publisher with the DDS publishers' QoS.
- **No echo loops.** A topic with publishers on both sides has both routes; each side drops the
  samples of the bridge's own publishers, recognised by publisher GID (Zenoh: the attachment's
  GID; DDS: `MessageInfo.publisher_gid`, looked up once per new GID in the DDS graph).
  Endpoints of nodes named like the bridge (another factory's bridge too, and the bridge's
  `_services` node) are never mirrored.
- **Services, Zenoh → DDS.** Every Zenoh service server gets an rclpy service of the same name
  and type (own callback group, so a slow call blocks nothing else) that forwards the request
  as CDR to the graph and answers with the graph's reply. DDS has no error reply: when the graph
  does not answer (timeout, no server, error reply) the DDS client gets an empty response whose
  `message` field, where the type has one, says why, and the bridge logs an error. The standard
  parameter services of every node are services like any other, so an rclpy
  `AsyncParameterClient` lists and sets `/hbw` parameters.
- **Services, DDS → Zenoh.** Every service a DDS node offers (and the graph does not) is
  served in the graph by the bridge's second node, `<bridge>_services`, on an executor of its
  own, so a slow DDS server never holds up topics; the request is passed to an rclpy client
  (converted through CDR), a DDS server that does not answer within `service_timeout_s` makes
  an error reply in the graph. DDS nodes' parameter services come along, so `stf param` works
  on them.
- **Scope.** A bridge mirrors the names under its own namespace (the root: everything), so each
  factory of a fleet can run its own bridge.
- **Types.** A type is mirrored only when both sides know it: the rclpy typesupport must
  import (`pkg.msg`/`pkg.srv`) and the RIHS01 hash announced on the Zenoh side (or read from
  the rosidl type description under `share/` for the DDS side) must equal our type store's.
  Anything else (no typesupport, e.g. `tf2_msgs` which has no PyPI wheel; a type name collision
  with another definition) is skipped with one log line per topic and type.

Graph changes are reconciled on a worker thread: at once when the Zenoh graph changes, and every
`discovery_period_s` for the DDS graph (rclpy has no graph callback).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rclpy
import rclpy.node
import rclpy.qos
import zenoh
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.exceptions import InvalidHandle
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.serialization import deserialize_message, serialize_message
from rclpy.signals import SignalHandlerOptions

from stf_nodes import interfaces, runtime
from stf_nodes.runtime import names
from stf_nodes.runtime.names import Token

#: Depth of a mirrored DDS publisher whose history DDS discovery does not tell.
DEFAULT_DEPTH = 10


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The bridge node's parameters."""

    discovery_period_s: float = 0.5
    service_timeout_s: float = 10.0


@dataclass(frozen=True)
class Qos:
    """The QoS a mirrored endpoint is created with."""

    reliable: bool = True
    latched: bool = False
    depth: int = DEFAULT_DEPTH

    @staticmethod
    def merge(profiles: list[Qos]) -> Qos:
        """What serves every publisher of a topic: reliable, latched and as deep as any."""
        return Qos(
            reliable=any(p.reliable for p in profiles),
            latched=any(p.latched for p in profiles),
            depth=max(p.depth for p in profiles),
        )

    def covers(self, other: Qos) -> bool:
        """Whether an endpoint with this QoS serves publishers that need `other`."""
        return (
            (self.reliable or not other.reliable)
            and (self.latched or not other.latched)
            and self.depth >= other.depth
        )

    def to_rclpy(self) -> rclpy.qos.QoSProfile:
        return rclpy.qos.QoSProfile(
            history=rclpy.qos.HistoryPolicy.KEEP_LAST,
            depth=self.depth,
            reliability=rclpy.qos.ReliabilityPolicy.RELIABLE
            if self.reliable
            else rclpy.qos.ReliabilityPolicy.BEST_EFFORT,
            durability=rclpy.qos.DurabilityPolicy.TRANSIENT_LOCAL
            if self.latched
            else rclpy.qos.DurabilityPolicy.VOLATILE,
        )

    def to_runtime(self) -> runtime.QoSProfile:
        return runtime.QoSProfile(
            depth=self.depth,
            reliability=runtime.ReliabilityPolicy.RELIABLE
            if self.reliable
            else runtime.ReliabilityPolicy.BEST_EFFORT,
            durability=runtime.DurabilityPolicy.TRANSIENT_LOCAL
            if self.latched
            else runtime.DurabilityPolicy.VOLATILE,
        )


def _zenoh_qos(token: Token) -> Qos:
    profile = runtime.QoSProfile.from_keyexpr(token.qos)
    return Qos(
        reliable=profile.reliability == runtime.ReliabilityPolicy.RELIABLE,
        latched=profile.durability == runtime.DurabilityPolicy.TRANSIENT_LOCAL,
        depth=max(profile.depth, 1) if profile.history == runtime.HistoryPolicy.KEEP_LAST else 1000,
    )


def _dds_qos(profile: rclpy.qos.QoSProfile) -> Qos:
    return Qos(
        reliable=profile.reliability == rclpy.qos.ReliabilityPolicy.RELIABLE,
        latched=profile.durability == rclpy.qos.DurabilityPolicy.TRANSIENT_LOCAL,
        depth=profile.depth or DEFAULT_DEPTH,
    )


def rclpy_type(type_name: str) -> Any:
    """The rclpy class of `pkg/msg/Name` or `pkg/srv/Name`; LookupError without typesupport."""
    package, kind, name = type_name.split('/')
    try:
        found = getattr(importlib.import_module(f'{package}.{kind}'), name)
    except (ImportError, AttributeError) as exc:
        raise LookupError(f'no rclpy typesupport for {type_name}') from exc
    load = getattr(type(found), '__import_type_support__', None)
    if load is None:  # e.g. the checkout's stf_msgs first on sys.path (python -m from there)
        raise LookupError(f'{type_name} from {found.__module__} is not a rosidl-generated class')
    try:
        load()
    except ImportError as exc:
        raise LookupError(f'typesupport of {type_name} does not load: {exc}') from exc
    return found


def rosidl_type_hash(type_name: str) -> str:
    """The RIHS01 hash rosidl generated for `type_name`: its type description under
    `share/` of an ament prefix (`AMENT_PREFIX_PATH`, then this venv, where the wheels put it)."""
    package, kind, name = type_name.split('/')
    prefixes = [
        *filter(None, os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep)),
        sys.prefix,
    ]
    for prefix in prefixes:
        path = Path(prefix, 'share', package, kind, f'{name}.json')
        if path.is_file():
            try:
                return str(json.loads(path.read_text())['type_hashes'][0]['hash_string'])
            except (OSError, ValueError, LookupError) as exc:
                raise LookupError(f'unreadable type description {path}: {exc}') from exc
    raise LookupError(f'no type description of {type_name} in {prefixes}')


@functools.cache
def _both_sides(type_name: str) -> tuple[str, str] | str:
    """(our hash, rosidl's hash) of a type both sides know, else why not (cached: the graph is
    reconciled often)."""
    try:
        ours = interfaces.type_hash(type_name)
        rclpy_type(type_name)
        return ours, rosidl_type_hash(type_name)
    except (LookupError, interfaces.InterfaceError, ValueError) as exc:
        return str(exc)


@dataclass
class _Route:
    """One direction of one mirrored topic."""

    type_name: str
    qos: Qos
    subscription: Any
    publisher: Any


@dataclass
class _Mirrored:
    """What the mirror has created, by name."""

    to_dds: dict[str, _Route] = field(default_factory=dict)
    to_zenoh: dict[str, _Route] = field(default_factory=dict)
    services_to_dds: dict[str, tuple[str, Any, Any]] = field(default_factory=dict)
    services_to_zenoh: dict[str, tuple[str, Any, Any]] = field(default_factory=dict)


class DdsMirror:
    """Mirrors between the graph of `node` (Zenoh) and DDS (see the module docstring)."""

    def __init__(self, node: runtime.Node, settings: Settings) -> None:
        self.node = node
        self.settings = settings
        self.log = node.get_logger()
        self.bridge_name = node.get_name()
        namespace = node.get_namespace()
        self.scope = '' if namespace == '/' else namespace.rstrip('/')
        self.context = rclpy.Context()
        rclpy.init(
            args=[],
            context=self.context,
            domain_id=node.context.domain_id,
            signal_handler_options=SignalHandlerOptions.NO,  # the node's run loop owns signals
        )
        self.dds = rclpy.node.Node(
            self.bridge_name,
            namespace=namespace,
            context=self.context,
            start_parameter_services=False,
            enable_rosout=False,
        )
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self.executor.add_node(self.dds)
        # DDS services are served in the graph by a node of their own on its own executor, so
        # a slow DDS server never holds up the forwarding of topics.
        servers_name = f'{self.bridge_name}_services'
        self.own_names = {self.bridge_name, servers_name}
        self.servers = runtime.Node(
            servers_name,
            namespace=namespace,
            context=node.context,
            cli_args=['-r', f'__node:={servers_name}'],
            start_parameter_services=False,
            start_parameter_event_publisher=False,
            enable_rosout=False,
        )
        self.servers_executor = runtime.SingleThreadedExecutor(context=node.context)
        self.servers_executor.add_node(self.servers)
        self.services_group = ReentrantCallbackGroup()
        self._mirrored = _Mirrored()
        self._lock = threading.Lock()
        self._own_zenoh_gids: set[bytes] = set()
        self._dds_gid_is_own: dict[bytes, bool] = {}
        self._warned: set[str] = set()
        self._stop = threading.Event()
        self._changed = threading.Event()
        self._threads = [
            threading.Thread(target=self._spin, name='dds-executor', daemon=True),
            threading.Thread(target=self._work, name='dds-graph', daemon=True),
            threading.Thread(target=self.servers_executor.spin, name='dds-servers', daemon=True),
        ]
        self.log.info(
            f'DDS participant on domain {node.context.domain_id} '
            f'({rclpy.get_rmw_implementation_identifier()}), mirroring '
            f'{self.scope or "/"}'
        )

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        self.node.context.graph.add_listener(self._changed.set)
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self.node.context.graph.remove_listener(self._changed.set)
        self._stop.set()
        self._changed.set()
        spinner, worker, servers = self._threads
        worker.join(timeout=5)
        self.servers_executor.shutdown()
        servers.join(timeout=5)
        self.servers.destroy_node()
        # No thread may still be inside rclpy's C++ code when Python ends (that aborts the
        # process): Zenoh's delivery threads stop forwarding (`_stop`, then no subscriptions),
        # rclpy's threads are joined.
        mirrored = self._mirrored
        for route in mirrored.to_dds.values():
            self._drop_to_dds(route)
        for route in mirrored.to_zenoh.values():
            self._drop_to_zenoh(route)
        mirrored.to_dds.clear()
        mirrored.to_zenoh.clear()
        self.executor.shutdown(timeout_sec=5)
        self.context.try_shutdown()
        spinner.join(timeout=5)
        self.dds.destroy_node()

    def _spin(self) -> None:
        while self.context.ok() and not self._stop.is_set():
            try:
                self.executor.spin_once(timeout_sec=0.2)
            except InvalidHandle:  # an entity the graph worker destroyed while rclpy waited
                continue
            except ExternalShutdownException:
                return

    def _work(self) -> None:
        while not self._stop.is_set():
            self._changed.wait(self.settings.discovery_period_s)
            if self._stop.is_set():
                return
            self._changed.clear()
            try:
                self._reconcile()
            except Exception as exc:  # the bridge must outlive a failed look-up
                self._warn_once(f'reconcile {exc!r}', f'dds bridge: graph update failed: {exc!r}')

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.log.warning(message)

    def _in_scope(self, name: str) -> bool:
        return not self.scope or name == self.scope or name.startswith(self.scope + '/')

    # -- what each side offers --------------------------------------------------------------

    def _zenoh_offers(self) -> tuple[dict[str, tuple[str, Qos]], dict[str, str]]:
        """Zenoh topics with a foreign publisher (→ type, QoS) and services (→ type)."""
        publishers: dict[str, list[Token]] = {}
        services: dict[str, str] = {}
        for token in self.node.context.graph.tokens():
            if token.node_name in self.own_names or not self._in_scope(token.name):
                continue
            if token.kind == names.PUBLISHER:
                publishers.setdefault(token.name, []).append(token)
            elif token.kind == names.SERVICE and self._mirrorable(
                token.name, token.type_name, token.type_hash
            ):
                services.setdefault(token.name, token.type_name)
        topics = {}
        for topic, tokens in publishers.items():
            found = {t.type_name for t in tokens}
            if len(found) > 1:
                self._warn_once(f'types {topic}', f'{topic}: not mirrored, several types {found}')
                continue
            if self._mirrorable(topic, tokens[0].type_name, tokens[0].type_hash):
                topics[topic] = (tokens[0].type_name, Qos.merge([_zenoh_qos(t) for t in tokens]))
        return topics, services

    def _dds_offers(self) -> dict[str, tuple[str, Qos]]:
        """DDS topics with a publisher that is not a bridge's (→ type, QoS)."""
        topics = {}
        for topic, types in self.dds.get_topic_names_and_types():
            if not self._in_scope(topic):
                continue
            infos = [
                info
                for info in self.dds.get_publishers_info_by_topic(topic)
                if info.node_name != self.bridge_name
            ]
            if not infos:
                continue
            if len(types) > 1:
                self._warn_once(f'types {topic}', f'{topic}: not mirrored, several types {types}')
                continue
            hash_ = str(infos[0].topic_type_hash)
            if self._mirrorable(topic, types[0], hash_ if hash_.startswith('RIHS01_') else None):
                topics[topic] = (types[0], Qos.merge([_dds_qos(i.qos_profile) for i in infos]))
        return topics

    def _dds_services(self, zenoh_services: dict[str, str]) -> dict[str, str]:
        """Services that DDS nodes (not a bridge) offer and the graph does not (→ type)."""
        found: dict[str, str] = {}
        for node_name, namespace in self.dds.get_node_names_and_namespaces():
            if node_name == self.bridge_name:
                continue
            offered = self.dds.get_service_names_and_types_by_node(node_name, namespace)
            for name, types in offered:
                if name in zenoh_services or name in found or not self._in_scope(name):
                    continue
                if len(types) == 1 and self._mirrorable(name, types[0], None):
                    found[name] = types[0]
        return found

    def _mirrorable(self, name: str, type_name: str, announced_hash: str | None) -> bool:
        """Both sides know `type_name` and agree on its hash; else one log line, False."""
        known = _both_sides(type_name)
        if isinstance(known, str):
            self._warn_once(f'type {name} {type_name}', f'{name}: not mirrored ({known})')
            return False
        ours, theirs = known
        hashes = {theirs, announced_hash or ours}
        if hashes != {ours}:
            self._warn_once(
                f'hash {name} {type_name}',
                f'{name}: not mirrored, {type_name} has several definitions '
                f'({", ".join(sorted(hashes | {ours}))}); here: {ours}',
            )
            return False
        return True

    # -- reconciling -----------------------------------------------------------------------

    def _reconcile(self) -> None:
        zenoh_topics, zenoh_services = self._zenoh_offers()
        dds_topics = self._dds_offers()
        mirrored = self._mirrored
        self._sync(mirrored.to_dds, zenoh_topics, self._route_to_dds, self._drop_to_dds)
        self._sync(mirrored.to_zenoh, dds_topics, self._route_to_zenoh, self._drop_to_zenoh)
        to_dds = mirrored.services_to_dds
        for name in [n for n, s in to_dds.items() if zenoh_services.get(n) != s[0]]:
            _, service, client = to_dds.pop(name)
            self.dds.destroy_service(service)
            self.node.destroy_client(client)
        for name, type_name in zenoh_services.items():
            if name not in to_dds:
                to_dds[name] = (type_name, *self._service_to_dds(name, type_name))
                self.log.info(f'service {name} ({type_name}): graph → DDS')
        dds_services = self._dds_services(zenoh_services)
        to_zenoh = mirrored.services_to_zenoh
        for name in [n for n, s in to_zenoh.items() if dds_services.get(n) != s[0]]:
            _, service, client = to_zenoh.pop(name)
            self.servers.destroy_service(service)
            self.dds.destroy_client(client)
        for name, type_name in dds_services.items():
            if name not in to_zenoh:
                to_zenoh[name] = (type_name, *self._service_to_zenoh(name, type_name))
                self.log.info(f'service {name} ({type_name}): DDS → graph')

    def _sync(
        self,
        routes: dict[str, _Route],
        wanted: dict[str, tuple[str, Qos]],
        create: Callable[[str, str, Qos], _Route],
        drop: Callable[[_Route], None],
    ) -> None:
        # A route is kept while its QoS still serves the publishers (a command line tool's
        # short-lived publisher must not make it lose samples by being recreated).
        stale = [
            topic
            for topic, route in routes.items()
            if topic not in wanted
            or wanted[topic][0] != route.type_name
            or not route.qos.covers(wanted[topic][1])
        ]
        for topic in stale:
            drop(routes.pop(topic))
        for topic, (type_name, qos) in wanted.items():
            if topic not in routes:
                routes[topic] = create(topic, type_name, qos)

    def _route_to_dds(self, topic: str, type_name: str, qos: Qos) -> _Route:
        publisher = self.dds.create_publisher(rclpy_type(type_name), topic, qos.to_rclpy())

        def forward(payload: bytes, info: dict[str, Any]) -> None:
            if not self._stop.is_set() and info['publisher_gid'] not in self._own_zenoh_gids:
                with contextlib.suppress(InvalidHandle):  # the route was dropped meanwhile
                    publisher.publish(payload)

        subscription = self.node.create_subscription(
            interfaces.get_message_class(type_name), topic, forward, qos.to_runtime(), raw=True
        )
        self.log.info(f'topic {topic} ({type_name}): graph → DDS')
        return _Route(type_name, qos, subscription, publisher)

    def _drop_to_dds(self, route: _Route) -> None:
        self.node.destroy_subscription(route.subscription)
        self.dds.destroy_publisher(route.publisher)

    def _route_to_zenoh(self, topic: str, type_name: str, qos: Qos) -> _Route:
        publisher = self.node.create_serialized_publisher(type_name, topic, qos.to_runtime())
        self._own_zenoh_gids.add(publisher.gid)

        def forward(payload: bytes, info: dict[str, Any]) -> None:
            gid = (info.get('publisher_gid') or {}).get('data', b'')
            if self._is_own_dds(topic, gid):
                return
            try:
                publisher.publish_serialized(payload)
            except (ValueError, zenoh.ZError) as exc:  # too large; the route was dropped
                self._warn_once(f'forward {topic}', f'{topic}: a DDS sample not forwarded: {exc}')

        subscription = self.dds.create_subscription(
            rclpy_type(type_name), topic, forward, qos.to_rclpy(), raw=True
        )
        self.log.info(f'topic {topic} ({type_name}): DDS → graph')
        return _Route(type_name, qos, subscription, publisher)

    def _is_own_dds(self, topic: str, gid: bytes) -> bool:
        """Whether a DDS publisher GID is the bridge's (looked up once per GID)."""
        if gid not in self._dds_gid_is_own:
            self._dds_gid_is_own[gid] = any(
                bytes(info.endpoint_gid) == gid and info.node_name == self.bridge_name
                for info in self.dds.get_publishers_info_by_topic(topic)
            )
        return self._dds_gid_is_own[gid]

    def _drop_to_zenoh(self, route: _Route) -> None:
        self.dds.destroy_subscription(route.subscription)
        self._own_zenoh_gids.discard(route.publisher.gid)
        self.node.destroy_publisher(route.publisher)

    def _service_to_dds(self, name: str, type_name: str) -> tuple[Any, Any]:
        srv_class = rclpy_type(type_name)
        client = self.node.create_client(interfaces.get_service(type_name), name)
        timeout = self.settings.service_timeout_s

        def forward(request: Any, response: Any) -> Any:
            try:
                reply = client.call_serialized(serialize_message(request), timeout_sec=timeout)
                return deserialize_message(reply, srv_class.Response)
            except Exception as exc:  # DDS has no error reply: an empty response, logged
                reason = f'dds_bridge: {name} failed in the graph: {exc}'
                self.log.error(reason)
                if isinstance(getattr(response, 'message', None), str):
                    response.message = reason
                return response

        service = self.dds.create_service(
            srv_class, name, forward, callback_group=self.services_group
        )
        return service, client

    def _service_to_zenoh(self, name: str, type_name: str) -> tuple[Any, Any]:
        srv_class = rclpy_type(type_name)
        srv_type = interfaces.get_service(type_name)
        response_type = srv_type.Response.__msgtype__
        client = self.dds.create_client(srv_class, name, callback_group=self.services_group)
        timeout = self.settings.service_timeout_s

        def forward(request: Any, response: Any) -> Any:
            """Runs on the servers' executor; raising makes an error reply in the graph."""
            future = client.call_async(
                deserialize_message(interfaces.serialize(request), srv_class.Request)
            )
            answered = threading.Event()
            future.add_done_callback(lambda _: answered.set())
            if not answered.wait(timeout):
                client.remove_pending_request(future)
                raise TimeoutError(f'no answer from the DDS server of {name} within {timeout} s')
            return interfaces.deserialize(serialize_message(future.result()), response_type)

        return self.servers.create_service(srv_type, name, forward), client
