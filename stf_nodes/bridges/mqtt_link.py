"""The bridge's MQTT connection: paho-mqtt 2.x behind a small protocol.

:class:`PahoLink` keeps one connection to the broker (MQTT 3.1.1 or 5) on paho's network
thread and hands everything that happens to two callbacks, which must only queue (the node
runs the work on its executor):

- **Sessions.** ``persistent`` (default) asks for a session the broker keeps while the bridge
  is away (3.1.1: clean session 0; 5: clean start 0 and a session expiry), so QoS 1 orders
  sent meanwhile are delivered after a reconnect; that needs a stable client id.
- **Acknowledgements are manual**: a QoS 1 message is acknowledged by :meth:`ack` once the
  node has handled it (for an order: once the scheduler answered). A message not acknowledged
  when the connection drops is sent again by the broker (``dup``, same packet id), so nothing
  acknowledged is lost and nothing unacknowledged is dropped. Each connection has a
  *generation*; an ack for an older generation is not sent (its packet id means nothing now).
- **Reconnect** with exponential backoff (``reconnect_min_s`` .. ``reconnect_max_s``), then
  resubscribe and publish every retained topic again (a restarted broker may have lost them);
  retained publications made while disconnected only update that cache. Non-retained QoS 1
  publications are queued by paho meanwhile (bounded by ``max_queued``) and sent after the
  reconnect.
- **Last will**: ``f/i/state/twin``-style ``offline`` status, retained; ``online`` is
  published on every connect and ``offline`` on a clean stop.
- **TLS** (CA file, client certificate and key; ``tls_insecure`` skips the host name check)
  and username/password.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

PROTOCOLS = {'3.1.1': MQTTProtocolVersion.MQTTv311, '5': MQTTProtocolVersion.MQTTv5}
#: How long a broker keeps an MQTT 5 session of an absent bridge (its queued orders), s.
SESSION_EXPIRY_S = 7 * 24 * 3600


@dataclass(frozen=True, kw_only=True)
class Publication:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


@dataclass(frozen=True, kw_only=True)
class Inbound:
    """A received message and what is needed to acknowledge it."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    mid: int
    generation: int


@dataclass(frozen=True, kw_only=True)
class LinkEvent:
    """A connection event: ``connected``, ``lost`` or ``refused`` (with the broker's reason)."""

    kind: str
    reason: str = ''
    generation: int = 0
    session_present: bool = False


@dataclass(frozen=True, kw_only=True)
class LinkSettings:
    host: str = '127.0.0.1'
    port: int = 1883
    client_id: str = ''
    protocol: str = '3.1.1'
    username: str = ''
    password: str = ''
    keepalive_s: int = 60
    persistent: bool = True
    tls: bool = False
    tls_ca_file: str = ''
    tls_cert_file: str = ''
    tls_key_file: str = ''
    tls_insecure: bool = False
    reconnect_min_s: int = 1
    reconnect_max_s: int = 30
    max_queued: int = 10000
    subscriptions: tuple[str, ...] = ()
    will: Publication | None = None
    online: Publication | None = None

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(
                f'protocol must be one of {", ".join(PROTOCOLS)}, got {self.protocol!r}'
            )
        if not 0 < self.port < 65536:
            raise ValueError(f'broker port must be 1..65535, got {self.port}')
        if self.persistent and not self.client_id:
            raise ValueError('a persistent session needs a client id')
        if self.tls_key_file and not self.tls_cert_file:
            raise ValueError('tls.key_file needs tls.cert_file')

    @property
    def address(self) -> str:
        return f'{"mqtts" if self.tls else "mqtt"}://{self.host}:{self.port}'


class MqttLink(Protocol):
    """What the bridge node needs from an MQTT connection."""

    @property
    def connected(self) -> bool: ...

    def start(self) -> None: ...

    def publish(self, publication: Publication) -> None: ...

    def ack(self, generation: int, mid: int, qos: int) -> None: ...

    def stop(self, farewell: Sequence[Publication] = ()) -> None: ...


