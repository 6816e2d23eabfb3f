"""A Foxglove WebSocket protocol client for tests, written from the ws-protocol spec.

It speaks to the server as Foxglove Studio does (subprotocols `foxglove.sdk.v1` and
`foxglove.websocket.v1`, JSON control messages, binary data; playback control requests and
playback states as the SDK's protocol code lays them out: client opcode 3, server opcode 5)
and decodes messages with the
schemas the server advertised, independently of the bridge's own code: `ros2msg` schemas are
parsed by a fresh rosbags type store, `protobuf` schemas (Foxglove's own types) by the protobuf
library from the advertised FileDescriptorSet.
"""

from __future__ import annotations

import base64
import collections
import json
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

SUBPROTOCOLS = ['foxglove.sdk.v1', 'foxglove.websocket.v1']


class ServiceCallFailedError(RuntimeError):
    """The server answered a service call with serviceCallFailure."""


PLAYBACK_STATUS = {0: 'playing', 1: 'paused', 2: 'buffering', 3: 'ended'}
PLAYBACK_COMMAND = {'play': 0, 'pause': 1}
_PLAYBACK_STATE = struct.Struct('<BBQfBI')
_PLAYBACK_REQUEST = struct.Struct('<BBfBQI')


@dataclass(frozen=True)
class PlaybackState:
    status: str
    current_time: int
    speed: float
    did_seek: bool
    request_id: str | None


