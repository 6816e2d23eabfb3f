"""Publishers, subscriptions, services, clients and timers on Zenoh, in rmw_zenoh's format.

Every put, query and reply carries rmw_zenoh's 33-byte attachment: int64 sequence number,
int64 source timestamp (ns), LEB128 length 16, 16-byte GID (little endian). Payloads are CDR
with the 4-byte encapsulation header and no Zenoh encoding.

Incoming samples and queries are queued on the entity and run by the executor's owning thread
(see `_Inbox`), so callbacks of one executor run one at a time, as in rclpy's single-threaded
executor. Service clients do not need the executor: `call()` blocks on the reply and works
inside callbacks too (lending the executor to the node's neighbours meanwhile, so a server
composed into the same process still answers); a call that reaches no server while the graph
shows one (its peer link not up yet) is retried until its timeout. With several servers (a
hot standby answering the read-only services beside its leader) the first good reply wins; an
error reply fails the call only when no server answered well; Zenoh's timeout is a
TimeoutError.

A service callback may return a `Future` instead of the response: the reply goes out when the
future finishes, from whichever thread finishes it (an error reply if it failed). The executor
takes the next request meanwhile, so a server can answer requests together (the scheduler's
group commit) and out of order.

Malformed or oversized CDR from the network is dropped and counted; the first drop per entity
is logged. A node never crashes on bad input.

A subscription callback taking two arguments gets, as in rclpy, the message and a
``MessageInfo`` dict: ``source_timestamp`` (ns, from the publisher's attachment),
``received_timestamp`` (ns, system time of reception), ``publication_sequence_number`` (the
publisher's, None without an attachment), ``reception_sequence_number`` (this subscription's
count) and, beyond rclpy, ``publisher_gid`` (16 bytes, b'' without an attachment): with the
sequence number it tells which messages of a publisher never arrived.
"""

from __future__ import annotations

import collections
import inspect
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

import zenoh
import zenoh.ext

from stf_nodes import interfaces
from stf_nodes.runtime import names
from stf_nodes.runtime.clock import Clock, Duration
from stf_nodes.runtime.executor import running_executor
from stf_nodes.runtime.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)

if TYPE_CHECKING:
    from stf_nodes.runtime.node import Node

#: Largest serialized message accepted on publish and on receive, in bytes (default 64 MiB;
#: override per process with the environment variable `STF_MAX_MESSAGE_BYTES`).
MAX_MESSAGE_BYTES = int(os.environ.get('STF_MAX_MESSAGE_BYTES', str(64 * 1024 * 1024)))

#: Requests a service holds while its node is busy; a request beyond them is answered at once
#: with an error ("busy") instead of queueing without bound (a flood cannot exhaust memory).
SERVICE_QUEUE_LIMIT = 1024

_ATTACHMENT = struct.Struct('<qqB16s')
_SEQUENCE_AND_STAMP = struct.Struct('<qq')  # the attachment's head, all that changes per put


def make_attachment(sequence_number: int, gid: bytes, timestamp_ns: int | None = None) -> bytes:
    """rmw_zenoh's attachment: sequence number, source timestamp, GID."""
    stamp = time.time_ns() if timestamp_ns is None else timestamp_ns
    return _ATTACHMENT.pack(sequence_number, stamp, 16, gid)


def parse_attachment(data: bytes | None) -> tuple[int, int, bytes] | None:
    """(sequence number, source timestamp ns, GID), or None if absent or malformed."""
    if data is None or len(data) != _ATTACHMENT.size:
        return None
    sequence_number, timestamp_ns, length, gid = _ATTACHMENT.unpack(data)
    return (sequence_number, timestamp_ns, gid) if length == 16 else None


class _Attachment:
    """An entity's attachment buffer: its GID is written once, each put rewrites the sequence
    number and timestamp in place (callers hold the entity's lock; Zenoh copies the bytes)."""

    def __init__(self, gid: bytes) -> None:
        self.buffer = bytearray(make_attachment(0, gid, 0))

    def next(self, sequence_number: int) -> bytearray:
        _SEQUENCE_AND_STAMP.pack_into(self.buffer, 0, sequence_number, time.time_ns())
        return self.buffer


