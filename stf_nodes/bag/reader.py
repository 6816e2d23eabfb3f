"""Read rosbag2 bags with MCAP storage, damaged ones included (pure: no transport).

`BagReader(path)` opens a bag directory (`metadata.yaml` and its `.mcap` files) or a single
`.mcap` file, with the `mcap` library. It knows every topic's type, RIHS01 hash, offered QoS
and embedded definition, and yields messages in log-time order across split files:

```python
with BagReader('bags/sample') as bag:
    for message in bag.messages(topics=['/stf/hbw/state'], start_ns=bag.start_ns):
        ...  # message.topic, message.timestamp_ns, message.data (CDR)
```

Messages are read chunk by chunk, so a seek (`start_ns`) reads only the chunks that overlap
it, and `last_messages(topics, at_ns)` finds the latest message of each topic at a moment by
reading backwards (what a player needs after a seek).

What is readable stays readable, as `mcap recover` does, and every problem is named in
`problems` (the CLI prints them):
- a file without a summary (the recorder was killed, the disk filled) is scanned record by
  record up to where it ends; a file cut inside a record yields everything before the cut;
- a chunk whose CRC does not match, or that does not decompress, is skipped with its messages;
- `.mcap` files in the directory that `metadata.yaml` does not list (a recording that was
  interrupted after a split) are read too; a listed file that is missing is reported;
- no `metadata.yaml` at all: topics and counts come from the files themselves.
A path that is not a bag (no `metadata.yaml`, no `.mcap` file, not an MCAP file) raises
`BagError` naming it. rosbag2's per-file and per-message zstd compression are read too; other
storage plugins (sqlite3) are refused with a hint.
"""

from __future__ import annotations

import heapq
import io
import struct
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

import zstandard
from mcap.exceptions import McapError
from mcap.reader import SeekingReader
from mcap.records import Channel, Chunk, DataEnd, Footer, Message, Schema
from mcap.stream_reader import CRCValidationError, StreamReader, breakup_chunk
from rosbags.interfaces import Qos

from stf_nodes.bag.metadata import (
    METADATA_FILE,
    BagError,
    BagMetadata,
    FileMetadata,
    TopicMetadata,
    qos_from_yaml,
    replay_qos,
)
from stf_nodes.runtime.qos import DurabilityPolicy, QoSProfile
from stf_nodes.validation import quote

__all__ = ['BagMessage', 'BagReader', 'TopicInfo']

MCAP_MAGIC = b'\x89MCAP0\r\n'
#: What a damaged record may raise while the mcap library parses it.
_RECORD_ERRORS = (McapError, CRCValidationError, struct.error, ValueError, zlib.error, EOFError)
_DECOMPRESS_ERRORS = (zstandard.ZstdError, RuntimeError, MemoryError)


@dataclass(frozen=True)
class BagMessage:
    """One recorded message: topic, log time (ns) and serialized data (CDR)."""

    topic: str
    timestamp_ns: int
    data: bytes


@dataclass(frozen=True, kw_only=True)
class TopicInfo:
    """A topic of the bag with everything needed to replay or show it."""

    name: str
    type: str
    serialization_format: str
    offered_qos_profiles: tuple[Qos, ...]
    type_hash: str
    definition: str  #: the embedded definition (ros2msg concatenated text), '' if none
    definition_encoding: str  #: 'ros2msg', 'ros2idl' or '' (no schema)
    message_count: int

    @property
    def qos(self) -> QoSProfile:
        """The QoS to replay with (see `metadata.replay_qos`)."""
        return replay_qos(self.offered_qos_profiles)

    @property
    def latched(self) -> bool:
        return self.qos.durability == DurabilityPolicy.TRANSIENT_LOCAL


@dataclass(order=True)
class _Segment:
    """A chunk (or a message outside chunks) of one file: where it is and when."""

    start_ns: int
    end_ns: int
    order: int  # position in the bag (files in order, then offset): ties keep write order
    file: _StorageFile = field(compare=False)
    offset: int = field(compare=False)
    channels: frozenset[int] | None = field(compare=False, default=None)  # None: unknown


