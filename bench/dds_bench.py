"""DDS bridge benchmark: what the dds_bridge node adds between the graph and rclpy on DDS.

Four paths of std_msgs/String, each measured in the same run:
- `DDS → DDS`: rclpy publisher → rclpy subscriber on FastDDS (the baseline of a ROS 2 user);
- `graph → graph`: our publisher → our subscriber over Zenoh (the graph's own baseline);
- `graph → DDS` and `DDS → graph`: through the real `dds_bridge_node` process.
The rclpy side is `bench/dds_peer.py` under `.venv-dds/bin/python` (plain rclpy); the graph
side is our runtime (a publisher process, the subscriber in this process). Every process is
separate; stamps are CLOCK_MONOTONIC, shared by the processes of one machine.

Latency: one message at a time at `--rate` Hz, one-way, p50 and p99 over `--pings` messages
after a warm-up. Throughput: the publisher sends as fast as it can; received messages/s over
`--messages` messages. The bridge runs in namespace /bridged and mirrors only that, so the
baseline topics (/direct/...) carry no bridge reader.

Run: `python bench/dds_bench.py [--pings 1000] [--rate 200] [--messages 5000]` (needs
`make dds`). Starts its own router on a free port and uses a ROS domain of its own.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_report import report  # noqa: E402

from stf_nodes import interfaces, runtime  # noqa: E402
from stf_nodes.bridges.dds.environment import default_venv, venv_python  # noqa: E402
from stf_nodes.runtime.router import spawn_router  # noqa: E402

String = interfaces.get_message_class('std_msgs/msg/String')
QOS = runtime.QoSProfile(depth=1000)
BIN = Path(sys.executable).parent
PEER = Path(__file__).with_name('dds_peer.py')
WARMUP = 100
SIZE = 64
SPAWN = multiprocessing.get_context('spawn')


def percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)] / 1e6


def graph_publisher(router: str, topic: str, rate: float) -> None:
    """A publisher process on the graph, like `dds_peer.py pub`."""
    os.environ['ZENOH_ROUTER'] = router
    context = runtime.Context([])
    node = runtime.Node('dds_bench_pub', context=context)
    publisher = node.create_publisher(String, topic, QOS)
    period = 1.0 / rate if rate else 0.0
    next_at = time.monotonic()
    while True:
        publisher.publish(String(data=f'{time.monotonic_ns():020d}'.ljust(SIZE, 'x')))
        if period:
            next_at += period
            time.sleep(max(0.0, next_at - time.monotonic()))


class GraphSubscriber:
    """The graph's subscriber side, in this process."""

    def __init__(self) -> None:
        self.context = runtime.Context([])
        self.node = runtime.Node('dds_bench_sub', context=self.context)
        self.executor = runtime.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()

    def collect(self, topic: str, count: int, timeout: float) -> dict[str, Any]:
        latencies: list[int] = []
        seen = [0, 0, 0]
        done = threading.Event()

        def on_message(message: Any) -> None:
            now = time.monotonic_ns()
            seen[0] += 1
            if seen[0] <= WARMUP or done.is_set():
                return
            seen[1] = seen[1] or now
            seen[2] = now
            latencies.append(now - int(message.data[:20]))
            if len(latencies) >= count:
                done.set()

        subscription = self.node.create_subscription(String, topic, on_message, QOS)
        done.wait(timeout)
        self.node.destroy_subscription(subscription)
        return {'latencies': list(latencies), 'first': seen[1], 'last': seen[2]}


