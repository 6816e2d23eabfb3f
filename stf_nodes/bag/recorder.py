"""What the bag recorder records and how: topic selection, QoS, the writer behind a lock.

Pure (no transport): the `bag_recorder` node (`stf_nodes/bag_recorder_node.py`) feeds it the
publishers it sees in the graph and the samples it receives; `stf bag record` runs that node.

- **Selection** (`select_topics`): every topic with a publisher (`all_topics`) or the named
  ones, minus `exclude` (a regular expression, full match) and hidden topics (a name token
  starting with `_`, unless `include_hidden`). A type without a definition here, or whose
  publisher's RIHS01 hash differs from the definition here, cannot be recorded with its
  definition embedded: it is skipped with a reason (`Recorder.skipped`).
- **QoS**: the offered QoS profiles of the topic's publishers (parsed from their liveliness
  tokens) are recorded; the recorder subscribes transient-local when any publisher latches
  (so latched state is recorded even if it was published before the recorder started), with an
  unbounded queue (nothing dropped while the writer is busy).
- **Writing** (`Recorder`): one `BagWriter` behind a lock (samples arrive on the executor,
  topics are added and chunks flushed from the discovery thread). `tick()` flushes the open
  chunk every `flush_interval_s` (a killed recorder loses at most that much) and reports when
  `duration_s` is over. A full disk stops the recording (`failure` says so); the bag is closed
  with everything written before.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stf_nodes import interfaces
from stf_nodes.bag.metadata import BagMetadata
from stf_nodes.bag.writer import BagWriteError, BagWriter, StorageOptions
from stf_nodes.runtime.names import PUBLISHER, Token
from stf_nodes.runtime.qos import DurabilityPolicy, HistoryPolicy, QoSProfile


@dataclass(frozen=True, kw_only=True)
class RecordOptions:
    output: Path
    topics: tuple[str, ...] = ()
    all_topics: bool = False
    exclude: str = ''
    include_hidden: bool = False
    storage: StorageOptions = field(default_factory=StorageOptions)
    duration_s: float = 0.0  #: stop after this many wall-clock seconds (0: until stopped)
    flush_interval_s: float = 1.0

    def __post_init__(self) -> None:
        if not self.all_topics and not self.topics:
            raise ValueError('nothing to record: name topics or record all (-a)')
        if self.duration_s < 0 or self.flush_interval_s <= 0:
            raise ValueError('duration must be >= 0 and the flush interval > 0')
        try:
            re.compile(self.exclude)
        except re.error as exc:
            raise ValueError(f'exclude is not a regular expression: {exc}') from exc


@dataclass(frozen=True)
class TopicOffer:
    """A topic to record: its type, hash and the QoS its publishers offer."""

    name: str
    type_name: str
    type_hash: str
    offered: tuple[QoSProfile, ...]

    @property
    def subscription_qos(self) -> QoSProfile:
        latched = any(p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in self.offered)
        return QoSProfile(
            depth=max((p.depth for p in self.offered), default=10),
            durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
            history=HistoryPolicy.KEEP_ALL,
        )


def _hidden(name: str) -> bool:
    return any(token.startswith('_') for token in name.split('/'))


def select_topics(
    tokens: Iterable[Token], options: RecordOptions
) -> tuple[dict[str, TopicOffer], dict[str, str]]:
    """Topics to record from the graph's publishers, and those skipped with the reason."""
    excluded = re.compile(options.exclude) if options.exclude else None
    named = set(options.topics)
    publishers: dict[str, list[Token]] = {}
    for token in tokens:
        if token.kind != PUBLISHER:
            continue
        name = token.name
        if name in named or (
            options.all_topics
            and (options.include_hidden or not _hidden(name))
            and not (excluded and excluded.fullmatch(name))
        ):
            publishers.setdefault(name, []).append(token)
    offers: dict[str, TopicOffer] = {}
    skipped: dict[str, str] = {}
    for name, found in sorted(publishers.items()):
        types = sorted({t.type_name for t in found})
        chosen = found[0]
        if len(types) > 1:
            skipped[name] = f'several types {types}: recording {chosen.type_name} only'
        try:
            local_hash = interfaces.type_hash(chosen.type_name)
            interfaces.message_definition_text(chosen.type_name)
        except interfaces.InterfaceError:
            skipped[name] = f'no definition of {chosen.type_name} here'
            continue
        if chosen.type_hash != local_hash:
            skipped[name] = (
                f'its publisher has {chosen.type_name} {chosen.type_hash}, this project '
                f'{local_hash}'
            )
            continue
        offered = []
        for token in found:
            if token.type_name != chosen.type_name:
                continue
            try:
                profile = QoSProfile.from_keyexpr(token.qos)
            except ValueError:
                continue  # a malformed QoS field of a foreign peer: the default is offered
            if profile not in offered:
                offered.append(profile)
        offers[name] = TopicOffer(
            name=name,
            type_name=chosen.type_name,
            type_hash=local_hash,
            offered=tuple(offered) or (QoSProfile(),),
        )
    return offers, skipped


