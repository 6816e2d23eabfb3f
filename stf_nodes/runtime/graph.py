"""The ROS graph as seen through rmw_zenoh liveliness tokens.

One liveliness subscriber per context on `@ros2_lv/<domain>/**` (with history, so tokens that
existed before it are delivered too) keeps a set of live tokens. Node, topic and service lists
are derived from that set, whoever declared the tokens: our nodes or ROS 2 nodes on rmw_zenoh.
Listeners (`add_listener`) hear about every change, for bridges that mirror the graph.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import zenoh

from stf_nodes.runtime import names
from stf_nodes.runtime.names import Token


class Graph:
    """Live set of graph tokens with rclpy-shaped queries."""

    INITIAL_QUERY_TIMEOUT_S = 2.0

    def __init__(self, *, session: zenoh.Session, domain_id: int) -> None:
        self._tokens: dict[str, Token] = {}
        self._lock = threading.Condition()
        self._listeners: list[Callable[[], None]] = []
        key = f'{names.LIVELINESS_PREFIX}/{domain_id}/**'
        self._subscriber = session.liveliness().declare_subscriber(
            key, zenoh.handlers.Callback(self._on_token), history=True
        )
        # The subscriber's history arrives asynchronously; a liveliness query ends once every
        # peer and the router have answered, so the graph is complete when it is done. Replies
        # go to a callback: a bounded channel could fill up with the tokens this session
        # already knows before we get to read it.
        done = threading.Event()
        session.liveliness().get(
            key,
            zenoh.handlers.Callback(self._on_reply, done.set),
            timeout=self.INITIAL_QUERY_TIMEOUT_S,
        )
        done.wait(self.INITIAL_QUERY_TIMEOUT_S + 1.0)

    def _on_reply(self, reply: zenoh.Reply) -> None:
        if reply.ok is not None:
            self._on_token(reply.ok)

    def _on_token(self, sample: zenoh.Sample) -> None:
        key = str(sample.key_expr)
        token = names.parse_token(key)
        if token is None:
            return
        with self._lock:
            if sample.kind == zenoh.SampleKind.PUT:
                changed = self._tokens.get(key) != token
                self._tokens[key] = token
            else:
                changed = self._tokens.pop(key, None) is not None
            self._lock.notify_all()
            listeners = list(self._listeners) if changed else []
        for listener in listeners:
            listener()

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener()` after every change of the token set.

        It runs on the Zenoh thread that delivered the change: keep it short (set an event and
        do the work elsewhere) and do not declare or undeclare Zenoh entities from it.
        """
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def tokens(self) -> list[Token]:
        with self._lock:
            return list(self._tokens.values())

    def wait_for(self, predicate: Callable[[Graph], bool], timeout_s: float | None) -> bool:
        """Block until `predicate(graph)` holds or the timeout passes."""
        with self._lock:
            return self._lock.wait_for(lambda: predicate(self), timeout=timeout_s)

    def node_names_and_namespaces(self) -> list[tuple[str, str]]:
        return sorted({(t.node_name, t.namespace) for t in self.tokens() if t.kind == names.NODE})

    def _names_and_types(self, kinds: tuple[str, ...]) -> list[tuple[str, list[str]]]:
        found: dict[str, set[str]] = {}
        for token in self.tokens():
            if token.kind in kinds:
                found.setdefault(token.name, set()).add(token.type_name)
        return [(name, sorted(types)) for name, types in sorted(found.items())]

    def topic_names_and_types(self) -> list[tuple[str, list[str]]]:
        return self._names_and_types((names.PUBLISHER, names.SUBSCRIPTION))

    def service_names_and_types(self) -> list[tuple[str, list[str]]]:
        return self._names_and_types((names.SERVICE,))

    def endpoints(self, name: str, kind: str) -> list[Token]:
        return [t for t in self.tokens() if t.kind == kind and t.name == name]

    def count(self, name: str, kind: str) -> int:
        return len(self.endpoints(name, kind))

    def close(self) -> None:
        self._subscriber.undeclare()