class Bench:
    def __init__(self, router: str, env: dict[str, str], python: Path) -> None:
        self.router = router
        self.env = env
        self.python = python
        self.graph = GraphSubscriber()

    def run(self, source: str, sink: str, topic: str, count: int, rate: float) -> dict[str, Any]:
        timeout = 60 + 2 * count / (rate or 2000)
        if sink == 'dds':
            receiver = subprocess.Popen(
                [str(self.python), str(PEER), 'sub', topic, str(count), str(WARMUP), str(timeout)],
                stdout=subprocess.PIPE,
                text=True,
                env=self.env,
            )
            assert receiver.stdout is not None
            receiver.stdout.readline()  # subscribed
        if source == 'dds':
            sender: Any = subprocess.Popen(
                [str(self.python), str(PEER), 'pub', topic, str(rate), str(SIZE)], env=self.env
            )
        else:
            sender = SPAWN.Process(  # not fork: this process already runs Zenoh threads
                target=graph_publisher, args=(self.router, topic, rate), daemon=True
            )
            sender.start()
        try:
            if sink == 'dds':
                output, _ = receiver.communicate(timeout=timeout + 30)
                return dict(json.loads(output.splitlines()[-1]))
            return self.graph.collect(topic, count, timeout)
        finally:
            if isinstance(sender, subprocess.Popen):
                sender.send_signal(signal.SIGINT)
                sender.wait(timeout=10)
            else:
                sender.terminate()
                sender.join(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--pings', type=int, default=1000)
    parser.add_argument('--rate', type=float, default=200.0)
    parser.add_argument('--messages', type=int, default=5000)
    args = parser.parse_args()
    python = venv_python(default_venv())
    if not python.exists():
        sys.exit(f'{python} not found: run `make dds` first')
    os.environ['ROS_DOMAIN_ID'] = str(10 + os.getpid() % 90)
    endpoint, router = spawn_router()
    os.environ['ZENOH_ROUTER'] = endpoint  # the bridge, the graph side and this process
    env = dict(os.environ)
    bridge = subprocess.Popen(
        [str(BIN / 'dds_bridge_node'), '--ros-args', '-r', '__ns:=/bridged'],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    paths = [
        ('DDS → DDS (rclpy, FastDDS)', 'dds', 'dds', '/direct/dds'),
        ('graph → graph (Zenoh)', 'graph', 'graph', '/direct/graph'),
        ('graph → DDS (bridge)', 'graph', 'dds', '/bridged/to_dds'),
        ('DDS → graph (bridge)', 'dds', 'graph', '/bridged/to_graph'),
    ]
    print(
        f'{SIZE}-byte std_msgs/String; latency at {args.rate:g} Hz over {args.pings} '
        f'messages, throughput over {args.messages}; {os.cpu_count()} CPUs, load '
        f'{os.getloadavg()[0]:.1f}'
    )
    print(f'{"path":30} {"p50 ms":>8} {"p99 ms":>8} {"msg/s":>9}')
    p50: dict[tuple[str, str], float] = {}
    try:
        bench = Bench(endpoint, env, python)  # its graph side needs the router: inside
        for name, source, sink, topic in paths:
            timed = bench.run(source, sink, f'{topic}/latency', args.pings, args.rate)
            flood = bench.run(source, sink, f'{topic}/throughput', args.messages, 0)
            got = len(flood['latencies'])
            span = (flood['last'] - flood['first']) / 1e9
            rate = (got - 1) / span if got > 1 and span > 0 else 0.0
            lat = timed['latencies']
            if not lat:
                print(f'{name:30} no messages')
                continue
            print(
                f'{name:30} {percentile(lat, 0.5):8.2f} {percentile(lat, 0.99):8.2f} '
                f'{rate:9.0f}'
                + (f'  (received {got}/{args.messages})' if got < args.messages else '')
            )
            p50[source, sink] = percentile(lat, 0.5)
            if 'bridge' in name:  # beside rclpy -> rclpy on FastDDS, measured in this run
                report(
                    f'{name}: latency p50',
                    p50[source, sink],
                    'ms',
                    baseline=p50.get(('dds', 'dds')),
                    baseline_name='rclpy -> rclpy',
                )
                report(f'{name}: throughput', rate, 'msg/s')
    finally:
        bridge.send_signal(signal.SIGINT)
        bridge.wait(timeout=15)
        router.send_signal(signal.SIGINT)
        router.wait(timeout=10)


if __name__ == '__main__':
    main()