class _StorageFile:
    """One .mcap file: its schemas, channels and segments, from the summary or a scan."""

    def __init__(self, path: Path, problems: list[str], decompress_message: bool) -> None:
        self.path = path
        self.name = path.name
        self._problems = problems
        self._decompress_message = decompress_message
        self.schemas: dict[int, Schema] = {}
        self.channels: dict[int, Channel] = {}
        self.counts: dict[int, int] = {}
        self.segments: list[tuple[int, int, int, frozenset[int] | None]] = []
        self.rosbag2_metadata: str | None = None
        self.size = path.stat().st_size
        self.stream: IO[bytes] = path.open('rb')
        try:
            if self.stream.read(len(MCAP_MAGIC)) != MCAP_MAGIC:
                raise BagError(f'{path}: not an MCAP file (bad magic bytes)')
            if not self._read_summary():
                self._scan()
        except BaseException:
            self.stream.close()
            raise

    def problem(self, text: str) -> None:
        entry = f'{self.name}: {text}'
        if entry not in self._problems:  # a damaged chunk is met again after every seek
            self._problems.append(entry)

    # -- opening --------------------------------------------------------------------------

    def _read_summary(self) -> bool:
        """Use the summary section; False when there is none (or none usable)."""
        self.stream.seek(-len(MCAP_MAGIC), io.SEEK_END)
        if self.stream.read(len(MCAP_MAGIC)) != MCAP_MAGIC:
            return False  # cut short: no footer
        try:
            self.stream.seek(0)
            reader = SeekingReader(self.stream, record_size_limit=self.size)
            summary = reader.get_summary()
        except (*_RECORD_ERRORS, OSError):
            summary = None
        if summary is None or summary.statistics is None:
            return False
        if summary.statistics.message_count and not summary.chunk_indexes:
            return False  # messages outside chunks: only a scan finds them
        if any(i.chunk_start_offset + i.chunk_length > self.size for i in summary.chunk_indexes):
            return False
        self.schemas = dict(summary.schemas)
        self.channels = dict(summary.channels)
        self.counts = dict(summary.statistics.channel_message_counts)
        for index in summary.chunk_indexes:
            channels = frozenset(index.message_index_offsets) or None
            start, end = index.message_start_time, index.message_end_time
            self.segments.append((start, end, index.chunk_start_offset, channels))
        return True

    def _scan(self) -> None:
        """Read the file record by record: what `mcap recover` does."""
        self.stream.seek(len(MCAP_MAGIC))
        records = StreamReader(
            self.stream, skip_magic=True, emit_chunks=True, record_size_limit=self.size
        ).records
        offset = self.stream.tell()
        complete = False
        while True:
            try:
                record = next(records)
            except StopIteration:
                complete = True
                break
            except _RECORD_ERRORS as exc:
                self.problem(
                    f'no summary (recording interrupted?) and the file ends in a broken record '
                    f'at byte {offset} of {self.size} ({type(exc).__name__}); '
                    f'{sum(self.counts.values())} messages before it are readable'
                )
                break
            end = self.stream.tell()
            if isinstance(record, Chunk):
                self._scan_chunk(record, offset, at_end=end >= self.size)
            elif isinstance(record, Message):
                self._note_message(record.channel_id, record.log_time)
                self.segments.append((record.log_time, record.log_time, offset, None))
            elif isinstance(record, Schema):
                self.schemas[record.id] = record
            elif isinstance(record, Channel):
                self.channels[record.id] = record
            elif isinstance(record, (DataEnd, Footer)):
                complete = True
                break
            offset = end
        if complete:
            self.problem('no summary section: read by scanning the whole file')

    def _scan_chunk(self, chunk: Chunk, offset: int, *, at_end: bool) -> None:
        try:
            records = breakup_chunk(chunk, validate_crc=True)
        except (*_RECORD_ERRORS, *_DECOMPRESS_ERRORS) as exc:
            where = 'the file ends inside the chunk' if at_end else 'corrupt'
            self.problem(f'chunk at byte {offset} skipped: {where} ({exc})')
            return
        channels = set()
        for record in records:
            if isinstance(record, Message):
                self._note_message(record.channel_id, record.log_time)
                channels.add(record.channel_id)
            elif isinstance(record, Schema):
                self.schemas[record.id] = record
            elif isinstance(record, Channel):
                self.channels[record.id] = record
        if channels:
            self.segments.append(
                (chunk.message_start_time, chunk.message_end_time, offset, frozenset(channels))
            )

    def _note_message(self, channel_id: int, log_time: int) -> None:
        self.counts[channel_id] = self.counts.get(channel_id, 0) + 1

    # -- reading --------------------------------------------------------------------------

    def read_segment(self, offset: int) -> list[tuple[int, int, bytes]]:
        """(log time, channel id, data) of the messages of one segment; [] if it is damaged."""
        self.stream.seek(offset)
        try:
            record = next(
                StreamReader(
                    self.stream, skip_magic=True, emit_chunks=True, record_size_limit=self.size
                ).records
            )
            records = (
                breakup_chunk(record, validate_crc=True) if isinstance(record, Chunk) else [record]
            )
        except (*_RECORD_ERRORS, *_DECOMPRESS_ERRORS, StopIteration) as exc:
            self.problem(f'chunk at byte {offset} skipped: corrupt ({exc})')
            return []
        found = []
        for item in records:
            if isinstance(item, Message):
                found.append((item.log_time, item.channel_id, self._payload(item.data)))
            elif isinstance(item, Channel) and item.id not in self.channels:
                self.channels[item.id] = item
            elif isinstance(item, Schema) and item.id not in self.schemas:
                self.schemas[item.id] = item
        return found

    def _payload(self, data: bytes) -> bytes:
        if not self._decompress_message:
            return data
        try:
            return zstandard.ZstdDecompressor().decompressobj().decompress(data)
        except zstandard.ZstdError as exc:
            self.problem(f'a message does not decompress ({exc}); passed on as stored')
            return data

    def close(self) -> None:
        self.stream.close()