class PahoLink:
    """:class:`MqttLink` on paho-mqtt (see the module docstring)."""

    def __init__(
        self,
        settings: LinkSettings,
        *,
        on_message: Callable[[Inbound], None],
        on_event: Callable[[LinkEvent], None],
    ) -> None:
        self.settings = settings
        self._on_message = on_message
        self._on_event = on_event
        self._lock = threading.Lock()
        self._retained: dict[str, Publication] = {}
        self._generation = 0
        self._connected = False
        version = PROTOCOLS[settings.protocol]
        v5 = version == MQTTProtocolVersion.MQTTv5
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=version,
            clean_session=None if v5 else not settings.persistent,
            manual_ack=True,
            reconnect_on_failure=True,
        )
        client.reconnect_delay_set(settings.reconnect_min_s, settings.reconnect_max_s)
        client.max_queued_messages_set(settings.max_queued)
        if settings.username:
            client.username_pw_set(settings.username, settings.password or None)
        if settings.tls:
            client.tls_set(
                ca_certs=settings.tls_ca_file or None,
                certfile=settings.tls_cert_file or None,
                keyfile=settings.tls_key_file or None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
            client.tls_insecure_set(settings.tls_insecure)
        if settings.will is not None:
            will = settings.will
            client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        client.on_connect = self._handle_connect
        client.on_connect_fail = self._handle_connect_fail
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        self._client = client
        self._connect_properties: Properties | None = None
        if v5:
            self._connect_properties = Properties(PacketTypes.CONNECT)
            self._connect_properties.SessionExpiryInterval = (
                SESSION_EXPIRY_S if settings.persistent else 0
            )

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def generation(self) -> int:
        return self._generation

    def start(self) -> None:
        """Connect in the background; failures are retried with backoff, never raised."""
        v5 = self._connect_properties is not None
        self._client.connect_async(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive_s,
            clean_start=(not self.settings.persistent) if v5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
            properties=self._connect_properties,
        )
        self._client.loop_start()

    def publish(self, publication: Publication) -> None:
        with self._lock:
            if publication.retain:
                self._retained[publication.topic] = publication
                if not self._connected:
                    return  # sent on the next connect
        self._client.publish(
            publication.topic,
            publication.payload,
            qos=publication.qos,
            retain=publication.retain,
        )

    def ack(self, generation: int, mid: int, qos: int) -> None:
        if qos > 0 and generation == self._generation and self._connected:
            self._client.ack(mid, qos)

    def stop(self, farewell: Sequence[Publication] = ()) -> None:
        """Publish ``farewell`` (if connected), disconnect cleanly, end the network thread."""
        if self._connected:
            for publication in farewell:
                info = self._client.publish(
                    publication.topic,
                    publication.payload,
                    qos=publication.qos,
                    retain=publication.retain,
                )
                if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS and publication.qos:
                    info.wait_for_publish(timeout=2.0)
        self._client.disconnect()
        self._client.loop_stop()

    # -- paho callbacks (its network thread) --------------------------------------------------

    def _handle_connect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.ConnectFlags,
        reason: object,
        properties: object,
    ) -> None:
        if getattr(reason, 'is_failure', False):
            self._on_event(LinkEvent(kind='refused', reason=str(reason)))
            return
        with self._lock:
            self._generation += 1
            self._connected = True
            retained = list(self._retained.values())
        for topic in self.settings.subscriptions:
            client.subscribe(topic, qos=1)
        online = self.settings.online
        for publication in ([online] if online else []) + retained:
            client.publish(publication.topic, publication.payload, qos=publication.qos, retain=True)
        self._on_event(
            LinkEvent(
                kind='connected',
                generation=self._generation,
                session_present=bool(flags.session_present),
            )
        )

    def _handle_connect_fail(self, client: paho.Client, userdata: object) -> None:
        self._on_event(LinkEvent(kind='lost', reason='cannot connect'))

    def _handle_disconnect(
        self,
        client: paho.Client,
        userdata: object,
        flags: object,
        reason: object,
        properties: object,
    ) -> None:
        was_connected, self._connected = self._connected, False
        if was_connected:
            self._on_event(LinkEvent(kind='lost', reason=str(reason)))

    def _handle_message(
        self, client: paho.Client, userdata: object, message: paho.MQTTMessage
    ) -> None:
        # A topic that is not UTF-8 (MQTT forbids it, some clients send it) must not kill
        # paho's thread: it is shown escaped and refused as an unexpected topic.
        topic = message._topic.decode('utf-8', 'backslashreplace')
        self._on_message(
            Inbound(
                topic=topic,
                payload=message.payload,
                qos=message.qos,
                retain=bool(message.retain),
                dup=bool(message.dup),
                mid=message.mid,
                generation=self._generation,
            )
        )


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT wildcard matching (``+`` one level, ``#`` the rest)."""
    return paho.topic_matches_sub(pattern, topic)
