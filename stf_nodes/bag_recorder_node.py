"""`bag_recorder` node: records graph topics into a rosbag2 MCAP bag (`stf bag record` runs it).

Role: what `ros2 bag record` is, as a node a launch file can start
(`stf launch enable_bag_recorder:=true bag_output:=bags/run1`). It discovers topics from the
graph (liveliness tokens, `Graph.add_listener`), subscribes to each recorded topic with raw CDR
(nothing is decoded), and writes every sample with its receive time (the node's clock: wall
time, or `/clock` with `use_sim_time`) through `stf_nodes.bag.recorder.Recorder`, which also
records the QoS the publishers offer. See `stf_nodes/bag/` for the format.

Topics: subscribes to the recorded topics; publishes nothing but `/rosout`.
Services: the standard parameter services.

Parameters:
- `output` (''): the bag directory to create; '' names it `rosbag2_YYYY_MM_DD-HH_MM_SS` in the
  working directory, as ros2 does;
- `topics` ([]): topics to record (they may appear later); `all` (false): every topic with a
  publisher; `exclude` (''): regular expression of topics not to record (with `all`);
  `include_hidden` (false): also topics with a `_`-prefixed name token;
- `max_bag_size` (0): bytes per file before the next file starts (0: one file);
  `max_bag_duration_s` (0.0): seconds of messages per file (0: no limit);
- `compression` ('none'): MCAP chunk compression, `zstd` or `lz4`; `chunk_size` (1048576);
- `duration_s` (0.0): stop recording after this many seconds and end the node (0: until
  stopped); `flush_interval_s` (1.0): how much a killed recorder can lose at most.

Stopping (Ctrl-C, SIGTERM, the launch shutting down, `duration_s`) closes the bag and writes
`metadata.yaml`. A full disk stops the recording with an error; the bag is closed with every
message written before.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from stf_nodes import interfaces, runtime
from stf_nodes.bag.metadata import BagError
from stf_nodes.bag.recorder import Recorder, RecordOptions, TopicOffer, select_topics
from stf_nodes.bag.writer import StorageOptions
from stf_nodes.process import exit_process

#: How often the discovery thread looks at the clock when the graph is quiet.
_TICK_S = 0.1


def default_output() -> Path:
    return Path(time.strftime('rosbag2_%Y_%m_%d-%H_%M_%S'))


class BagRecorderNode(runtime.Node):
    """The recorder node (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('bag_recorder', **kwargs)
        output = self.declare_parameter(
            'output', '', description="bag directory to create ('' = rosbag2_<date>-<time>)"
        ).value
        topics = self.declare_parameter(
            'topics', [''], description='topics to record (they may appear later)'
        ).value
        record_all = self.declare_parameter(
            'all', False, description='record every topic with a publisher'
        ).value
        exclude = self.declare_parameter(
            'exclude', '', description='regular expression of topics not to record (with all)'
        ).value
        include_hidden = self.declare_parameter(
            'include_hidden', False, description='also record hidden topics (_-prefixed tokens)'
        ).value
        max_bag_size = self.declare_parameter(
            'max_bag_size', 0, description='bytes per file before the next one starts (0: one)'
        ).value
        max_bag_duration = self.declare_parameter(
            'max_bag_duration_s', 0.0, description='seconds of messages per file (0: no limit)'
        ).value
        compression = self.declare_parameter(
            'compression', 'none', description='MCAP chunk compression: none, zstd or lz4'
        ).value
        chunk_size = self.declare_parameter(
            'chunk_size', 1024 * 1024, description='bytes of messages per MCAP chunk'
        ).value
        duration = self.declare_parameter(
            'duration_s', 0.0, description='stop after this many seconds (0: until stopped)'
        ).value
        flush_interval = self.declare_parameter(
            'flush_interval_s', 1.0, description='flush period, s (a crash loses at most this)'
        ).value
        try:
            options = RecordOptions(
                output=Path(output) if output else default_output(),
                topics=tuple(t for t in topics if t),
                all_topics=bool(record_all),
                exclude=exclude,
                include_hidden=bool(include_hidden),
                storage=StorageOptions(
                    max_bag_size=int(max_bag_size),
                    max_bag_duration_ns=round(float(max_bag_duration) * 1e9),
                    compression=compression,
                    chunk_size=int(chunk_size),
                ),
                duration_s=float(duration),
                flush_interval_s=float(flush_interval),
            )
            self.recorder = Recorder(options, log=self.get_logger().warning)
        except BagError as exc:
            raise ValueError(str(exc)) from exc
        self.options = options
        clock = self.get_clock()
        self._now_ns = (
            (lambda: clock.now().nanoseconds) if clock.ros_time_is_active else time.time_ns
        )
        self.done = threading.Event()
        self._graph_changed = threading.Event()
        self._worker = threading.Thread(target=self._work, name='bag-recorder', daemon=True)
        self.context.graph.add_listener(self._graph_changed.set)
        self._graph_changed.set()
        self._worker.start()
        self.get_logger().info(f'recording to {self.recorder.path}')

    # -- discovery and time ---------------------------------------------------------------

    def _work(self) -> None:
        while not self.done.is_set():
            if self._graph_changed.wait(_TICK_S):
                self._graph_changed.clear()
                try:
                    self._subscribe_new()
                except Exception as exc:  # a failed subscription must not end the recording
                    self.get_logger().error(f'cannot subscribe: {exc!r}', once=True)
            if not self.recorder.tick():
                break
        self._finish()

    def _subscribe_new(self) -> None:
        offers, skipped = select_topics(self.context.graph.tokens(), self.options)
        for name, reason in skipped.items():
            self.recorder.skip(name, reason)
        for offer in offers.values():
            if self.recorder.add(offer):
                self._subscribe(offer)

    def _subscribe(self, offer: TopicOffer) -> None:
        write, now_ns, name = self.recorder.write, self._now_ns, offer.name

        def on_sample(payload: bytes) -> None:
            write(name, payload, now_ns())

        self.create_subscription(
            interfaces.get_message_class(offer.type_name),
            name,
            on_sample,
            offer.subscription_qos,
            raw=True,
        )
        self.get_logger().info(f'recording {name} ({offer.type_name})')

    # -- stopping -------------------------------------------------------------------------

    def _finish(self) -> None:
        """Close the bag; when the recording ended by itself, end the node too."""
        if self.done.is_set():
            return
        self.done.set()
        metadata = self.recorder.stop()
        self.get_logger().info(
            f'bag {self.recorder.path} closed: {metadata.message_count} messages on '
            f'{len(metadata.topics)} topics'
        )
        if threading.current_thread() is self._worker and self.context.ok:
            self.context.shutdown()  # the executor's spin ends; the process exits

    def destroy_node(self) -> None:
        if not self.destroyed:
            self.context.graph.remove_listener(self._graph_changed.set)
            # Undeclare the subscriptions first, so nothing arrives while the bag closes.
            for subscription in list(self.subscriptions):
                self.destroy_subscription(subscription)
            if threading.current_thread() is not self._worker:
                self._finish()
                self._worker.join(timeout=5)
        super().destroy_node()


NODE_CLASS = BagRecorderNode


def main(args: list[str] | None = None) -> int:
    return runtime.run_node(BagRecorderNode, args)


if __name__ == '__main__':
    exit_process(main())
