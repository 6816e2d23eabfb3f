"""Write rosbag2 bags with MCAP storage (pure: no transport).

The small API every producer of bags uses (the recorder, the history generator, tests):

```python
from stf_nodes.bag.writer import StorageOptions, open_bag

with open_bag('out_bag', StorageOptions(compression='zstd')) as bag:
    bag.add_topic('/stf/hbw/state', 'stf_msgs/msg/HbwState', qos=QoSProfile(depth=10))
    bag.write('/stf/hbw/state', cdr_bytes, timestamp_ns)
# metadata.yaml is written on close
```

`add_topic(name, type, qos=..., type_hash=..., definition=...)`: hash and definition default to
the project's type store (`interfaces.type_hash`, `interfaces.message_definition_text`), so
custom `stf_msgs` types are embedded in full; give them for a type the store does not know.

What lands on disk is WIRE.md §3, written with the `mcap` library (no hand-made records):
- `<dir>/<dir>_0.mcap`, `_1.mcap`, ... (a new file when `max_bag_size` bytes or
  `max_bag_duration_ns` is reached), profile `ros2`; schema `pkg/msg/T`, encoding `ros2msg`,
  the concatenated definition; channel encoding `cdr` with metadata `offered_qos_profiles`
  (YAML) and `topic_type_hash` (RIHS01); messages with log time = publish time = the given
  timestamp and a per-topic sequence number; each file ends with a `rosbag2` metadata record
  (`serialized_metadata`) as rosbag2_storage_mcap writes it, so `ros2 bag reindex` works.
- Files are chunked (`chunk_size`, default 1 MiB) with CRCs, optionally compressed per chunk
  (`compression` 'zstd' or 'lz4'; the file stays a plain MCAP every reader opens, as with
  rosbag2's MCAP storage presets). `flush()` ends the open chunk so that a killed process
  loses only what came after (the recorder flushes every second).
- `metadata.yaml` (version 9) is written atomically at every split and at close.

A full disk: the writer keeps `disk_reserve` bytes preallocated in a hidden file of the bag
directory. When a write fails with ENOSPC, the partial write is cut off, the reserve is
released and the write is retried, then `DiskFullError` refuses further messages: the caller
closes the bag, whose summary and `metadata.yaml` fit in the released space. The bag holds
every message written before the error.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from mcap.writer import CompressionType, Writer

from stf_nodes import interfaces
from stf_nodes.bag.metadata import (
    METADATA_FILE,
    BagError,
    BagMetadata,
    FileMetadata,
    TopicMetadata,
    qos_to_yaml,
    to_bag_qos,
)
from stf_nodes.runtime.qos import QoSProfile

__all__ = ['BagWriteError', 'BagWriter', 'DiskFullError', 'StorageOptions', 'open_bag']

COMPRESSIONS = {
    'none': CompressionType.NONE,
    'zstd': CompressionType.ZSTD,
    'lz4': CompressionType.LZ4,
}
PROFILE = 'ros2'
LIBRARY = 'stf_digital_twin bag writer (mcap-python)'
RESERVE_FILE = '.stf_disk_reserve'


class BagWriteError(BagError):
    """Writing failed; the message says where and why."""


class DiskFullError(BagWriteError):
    """The disk is full: no more messages are accepted; close() still finishes the bag."""


@dataclass(frozen=True, kw_only=True)
class StorageOptions:
    """How a bag is stored (the `--max-bag-size`, `--compression` ... of `stf bag record`)."""

    max_bag_size: int = 0  #: bytes per file before a new file starts (0: one file)
    max_bag_duration_ns: int = 0  #: message time span per file (0: no limit)
    compression: str = 'none'  #: MCAP chunk compression: 'none', 'zstd' or 'lz4'
    chunk_size: int = 1024 * 1024  #: bytes of messages per chunk
    disk_reserve: int | None = None  #: bytes kept free to close on a full disk (None: auto)
    custom_data: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.compression not in COMPRESSIONS:
            raise BagError(
                f'unknown compression {self.compression!r}; use one of {", ".join(COMPRESSIONS)}'
            )
        for name in ('max_bag_size', 'max_bag_duration_ns'):
            if getattr(self, name) < 0:
                raise BagError(f'{name} must be >= 0, got {getattr(self, name)}')
        if self.chunk_size <= 0:
            raise BagError(f'chunk_size must be > 0, got {self.chunk_size}')
        if self.disk_reserve is not None and self.disk_reserve < 0:
            raise BagError(f'disk_reserve must be >= 0, got {self.disk_reserve}')

    @property
    def reserve_bytes(self) -> int:
        """Room for the chunk being written, its index and the summary of a file."""
        if self.disk_reserve is not None:
            return self.disk_reserve
        return 2 * self.chunk_size + 256 * 1024


class _DiskReserve:
    """Preallocated space the writer gives back to the file system when the disk is full."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.available = False
        if size <= 0:
            return
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.posix_fallocate(fd, 0, size)
            finally:
                os.close(fd)
        except OSError as exc:
            path.unlink(missing_ok=True)
            if exc.errno == errno.ENOSPC:
                raise DiskFullError(
                    f'{path.parent}: no room for a bag (needs {size} bytes of reserve to close '
                    'cleanly on a full disk)'
                ) from exc
            raise BagWriteError(f'{path}: cannot reserve disk space ({exc})') from exc
        self.available = True

    def release(self) -> bool:
        """Free the space; False if there was none left to free."""
        if not self.available:
            return False
        self.available = False
        self.path.unlink(missing_ok=True)
        return True


