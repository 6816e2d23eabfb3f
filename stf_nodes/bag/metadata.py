"""rosbag2 bag metadata: `metadata.yaml` (version 9), offered QoS profiles, `ros2 bag info` text.

Pure: no transport, no files other than the ones named. The layout follows rosbag2
(`rosbag2_storage/bag_metadata.hpp`, `metadata_io.cpp`) as WIRE.md §3 describes it:

```yaml
rosbag2_bagfile_information:
  version: 9
  storage_identifier: mcap
  duration: {nanoseconds: ...}
  starting_time: {nanoseconds_since_epoch: ...}
  message_count: ...
  topics_with_message_count:
    - topic_metadata: {name, type, serialization_format: cdr,
                       offered_qos_profiles: [...], type_description_hash: RIHS01_...}
      message_count: ...
  compression_format: ''
  compression_mode: ''
  relative_file_paths: [bag_0.mcap, ...]
  files: [{path, starting_time, duration, message_count}, ...]
  custom_data: ~
  ros_distro: kilted
```

QoS profiles are (de)serialized by `rosbags` (`dump_qos_v9`, `parse_qos`), which reads the
older string form (versions ≤ 8) too. Durations of the runtime's profiles are infinite, as
rmw_zenoh offers them.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2.errors import ReaderError
from rosbags.rosbag2.metadata import dump_qos_v9, parse_qos

from stf_nodes.runtime.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)

METADATA_FILE = 'metadata.yaml'
VERSION = 9
STORAGE_ID = 'mcap'
#: rmw's RMW_DURATION_INFINITE, as rosbag2 writes it.
INFINITE = QosTime(9223372036, 854775807)
#: Definitions of standard types come from the ROS 2 Kilted type store (see interfaces.py).
DEFAULT_DISTRO = 'kilted'


class BagError(Exception):
    """A bag that cannot be read or written as asked; `str()` names the file and the problem."""


# -- QoS ----------------------------------------------------------------------------------------


def to_bag_qos(profile: QoSProfile) -> Qos:
    """A runtime QoS profile as rosbag2 records it (infinite deadline/lifespan/lease)."""
    return Qos(
        QosHistory(int(profile.history)),
        profile.depth,
        QosReliability(int(profile.reliability)),
        QosDurability(int(profile.durability)),
        INFINITE,
        INFINITE,
        QosLiveliness.AUTOMATIC,
        INFINITE,
        False,
    )


def from_bag_qos(qos: Qos) -> QoSProfile:
    """A recorded profile as a runtime profile; unknown or system-default policies take the
    ROS defaults (reliable, volatile, keep last 10)."""
    return QoSProfile(
        depth=qos.depth if qos.depth > 0 else 10,
        reliability=ReliabilityPolicy.BEST_EFFORT
        if qos.reliability == QosReliability.BEST_EFFORT
        else ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL
        if qos.durability == QosDurability.TRANSIENT_LOCAL
        else DurabilityPolicy.VOLATILE,
        history=HistoryPolicy.KEEP_ALL
        if qos.history == QosHistory.KEEP_ALL
        else HistoryPolicy.KEEP_LAST,
    )


def qos_to_yaml(profiles: Sequence[Qos]) -> str:
    """The `offered_qos_profiles` channel metadata of an MCAP file (version 9 form)."""
    if not profiles:
        return ''
    return yaml.safe_dump(dump_qos_v9(list(profiles)), sort_keys=False).strip()


def qos_from_yaml(data: Any, where: str) -> tuple[Qos, ...]:
    """Offered QoS profiles from metadata (a YAML string, or a list in version 9)."""
    try:
        return tuple(parse_qos(data))
    except (ReaderError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BagError(f'{where}: malformed offered_qos_profiles ({exc!r})') from exc


def replay_qos(offered: Sequence[Qos]) -> QoSProfile:
    """The QoS to replay a topic with, from what its publishers offered while recorded.

    Policies all publishers agree on are kept. Where they differ: reliable (it serves every
    subscriber), transient-local if any publisher latched (latched state stays latched), the
    largest depth. No profile at all: the ROS default (reliable, volatile, depth 10).
    """
    profiles = [from_bag_qos(q) for q in offered]
    if not profiles:
        return QoSProfile(depth=10)
    reliabilities = {p.reliability for p in profiles}
    return QoSProfile(
        depth=max(p.depth for p in profiles),
        reliability=reliabilities.pop() if len(reliabilities) == 1 else ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL
        if any(p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in profiles)
        else DurabilityPolicy.VOLATILE,
        history=HistoryPolicy.KEEP_LAST,
    )


# -- metadata.yaml ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TopicMetadata:
    """One topic of a bag, as `metadata.yaml` lists it."""

    name: str
    type: str
    serialization_format: str = 'cdr'
    offered_qos_profiles: tuple[Qos, ...] = ()
    type_description_hash: str = ''
    message_count: int = 0

    @property
    def is_service_event(self) -> bool:
        """rosbag2 records service events on `<service>/_service_event` topics."""
        return self.name.endswith('/_service_event') and self.type.endswith('_Event')


@dataclass(frozen=True, kw_only=True)
class FileMetadata:
    """One storage file of a bag."""

    path: str
    starting_time_ns: int = 0
    duration_ns: int = 0
    message_count: int = 0


@dataclass(frozen=True, kw_only=True)
class BagMetadata:
    """The contents of `metadata.yaml`."""

    version: int = VERSION
    storage_identifier: str = STORAGE_ID
    starting_time_ns: int = 0
    duration_ns: int = 0
    message_count: int = 0
    topics: tuple[TopicMetadata, ...] = ()
    files: tuple[FileMetadata, ...] = ()
    compression_format: str = ''
    compression_mode: str = ''
    custom_data: dict[str, str] = field(default_factory=dict)
    ros_distro: str = field(default_factory=lambda: os.environ.get('ROS_DISTRO', DEFAULT_DISTRO))

    @property
    def relative_file_paths(self) -> list[str]:
        return [f.path for f in self.files]

    @property
    def end_time_ns(self) -> int:
        return self.starting_time_ns + self.duration_ns

    def to_yaml(self) -> str:
        info = {
            'version': self.version,
            'storage_identifier': self.storage_identifier,
            'duration': {'nanoseconds': self.duration_ns},
            'starting_time': {'nanoseconds_since_epoch': self.starting_time_ns},
            'message_count': self.message_count,
            'topics_with_message_count': [
                {
                    'topic_metadata': {
                        'name': t.name,
                        'type': t.type,
                        'serialization_format': t.serialization_format,
                        'offered_qos_profiles': dump_qos_v9(list(t.offered_qos_profiles)),
                        'type_description_hash': t.type_description_hash,
                    },
                    'message_count': t.message_count,
                }
                for t in self.topics
            ],
            'compression_format': self.compression_format,
            'compression_mode': self.compression_mode,
            'relative_file_paths': self.relative_file_paths,
            'files': [
                {
                    'path': f.path,
                    'starting_time': {'nanoseconds_since_epoch': f.starting_time_ns},
                    'duration': {'nanoseconds': f.duration_ns},
                    'message_count': f.message_count,
                }
                for f in self.files
            ],
            'custom_data': dict(self.custom_data) or None,
            'ros_distro': self.ros_distro,
        }
        return yaml.safe_dump(
            {'rosbag2_bagfile_information': info}, sort_keys=False, allow_unicode=True
        )

    def write(self, directory: Path) -> None:
        """Write `metadata.yaml` atomically (a crash leaves the old one or the new one)."""
        target = directory / METADATA_FILE
        temporary = target.with_name(METADATA_FILE + '.tmp')
        with temporary.open('w', encoding='utf-8') as stream:
            stream.write(self.to_yaml())
            stream.flush()
            os.fsync(stream.fileno())
        temporary.replace(target)

    @classmethod
    def from_yaml(cls, text: str, where: str) -> BagMetadata:
        """Parse `metadata.yaml` text; BagError names `where` and what is wrong."""
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise BagError(f'{where}: not valid YAML ({exc})') from exc
        if not isinstance(document, dict) or not isinstance(
            document.get('rosbag2_bagfile_information'), dict
        ):
            raise BagError(f'{where}: not rosbag2 metadata (no rosbag2_bagfile_information)')
        return _parse_metadata(document['rosbag2_bagfile_information'], where)

    @classmethod
    def load(cls, directory: Path) -> BagMetadata:
        path = directory / METADATA_FILE
        try:
            text = path.read_text(encoding='utf-8')
        except UnicodeDecodeError as exc:
            raise BagError(f'{path}: not a text file ({exc})') from exc
        return cls.from_yaml(text, str(path))


def _get(mapping: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in mapping:
        raise BagError(f'{where}: missing field {key!r}')
    value = mapping[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BagError(f'{where}: field {key!r} has the wrong type ({type(value).__name__})')
    return value


def _nanoseconds(mapping: dict[str, Any], key: str, inner: str, where: str) -> int:
    value = _get(mapping, key, dict, where)
    return int(_get(value, inner, int, f'{where}.{key}'))


def _parse_metadata(info: dict[str, Any], where: str) -> BagMetadata:
    version = _get(info, 'version', int, where)
    topics = []
    for index, entry in enumerate(_get(info, 'topics_with_message_count', list, where)):
        at = f'{where}: topics_with_message_count[{index}]'
        if not isinstance(entry, dict):
            raise BagError(f'{at}: expected a mapping')
        topic = _get(entry, 'topic_metadata', dict, at)
        topics.append(
            TopicMetadata(
                name=_get(topic, 'name', str, at),
                type=_get(topic, 'type', str, at),
                serialization_format=_get(topic, 'serialization_format', str, at),
                offered_qos_profiles=qos_from_yaml(topic.get('offered_qos_profiles', ''), at),
                type_description_hash=str(topic.get('type_description_hash') or ''),
                message_count=int(_get(entry, 'message_count', int, at)),
            )
        )
    paths = [str(p) for p in _get(info, 'relative_file_paths', list, where)]
    files = []
    for index, entry in enumerate(info.get('files') or []):
        at = f'{where}: files[{index}]'
        if not isinstance(entry, dict):
            raise BagError(f'{at}: expected a mapping')
        files.append(
            FileMetadata(
                path=_get(entry, 'path', str, at),
                starting_time_ns=_nanoseconds(
                    entry, 'starting_time', 'nanoseconds_since_epoch', at
                ),
                duration_ns=_nanoseconds(entry, 'duration', 'nanoseconds', at),
                message_count=int(_get(entry, 'message_count', int, at)),
            )
        )
    if not files:  # versions before 5 list paths only
        files = [FileMetadata(path=p) for p in paths]
    custom = info.get('custom_data') or {}
    if not isinstance(custom, dict):
        raise BagError(f'{where}: field custom_data has the wrong type')
    return BagMetadata(
        version=version,
        storage_identifier=_get(info, 'storage_identifier', str, where),
        starting_time_ns=_nanoseconds(info, 'starting_time', 'nanoseconds_since_epoch', where),
        duration_ns=_nanoseconds(info, 'duration', 'nanoseconds', where),
        message_count=int(_get(info, 'message_count', int, where)),
        topics=tuple(topics),
        files=tuple(files),
        compression_format=str(info.get('compression_format') or ''),
        compression_mode=str(info.get('compression_mode') or ''),
        custom_data={str(k): str(v) for k, v in custom.items()},
        ros_distro=str(info.get('ros_distro') or ''),
    )


# -- `ros2 bag info` ----------------------------------------------------------------------------


def _seconds_text(nanoseconds: int) -> str:
    seconds, fraction = divmod(nanoseconds, 1_000_000_000)
    return f'{seconds}.{fraction:09d}'


def _time_point(nanoseconds: int) -> str:
    stamp = datetime.datetime.fromtimestamp(nanoseconds // 1_000_000_000)  # local time, as ros2
    fraction = nanoseconds % 1_000_000_000
    return f'{stamp.strftime("%b %e %Y %H:%M:%S")}.{fraction:09d} ({_seconds_text(nanoseconds)})'


def format_size(size: int) -> str:
    """Bytes as `ros2 bag info` prints them (B, KiB, MiB, ...)."""
    value = float(size)
    units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
    index = 0
    while value >= 1024 and index < len(units) - 1:
        value /= 1024
        index += 1
    return f'{value:.0f} {units[index]}' if index == 0 else f'{value:.1f} {units[index]}'


def _indented(lines: Iterable[str], indent: int) -> str:
    items = list(lines)
    if not items:
        return '\n'
    return items[0] + '\n' + ''.join(' ' * indent + line + '\n' for line in items[1:])


def format_info(metadata: BagMetadata, bag_size: int) -> str:
    """The text `ros2 bag info` prints (rosbag2_py `format_bag_meta_data`, topics by name)."""
    topics = sorted(metadata.topics, key=lambda t: t.name)
    regular = [t for t in topics if not t.is_service_event]
    services = [t for t in topics if t.is_service_event]
    events = sum(t.message_count for t in services)
    indent = 19
    text = '\n'
    text += 'Files:             ' + _indented(metadata.relative_file_paths, indent)
    text += f'Bag size:          {format_size(bag_size)}\n'
    text += f'Storage id:        {metadata.storage_identifier}\n'
    text += f'ROS Distro:        {metadata.ros_distro or "unknown"}\n'
    text += f'Duration:          {_seconds_text(metadata.duration_ns)}s\n'
    text += f'Start:             {_time_point(metadata.starting_time_ns)}\n'
    text += f'End:               {_time_point(metadata.end_time_ns)}\n'
    text += f'Messages:          {metadata.message_count - events}\n'
    text += 'Topic information: ' + _indented(
        (
            f'Topic: {t.name} | Type: {t.type} | Count: {t.message_count} | '
            f'Serialization Format: {t.serialization_format}'
            for t in regular
        ),
        indent,
    )
    text += f'Service:           {len(services)}\n'
    text += 'Service information: '
    if services:
        text += _indented(
            (
                f'Service: {t.name[: -len("/_service_event")]} | '
                f'Type: {t.type[: -len("_Event")]} | Event Count: {t.message_count} | '
                f'Serialization Format: {t.serialization_format}'
                for t in services
            ),
            indent + 2,
        )
    return text
