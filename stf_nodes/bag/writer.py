"""rosbag2 bags in MCAP, as ``ros2 bag record`` writes them (WIRE.md §3), on rosbags' writer.

``BagWriter`` wraps ``rosbags.rosbag2.Writer(version=9, storage_plugin=MCAP)``: a directory
with ``<name>_0.mcap`` and ``metadata.yaml``. Each topic is registered with the project's own
definitions, so custom ``stf_msgs`` types are embedded in the bag and any reader decodes them:
schema ``pkg/msg/Type`` with encoding ``ros2msg`` and the concatenated definition
(``interfaces.message_definition_text``), channel metadata ``offered_qos_profiles`` (from the
runtime's ``QoSProfile``) and ``topic_type_hash`` (RIHS01, ``interfaces.type_hash``). Messages
are CDR with the encapsulation header, as on the wire: pass a message or CDR bytes already
encoded (a recorder forwards what it received without decoding).

Used by ``stf history generate --bag DIR``; ``stf bag record`` builds on it (splitting and
compression belong here, as options of this class).

    with BagWriter(Path('bags/run1')) as bag:
        bag.write('/stf/alerts', alert_message, stamp_ns)
        bag.write_raw('/stf/hbw/state', 'stf_msgs/msg/HbwState', cdr_bytes, stamp_ns)
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

from rosbags.interfaces import (
    Connection,
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError, storage_mcap

from stf_nodes import interfaces
from stf_nodes.runtime.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)

__all__ = ['BagError', 'BagWriter', 'bag_qos']

_INFINITE = QosTime(sec=9223372036, nsec=854775807)  # rmw's RMW_DURATION_INFINITE


class BagError(RuntimeError):
    """The bag cannot be written (the directory exists, a type is unknown, ...)."""


def bag_qos(profile: QoSProfile) -> Qos:
    """A runtime QoS profile as rosbag2 stores it in ``offered_qos_profiles``."""
    return Qos(
        history=QosHistory.KEEP_ALL
        if profile.history == HistoryPolicy.KEEP_ALL
        else QosHistory.KEEP_LAST,
        depth=profile.depth,
        reliability=QosReliability.BEST_EFFORT
        if profile.reliability == ReliabilityPolicy.BEST_EFFORT
        else QosReliability.RELIABLE,
        durability=QosDurability.TRANSIENT_LOCAL
        if profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
        else QosDurability.VOLATILE,
        deadline=_INFINITE,
        lifespan=_INFINITE,
        liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=_INFINITE,
        avoid_ros_namespace_conventions=False,
    )


class _McapStorage(storage_mcap.McapWriter):
    """rosbags' MCAP storage, with the channel metadata ``topic_type_hash`` that
    rosbag2_storage_mcap writes beside ``offered_qos_profiles`` (rosbags 0.11 leaves it out)."""

    def add_connection(self, connection: Connection, offered_qos_profiles: str) -> None:
        metadata = storage_mcap.BytesIO()
        for key, value in (
            ('offered_qos_profiles', offered_qos_profiles),
            ('topic_type_hash', connection.digest),
        ):
            storage_mcap.write_string(metadata, key)
            storage_mcap.write_string(metadata, value)
        self.channels.append(
            storage_mcap.Channel(
                connection.id,
                connection.msgtype,
                connection.topic,
                connection.ext.serialization_format,  # type: ignore[union-attr]
                metadata.getvalue(),
            )
        )
        self.channel_stats[connection.id] = 0
        storage_mcap.write_channel(self.chunk.bio, self.channels[-1], self.schemas)


class _Writer(Writer):
    STORAGE_PLUGINS = {**Writer.STORAGE_PLUGINS, StoragePlugin.MCAP: _McapStorage}


class BagWriter:
    """A rosbag2 (version 9) MCAP bag being written; use as a context manager."""

    def __init__(self, path: Path) -> None:
        if path.exists():
            raise BagError(f'{path} exists; rosbag2 writes a new directory')
        self.path = path
        self._writer = _Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._connections: dict[str, tuple[str, Connection]] = {}
        self.messages = 0

    def __enter__(self) -> BagWriter:
        try:
            self._writer.open()
        except (WriterError, OSError) as exc:
            raise BagError(f'cannot write a bag at {self.path}: {exc}') from exc
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._writer.close()

    def add_topic(self, topic: str, type_name: str, qos: QoSProfile | None = None) -> Connection:
        """Register ``topic`` (done by the first write too); a topic has one type."""
        known = self._connections.get(topic)
        if known is not None:
            if known[0] != type_name:
                raise BagError(f'{topic} is {known[0]}, not {type_name}')
            return known[1]
        try:
            full = interfaces.get_message_class(type_name).__msgtype__
        except interfaces.InterfaceError as exc:
            raise BagError(str(exc)) from exc
        connection = self._writer.add_connection(
            topic,
            full,
            msgdef=interfaces.message_definition_text(full),
            rihs01=interfaces.type_hash(full),
            offered_qos_profiles=[bag_qos(qos or QoSProfile(depth=10))],
        )
        self._connections[topic] = (full, connection)
        return connection

    def write(self, topic: str, message: Any, stamp_ns: int) -> None:
        """Write a message (serialized to CDR here) at ``stamp_ns`` (log = publish time)."""
        self.write_raw(topic, message.__msgtype__, interfaces.serialize(message), stamp_ns)

    def write_raw(self, topic: str, type_name: str, cdr: bytes, stamp_ns: int) -> None:
        """Write CDR bytes (with the encapsulation header) of ``type_name``."""
        connection = self.add_topic(topic, type_name)
        self._writer.write(connection, stamp_ns, cdr)
        self.messages += 1