class Recorder:
    """A bag being recorded (see the module docstring); thread-safe."""

    def __init__(
        self,
        options: RecordOptions,
        *,
        log: Callable[[str], Any] = print,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        self._log = log
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._writer = BagWriter(options.output, options.storage)
        self._started = monotonic()
        self._last_flush = self._started
        self.offers: dict[str, TopicOffer] = {}
        self.skipped: dict[str, str] = {}
        self.received = 0
        self.refused = 0  # samples that came after the recording stopped (or failed)
        self.failure: str | None = None
        self.metadata: BagMetadata | None = None

    @property
    def recording(self) -> bool:
        return self.metadata is None and self.failure is None

    def add(self, offer: TopicOffer) -> bool:
        """Start recording a topic; False if it is already recorded or recording stopped."""
        with self._lock:
            if offer.name in self.offers or not self.recording:
                return False
            try:
                self._writer.add_topic(
                    offer.name, offer.type_name, qos=offer.offered, type_hash=offer.type_hash
                )
            except BagWriteError as exc:
                self._fail(str(exc))
                return False
            self.offers[offer.name] = offer
            return True

    def skip(self, name: str, reason: str) -> None:
        """Note (once) why a topic is not recorded."""
        if self.skipped.get(name) != reason:
            self.skipped[name] = reason
            self._log(f'not recording {name}: {reason}')

    def write(self, topic: str, data: bytes, timestamp_ns: int) -> None:
        with self._lock:
            self.received += 1
            if not self.recording:
                self.refused += 1
                return
            try:
                self._writer.write(topic, data, timestamp_ns)
            except BagWriteError as exc:
                self.refused += 1
                self._fail(str(exc))

    def tick(self) -> bool:
        """Flush when due; False once the recording is over (duration, failure, stop)."""
        now = self._monotonic()
        with self._lock:
            if not self.recording:
                return False
            if now - self._last_flush >= self.options.flush_interval_s:
                self._last_flush = now
                try:
                    self._writer.flush()
                except BagWriteError as exc:
                    self._fail(str(exc))
                    return False
            return not (self.options.duration_s and now - self._started >= self.options.duration_s)

    def _fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason
            self._log(f'recording stopped: {reason}')

    def stop(self) -> BagMetadata:
        """Close the bag (metadata.yaml written); safe to call more than once."""
        with self._lock:
            if self.metadata is not None:
                return self.metadata
            try:
                self.metadata = self._writer.close()
            except BagWriteError as exc:
                self._fail(str(exc))
                self.metadata = self._writer.metadata or BagMetadata()
            return self.metadata

    @property
    def written(self) -> int:
        return self._writer.message_count

    @property
    def path(self) -> Path:
        return self._writer.path
