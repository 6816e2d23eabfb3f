"""The runtime context: one Zenoh session per process (or per explicit Context).

Session set-up follows rmw_zenoh's default session config: peer mode, connect to the router at
`tcp/127.0.0.1:7447` (`ZENOH_ROUTER` overrides the endpoint), listen on an ephemeral loopback
port, multicast scouting off, gossip scouting on so peers find and connect to each other
directly (the router does not forward data between peers), timestamping on (needed by
transient-local caches). As in rmw_zenoh, `ZENOH_SESSION_CONFIG_URI` (nodes) and
`ZENOH_ROUTER_CONFIG_URI` (`stf router`) name a json5 config file to use instead, and
`ZENOH_CONFIG_OVERRIDE` (`key=json5 value` pairs separated by `;`, for example
`connect/endpoints=["tcp/198.51.100.2:7447"]`) changes single keys of either. That is how
routers are linked across hosts, how TLS and access control are switched on: see
config/zenoh/ and the README section "Several hosts".

Like rmw_zenoh, a context checks that a router is reachable before it is used: it waits up to
`ZENOH_ROUTER_CHECK_ATTEMPTS` seconds (default 5; 0 waits forever, a negative value skips the
check) and then fails with a clear message instead of hanging. Once running, Zenoh reconnects
to the router by itself when it comes back.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING

import zenoh

from stf_nodes.runtime.arguments import RosArguments, parse_ros_args

if TYPE_CHECKING:
    from stf_nodes.runtime.graph import Graph
    from stf_nodes.runtime.node import Node

DEFAULT_ROUTER = 'tcp/127.0.0.1:7447'


class RouterUnavailableError(RuntimeError):
    """No Zenoh router answered within the configured wait."""


def router_endpoint() -> str:
    return os.environ.get('ZENOH_ROUTER', DEFAULT_ROUTER)


def domain_id() -> int:
    raw = os.environ.get('ROS_DOMAIN_ID', '0') or '0'
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValueError(f'ROS_DOMAIN_ID must be an integer, got {raw!r}') from exc
    if not 0 <= value <= 232:
        raise ValueError(f'ROS_DOMAIN_ID must be in 0..232, got {value}')
    return value


def session_config(
    *, mode: str = 'peer', listen: list[str] | None = None, connect: list[str] | None = None
) -> zenoh.Config:
    """A Zenoh config shaped like rmw_zenoh's default session (or router) config.

    A file named by ``ZENOH_SESSION_CONFIG_URI`` (peer) or ``ZENOH_ROUTER_CONFIG_URI``
    (router) replaces the defaults; ``ZENOH_CONFIG_OVERRIDE`` is applied last.
    """
    variable = 'ZENOH_SESSION_CONFIG_URI' if mode == 'peer' else 'ZENOH_ROUTER_CONFIG_URI'
    uri = os.environ.get(variable)
    config: zenoh.Config
    if uri:
        config = zenoh.Config.from_file(uri)
        if mode == 'router':  # one file can serve the router and the nodes
            config.insert_json5('mode', json.dumps(mode))
    else:
        config = zenoh.Config()
        settings = {
            'mode': mode,
            'listen/endpoints': listen if listen is not None else ['tcp/127.0.0.1:0'],
            'connect/endpoints': connect if connect is not None else [router_endpoint()],
            'scouting/multicast/enabled': False,
            'scouting/gossip/enabled': True,
            'timestamping/enabled': True,
        }
        if mode == 'peer':
            settings['scouting/gossip/autoconnect'] = ['router', 'peer']
        else:
            settings['routing/router/peers_failover_brokering'] = False
        for key, value in settings.items():
            config.insert_json5(key, json.dumps(value))
    for key, value in config_overrides():
        try:
            config.insert_json5(key, value)
        except zenoh.ZError as exc:
            # Zenoh's message quotes the value: never for a password or a key.
            why = 'value not shown' if any(s in key for s in SECRET_KEYS) else str(exc)
            raise ValueError(
                f'ZENOH_CONFIG_OVERRIDE: {key} takes a json5 value of its type ({why})'
            ) from None
    return config


#: Parts of Zenoh config keys whose values are secrets.
SECRET_KEYS = ('password', 'private_key', 'key_pem')


def config_overrides() -> list[tuple[str, str]]:
    """``ZENOH_CONFIG_OVERRIDE`` as (key, json5 value) pairs, in order (rmw_zenoh's format:
    ``key=value;key=value``, so a value cannot hold a ``;``)."""
    pairs = []
    for entry in os.environ.get('ZENOH_CONFIG_OVERRIDE', '').split(';'):
        if not entry.strip():
            continue
        key, sep, value = entry.partition('=')
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f'ZENOH_CONFIG_OVERRIDE: expected key=value, got {entry!r}')
        pairs.append((key.strip(), value.strip()))
    return pairs


def _router_wait_s() -> float | None:
    raw = os.environ.get('ZENOH_ROUTER_CHECK_ATTEMPTS', '5')
    try:
        attempts = int(raw)
    except ValueError as exc:
        raise ValueError(f'ZENOH_ROUTER_CHECK_ATTEMPTS must be an integer, got {raw!r}') from exc
    if attempts < 0:
        return None
    return float('inf') if attempts == 0 else float(attempts)


def _router_unavailable(wait_s: float) -> str:
    """Why the session found no router, in the words of every other stf command."""
    from stf_nodes.runtime.router import router_problem

    endpoint = router_endpoint()
    problem = router_problem(endpoint)
    if problem is not None and not problem.startswith('no Zenoh router'):
        return problem  # something else holds the port
    return (
        f'no Zenoh router reachable at {endpoint} after {wait_s:g} s; '
        'start one with `stf router` (or `ros2 run rmw_zenoh_cpp rmw_zenohd`), '
        'set ZENOH_ROUTER to its endpoint, or raise ZENOH_ROUTER_CHECK_ATTEMPTS'
    )


class Context:
    """Owns the Zenoh session, the entity id counter and the graph cache of one process."""

    def __init__(self, args: list[str] | None = None) -> None:
        self.arguments: RosArguments = parse_ros_args(list(args or []))
        self.domain_id = domain_id()
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._session: zenoh.Session | None = None
        self._graph: Graph | None = None
        self.nodes: weakref.WeakSet[Node] = weakref.WeakSet()
        self.ok = True
        # Zenoh delivers to Python threads that live as long as their entities; a program that
        # ends without shutdown() would wait for them forever. Close before threads are joined.
        threading._register_atexit(_shutdown_at_exit, weakref.ref(self))  # type: ignore[attr-defined]

    @property
    def session(self) -> zenoh.Session:
        with self._lock:
            if self._session is None:
                self._session = self._open()
            return self._session

    def _open(self) -> zenoh.Session:
        session = zenoh.open(session_config())
        wait_s = _router_wait_s()
        if wait_s is not None:
            deadline = time.monotonic() + wait_s
            while not list(session.info.routers_zid()):
                if time.monotonic() >= deadline:
                    session.close()
                    raise RouterUnavailableError(_router_unavailable(wait_s))
                time.sleep(0.05)
        return session

    @property
    def zid(self) -> str:
        return str(self.session.zid())

    @property
    def graph(self) -> Graph:
        from stf_nodes.runtime.graph import Graph

        session = self.session
        with self._lock:
            if self._graph is None:
                self._graph = Graph(session=session, domain_id=self.domain_id)
            return self._graph

    def next_id(self) -> int:
        return next(self._ids)

    def shutdown(self) -> None:
        """Destroy the nodes still alive, then close the session."""
        for node in list(self.nodes):
            node.destroy_node()
        with self._lock:
            self.ok = False
            graph, self._graph = self._graph, None
            session, self._session = self._session, None
        if graph is not None:
            graph.close()
        if session is not None:
            session.close()


def _shutdown_at_exit(context_ref: weakref.ref[Context]) -> None:
    context = context_ref()
    if context is not None and context.ok:
        context.shutdown()


_default_context: Context | None = None
_default_lock = threading.Lock()


def init(args: list[str] | None = None, *, context: Context | None = None) -> Context:
    """Initialise the default context from command-line arguments (like `rclpy.init`)."""
    global _default_context
    with _default_lock:
        if context is not None:
            return context
        if _default_context is not None and _default_context.ok:
            raise RuntimeError('init() called twice without shutdown()')
        _default_context = Context(args)
        return _default_context


def get_default_context() -> Context:
    with _default_lock:
        if _default_context is None or not _default_context.ok:
            raise RuntimeError('call stf_nodes.runtime.init() before creating nodes')
        return _default_context


def shutdown(*, context: Context | None = None) -> None:
    global _default_context
    target = context
    with _default_lock:
        if target is None:
            target, _default_context = _default_context, None
    if target is not None:
        target.shutdown()
