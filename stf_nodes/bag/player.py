"""Replay a bag into the graph (`stf bag play DIR`), the way `ros2 bag play` does.

Every selected topic gets a publisher with the QoS its publishers offered while it was
recorded (`metadata.replay_qos`: a latched topic is replayed transient-local with the recorded
depth, so a late subscriber still gets the last state) and the type hash the bag recorded.
Messages go out as recorded CDR (`publish_serialized`), byte for byte, in log-time order, each
at `start + (t - t_first) / rate` on the monotonic clock.

- `rate`: bag seconds per wall second; `loop`: start over at the end (from `start_offset_s`);
- `start_offset_s`: skip the first seconds; the last message before that point of every
  latched topic is published first, so latched state is right from the start;
- `topics`: only these (default all);
- `clock_hz` > 0: publish `/clock` (`rosgraph_msgs/Clock`, best effort) with the bag time at
  that rate, so nodes with `use_sim_time` follow the bag; a `/clock` recorded in the bag is then
  not replayed;
- `wait_s`: before the first message, wait up to this long until every subscription already in
  the graph is reachable (Zenoh routes come up shortly after discovery).

A type this project does not know is replayed all the same: the publisher is declared with the
type name and RIHS01 hash from the bag (computed from the embedded definition when the bag has
none). `PlayStats` reports how well the schedule was held.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from stf_nodes import interfaces
from stf_nodes.bag.metadata import BagError
from stf_nodes.bag.playback import PlaybackClock, clamp_rate
from stf_nodes.bag.reader import BagReader, TopicInfo
from stf_nodes.runtime.qos import qos_profile_clock

CLOCK_TOPIC = '/clock'


@dataclass(frozen=True, kw_only=True)
class PlayOptions:
    rate: float = 1.0
    loop: bool = False
    start_offset_s: float = 0.0
    topics: tuple[str, ...] = ()
    clock_hz: float = 0.0
    wait_s: float = 2.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.rate) or self.rate <= 0:
            raise BagError(f'rate must be a positive number, got {self.rate}')
        if not math.isfinite(self.start_offset_s) or self.start_offset_s < 0:
            raise BagError(f'start offset must be >= 0 s, got {self.start_offset_s}')
        if not math.isfinite(self.clock_hz) or self.clock_hz < 0:
            raise BagError(f'clock rate must be >= 0 Hz, got {self.clock_hz}')


@dataclass
class PlayStats:
    """What a replay did and how well it kept time."""

    published: int = 0
    loops: int = 0
    bag_span_ns: int = 0
    wall_span_ns: int = 0
    lateness_ns: list[int] = field(default_factory=list)  # publish time - scheduled time

    @property
    def achieved_rate(self) -> float:
        return self.bag_span_ns / self.wall_span_ns if self.wall_span_ns else 0.0

    def lateness_ms(self, quantile: float) -> float:
        if not self.lateness_ns:
            return 0.0
        ordered = sorted(self.lateness_ns)
        return ordered[min(int(quantile * len(ordered)), len(ordered) - 1)] / 1e6


def type_hash_of(topic: TopicInfo) -> str:
    """The RIHS01 hash to publish with: the bag's, else the type store's, else computed from
    the definition embedded in the bag."""
    if topic.type_hash:
        return topic.type_hash
    try:
        return interfaces.type_hash(topic.type)
    except interfaces.InterfaceError:
        pass
    if topic.definition_encoding != 'ros2msg' or not topic.definition:
        raise BagError(f'{topic.name}: {topic.type} has no type hash and no .msg definition')
    store = get_typestore(Stores.EMPTY)
    try:
        store.register(get_types_from_msg(topic.definition, topic.type))
        return store.hash_rihs01(topic.type)
    except Exception as exc:  # rosbags raises several kinds on a bad definition
        raise BagError(f'{topic.name}: cannot hash the embedded definition ({exc})') from exc


def selected_topics(reader: BagReader, options: PlayOptions) -> dict[str, TopicInfo]:
    """The topics to replay; BagError names those the bag does not have."""
    selected = set(options.topics) if options.topics else set(reader.topics)
    unknown = sorted(selected - set(reader.topics))
    if unknown:
        raise BagError(f'{reader.path}: no topic {", ".join(unknown)} in the bag')
    if options.clock_hz:
        selected.discard(CLOCK_TOPIC)
    return {name: reader.topics[name] for name in sorted(selected)}


class GraphPlayer:
    """Publishes a bag's messages on a node (see the module docstring)."""

    def __init__(
        self,
        node: Any,
        reader: BagReader,
        options: PlayOptions,
        *,
        log: Callable[[str], Any] = print,
    ) -> None:
        self.node = node
        self.reader = reader
        self.options = options
        self.log = log
        self.topics = selected_topics(reader, options)
        if options.clock_hz and CLOCK_TOPIC in reader.topics and CLOCK_TOPIC not in self.topics:
            log(f'{CLOCK_TOPIC} from the bag is not replayed: --clock publishes it')
        self._publishers: dict[str, Any] = {}
        for name, topic in self.topics.items():
            if topic.serialization_format != 'cdr':
                log(f'{name}: serialization {topic.serialization_format!r} skipped (CDR only)')
                continue
            type_hash = type_hash_of(topic)
            try:
                known = interfaces.type_hash(topic.type)
            except interfaces.InterfaceError:
                log(f'{name}: {topic.type} is not known here; replayed as raw CDR ({type_hash})')
            else:
                if known != type_hash:
                    log(
                        f'{name}: recorded {topic.type} has hash {type_hash}, this project '
                        f'{known}: only subscribers of the recorded definition will match'
                    )
            self._publishers[name] = node.create_serialized_publisher(
                topic.type, name, topic.qos, type_hash=type_hash
            )
        self._clock = (
            node.create_publisher(
                interfaces.get_message_class('rosgraph_msgs/msg/Clock'),
                CLOCK_TOPIC,
                qos_profile_clock,
            )
            if options.clock_hz
            else None
        )

    def _wait_for_routes(self, stop: threading.Event) -> None:
        deadline = time.monotonic() + self.options.wait_s
        for publisher in self._publishers.values():
            if stop.is_set() or not publisher.get_subscription_count():
                continue
            publisher.wait_for_subscribers(max(deadline - time.monotonic(), 0.0))

    def _publish_clock(self, bag_ns: int) -> None:
        if self._clock is not None:
            sec, nanosec = divmod(bag_ns, 1_000_000_000)
            self._clock.publish(
                interfaces.get_message_class('rosgraph_msgs/msg/Clock')(
                    clock=interfaces.get_message_class('builtin_interfaces/msg/Time')(
                        sec=sec, nanosec=nanosec
                    )
                )
            )

    def play(self, stop: threading.Event | None = None) -> PlayStats:
        """Replay until the end (or forever with `loop`) or until `stop` is set."""
        stop = stop or threading.Event()
        stats = PlayStats()
        self._wait_for_routes(stop)
        start = self.reader.start_ns + round(self.options.start_offset_s * 1e9)
        wall_start = time.monotonic_ns()
        while not stop.is_set():
            span = self._play_once(start, stop, stats)
            stats.bag_span_ns += span
            stats.loops += 1
            if not self.options.loop or span == 0:  # nothing to loop over
                break
        stats.wall_span_ns = time.monotonic_ns() - wall_start
        return stats

    def _play_once(self, start_ns: int, stop: threading.Event, stats: PlayStats) -> int:
        rate = clamp_rate(self.options.rate)
        latched = [n for n, t in self.topics.items() if t.latched and n in self._publishers]
        if start_ns > self.reader.start_ns and latched:
            for message in sorted(
                self.reader.last_messages(latched, start_ns - 1).values(),
                key=lambda m: m.timestamp_ns,
            ):
                self._publishers[message.topic].publish_serialized(message.data)
                stats.published += 1
        clock = PlaybackClock(start_ns, rate=rate)
        tick_s = 1.0 / self.options.clock_hz if self.options.clock_hz else math.inf
        next_tick = time.monotonic()
        last_ns = start_ns
        for message in self.reader.messages(self._publishers, start_ns=start_ns):
            while True:
                if self._clock is not None and time.monotonic() >= next_tick:
                    self._publish_clock(min(clock.bag_ns(), message.timestamp_ns))
                    next_tick = max(next_tick + tick_s, time.monotonic())
                delay = clock.delay_s(message.timestamp_ns)
                if delay <= 0:
                    break
                if self._clock is not None:
                    delay = min(delay, max(next_tick - time.monotonic(), 0.0))
                if stop.wait(delay):
                    return last_ns - start_ns
            stats.lateness_ns.append(round((clock.bag_ns() - message.timestamp_ns) / rate))
            self._publishers[message.topic].publish_serialized(message.data)
            stats.published += 1
            last_ns = message.timestamp_ns
        self._publish_clock(last_ns)
        return last_ns - start_ns
