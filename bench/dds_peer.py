"""The rclpy side of `dds_bench.py`: plain rclpy on FastDDS (run under `.venv-dds/bin/python`).

`pub TOPIC RATE SIZE`: std_msgs/String at RATE Hz (0: as fast as it can) until killed, each
carrying its CLOCK_MONOTONIC send time (ns, shared by the processes of one machine) padded to
SIZE bytes. `sub TOPIC COUNT WARMUP TIMEOUT`: skips WARMUP messages, then prints one JSON line
with the one-way latencies (ns) of the next COUNT and the first and last receive times.
"""

from __future__ import annotations

import json
import sys
import time

import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import String

QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)


def publish(node: Node, topic: str, rate: float, size: int) -> None:
    publisher = node.create_publisher(String, topic, QOS)
    period = 1.0 / rate if rate else 0.0
    next_at = time.monotonic()
    while True:
        stamp = f'{time.monotonic_ns():020d}'
        publisher.publish(String(data=stamp.ljust(size, 'x')))
        if period:
            next_at += period
            time.sleep(max(0.0, next_at - time.monotonic()))


def subscribe(node: Node, topic: str, count: int, warmup: int, timeout: float) -> None:
    latencies: list[int] = []
    received = [0, 0, 0]  # seen, first receive ns, last receive ns

    def on_message(message: String) -> None:
        now = time.monotonic_ns()
        received[0] += 1
        if received[0] <= warmup or len(latencies) >= count:
            return
        if not latencies:
            received[1] = now
        received[2] = now
        latencies.append(now - int(message.data[:20]))

    node.create_subscription(String, topic, on_message, QOS)
    print(json.dumps({'ready': True}), flush=True)
    deadline = time.monotonic() + timeout
    while len(latencies) < count and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    print(json.dumps({'latencies': latencies, 'first': received[1], 'last': received[2]}))


def main() -> None:
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)  # Ctrl-C: KeyboardInterrupt
    node = Node('dds_bench_peer')
    try:
        if sys.argv[1] == 'pub':
            publish(node, sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
        else:
            subscribe(node, sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