class _DiskFile:
    """The .mcap file, written unbuffered so that a failed write is detected where it happens.

    On ENOSPC the partial write is cut off and the write retried once after the reserve is
    released; `disk_full` then tells the writer to refuse further messages.
    """

    def __init__(self, path: Path, reserve: _DiskReserve) -> None:
        self.path = path
        self._reserve = reserve
        self._file = open(path, 'xb', buffering=0)  # noqa: SIM115 - closed in close()
        self._position = 0
        self.disk_full = False

    def tell(self) -> int:
        return self._position

    def write(self, data: bytes | bytearray | memoryview) -> int:
        start = self._position
        try:
            self._write_all(data)
        except OSError as exc:
            if exc.errno != errno.ENOSPC or not self._reserve.release():
                self._cut(start)
                raise BagWriteError(f'{self.path}: write failed ({exc})') from exc
            self.disk_full = True
            self._cut(start)
            try:
                self._write_all(data)
            except OSError as retry:
                self._cut(start)
                raise DiskFullError(
                    f'{self.path}: disk full, and the reserve was not enough ({retry})'
                ) from retry
        return len(data)

    def _write_all(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        while view:
            written = self._file.write(view)
            if written is None:  # pragma: no cover - only for non-blocking files
                continue
            self._position += written
            view = view[written:]

    def _cut(self, position: int) -> None:
        """Drop a partial record so the file ends on a record boundary."""
        try:
            self._file.truncate(position)
            self._file.seek(position)
        except OSError:
            pass
        self._position = position

    def flush(self) -> None:
        """Nothing is buffered here; the mcap writer calls this after each chunk."""

    def close(self) -> None:
        self._file.close()


@dataclass
class _Topic:
    name: str
    type_name: str
    type_hash: str
    definition: str
    qos_yaml: str
    metadata: TopicMetadata
    count: int = 0


class _McapFile:
    """One storage file of the bag."""

    def __init__(self, path: Path, options: StorageOptions, reserve: _DiskReserve) -> None:
        self.path = path
        self.stream = _DiskFile(path, reserve)
        self.writer = Writer(
            self.stream,  # type: ignore[arg-type] - a stream object is all it needs
            chunk_size=options.chunk_size,
            compression=COMPRESSIONS[options.compression],
        )
        self.writer.start(profile=PROFILE, library=LIBRARY)
        self.schemas: dict[str, int] = {}
        self.channels: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self.message_count = 0
        self.start_ns: int | None = None
        self.end_ns = 0
        self.pending_bytes = 0  # message bytes in the open chunk

    def add(self, topic: _Topic) -> None:
        schema_id = self.schemas.get(topic.type_name)
        if schema_id is None:
            schema_id = self.writer.register_schema(
                topic.type_name, 'ros2msg', topic.definition.encode()
            )
            self.schemas[topic.type_name] = schema_id
        self.channels[topic.name] = self.writer.register_channel(
            topic.name,
            'cdr',
            schema_id,
            {'offered_qos_profiles': topic.qos_yaml, 'topic_type_hash': topic.type_hash},
        )
        self.counts.setdefault(topic.name, 0)

    def write(self, topic: _Topic, data: bytes, timestamp_ns: int, sequence: int) -> None:
        before = self.stream.tell()
        self.writer.add_message(
            self.channels[topic.name], timestamp_ns, data, timestamp_ns, sequence
        )
        self.counts[topic.name] += 1
        self.message_count += 1
        self.start_ns = timestamp_ns if self.start_ns is None else min(self.start_ns, timestamp_ns)
        self.end_ns = max(self.end_ns, timestamp_ns)
        if self.stream.tell() != before:
            self.pending_bytes = 0  # the writer has just written the chunk, this message too
        else:
            self.pending_bytes += len(data) + 31  # + record header and index entry

    @property
    def size(self) -> int:
        return self.stream.tell() + self.pending_bytes

    def info(self) -> FileMetadata:
        start = self.start_ns or 0
        return FileMetadata(
            path=self.path.name,
            starting_time_ns=start,
            duration_ns=max(self.end_ns - start, 0),
            message_count=self.message_count,
        )

    def flush(self) -> None:
        self.writer.flush()
        self.pending_bytes = 0

    def finish(self, serialized_metadata: str) -> None:
        try:
            self.writer.add_metadata('rosbag2', {'serialized_metadata': serialized_metadata})
            self.writer.finish()
        finally:
            self.stream.close()


class BagWriter:
    """A rosbag2 bag being written (see the module docstring); not thread-safe."""

    def __init__(self, path: str | Path, options: StorageOptions | None = None) -> None:
        self.path = Path(path)
        self.options = options or StorageOptions()
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise BagWriteError(f'{self.path} exists already; not overwriting it')
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BagWriteError(f'cannot create {self.path}: {exc}') from exc
        self._reserve = _DiskReserve(self.path / RESERVE_FILE, self.options.reserve_bytes)
        self._topics: dict[str, _Topic] = {}
        self._closed_files: list[FileMetadata] = []
        self._file: _McapFile | None = None
        self._refusing: BagWriteError | None = None
        self.closed = False
        self.metadata: BagMetadata | None = None
        try:
            self._file = self._open_file()  # an empty bag still has its (empty) file
        except BagWriteError:
            self._reserve.release()
            raise

    # -- the API --------------------------------------------------------------------------

    def add_topic(
        self,
        name: str,
        type_name: str,
        *,
        qos: QoSProfile | Sequence[QoSProfile] = (),
        type_hash: str | None = None,
        definition: str | None = None,
        serialization_format: str = 'cdr',
    ) -> None:
        """Register a topic; hash and definition default to the project's type store."""
        self._check_open()
        if name in self._topics:
            known = self._topics[name]
            if known.type_name != type_name:
                raise BagWriteError(
                    f'{self.path}: topic {name} is already recorded as {known.type_name}, '
                    f'not {type_name}'
                )
            return
        try:
            type_hash = type_hash or interfaces.type_hash(type_name)
            definition = (
                definition
                if definition is not None
                else interfaces.message_definition_text(type_name)
            )
        except interfaces.InterfaceError as exc:
            raise BagWriteError(
                f'{self.path}: no definition of {type_name} for topic {name}: give type_hash '
                f'and definition ({exc})'
            ) from exc
        profiles = [qos] if isinstance(qos, QoSProfile) else list(qos)
        bag_qos = tuple(to_bag_qos(p) for p in profiles)
        topic = _Topic(
            name=name,
            type_name=type_name,
            type_hash=type_hash,
            definition=definition,
            qos_yaml=qos_to_yaml(bag_qos),
            metadata=TopicMetadata(
                name=name,
                type=type_name,
                serialization_format=serialization_format,
                offered_qos_profiles=bag_qos,
                type_description_hash=type_hash,
            ),
        )
        self._topics[name] = topic
        if self._file is not None:
            self._guarded(lambda: self._file.add(topic))  # type: ignore[union-attr]

    def write(self, topic: str, data: bytes, timestamp_ns: int) -> None:
        """Append one serialized message (CDR with its 4-byte header) to `topic`."""
        self._check_open()
        if self._refusing is not None:
            raise self._refusing
        entry = self._topics.get(topic)
        if entry is None:
            raise BagWriteError(f'{self.path}: topic {topic} was not added')
        current = self._current_file(timestamp_ns)
        entry.count += 1
        self._guarded(lambda: current.write(entry, bytes(data), timestamp_ns, entry.count))

    def flush(self) -> None:
        """End the open chunk: everything written so far is in the file."""
        if self._file is not None and not self.closed and self._refusing is None:
            self._guarded(self._file.flush)

    @property
    def disk_full(self) -> bool:
        return isinstance(self._refusing, DiskFullError)

    @property
    def message_count(self) -> int:
        return sum(t.count for t in self._topics.values())

    def topic_names(self) -> list[str]:
        return list(self._topics)

    def close(self) -> BagMetadata:
        """Finish the open file and write `metadata.yaml`; returns the metadata."""
        if self.closed:
            assert self.metadata is not None
            return self.metadata
        self.closed = True
        error: BagWriteError | None = None
        try:
            if self._file is not None:
                self._finish_file()
        except BagWriteError as exc:
            error = exc
        finally:
            self._reserve.release()
        self.metadata = self._metadata()
        try:
            self.metadata.write(self.path)
        except OSError as exc:
            raise BagWriteError(f'{self.path / METADATA_FILE}: cannot write ({exc})') from exc
        if error is not None:
            raise error
        return self.metadata

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.closed:
            raise BagWriteError(f'{self.path}: the bag is closed')

    def _guarded(self, action: Any) -> None:
        """Run a storage action; a full disk turns the writer into a refuser."""
        assert self._file is not None
        try:
            action()
        except DiskFullError as exc:
            self._refusing = exc
            raise
        except BagWriteError as exc:
            self._refusing = exc
            raise
        if self._file.stream.disk_full:
            self._refusing = DiskFullError(
                f'{self._file.path}: disk full after {self.message_count} messages; no more are '
                'accepted, closing keeps them all'
            )

    def _current_file(self, timestamp_ns: int) -> _McapFile:
        current = self._file
        if current is not None and self._limit_reached(current, timestamp_ns):
            self._finish_file()
            self.metadata = self._metadata()
            try:
                self.metadata.write(self.path)  # a crash from now on loses only the new file
            except OSError as exc:
                raise BagWriteError(f'{self.path / METADATA_FILE}: cannot write ({exc})') from exc
            current = None
        if current is None:
            current = self._file = self._open_file()
            for topic in self._topics.values():
                self._guarded(lambda t=topic: current.add(t))
        return current

    def _open_file(self) -> _McapFile:
        path = self.path / f'{self.path.name}_{len(self._closed_files)}.mcap'
        try:
            return _McapFile(path, self.options, self._reserve)
        except FileExistsError as exc:
            raise BagWriteError(f'{path} exists already') from exc
        except OSError as exc:
            raise BagWriteError(f'cannot create {path}: {exc}') from exc

    def _limit_reached(self, current: _McapFile, timestamp_ns: int) -> bool:
        if not current.message_count:
            return False
        options = self.options
        if options.max_bag_size and current.size >= options.max_bag_size:
            return True
        return bool(
            options.max_bag_duration_ns
            and current.start_ns is not None
            and timestamp_ns - current.start_ns >= options.max_bag_duration_ns
        )

    def _finish_file(self) -> None:
        current, self._file = self._file, None
        assert current is not None
        info = current.info()
        self._closed_files.append(info)
        serialized = self._metadata(include_open=False).to_yaml()
        try:
            current.finish(serialized)
        except BagWriteError:
            raise
        except OSError as exc:
            raise BagWriteError(f'{current.path}: cannot finish ({exc})') from exc

    def _metadata(self, include_open: bool = True) -> BagMetadata:
        files = list(self._closed_files)
        if include_open and self._file is not None:
            files.append(self._file.info())
        timed = [f for f in files if f.message_count]
        start = min((f.starting_time_ns for f in timed), default=0)
        end = max((f.starting_time_ns + f.duration_ns for f in timed), default=0)
        return BagMetadata(
            starting_time_ns=start,
            duration_ns=max(end - start, 0),
            message_count=sum(f.message_count for f in files),
            topics=tuple(
                TopicMetadata(
                    name=t.metadata.name,
                    type=t.metadata.type,
                    serialization_format=t.metadata.serialization_format,
                    offered_qos_profiles=t.metadata.offered_qos_profiles,
                    type_description_hash=t.metadata.type_description_hash,
                    message_count=t.count,
                )
                for t in self._topics.values()
            ),
            files=tuple(files),
            custom_data=dict(self.options.custom_data),
        )


def open_bag(path: str | Path, options: StorageOptions | None = None) -> BagWriter:
    """Create the bag directory `path` (it must not exist or be empty) and open it."""
    return BagWriter(path, options)