class FoxgloveClient:
    def __init__(self, url: str, *, read: bool = True, max_queue: int | None = 16) -> None:
        self.ws: ClientConnection = connect(
            url,
            subprotocols=SUBPROTOCOLS,
            max_size=None,
            max_queue=max_queue,
            open_timeout=10,
        )
        self.server_info: dict[str, Any] = {}
        self.channels: dict[int, dict[str, Any]] = {}
        self.services: dict[int, dict[str, Any]] = {}
        self.statuses: list[dict[str, Any]] = []
        self.parameters: dict[str, list[dict[str, Any]]] = {}  # request id → values
        self.parameter_updates: list[dict[str, Any]] = []
        self.graph_updates: list[dict[str, Any]] = []
        self.times: list[int] = []
        self.playback_states: list[PlaybackState] = []
        #: Arrival order of data, time and playback state messages: ('data', sub id, log time),
        #: ('time', ns) or ('state', PlaybackState).
        self.arrivals: collections.deque[tuple[Any, ...]] = collections.deque(maxlen=200_000)
        self.received: dict[int, collections.deque[tuple[int, bytes]]] = {}  # sub id → data
        self.counts: collections.Counter[int] = collections.Counter()
        self.received_at: dict[int, list[int]] = {}  # sub id → CLOCK_MONOTONIC ns of arrival
        self.responses: dict[int, tuple[str, bytes] | Exception] = {}
        self.closed = threading.Event()
        self._subscriptions: dict[int, int] = {}  # sub id → channel id
        self._next_id = 1
        self._cond = threading.Condition()
        self._decoders: dict[int, Callable[[bytes], Any]] = {}
        self._reader = threading.Thread(target=self._read, daemon=True)
        if read:
            self._reader.start()

    # -- receiving ------------------------------------------------------------------------

    def start_reading(self) -> None:
        self._reader.start()

    def _read(self) -> None:
        try:
            for message in self.ws:
                now = time.monotonic_ns()
                with self._cond:
                    if isinstance(message, str):
                        self._on_json(json.loads(message))
                    else:
                        self._on_binary(message, now)
                    self._cond.notify_all()
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()
            with self._cond:
                self._cond.notify_all()

    def _on_json(self, message: dict[str, Any]) -> None:
        op = message['op']
        if op == 'serverInfo':
            self.server_info = message
        elif op == 'advertise':
            for channel in message['channels']:
                self.channels[channel['id']] = channel
        elif op == 'unadvertise':
            for channel_id in message['channelIds']:
                self.channels.pop(channel_id, None)
        elif op == 'advertiseServices':
            for service in message['services']:
                self.services[service['id']] = service
        elif op == 'unadvertiseServices':
            for service_id in message['serviceIds']:
                self.services.pop(service_id, None)
        elif op == 'status':
            self.statuses.append(message)
        elif op == 'parameterValues':
            if message.get('id'):
                self.parameters[message['id']] = message['parameters']
            else:
                self.parameter_updates.extend(message['parameters'])
        elif op == 'connectionGraphUpdate':
            self.graph_updates.append(message)
        elif op == 'serviceCallFailure':
            self.responses[message['callId']] = ServiceCallFailedError(message['message'])

    def _on_binary(self, data: bytes, now: int) -> None:
        opcode = data[0]
        if opcode == 1:
            subscription_id, timestamp = struct.unpack_from('<IQ', data, 1)
            queue = self.received.setdefault(subscription_id, collections.deque(maxlen=100_000))
            queue.append((timestamp, data[13:]))
            self.received_at.setdefault(subscription_id, []).append(now)
            self.counts[subscription_id] += 1
            self.arrivals.append(('data', subscription_id, timestamp))
        elif opcode == 2:
            self.times.append(struct.unpack_from('<Q', data, 1)[0])
            self.arrivals.append(('time', self.times[-1]))
        elif opcode == 3:
            _service_id, call_id, length = struct.unpack_from('<III', data, 1)
            encoding = data[13 : 13 + length].decode()
            self.responses[call_id] = (encoding, data[13 + length :])
        elif opcode == 5:
            _, status, current, speed, did_seek, length = _PLAYBACK_STATE.unpack_from(data)
            start = _PLAYBACK_STATE.size
            state = PlaybackState(
                status=PLAYBACK_STATUS.get(status, f'unknown {status}'),
                current_time=current,
                speed=speed,
                did_seek=bool(did_seek),
                request_id=data[start : start + length].decode() if length else None,
            )
            self.playback_states.append(state)
            self.arrivals.append(('state', state))

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.closed.is_set():
                    raise AssertionError(f'condition not met in time (statuses: {self.statuses})')
                self._cond.wait(min(remaining, 0.1))

    # -- channels -------------------------------------------------------------------------

    def channel(self, topic: str, timeout: float = 10.0) -> dict[str, Any]:
        return self.wait_for(
            lambda: next((c for c in self.channels.values() if c['topic'] == topic), None),
            timeout,
        )

    def topics(self) -> set[str]:
        with self._cond:
            return {c['topic'] for c in self.channels.values()}

    def subscribe(self, topic: str, timeout: float = 10.0) -> int:
        channel = self.channel(topic, timeout)
        return self.subscribe_channel(channel['id'])

    def subscribe_channel(self, channel_id: int) -> int:
        with self._cond:
            subscription_id = self._next_id
            self._next_id += 1
            self._subscriptions[subscription_id] = channel_id
            self.received[subscription_id] = collections.deque(maxlen=100_000)
        self._send(
            {'op': 'subscribe', 'subscriptions': [{'id': subscription_id, 'channelId': channel_id}]}
        )
        return subscription_id

    def unsubscribe(self, subscription_id: int) -> None:
        self._send({'op': 'unsubscribe', 'subscriptionIds': [subscription_id]})

    def messages(self, subscription_id: int) -> list[tuple[int, bytes]]:
        with self._cond:
            return list(self.received.get(subscription_id, ()))

    def take_decoded(self, subscription_id: int) -> list[Any]:
        """Decoded messages received since the last call (they are removed)."""
        decode = self.decoder(self._subscriptions[subscription_id])
        with self._cond:
            taken = list(self.received[subscription_id])
            self.received[subscription_id].clear()
        return [decode(payload) for _, payload in taken]

    def decoded(self, subscription_id: int) -> list[Any]:
        """Every message received on the subscription, decoded with the advertised schema."""
        channel_id = self._subscriptions[subscription_id]
        decode = self.decoder(channel_id)
        return [decode(payload) for _, payload in self.messages(subscription_id)]

    def wait_decoded(
        self, subscription_id: int, predicate: Callable[[Any], Any], timeout: float = 10.0
    ) -> Any:
        """The first decoded message that satisfies `predicate`."""

        def find() -> Any:
            for message in self.decoded(subscription_id):
                if predicate(message):
                    return message
            return None

        deadline = time.monotonic() + timeout
        while True:
            found = find()
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise AssertionError('no matching message in time')
            time.sleep(0.05)

    def decoder(self, channel_id: int) -> Callable[[bytes], Any]:
        if channel_id not in self._decoders:
            channel = self.channels[channel_id]
            self._decoders[channel_id] = schema_decoder(
                channel['schemaName'], channel.get('schemaEncoding', ''), channel['schema']
            )
        return self._decoders[channel_id]

    # -- requests -------------------------------------------------------------------------

    def _send(self, message: dict[str, Any] | bytes) -> None:
        self.ws.send(message if isinstance(message, bytes) else json.dumps(message))

    def service(self, name: str, timeout: float = 10.0) -> dict[str, Any]:
        return self.wait_for(
            lambda: next((s for s in self.services.values() if s['name'] == name), None), timeout
        )

    def call_service_raw(
        self, service_id: int, payload: bytes, encoding: str = 'cdr', timeout: float = 15.0
    ) -> tuple[str, bytes]:
        with self._cond:
            call_id = self._next_id
            self._next_id += 1
        encoded = encoding.encode()
        self._send(struct.pack('<BIII', 2, service_id, call_id, len(encoded)) + encoded + payload)
        result = self.wait_for(lambda: self.responses.get(call_id), timeout)
        if isinstance(result, Exception):
            raise result
        return result

    def call_service(self, name: str, payload: bytes, encoding: str = 'cdr') -> bytes:
        return self.call_service_raw(self.service(name)['id'], payload, encoding)[1]

    def get_parameters(self, names: list[str], timeout: float = 15.0) -> dict[str, Any]:
        request_id = f'get-{time.monotonic_ns()}'
        self._send({'op': 'getParameters', 'parameterNames': names, 'id': request_id})
        values = self.wait_for(lambda: self.parameters.get(request_id) is not None, timeout)
        assert values
        return {p['name']: p for p in self.parameters[request_id]}

    def set_parameters(
        self, parameters: list[dict[str, Any]], timeout: float = 15.0
    ) -> dict[str, Any]:
        request_id = f'set-{time.monotonic_ns()}'
        self._send({'op': 'setParameters', 'parameters': parameters, 'id': request_id})
        self.wait_for(lambda: self.parameters.get(request_id) is not None, timeout)
        return {p['name']: p for p in self.parameters[request_id]}

    def subscribe_parameter_updates(self, names: list[str]) -> None:
        self._send({'op': 'subscribeParameterUpdates', 'parameterNames': names})

    def subscribe_connection_graph(self) -> None:
        self._send({'op': 'subscribeConnectionGraph'})

    def advertise(
        self, channel_id: int, topic: str, schema_name: str, encoding: str = 'cdr'
    ) -> None:
        self._send(
            {
                'op': 'advertise',
                'channels': [
                    {
                        'id': channel_id,
                        'topic': topic,
                        'encoding': encoding,
                        'schemaName': schema_name,
                    }
                ],
            }
        )

    def publish(self, channel_id: int, payload: bytes) -> None:
        self._send(struct.pack('<BI', 1, channel_id) + payload)

    def playback_control(
        self,
        command: str,
        *,
        speed: float = 1.0,
        seek_ns: int | None = None,
        timeout: float = 10.0,
    ) -> PlaybackState:
        """Send a playback control request and wait for the state that answers it."""
        with self._cond:
            request_id = f'req-{self._next_id}'
            self._next_id += 1
        encoded = request_id.encode()
        self._send(
            _PLAYBACK_REQUEST.pack(
                3,
                PLAYBACK_COMMAND[command],
                speed,
                seek_ns is not None,
                seek_ns or 0,
                len(encoded),
            )
            + encoded
        )
        return self.wait_for(
            lambda: next((s for s in self.playback_states if s.request_id == request_id), None),
            timeout,
        )

    def close(self) -> None:
        self.ws.close()
        if self._reader.is_alive():
            self._reader.join(timeout=5)

    def __enter__(self) -> FoxgloveClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def schema_decoder(name: str, encoding: str, schema: str) -> Callable[[bytes], Any]:
    """A decoder built only from what the server advertised."""
    if encoding == 'ros2msg':
        store = get_typestore(Stores.EMPTY)
        store.register(get_types_from_msg(schema, name))
        return lambda payload: store.deserialize_cdr(payload, name)
    if encoding == 'protobuf':
        descriptors = descriptor_pb2.FileDescriptorSet.FromString(base64.b64decode(schema))
        pool = descriptor_pool.DescriptorPool()
        for file in descriptors.file:
            pool.Add(file)
        message_class = message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
        return lambda payload: json_format.MessageToDict(
            message_class.FromString(payload), preserving_proto_field_name=True
        )
    raise ValueError(f'no decoder for schema encoding {encoding!r}')
