"""A Foxglove WebSocket server fed by any data source (the live graph, a bag player).

`FoxgloveServer` wraps the official foxglove-sdk server (`foxglove.start_server`, its own
`foxglove.Context`) and knows nothing about Zenoh or bags. What feeds it is a
`ServerHandler`: the live bridge (`stf_nodes.foxglove_bridge_node`) implements it on the
graph, a playback source implements it on a recording. The server

- keeps one channel per topic: ROS channels (`ros2msg` schema, CDR forwarded as it is) and
  Foxglove-typed channels (scene, transforms, logs);
- counts subscriptions per topic over all clients and tells the handler when the first client
  subscribes and when the last one leaves (disconnects and removed channels included), so a
  source reads only what someone watches;
- turns client publishing, service calls and parameter requests into handler calls; an error
  the handler raises becomes a status message (or a service call failure) for the clients,
  logged once per kind, never an exception in the SDK's threads;
- passes playback control requests to the handler and playback state back to clients.

Each client has a bounded queue (`message_backlog_size`, default 1024): a client that cannot
keep up loses its oldest messages; the source and the other clients are not slowed down.
Locking: the SDK calls back on its own threads, sometimes while we call into it (removing a
subscribed channel unsubscribes its clients), so no lock of ours is held across an SDK call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import foxglove
from foxglove import Context, Schema, StatusLevel
from foxglove.websocket import (
    Capability,
    ChannelView,
    Client,
    ClientChannel,
    PlaybackControlRequest,
    PlaybackState,
    ServiceRequest,
)

from stf_nodes.bridges.foxglove.schemas import CLIENT_ENCODINGS, BadRequestError, service_schema

LOGGER = logging.getLogger(__name__)


class LoggableChannel(Protocol):
    """What foxglove.Channel and the SDK's typed channels (SceneUpdateChannel, ...) share."""

    def id(self) -> int: ...

    def topic(self) -> str: ...

    def log(self, msg: Any, *, log_time: int | None = None) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ClientChannelInfo:
    """A channel a client advertised to publish on."""

    client_id: int
    channel_id: int
    topic: str
    encoding: str
    schema_name: str


ServiceCall = Callable[[str, bytes], bytes]
"""A service implementation: (request encoding, request payload) → response payload."""


class ServerHandler:
    """What feeds a `FoxgloveServer`. Override what the source supports; the defaults refuse or
    ignore. Methods run on SDK threads and may block briefly (service calls may block longer:
    each runs on its own thread). Raise `BadRequestError` for a client's mistake."""

    def on_first_subscriber(self, topic: str) -> None:
        """A client subscribed to `topic`, which had no subscriber."""

    def on_subscribe(self, topic: str) -> None:
        """Any client subscribed to `topic` (after `on_first_subscriber` for the first one):
        the moment to send what a newcomer needs at once (a whole scene, a latched value)."""

    def on_last_unsubscribed(self, topic: str) -> None:
        """The last client subscribed to `topic` left (unsubscribed, disconnected, removed)."""

    def on_client_advertise(self, channel: ClientChannelInfo) -> None:
        raise BadRequestError('this server does not accept published messages')

    def on_client_message(self, channel: ClientChannelInfo, data: bytes) -> None:
        raise BadRequestError('this server does not accept published messages')

    def on_client_unadvertise(self, channel: ClientChannelInfo) -> None:
        """The client stopped publishing on `channel` (or disconnected)."""

    def get_parameters(self, names: list[str]) -> list[foxglove.Parameter]:
        return []

    def set_parameters(self, parameters: list[foxglove.Parameter]) -> list[foxglove.Parameter]:
        raise BadRequestError('this server has no settable parameters')

    def on_parameters_subscribe(self, names: list[str]) -> None:
        """Clients want updates of these parameters."""

    def on_parameters_unsubscribe(self, names: list[str]) -> None:
        """No client wants updates of these parameters any more."""

    def on_connection_graph_subscribe(self) -> None:
        """The first client wants the connection graph (publish it later, not from here)."""

    def on_connection_graph_unsubscribe(self) -> None:
        """No client wants the connection graph any more."""

    def on_playback_control(self, request: PlaybackControlRequest) -> PlaybackState | None:
        """Play, pause, seek or change speed (servers started with a playback time range)."""
        return None