class BagReader:
    """A rosbag2 MCAP bag opened for reading (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.problems: list[str] = []
        self._files: list[_StorageFile] = []
        self._temporary: tempfile.TemporaryDirectory[str] | None = None
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    # -- opening --------------------------------------------------------------------------

    def _open(self) -> None:
        path = self.path
        if not path.exists():
            raise BagError(f'{path}: no such file or directory')
        metadata: BagMetadata | None = None
        if path.is_dir():
            if (path / METADATA_FILE).is_file():
                metadata = BagMetadata.load(path)
                self._check_storage(metadata)
                files = self._listed_files(metadata)
            else:
                files = sorted(path.glob('*.mcap'))
                if not files:
                    raise BagError(
                        f'{path} is not a rosbag2 bag: it has no {METADATA_FILE} and no .mcap file'
                    )
                self.problems.append(
                    f'{METADATA_FILE} is missing (recording interrupted?): read from the '
                    f'.mcap files; `stf bag recover {path} -o NEW` writes a complete copy'
                )
        else:
            files = [path]
        decompress = metadata is not None and metadata.compression_mode.lower() == 'message'
        for file in files:
            self._files.append(_StorageFile(file, self.problems, decompress))
        self.metadata = metadata
        self.topics = self._collect_topics(metadata)
        starts = [s[0] for f in self._files for s in f.segments]
        ends = [s[1] for f in self._files for s in f.segments]
        self.start_ns = min(starts, default=metadata.starting_time_ns if metadata else 0)
        self.end_ns = max(ends, default=metadata.end_time_ns if metadata else 0)

    def _check_storage(self, metadata: BagMetadata) -> None:
        if metadata.storage_identifier != 'mcap':
            raise BagError(
                f'{self.path}: storage {metadata.storage_identifier!r} is not supported (MCAP '
                'only); convert it with `ros2 bag convert` or `rosbags-convert`'
            )
        mode = metadata.compression_mode.lower()
        if mode not in ('', 'none', 'file', 'message'):
            raise BagError(f'{self.path}: unknown compression mode {metadata.compression_mode!r}')
        if mode in ('file', 'message') and metadata.compression_format.lower() != 'zstd':
            raise BagError(
                f'{self.path}: compression format {metadata.compression_format!r} is not '
                'supported (zstd only)'
            )

    def _listed_files(self, metadata: BagMetadata) -> list[Path]:
        listed = []
        for name in metadata.relative_file_paths:
            # rosbag2 lists plain file names; a path out of the bag directory is not followed.
            if Path(name).name == name and name != '..':
                listed.append(self.path / name)
            else:
                self.problems.append(
                    f'{quote(name)}: listed in {METADATA_FILE} but not a file name in the bag; '
                    'ignored'
                )
        found = []
        for file in listed:
            if file.is_file():
                found.append(self._decompressed(file) if file.suffix == '.zstd' else file)
            else:
                self.problems.append(f'{file.name}: listed in {METADATA_FILE} but missing')
        unlisted = sorted(set(self.path.glob('*.mcap')) - set(listed))
        for file in unlisted:
            self.problems.append(
                f'{file.name}: not listed in {METADATA_FILE} (recording interrupted?); read too'
            )
        found.extend(unlisted)
        if listed and not found:
            raise BagError(f'{self.path}: none of the files {METADATA_FILE} lists is readable')
        return found

    def _decompressed(self, file: Path) -> Path:
        """rosbag2 file compression: a .mcap.zstd is unpacked to a temporary file."""
        if self._temporary is None:
            self._temporary = tempfile.TemporaryDirectory(prefix='stf-bag-')
        target = Path(self._temporary.name) / file.stem
        try:
            with file.open('rb') as source, target.open('wb') as sink:
                zstandard.ZstdDecompressor().copy_stream(source, sink)
        except (zstandard.ZstdError, OSError) as exc:
            raise BagError(f'{file}: cannot decompress ({exc})') from exc
        return target

    def _collect_topics(self, metadata: BagMetadata | None) -> dict[str, TopicInfo]:
        listed: dict[str, TopicMetadata] = {t.name: t for t in metadata.topics} if metadata else {}
        counts: dict[str, int] = {}
        channels: dict[str, tuple[_StorageFile, Channel]] = {}
        for file in self._files:
            for channel_id, channel in file.channels.items():
                channels.setdefault(channel.topic, (file, channel))
                counts[channel.topic] = counts.get(channel.topic, 0) + file.counts.get(
                    channel_id, 0
                )
        topics = {}
        for name in sorted(set(listed) | set(channels)):
            entry = listed.get(name)
            found = channels.get(name)
            schema = found[0].schemas.get(found[1].schema_id) if found else None
            channel_metadata = found[1].metadata if found else {}
            where = f'{self.path}: topic {name}'
            offered = (
                entry.offered_qos_profiles
                if entry is not None
                else qos_from_yaml(channel_metadata.get('offered_qos_profiles', ''), where)
            )
            topics[name] = TopicInfo(
                name=name,
                type=entry.type if entry else (schema.name if schema else ''),
                serialization_format=entry.serialization_format
                if entry
                else (found[1].message_encoding if found else 'cdr'),
                offered_qos_profiles=offered,
                type_hash=(entry.type_description_hash if entry else '')
                or channel_metadata.get('topic_type_hash', ''),
                definition=schema.data.decode('utf-8', errors='replace') if schema else '',
                definition_encoding=schema.encoding if schema else '',
                message_count=counts.get(name, entry.message_count if entry else 0),
            )
        return topics

    # -- information ----------------------------------------------------------------------

    @property
    def files(self) -> list[Path]:
        return [f.path for f in self._files]

    @property
    def size(self) -> int:
        """Bytes of the storage files (as `ros2 bag info` counts the bag size)."""
        return sum(f.size for f in self._files)

    @property
    def message_count(self) -> int:
        return sum(t.message_count for t in self.topics.values())

    def info(self) -> BagMetadata:
        """`metadata.yaml` when it is there, else the same facts gathered from the files."""
        if self.metadata is not None:
            return self.metadata
        files = []
        for file in self._files:
            times = [s[0] for s in file.segments] + [s[1] for s in file.segments]
            start = min(times, default=0)
            files.append(
                FileMetadata(
                    path=file.name,
                    starting_time_ns=start,
                    duration_ns=max(times, default=0) - start,
                    message_count=sum(file.counts.values()),
                )
            )
        return BagMetadata(
            starting_time_ns=self.start_ns,
            duration_ns=max(self.end_ns - self.start_ns, 0),
            message_count=self.message_count,
            topics=tuple(
                TopicMetadata(
                    name=t.name,
                    type=t.type,
                    serialization_format=t.serialization_format,
                    offered_qos_profiles=t.offered_qos_profiles,
                    type_description_hash=t.type_hash,
                    message_count=t.message_count,
                )
                for t in self.topics.values()
            ),
            files=tuple(files),
            ros_distro='',
        )

    # -- messages -------------------------------------------------------------------------

    def _segments(
        self, topics: set[str] | None, start_ns: int | None, end_ns: int | None
    ) -> list[_Segment]:
        segments = []
        order = 0
        for file in self._files:
            wanted = (
                None
                if topics is None
                else {i for i, c in file.channels.items() if c.topic in topics}
            )
            for start, end, offset, channels in sorted(file.segments, key=lambda s: s[2]):
                order += 1
                if start_ns is not None and end < start_ns:
                    continue
                if end_ns is not None and start > end_ns:
                    continue
                if wanted is not None and channels is not None and not channels & wanted:
                    continue
                segments.append(_Segment(start, end, order, file, offset, channels))
        segments.sort()
        return segments

    def messages(
        self,
        topics: Iterable[str] | None = None,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> Iterator[BagMessage]:
        """Messages in log-time order (write order among equal times), `start_ns` and
        `end_ns` inclusive."""
        wanted = None if topics is None else set(topics)
        pending: list[tuple[int, int, int, BagMessage]] = []
        segments = self._segments(wanted, start_ns, end_ns)
        next_segment = 0
        while next_segment < len(segments) or pending:
            while next_segment < len(segments) and (
                not pending or segments[next_segment].start_ns <= pending[0][0]
            ):
                segment = segments[next_segment]
                next_segment += 1
                for index, message in enumerate(self._load(segment, wanted, start_ns, end_ns)):
                    heapq.heappush(pending, (message.timestamp_ns, segment.order, index, message))
            if pending:
                yield heapq.heappop(pending)[3]

    def _load(
        self,
        segment: _Segment,
        wanted: set[str] | None,
        start_ns: int | None,
        end_ns: int | None,
    ) -> list[BagMessage]:
        file = segment.file
        found = []
        for log_time, channel_id, data in file.read_segment(segment.offset):
            if start_ns is not None and log_time < start_ns:
                continue
            if end_ns is not None and log_time > end_ns:
                continue
            channel = file.channels.get(channel_id)
            if channel is None:
                file.problem(f'a message on unknown channel {channel_id} skipped')
                continue
            if wanted is not None and channel.topic not in wanted:
                continue
            found.append(BagMessage(channel.topic, log_time, data))
        return found

    def last_messages(self, topics: Iterable[str], at_ns: int) -> dict[str, BagMessage]:
        """The latest message at or before `at_ns` of each topic (those that have one)."""
        wanted = set(topics) & set(self.topics)
        found: dict[str, BagMessage] = {}
        for segment in reversed(self._segments(wanted, None, at_ns)):
            if wanted <= set(found) and segment.end_ns < min(
                m.timestamp_ns for m in found.values()
            ):
                break
            latest: dict[str, BagMessage] = {}
            for message in self._load(segment, wanted, None, at_ns):
                if message.timestamp_ns >= latest.get(message.topic, message).timestamp_ns:
                    latest[message.topic] = message  # the last written among equal times
            for topic, message in latest.items():
                if topic not in found or message.timestamp_ns > found[topic].timestamp_ns:
                    found[topic] = message
        return found

    # -- life cycle -----------------------------------------------------------------------

    def close(self) -> None:
        for file in self._files:
            file.close()
        self._files = []
        if self._temporary is not None:
            self._temporary.cleanup()
            self._temporary = None

    def __enter__(self) -> BagReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
