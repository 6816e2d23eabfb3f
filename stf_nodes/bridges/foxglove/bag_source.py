"""A bag as the source of a `FoxgloveServer`: `stf bag play DIR --foxglove`.

The second `ServerHandler` beside the live graph (`graph_source.py`); the server, the channel
bookkeeping and the derived channels (`derived.py`: the 3D scene from the recorded station
states, `/tf` as FrameTransforms, `/rosout` as Log) are the same code. What clients see:

- every topic of the bag as a channel with the bag's embedded `ros2msg` schema (so a type this
  project does not know is shown too), CDR sent as recorded with its recorded log time;
- the derived channels, computed while someone watches them;
- the `time` and `playbackControl` capabilities with the bag's time range: the timeline shows
  where playback is (`broadcast_time`, about 30 times a second while playing), and clients play,
  pause, seek and change the speed. The playback is one for the whole server: what one client
  does, every client sees.

Playback starts when the first client subscribes (a bag played to nobody would be over before
Foxglove connects), paused instead with `paused=True`; at the end it stops (`Ended`) or, with
`loop`, starts over. After a seek, and when a client subscribes, each watched topic gets its
last message before that moment (its latest value, a latched state; for `/tf`, the latest
message of every publisher, so every station's frames are known) and the scene is rebuilt
from the station states at that moment, so panels show the factory as it was then, not empty.

Threads: one playback thread reads the bag and sends everything, the answers to playback
requests included; SDK callbacks (subscriptions, playback requests) only change state under a
lock and wake it. So no message from before a seek follows the state that announces the seek
(a client clears its panels on that state and then gets the new moment).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import foxglove
from foxglove.websocket import (
    PlaybackCommand,
    PlaybackControlRequest,
    PlaybackState,
    PlaybackStatus,
)

from stf_nodes import interfaces
from stf_nodes.bag.metadata import BagError
from stf_nodes.bag.playback import PlaybackClock
from stf_nodes.bag.reader import BagMessage, BagReader, TopicInfo
from stf_nodes.bridges.foxglove.derived import SCENE, DerivedChannel, derived_channels
from stf_nodes.bridges.foxglove.scene import FactoryGeometry
from stf_nodes.bridges.foxglove.server import FoxgloveServer, ServerHandler

LOGGER = logging.getLogger(__name__)

#: Wall seconds between timeline updates while playing.
TIME_PERIOD_S = 1 / 30
#: Longest wait of the playback thread (it re-checks its state at least this often).
IDLE_S = 0.1
TF_TYPE = 'tf2_msgs/msg/TFMessage'
#: How far back a seek looks for the transforms of every frame (stations publish theirs at
#: their state rate; a frame not seen for this long is not shown until it moves).
TF_LOOKBACK_NS = 5_000_000_000


def _showable(topic: TopicInfo) -> bool:
    return (
        topic.serialization_format == 'cdr'
        and topic.definition_encoding in ('ros2msg', 'ros2idl')
        and bool(topic.definition)
    )


class BagSource(ServerHandler):
    """Feeds a FoxgloveServer from a bag (see the module docstring)."""

    def __init__(
        self,
        reader: BagReader,
        *,
        geometry: FactoryGeometry | None = None,
        rate: float = 1.0,
        loop: bool = False,
        paused: bool = False,
        topics: Iterable[str] | None = None,
        start_offset_s: float = 0.0,
        warn: Callable[[str], Any] = LOGGER.warning,
    ) -> None:
        self.reader = reader
        self.loop = loop
        self._warn = warn
        selected = set(reader.topics) if topics is None else set(topics)
        missing = sorted(selected - set(reader.topics))
        if missing:
            raise BagError(f'{reader.path}: no topic {", ".join(missing)} in the bag')
        self.topics = {n: t for n, t in reader.topics.items() if n in selected and _showable(t)}
        for name in sorted(selected - set(self.topics)):
            warn(f'{name}: not shown (no embedded definition, or not CDR)')
        self.derived = {
            topic: DerivedChannel(topic, spec, geometry)
            for topic, spec in derived_channels(self.topics).items()
        }
        self.server: FoxgloveServer | None = None
        self._lock = threading.Condition()
        start = min(reader.start_ns + round(start_offset_s * 1e9), self.time_range[1])
        self._clock = PlaybackClock(start, rate=rate, paused=True)
        self._seek_to: int | None = start
        self._status = PlaybackStatus.Paused
        self._waiting_for_client = not paused
        self._subscribed: set[str] = set()
        self._primes: set[str] = set()  # channels that need their state at the current time
        self._announce: list[PlaybackState] = []  # answers to playback requests, to broadcast
        self._stopping = False
        self.sent = 0  # messages sent (ROS and derived), for tests and benchmarks
        self._thread = threading.Thread(target=self._run, name='foxglove-bag', daemon=True)

    @property
    def time_range(self) -> tuple[int, int]:
        return self.reader.start_ns, max(self.reader.end_ns, self.reader.start_ns)

    # -- life cycle -----------------------------------------------------------------------

    def start(self, server: FoxgloveServer) -> None:
        self.server = server
        for name, topic in self.topics.items():
            server.advertise_ros(
                name,
                topic.type,
                foxglove.Schema(
                    name=topic.type,
                    encoding=topic.definition_encoding,
                    data=topic.definition.encode(),
                ),
            )
        for topic, derived in self.derived.items():
            server.advertise(topic, derived.make)
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    # -- ServerHandler ----------------------------------------------------------------------

    def on_first_subscriber(self, topic: str) -> None:
        with self._lock:
            self._subscribed.add(topic)

    def on_subscribe(self, topic: str) -> None:
        with self._lock:
            self._primes.add(topic)
            if self._waiting_for_client:
                self._waiting_for_client = False
                self._play()
            self._lock.notify_all()

    def on_last_unsubscribed(self, topic: str) -> None:
        with self._lock:
            self._subscribed.discard(topic)
            self._primes.discard(topic)

    def on_playback_control(self, request: PlaybackControlRequest) -> None:
        """Apply the request; the playback thread announces the new state (see `_play_loop`)."""
        with self._lock:
            self._waiting_for_client = False
            self._clock.set_rate(request.playback_speed)
            did_seek = request.seek_time is not None
            if request.playback_command == PlaybackCommand.Pause:
                self._pause()  # first: a paused seek lands exactly where it was asked to
            if request.seek_time is not None:
                self._seek(request.seek_time)
            if request.playback_command == PlaybackCommand.Play:
                if self._status == PlaybackStatus.Ended and not did_seek:
                    self._seek(self.reader.start_ns)  # play after the end: from the start
                    did_seek = True
                self._play()
            self._announce.append(self._state(did_seek=did_seek, request_id=request.request_id))
            self._lock.notify_all()

    # -- state (under the lock) ---------------------------------------------------------------

    def _play(self) -> None:
        self._clock.resume()
        self._status = PlaybackStatus.Playing

    def _pause(self) -> None:
        self._clock.pause()
        if self._status != PlaybackStatus.Ended:
            self._status = PlaybackStatus.Paused

    def _seek(self, bag_ns: int) -> None:
        start, end = self.time_range
        target = min(max(bag_ns, start), end)
        self._clock.seek(target)
        self._seek_to = target
        if self._status == PlaybackStatus.Ended:
            self._status = PlaybackStatus.Paused
            self._clock.pause()

    def _state(self, *, did_seek: bool = False, request_id: str | None = None) -> PlaybackState:
        start, end = self.time_range
        return PlaybackState(
            status=self._status,
            current_time=min(max(self._clock.bag_ns(), start), end),
            playback_speed=self._clock.rate,
            did_seek=did_seek,
            request_id=request_id,
        )

    def state(self) -> PlaybackState:
        with self._lock:
            return self._state()

    # -- the playback thread ----------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._play_loop()
        except Exception as exc:  # a broken bag must not leave clients hanging silently
            self._warn(f'bag playback stopped: {exc!r}')
            if self.server is not None:
                self.server.report('playback', f'bag playback stopped: {exc}')

    def _play_loop(self) -> None:
        assert self.server is not None
        cursor: Iterator[BagMessage] = iter(())
        pending: BagMessage | None = None
        last_time_sent = 0.0
        while True:
            with self._lock:
                if self._stopping:
                    return
                seek_to, self._seek_to = self._seek_to, None
                primes, self._primes = self._primes, set()
                announce, self._announce = self._announce, []
                if seek_to is not None:
                    primes = set(self._subscribed)
                now_ns = seek_to if seek_to is not None else self._clock.bag_ns()
                playing = self._status == PlaybackStatus.Playing
            # This thread alone sends data and announces states, so nothing from before a seek
            # follows its announcement: a client clears its panels, then gets the new moment.
            for state in announce:
                self.server.broadcast_playback_state(state)
            if seek_to is not None:
                cursor = self.reader.messages(self.topics, start_ns=seek_to)
                pending = None
                self.server.broadcast_time(seek_to)
            if primes:
                self._prime(primes, now_ns)
            if not playing:
                with self._lock:
                    if not self._has_work():
                        self._lock.wait(IDLE_S)
                continue
            if pending is None:
                pending = next(cursor, None)
            if pending is None:
                self._end()
                continue
            with self._lock:
                delay = self._clock.delay_s(pending.timestamp_ns)
                bag_now = self._clock.bag_ns()
            if time.monotonic() - last_time_sent >= TIME_PERIOD_S:
                last_time_sent = time.monotonic()
                self.server.broadcast_time(min(bag_now, pending.timestamp_ns))
            if delay > 0:
                with self._lock:
                    if not self._has_work():
                        self._lock.wait(min(delay, TIME_PERIOD_S))
                continue
            self._send(pending)
            pending = None

    def _has_work(self) -> bool:
        return bool(self._seek_to is not None or self._primes or self._announce or self._stopping)

    def _end(self) -> None:
        assert self.server is not None
        with self._lock:
            if self.loop:
                self._seek(self.reader.start_ns)
                return
            self._clock.seek(self.time_range[1])
            self._clock.pause()
            self._status = PlaybackStatus.Ended
            state = self._state()
        self.server.broadcast_time(self.time_range[1])
        self.server.broadcast_playback_state(state)

    def _send(self, message: BagMessage) -> None:
        assert self.server is not None
        with self._lock:
            subscribed = set(self._subscribed)
        if message.topic in subscribed:
            self.server.log(message.topic, message.data, message.timestamp_ns)
            self.sent += 1
        for topic, derived in self.derived.items():
            if topic in subscribed and message.topic in derived.sources:
                self._derive(derived, message)

    def _derive(self, derived: DerivedChannel, message: BagMessage) -> None:
        assert self.server is not None
        try:
            converted = derived.convert(message.topic, message.data)
        except interfaces.SerdeError as exc:
            self.server.report(f'decode {message.topic}', f'{message.topic}: skipped ({exc})')
            return
        if converted is not None:
            self.server.log(derived.topic, converted, message.timestamp_ns)
            self.sent += 1

    def _latest_transforms(self, topic: str, at_ns: int) -> list[BagMessage]:
        """The latest /tf message of each publisher before `at_ns` (one message holds one
        station's frames only): the newest per set of child frames in the last seconds."""
        latest: dict[frozenset[str], BagMessage] = {}
        for message in self.reader.messages(
            [topic], start_ns=max(at_ns - TF_LOOKBACK_NS, 0), end_ns=at_ns
        ):
            try:
                decoded = interfaces.deserialize(message.data, TF_TYPE)
            except interfaces.SerdeError:
                continue
            latest[frozenset(t.child_frame_id for t in decoded.transforms)] = message
        return list(latest.values())

    def _prime(self, topics: set[str], at_ns: int) -> None:
        """Send each topic's state at `at_ns`: its last message, or the scene rebuilt."""
        assert self.server is not None
        sources = {t for t in topics if t in self.topics}
        derived = [self.derived[t] for t in topics if t in self.derived]
        for channel in derived:
            sources.update(channel.sources)
        transforms = {
            t for t in sources if t in self.reader.topics and self.reader.topics[t].type == TF_TYPE
        }
        last = sorted(
            [
                *self.reader.last_messages(sources - transforms, at_ns).values(),
                *(m for t in transforms for m in self._latest_transforms(t, at_ns)),
            ],
            key=lambda m: m.timestamp_ns,
        )
        for message in last:
            if message.topic in topics:
                self.server.log(message.topic, message.data, message.timestamp_ns)
                self.sent += 1
        for channel in derived:
            channel.reset()
            for message in last:
                if message.topic in channel.sources:
                    if channel.kind == SCENE:
                        try:
                            channel.convert(message.topic, message.data)
                        except interfaces.SerdeError:
                            continue
                    else:
                        self._derive(channel, message)
            snapshot = channel.snapshot(replace=True)
            if snapshot is not None:
                self.server.log(channel.topic, snapshot, at_ns)
                self.sent += 1