class FoxgloveServer:
    """The WebSocket server with its channels by topic (see the module docstring)."""

    def __init__(
        self,
        handler: ServerHandler,
        *,
        name: str,
        host: str = '127.0.0.1',
        port: int = 8765,
        capabilities: list[Capability] | None = None,
        message_backlog_size: int | None = None,
        playback_time_range: tuple[int, int] | None = None,
        tls: tuple[bytes, bytes] | None = None,
        warn: Callable[[str], Any] | None = None,
    ) -> None:
        self.handler = handler
        self._warn = warn or LOGGER.warning
        self._context = Context()
        self._lock = threading.RLock()
        self._notify_lock = threading.RLock()  # orders first/last subscriber notifications
        self._channels: dict[str, LoggableChannel] = {}
        self._subscribers: dict[str, int] = {}
        self._client_channels: dict[tuple[int, int], ClientChannelInfo] = {}
        self._services: dict[str, str] = {}  # name → service type
        self._reported: set[str] = set()
        self._server = foxglove.start_server(
            name=name,
            host=host,
            port=port,
            capabilities=capabilities or [],
            server_listener=_Listener(self),
            supported_encodings=list(CLIENT_ENCODINGS),
            context=self._context,
            message_backlog_size=message_backlog_size,
            playback_time_range=playback_time_range,
            tls_cert=tls[0] if tls else None,  # PEM certificate and PKCS#8 key: wss:// only
            tls_key=tls[1] if tls else None,
        )

    @property
    def port(self) -> int:
        return self._server.port

    # -- channels -------------------------------------------------------------------------

    def advertise_ros(self, topic: str, type_name: str, schema: Schema) -> None:
        """A ROS channel: `schema` is the type's `ros2msg` schema, messages are CDR."""
        self.advertise(
            topic,
            lambda context: foxglove.Channel(
                topic, schema=schema, message_encoding='cdr', context=context
            ),
        )

    def advertise(self, topic: str, make: Callable[[Context], LoggableChannel]) -> None:
        """A channel built by `make(context)`, e.g. `SceneUpdateChannel(topic, context=c)`."""
        with self._lock:
            if topic in self._channels:
                return
            self._channels[topic] = make(self._context)

    def unadvertise(self, topic: str) -> None:
        """Remove the channel; its subscribers are unsubscribed (the handler hears of it)."""
        with self._lock:
            channel = self._channels.pop(topic, None)
        if channel is not None:
            channel.close()

    def topics(self) -> set[str]:
        with self._lock:
            return set(self._channels)

    def channel_id(self, topic: str) -> int | None:
        channel = self._channels.get(topic)
        return channel.id() if channel is not None else None

    def is_subscribed(self, topic: str) -> bool:
        return self._subscribers.get(topic, 0) > 0

    def log(self, topic: str, message: Any, log_time: int) -> None:
        """Send a message (CDR bytes, or a Foxglove message object) to the topic's subscribers.

        Non-blocking: each client's queue drops its oldest message when full."""
        channel = self._channels.get(topic)
        if channel is not None:
            channel.log(message, log_time=log_time)

    # -- server-wide ----------------------------------------------------------------------

    def broadcast_time(self, nanoseconds: int) -> None:
        self._server.broadcast_time(nanoseconds)

    def broadcast_playback_state(self, state: PlaybackState) -> None:
        self._server.broadcast_playback_state(state)

    def status(self, message: str, level: StatusLevel, status_id: str | None = None) -> None:
        """A status message for every client (the protocol has no per-client status)."""
        self._server.publish_status(message, level, status_id)

    def report(self, kind: str, message: str, level: StatusLevel = StatusLevel.Warning) -> None:
        """Tell clients about a problem; log it once per `kind` (later ones go to debug)."""
        with self._lock:
            first = kind not in self._reported
            self._reported.add(kind)
        if first:
            self._warn(f'{message} (further problems of this kind go to the clients only)')
        self.status(message, level, kind)

    def set_services(self, services: Mapping[str, tuple[str, ServiceCall]]) -> None:
        """Make the advertised services `{name: (service type, call)}` exactly these."""
        with self._lock:
            stale = [n for n, t in self._services.items() if services.get(n, (None,))[0] != t]
            new = {n: v for n, v in services.items() if self._services.get(n) != v[0]}
            for name in stale:
                del self._services[name]
            self._services.update({n: t for n, (t, _) in new.items()})
        if stale:
            self._server.remove_services(stale)
        if new:
            self._server.add_services(
                [
                    foxglove.Service(
                        name, schema=service_schema(type_name), handler=_service_handler(call)
                    )
                    for name, (type_name, call) in new.items()
                ]
            )

    def services(self) -> dict[str, str]:
        with self._lock:
            return dict(self._services)

    def publish_parameter_values(self, parameters: list[foxglove.Parameter]) -> None:
        self._server.publish_parameter_values(parameters)

    def publish_connection_graph(self, graph: foxglove.ConnectionGraph) -> None:
        self._server.publish_connection_graph(graph)

    def stop(self) -> None:
        self._server.stop()
        with self._lock:
            channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            channel.close()

    # -- called by the listener -----------------------------------------------------------

    def _subscribed(self, topic: str, delta: int) -> None:
        with self._notify_lock:
            before = self._subscribers.get(topic, 0)
            after = max(before + delta, 0)
            if after:
                self._subscribers[topic] = after
            else:
                self._subscribers.pop(topic, None)
            if before == 0 and after > 0:
                self.handler.on_first_subscriber(topic)
            elif before > 0 and after == 0:
                self.handler.on_last_unsubscribed(topic)