class ServiceError(RuntimeError):
    """A service call that failed: no server, a timeout, or an error reply."""


class Future:
    """The result of an asynchronous call (shaped like rclpy.task.Future)."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._result: Any = None
        self._exception: BaseException | None = None
        self._callbacks: list[Callable[[Future], None]] = []
        self._lock = threading.Lock()

    def done(self) -> bool:
        return self._done.is_set()

    def result(self) -> Any:
        if self._exception is not None:
            raise self._exception
        return self._result

    def exception(self) -> BaseException | None:
        return self._exception

    def wait(self, timeout_s: float | None = None) -> bool:
        return self._done.wait(timeout_s)

    def _finish(self, result: Any = None, exception: BaseException | None = None) -> None:
        with self._lock:
            if self._done.is_set():
                return
            self._result, self._exception = result, exception
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)

    def set_result(self, result: Any) -> None:
        self._finish(result=result)

    def set_exception(self, exception: BaseException) -> None:
        self._finish(exception=exception)

    def add_done_callback(self, callback: Callable[[Future], None]) -> None:
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        callback(self)


class _Endpoint:
    """What every graph entity shares: resolved name, key expression, token and GID."""

    kind = ''

    def __init__(
        self,
        node: Node,
        *,
        type_name: str,
        name: str,
        qos: QoSProfile,
        type_hash: str | None = None,
    ) -> None:
        self.node = node
        self.type_name = type_name
        self.name = name
        self.qos = qos
        context = node.context
        self.entity_id = context.next_id()
        self.type_hash = type_hash or interfaces.type_hash(type_name)
        dds_type = interfaces.dds_type_name(type_name)
        self.keyexpr = names.data_keyexpr(context.domain_id, name, dds_type, self.type_hash)
        self._key = zenoh.KeyExpr(self.keyexpr)  # parsed once, not per query
        self.token_key = names.endpoint_token(
            domain_id=context.domain_id,
            zid=context.zid,
            node_id=node.node_id,
            entity_id=self.entity_id,
            kind=self.kind,
            enclave=context.arguments.enclave,
            namespace=node.get_namespace(),
            node_name=node.get_name(),
            name=name,
            dds_type=dds_type,
            type_hash=self.type_hash,
            qos=qos,
        )
        self.gid = names.gid_of(self.token_key)
        self.dropped = 0
        self._token: zenoh.LivelinessToken | None = None

    def _announce(self) -> None:
        """Declare the liveliness token once the data entity exists (as rmw_zenoh orders it)."""
        self._token = self.node.context.session.liveliness().declare_token(self.token_key)

    def _drop(self, reason: str) -> None:
        self.dropped += 1
        if self.dropped == 1:
            self.node.get_logger().warning(
                f'{self.name}: dropped a {reason} (further drops are counted, not logged)'
            )

    def destroy(self) -> None:
        if self._token is not None:
            self._token.undeclare()
            self._token = None


class _Inbox(_Endpoint):
    """An endpoint that receives work (samples, queries) for its node's executor.

    Zenoh delivers on its own Python threads (indirect callbacks, so a blocking user callback
    never stalls Zenoh's network threads). The item is queued, then run right there if the
    executor is spinning and idle, or else handed to the executor: callbacks of one executor
    never overlap, and an idle executor adds no thread hand-off to the latency.
    """

    def _init_inbox(self, maxlen: int | None) -> None:
        self._inbox: collections.deque[Any] = collections.deque(maxlen=maxlen)
        self.posted = False

    def _receive(self, item: Any) -> None:
        self._inbox.append(item)
        self.node._deliver(self)

    def execute(self) -> None:
        """Handle everything queued (KEEP_LAST may have dropped the oldest meanwhile)."""
        self.posted = False
        try:
            for _ in range(len(self._inbox)):
                try:
                    item = self._inbox.popleft()
                except IndexError:
                    return
                self._handle(item)
        finally:
            if self._inbox and not self.posted:  # a handler raised: the rest still runs
                self.node._deliver(self)

    def _handle(self, item: Any) -> None:
        raise NotImplementedError


class Publisher(_Endpoint):
    kind = names.PUBLISHER

    def __init__(
        self,
        node: Node,
        msg_type: type[Any] | None,
        name: str,
        qos: QoSProfile,
        *,
        type_name: str | None = None,
        type_hash: str | None = None,
    ) -> None:
        """`msg_type` None: a publisher of serialized data of `type_name`, which the type store
        need not know when `type_hash` is given (bag replay of foreign types)."""
        super().__init__(
            node,
            type_name=_type_name(msg_type, type_name, name),
            name=name,
            qos=qos,
            type_hash=type_hash,
        )
        self.msg_type = msg_type
        self._serialize = interfaces.serializer(self.type_name) if msg_type else None
        self._sequence = 0
        self._attachment = _Attachment(self.gid)
        self._lock = threading.Lock()
        session = node.context.session
        reliable = qos.reliability == ReliabilityPolicy.RELIABLE
        options: dict[str, Any] = {
            'congestion_control': zenoh.CongestionControl.BLOCK
            if reliable
            else zenoh.CongestionControl.DROP,
            'reliability': zenoh.Reliability.RELIABLE
            if reliable
            else zenoh.Reliability.BEST_EFFORT,
        }
        self._publisher: zenoh.Publisher | zenoh.ext.AdvancedPublisher
        if qos.durability == DurabilityPolicy.TRANSIENT_LOCAL:
            self._publisher = zenoh.ext.declare_advanced_publisher(
                session,
                self.keyexpr,
                cache=zenoh.ext.CacheConfig(max_samples=max(qos.depth, 1)),
                publisher_detection=True,
                **options,
            )
        else:
            self._publisher = session.declare_publisher(self.keyexpr, **options)
        self._announce()

    def publish(self, message: Any) -> None:
        if getattr(message, '__msgtype__', None) != self.type_name or self._serialize is None:
            raise TypeError(f'{self.name} publishes {self.type_name}, got {type(message).__name__}')
        self.publish_serialized(self._serialize(message))

    def publish_serialized(self, payload: bytes) -> None:
        """Publish CDR bytes that are already encoded (bag replay, bridges)."""
        if len(payload) > MAX_MESSAGE_BYTES:
            raise ValueError(
                f'{self.name}: message of {len(payload)} bytes exceeds the limit of '
                f'{MAX_MESSAGE_BYTES} bytes'
            )
        with self._lock:
            self._sequence += 1
            self._publisher.put(payload, attachment=self._attachment.next(self._sequence))

    def get_subscription_count(self) -> int:
        return self.node.context.graph.count(self.name, names.SUBSCRIPTION)

    def wait_for_subscribers(self, timeout_s: float) -> bool:
        """Wait until a subscription is in the graph and Zenoh has a route to it.

        The graph (liveliness, through the router) can show a subscription before the direct
        peer link that carries the data is up; a sample published in that gap is lost.
        """
        deadline = time.monotonic() + timeout_s
        if not self.node.context.graph.wait_for(
            lambda g: g.count(self.name, names.SUBSCRIPTION) > 0, timeout_s
        ):
            return False
        publisher = self._publisher
        if not isinstance(publisher, zenoh.Publisher):  # advanced: the graph only
            return True
        # zenoh's stub says bool; it is a MatchingStatus.
        while not cast(Any, publisher.matching_status).matching:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def destroy(self) -> None:
        super().destroy()
        self._publisher.undeclare()  # type: ignore[no-untyped-call]  # zenoh stub: no annotation


class Subscription(_Inbox):
    kind = names.SUBSCRIPTION

    def __init__(
        self,
        node: Node,
        msg_type: type[Any] | None,
        name: str,
        callback: Callable[..., None],  # (message) or (message, message_info)
        qos: QoSProfile,
        *,
        raw: bool = False,
        type_name: str | None = None,
    ) -> None:
        super().__init__(node, type_name=_type_name(msg_type, type_name, name), name=name, qos=qos)
        self.callback = callback
        self.raw = raw
        self.with_info = _positional_count(callback) >= 2
        self._received = 0
        self._decode = None if raw else interfaces.decoder(self.type_name)
        self._init_inbox(
            qos.depth if qos.history == HistoryPolicy.KEEP_LAST and qos.depth else None
        )
        session = node.context.session
        handler = zenoh.handlers.Callback(self._on_sample)
        self._subscriber: zenoh.Subscriber[None] | zenoh.ext.AdvancedSubscriber[None]
        if qos.durability == DurabilityPolicy.TRANSIENT_LOCAL:
            self._subscriber = zenoh.ext.declare_advanced_subscriber(
                session,
                self.keyexpr,
                handler,
                history=zenoh.ext.HistoryConfig(
                    detect_late_publishers=True, max_samples=max(qos.depth, 1)
                ),
                subscriber_detection=True,
            )
        else:
            self._subscriber = session.declare_subscriber(self.keyexpr, handler)
        self._announce()

    def _on_sample(self, sample: zenoh.Sample) -> None:
        if not self.with_info:
            self._receive(sample.payload.to_bytes())
            return
        attachment = sample.attachment
        self._receive(
            (
                sample.payload.to_bytes(),
                attachment.to_bytes() if attachment is not None else None,
                time.time_ns(),
            )
        )

    def _handle(self, item: Any) -> None:
        info = None
        if self.with_info:
            payload, attachment, received_ns = item
            self._received += 1
            parsed = parse_attachment(attachment)
            info = {
                'source_timestamp': parsed[1] if parsed else 0,
                'received_timestamp': received_ns,
                'publication_sequence_number': parsed[0] if parsed else None,
                'reception_sequence_number': self._received,
                'publisher_gid': parsed[2] if parsed else b'',
            }
        else:
            payload = item
        if len(payload) > MAX_MESSAGE_BYTES:
            self._drop(f'message of {len(payload)} bytes (limit {MAX_MESSAGE_BYTES})')
            return
        if self._decode is not None:
            try:
                payload = self._decode(payload)
            except interfaces.SerdeError as exc:
                self._drop(f'malformed {self.type_name} ({exc})')
                return
        if info is None:
            self.callback(payload)
        else:
            self.callback(payload, info)

    def get_publisher_count(self) -> int:
        return self.node.context.graph.count(self.name, names.PUBLISHER)

    def destroy(self) -> None:
        super().destroy()
        self._subscriber.undeclare()  # type: ignore[no-untyped-call]  # zenoh stub: no annotation


def _positional_count(callback: Callable[..., Any]) -> int:
    """How many positional arguments without default ``callback`` requires (2: the message
    and the MessageInfo; ``lambda msg, station=station: ...`` takes the message only)."""
    try:
        parameters = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in parameters if p.kind in kinds and p.default is inspect.Parameter.empty)


class Service(_Inbox):
    kind = names.SERVICE

    def __init__(
        self,
        node: Node,
        srv_type: interfaces.ServiceType,
        name: str,
        callback: Callable[[Any, Any], Any],
        qos: QoSProfile,
    ) -> None:
        super().__init__(node, type_name=srv_type.name, name=name, qos=qos)
        self.srv_type = srv_type
        self.callback = callback
        self._decode_request = interfaces.decoder(srv_type.Request.__msgtype__)
        self._serialize_response = interfaces.serializer(srv_type.Response.__msgtype__)
        self._init_inbox(None)
        self._queryable = node.context.session.declare_queryable(
            self.keyexpr, zenoh.handlers.Callback(self._on_query), complete=True
        )
        self._announce()

    def _on_query(self, query: zenoh.Query) -> None:
        if len(self._inbox) >= SERVICE_QUEUE_LIMIT:
            self._drop(f'request: {SERVICE_QUEUE_LIMIT} requests are waiting already')
            query.reply_err(f'service busy: {SERVICE_QUEUE_LIMIT} requests waiting'.encode())
            return
        self._receive(query)

    def _handle(self, query: zenoh.Query) -> None:
        try:
            self._answer(query)
        finally:
            del query  # finalises the query on the Zenoh side

    def _answer(self, query: zenoh.Query) -> None:
        request_info = parse_attachment(
            query.attachment.to_bytes() if query.attachment is not None else None
        )
        if request_info is None:
            self._drop('request without a valid rmw_zenoh attachment')
            query.reply_err(b'missing or malformed attachment')
            return
        sequence_number, _, client_gid = request_info
        payload = query.payload.to_bytes() if query.payload is not None else b''
        if len(payload) > MAX_MESSAGE_BYTES:
            self._drop(f'request of {len(payload)} bytes')
            query.reply_err(b'request too large')
            return
        try:
            request = self._decode_request(payload)
        except interfaces.SerdeError as exc:
            self._drop(f'malformed request ({exc})')
            query.reply_err(f'malformed request: {exc}'.encode())
            return
        try:
            response = self.callback(request, self.srv_type.Response())
        except Exception as exc:  # a failing handler must not take the server down
            self._reply_failed(query, exc)
            return
        if isinstance(response, Future):
            # Answered later, from whichever thread finishes the future (a group commit).
            response.add_done_callback(
                lambda done: self._reply_later(query, sequence_number, client_gid, done)
            )
            return
        self._reply(query, sequence_number, client_gid, response)

    def _reply_later(
        self, query: zenoh.Query, sequence_number: int, client_gid: bytes, done: Future
    ) -> None:
        try:
            if done.exception() is not None:
                self._reply_failed(query, done.exception())
            else:
                self._reply(query, sequence_number, client_gid, done.result())
        finally:
            query.drop()  # the final reply: the client's query ends now

    def _reply_failed(self, query: zenoh.Query, exc: BaseException | None) -> None:
        self.node.get_logger().error(f'{self.name}: service callback raised {exc!r}')
        query.reply_err(f'service callback failed: {exc}'.encode())

    def _reply(
        self, query: zenoh.Query, sequence_number: int, client_gid: bytes, response: Any
    ) -> None:
        if getattr(response, '__msgtype__', None) != self.srv_type.Response.__msgtype__:
            self.node.get_logger().error(
                f'{self.name}: callback returned {type(response).__name__}, not a response'
            )
            query.reply_err(b'service callback returned no response')
            return
        query.reply(
            query.key_expr,
            self._serialize_response(response),
            attachment=make_attachment(sequence_number, client_gid),
        )

    def destroy(self) -> None:
        super().destroy()
        self._queryable.undeclare()


class Client(_Endpoint):
    kind = names.CLIENT

    #: After a query that reached no server while the graph shows one (its queryable not yet
    #: routed to us), the call is retried this often before it fails.
    RETRY_INTERVAL_S = 0.05

    def __init__(
        self, node: Node, srv_type: interfaces.ServiceType, name: str, qos: QoSProfile
    ) -> None:
        super().__init__(node, type_name=srv_type.name, name=name, qos=qos)
        self.srv_type = srv_type
        self._decode_response = interfaces.decoder(srv_type.Response.__msgtype__)
        self._serialize_request = interfaces.serializer(srv_type.Request.__msgtype__)
        self._sequence = 0
        self._lock = threading.Lock()
        self._announce()

    def _servers(self, graph: Any) -> int:
        """Servers of this service with this type: one of another type would never answer."""
        return sum(
            token.type_hash == self.type_hash for token in graph.endpoints(self.name, names.SERVICE)
        )

    def service_is_ready(self) -> bool:
        return self._servers(self.node.context.graph) > 0

    def wait_for_service(self, timeout_sec: float | None = None) -> bool:
        graph = self.node.context.graph
        return graph.wait_for(lambda g: self._servers(g) > 0, timeout_sec)

    def _encode(self, request: Any) -> tuple[bytes, bytes]:
        """The request's CDR and a fresh attachment (next sequence number)."""
        if getattr(request, '__msgtype__', None) != self.srv_type.Request.__msgtype__:
            raise TypeError(
                f'{self.name} expects {self.srv_type.name} requests, got {type(request).__name__}'
            )
        return self._serialize_request(request), self._next_attachment()

    def _next_attachment(self) -> bytes:
        with self._lock:
            self._sequence += 1
            return make_attachment(self._sequence, self.gid)

    def _reply_payload(self, reply: zenoh.Reply) -> bytes:
        if reply.ok is None:
            message = _error_text(reply)
            raise ServiceError(f'{self.name}: server error: {message}')
        return reply.ok.payload.to_bytes()

    def _decode(self, reply: zenoh.Reply) -> Any:
        payload = self._reply_payload(reply)
        try:
            return self._decode_response(payload)
        except interfaces.SerdeError as exc:
            raise ServiceError(f'{self.name}: malformed reply ({exc})') from exc

    def _get(self, payload: bytes, attachment: bytes, timeout_s: float, handler: Any) -> Any:
        return self.node.context.session.get(
            self._key,
            handler,
            payload=payload,
            attachment=attachment,
            target=zenoh.QueryTarget.ALL_COMPLETE,
            consolidation=zenoh.ConsolidationMode.NONE,
            timeout=max(timeout_s, 0.001),
        )

    def _replies(self, payload: bytes, attachment: bytes, timeout_s: float) -> Iterator[Any]:
        """The replies to one query, as they arrive.

        On a thread that runs an executor's callbacks, the executor is lent while waiting
        (see `executor.SingleThreadedExecutor.lend_until`): the server may be a node of the
        same executor (composition), and only this thread could run it.
        """
        executor = running_executor()
        if executor is None:
            yield from self._get(payload, attachment, timeout_s, None)
            return
        arrived: collections.deque[Any] = collections.deque()
        finished = threading.Event()

        def on_reply(reply: zenoh.Reply) -> None:
            arrived.append(reply)
            executor.wake()

        def on_done() -> None:
            finished.set()
            executor.wake()

        self._get(payload, attachment, timeout_s, zenoh.handlers.Callback(on_reply, on_done))
        # Zenoh ends every query by its timeout; the margin only guards against a lost end.
        deadline = time.monotonic() + timeout_s + 1.0
        while True:
            executor.lend_until(
                lambda: bool(arrived) or finished.is_set(), max(deadline - time.monotonic(), 0)
            )
            while arrived:
                yield arrived.popleft()
            if finished.is_set() or time.monotonic() >= deadline:
                return

    def _unanswered(self, deadline: float) -> Exception | None:
        """After a query no server answered: the error to raise, or None to retry."""
        if time.monotonic() >= deadline:
            return TimeoutError(f'service {self.name} did not answer in time')
        if not self.service_is_ready():
            return ServiceError(f'no server for service {self.name} ({self.srv_type.name})')
        return None

    def call(self, request: Any, timeout_sec: float | None = 10.0) -> Any:
        """Call and wait; raises ServiceError (no server, error reply) or TimeoutError."""
        return self._call(lambda: self._encode(request), self._decode, timeout_sec)

    def call_serialized(self, payload: bytes, timeout_sec: float | None = 10.0) -> bytes:
        """Call with a request that is already CDR and return the reply's CDR (bridges).

        The caller vouches for the payload's type; it is sent as it is.
        """
        if len(payload) > MAX_MESSAGE_BYTES:
            raise ValueError(
                f'{self.name}: request of {len(payload)} bytes exceeds the limit of '
                f'{MAX_MESSAGE_BYTES} bytes'
            )
        reply: bytes = self._call(
            lambda: (payload, self._next_attachment()), self._reply_payload, timeout_sec
        )
        return reply

    def _call(
        self,
        encode: Callable[[], tuple[bytes, bytes]],
        decode: Callable[[zenoh.Reply], Any],
        timeout_sec: float | None,
    ) -> Any:
        deadline = time.monotonic() + (3600.0 if timeout_sec is None else timeout_sec)
        while True:
            payload, attachment = encode()
            failed: ServiceError | None = None
            for reply in self._replies(payload, attachment, deadline - time.monotonic()):
                if _timed_out(reply):
                    continue  # reported as a TimeoutError below
                try:
                    return decode(reply)
                except ServiceError as exc:  # another server may still answer (a standby)
                    failed = failed or exc
            if failed is not None:
                raise failed
            error = self._unanswered(deadline)
            if error is not None:
                raise error
            time.sleep(self.RETRY_INTERVAL_S)

    def call_async(self, request: Any, *, timeout_sec: float = 60.0) -> Future:
        future = Future()
        self._call_async(request, future, time.monotonic() + timeout_sec)
        return future

    def _call_async(self, request: Any, future: Future, deadline: float) -> None:
        payload, attachment = self._encode(request)
        failed: list[ServiceError] = []

        def on_reply(reply: zenoh.Reply) -> None:
            if _timed_out(reply):
                return  # on_done reports it
            try:
                future.set_result(self._decode(reply))
            except ServiceError as exc:  # another server may still answer (a standby)
                failed.append(exc)

        def on_done() -> None:
            if future.done():
                return
            if failed:
                future.set_exception(failed[0])
                return
            error = self._unanswered(deadline)
            if error is not None:
                future.set_exception(error)
                return
            retry = threading.Timer(
                self.RETRY_INTERVAL_S, self._call_async, (request, future, deadline)
            )
            retry.daemon = True
            retry.start()

        self._get(
            payload,
            attachment,
            deadline - time.monotonic(),
            zenoh.handlers.Callback(on_reply, on_done),
        )


def _timed_out(reply: zenoh.Reply) -> bool:
    """Zenoh's own error reply for a query whose timeout passed (not a server's error)."""
    return reply.ok is None and _error_text(reply) == 'Timeout'


def _type_name(msg_type: type[Any] | None, type_name: str | None, name: str) -> str:
    """The type of an endpoint: given by name, or the message class's."""
    if type_name is not None:
        return type_name
    if msg_type is None:
        raise TypeError(f'{name}: needs a message type or a type name')
    return str(msg_type.__msgtype__)


def _error_text(reply: zenoh.Reply) -> str:
    """The text of an error reply (empty when the reply carries none)."""
    error = reply.err
    return '' if error is None else error.payload.to_bytes().decode(errors='replace')


class GuardCondition:
    """rclpy's guard condition: `trigger()` from any thread runs the callback on the node's
    executor (at once on the triggering thread when the executor is idle, else queued).

    This is how work from a foreign thread (an MQTT client's network loop, a socket server)
    joins the node's callbacks without overlapping them. Triggers that arrive while the
    callback is already queued coalesce into one run: the callback drains its own queue.
    """

    def __init__(self, node: Node, callback: Callable[[], None]) -> None:
        self.node = node
        self.callback = callback
        self.posted = False
        self.destroyed = False

    def trigger(self) -> None:
        if not self.destroyed:
            self.node._deliver(self)

    def execute(self) -> None:
        self.posted = False
        if not self.destroyed:
            self.callback()

    def destroy(self) -> None:
        self.destroyed = True


class Timer:
    """A periodic callback on a node's clock; missed periods are skipped, not queued."""

    def __init__(
        self, node: Node, period_sec: float, callback: Callable[[], None], clock: Clock
    ) -> None:
        if period_sec <= 0:
            raise ValueError(f'timer period must be > 0, got {period_sec}')
        self.node = node
        self.callback = callback
        self.clock = clock
        self.period = Duration.from_seconds(period_sec)
        self.canceled = False
        self._next_ns = 0
        self.reset()

    def reset(self) -> None:
        self.canceled = False
        self._next_ns = self.clock.now().nanoseconds + self.period.nanoseconds

    def cancel(self) -> None:
        self.canceled = True

    def time_until_next_call_ns(self) -> int | None:
        if self.canceled:
            return None
        now = self.clock.now().nanoseconds
        if now < self._next_ns - self.period.nanoseconds:
            self._next_ns = now + self.period.nanoseconds  # time jumped back (sim time reset)
        return self._next_ns - now

    def execute(self) -> None:
        now = self.clock.now().nanoseconds
        self._next_ns += self.period.nanoseconds
        if self._next_ns <= now:
            self._next_ns = now + self.period.nanoseconds
        self.callback()

    def destroy(self) -> None:
        self.canceled = True