def _service_handler(call: ServiceCall) -> Callable[[ServiceRequest], bytes]:
    def handle(request: ServiceRequest) -> bytes:
        # An exception here becomes the client's "service call failure" with its message.
        return call(request.encoding, request.payload)

    return handle


class _Listener:
    """The SDK's ServerListener, routed to the server and its handler with errors contained."""

    def __init__(self, server: FoxgloveServer) -> None:
        self._server = server

    def _guard(self, kind: str, action: Callable[[], Any], default: Any = None) -> Any:
        try:
            return action()
        except BadRequestError as exc:
            self._server.report(kind, str(exc))
        except Exception as exc:  # a failing source must not take the server down
            self._server.report(kind, f'{kind} failed: {exc!r}', StatusLevel.Error)
        return default

    def on_subscribe(self, client: Client, channel: ChannelView) -> None:
        self._guard('subscribe', lambda: self._server._subscribed(channel.topic, +1))
        self._guard('subscribe', lambda: self._server.handler.on_subscribe(channel.topic))

    def on_unsubscribe(self, client: Client, channel: ChannelView) -> None:
        self._guard('unsubscribe', lambda: self._server._subscribed(channel.topic, -1))

    def on_client_advertise(self, client: Client, channel: ClientChannel) -> None:
        info = ClientChannelInfo(
            client_id=client.id,
            channel_id=channel.id,
            topic=channel.topic,
            encoding=channel.encoding,
            schema_name=channel.schema_name,
        )

        def advertise() -> None:
            self._server.handler.on_client_advertise(info)
            with self._server._lock:
                self._server._client_channels[(client.id, channel.id)] = info

        self._guard(f'publish {channel.topic}', advertise)

    def on_client_unadvertise(self, client: Client, client_channel_id: int) -> None:
        with self._server._lock:
            info = self._server._client_channels.pop((client.id, client_channel_id), None)
        if info is not None:
            self._guard(
                f'publish {info.topic}', lambda: self._server.handler.on_client_unadvertise(info)
            )

    def on_message_data(self, client: Client, client_channel_id: int, data: bytes) -> None:
        info = self._server._client_channels.get((client.id, client_channel_id))
        if info is None:
            self._server.report(
                'publish',
                f'client {client.id} published on channel {client_channel_id}, which it did not '
                'advertise successfully; message dropped',
            )
            return
        self._guard(
            f'publish {info.topic}', lambda: self._server.handler.on_client_message(info, data)
        )

    def on_get_parameters(
        self, client: Client, param_names: list[str], request_id: str | None = None
    ) -> list[foxglove.Parameter]:
        return self._guard(
            'get parameters', lambda: self._server.handler.get_parameters(param_names), []
        )

    def on_set_parameters(
        self, client: Client, parameters: list[foxglove.Parameter], request_id: str | None = None
    ) -> list[foxglove.Parameter]:
        return self._guard(
            'set parameters', lambda: self._server.handler.set_parameters(parameters), []
        )

    def on_parameters_subscribe(self, param_names: list[str]) -> None:
        self._guard('parameters', lambda: self._server.handler.on_parameters_subscribe(param_names))

    def on_parameters_unsubscribe(self, param_names: list[str]) -> None:
        self._guard(
            'parameters', lambda: self._server.handler.on_parameters_unsubscribe(param_names)
        )

    def on_connection_graph_subscribe(self) -> None:
        self._guard('connection graph', self._server.handler.on_connection_graph_subscribe)

    def on_connection_graph_unsubscribe(self) -> None:
        self._guard('connection graph', self._server.handler.on_connection_graph_unsubscribe)

    def on_playback_control_request(
        self, playback_control_request: PlaybackControlRequest
    ) -> PlaybackState | None:
        return self._guard(
            'playback control',
            lambda: self._server.handler.on_playback_control(playback_control_request),
        )
