"""Graph benchmark: our runtime against raw eclipse-zenoh, two processes through a router.

Measures, with `stf_msgs/msg/MotorState`:
- topic ping-pong round trip (p50, p99): this process publishes a ping, the peer process
  answers each one with a pong on another topic;
- service round trip (p50, p99);
- sustained one-way throughput on a reliable topic, with the loss count: the peer publishes
  N messages as fast as it can, this process counts what arrives.
The raw-Zenoh rows are the floor: the same payload bytes and the same topology, with plain
Zenoh puts, subscribers, queries and queryables and no ROS layer. The stf rows include
everything a node does (CDR encode/decode, attachments, executor hand-off).

Run: `python bench/graph_bench.py [--pings 4000] [--calls 2000] [--messages 50000]`.
Starts its own router on a free port and both peers at once; latency batches of raw and stf
alternate so both see the same machine load. Prints a table with stf/raw ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

import zenoh

from stf_msgs.msg import MotorState
from stf_nodes import interfaces, runtime
from stf_nodes.runtime.context import session_config
from stf_nodes.runtime.router import spawn_router

ADD = 'example_interfaces/srv/AddTwoInts'
SAMPLE = MotorState(
    motor_id='CONV_M1',
    running=True,
    direction=1,
    current_a=1.21,
    voltage_v=24.0,
    power_w=29.04,
    energy_wh=12.5,
    temperature_c=41.2,
    health=0.93,
    encoder_pulses=5625,
    start_count=17,
    runtime_h=3.5,
)
PAYLOAD = interfaces.serialize(SAMPLE)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


# -- the peer process ---------------------------------------------------------------------


def peer_stf(messages: int) -> None:
    runtime.init([])
    node = runtime.Node('bench_peer')
    pong = node.create_publisher(MotorState, '/bench/pong', 10)
    node.create_subscription(MotorState, '/bench/ping', pong.publish, 10)
    add = interfaces.get_service(ADD)

    def on_add(request: Any, response: Any) -> Any:
        response.sum = request.a + request.b
        return response

    node.create_service(add, '/bench/add', on_add)
    flood = node.create_publisher(MotorState, '/bench/flood', runtime.QoSProfile(depth=1000))

    def on_go(_: Any) -> None:
        for index in range(messages):
            SAMPLE.start_count = index
            flood.publish(SAMPLE)

    node.create_subscription(
        interfaces.get_message_class('std_msgs/msg/Empty'), '/bench/go', on_go, 10
    )
    print('ready', flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        runtime.spin(node)


def peer_raw(messages: int) -> None:
    session = zenoh.open(session_config())
    pong = session.declare_publisher('bench/pong', congestion_control=zenoh.CongestionControl.BLOCK)
    flood = session.declare_publisher(
        'bench/flood', congestion_control=zenoh.CongestionControl.BLOCK
    )
    ping = session.declare_subscriber('bench/ping', lambda s: pong.put(s.payload))
    add = session.declare_queryable('bench/add', lambda q: q.reply(q.key_expr, q.payload))

    def on_go(_: Any) -> None:
        for _ in range(messages):
            flood.put(PAYLOAD)

    go = session.declare_subscriber('bench/go', on_go)
    print('ready', flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    for entity in (ping, add, go, pong, flood):
        entity.undeclare()
    session.close()


# -- measurements in this process ---------------------------------------------------------


class StfSide:
    def __init__(self) -> None:
        runtime.init([])
        self.node = runtime.Node('bench_driver')
        self.executor = runtime.SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.pongs = threading.Semaphore(0)
        self.flood_count = 0
        self.ping = self.node.create_publisher(MotorState, '/bench/ping', 10)
        self.node.create_subscription(MotorState, '/bench/pong', lambda _: self.pongs.release(), 10)
        self.node.create_subscription(
            MotorState,
            '/bench/flood',
            self._on_flood,
            runtime.QoSProfile(depth=0, history=runtime.HistoryPolicy.KEEP_ALL),
        )
        self.go = self.node.create_publisher(
            interfaces.get_message_class('std_msgs/msg/Empty'), '/bench/go', 10
        )
        self.add = self.node.create_client(interfaces.get_service(ADD), '/bench/add')
        self.request = self.add.srv_type.Request(a=1, b=2)
        threading.Thread(target=self.executor.spin, daemon=True).start()
        self.add.wait_for_service(10)
        if not self.ping.wait_for_subscribers(10):
            raise RuntimeError('the stf peer did not subscribe')

    def _on_flood(self, _: Any) -> None:
        self.flood_count += 1

    def ping_once(self) -> None:
        self.ping.publish(SAMPLE)
        if not self.pongs.acquire(timeout=5):
            raise RuntimeError('pong lost')

    def call_once(self) -> None:
        self.add.call(self.request, timeout_sec=5)

    def start_flood(self) -> None:
        self.go.publish(interfaces.get_message_class('std_msgs/msg/Empty')())

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        runtime.shutdown()


class RawSide:
    def __init__(self) -> None:
        self.session = zenoh.open(session_config())
        self.pongs = threading.Semaphore(0)
        self.flood_count = 0
        self.ping = self.session.declare_publisher(
            'bench/ping', congestion_control=zenoh.CongestionControl.BLOCK
        )
        self.pong = self.session.declare_subscriber('bench/pong', lambda _: self.pongs.release())
        self.flood = self.session.declare_subscriber('bench/flood', self._on_flood)
        time.sleep(1.0)

    def _on_flood(self, _: Any) -> None:
        self.flood_count += 1

    def ping_once(self) -> None:
        self.ping.put(PAYLOAD)
        if not self.pongs.acquire(timeout=5):
            raise RuntimeError('pong lost')

    def call_once(self) -> None:
        replies = list(self.session.get('bench/add', payload=PAYLOAD, timeout=5))
        if not replies:
            raise RuntimeError('no reply')

    def start_flood(self) -> None:
        self.session.put('bench/go', b'')

    def close(self) -> None:
        for entity in (self.pong, self.flood, self.ping):
            entity.undeclare()
        self.session.close()


def interleaved(
    sides: dict[str, Any], action: str, total: int, rounds: int
) -> dict[str, list[float]]:
    """Latencies (us) of `action` per side, measured in alternating batches.

    Two cores shared with everything else drift by tens of microseconds over seconds;
    alternating batches of raw and stf exposes both to the same drift.
    """
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for side in sides.values():
        for _ in range(100):
            getattr(side, action)()
    for _ in range(rounds):
        for name, side in sides.items():
            call = getattr(side, action)
            for _ in range(total // rounds):
                start = time.perf_counter_ns()
                call()
                samples[name].append((time.perf_counter_ns() - start) / 1000)
    return samples


def flood(side: Any, messages: int) -> tuple[float, int]:
    """(messages/s received, messages lost) for one burst of `messages` from the peer."""
    side.flood_count = 0
    side.start_flood()
    while side.flood_count == 0:
        time.sleep(0.0005)
    first = time.perf_counter()
    last_count, last_change = 0, time.perf_counter()
    while side.flood_count < messages and time.perf_counter() - last_change < 2.0:
        time.sleep(0.01)
        if side.flood_count != last_count:
            last_count, last_change = side.flood_count, time.perf_counter()
    elapsed = last_change - first
    return (
        side.flood_count / elapsed if elapsed > 0 else float('inf'),
        messages - side.flood_count,
    )


def start_peer(kind: str, messages: int) -> subprocess.Popen[str]:
    peer = subprocess.Popen(
        [sys.executable, __file__, '--peer', kind, '--messages', str(messages)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert peer.stdout is not None
    if peer.stdout.readline().strip() != 'ready':
        raise RuntimeError(f'{kind} peer did not start')
    return peer


def run(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Both peers run at once; their measurements alternate."""
    peers = [start_peer('raw', args.messages), start_peer('stf', args.messages)]
    sides: dict[str, Any] = {}
    try:
        sides = {'raw': RawSide(), 'stf': StfSide()}
        pings = interleaved(sides, 'ping_once', args.pings, args.rounds)
        calls = interleaved(sides, 'call_once', args.calls, args.rounds)
        results = {}
        for name, side in sides.items():
            bursts = [flood(side, args.messages) for _ in range(args.bursts)]
            results[name] = {
                'ping_p50_us': statistics.median(pings[name]),
                'ping_p99_us': percentile(pings[name], 0.99),
                'call_p50_us': statistics.median(calls[name]),
                'call_p99_us': percentile(calls[name], 0.99),
                'throughput_msg_s': statistics.median(rate for rate, _ in bursts),
                'lost': sum(lost for _, lost in bursts),
            }
        return results
    finally:
        for side in sides.values():
            side.close()
        for peer in peers:
            peer.send_signal(signal.SIGINT)
            try:
                peer.wait(timeout=10)
            except subprocess.TimeoutExpired:
                peer.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--peer', choices=['stf', 'raw'], help=argparse.SUPPRESS)
    parser.add_argument('--pings', type=int, default=4000)
    parser.add_argument('--calls', type=int, default=2000)
    parser.add_argument('--messages', type=int, default=50000, help='per throughput burst')
    parser.add_argument('--rounds', type=int, default=20, help='alternating latency batches')
    parser.add_argument('--bursts', type=int, default=3, help='throughput bursts per side')
    parser.add_argument('--json', action='store_true', help='print the results as JSON too')
    args = parser.parse_args()
    if args.peer:
        (peer_stf if args.peer == 'stf' else peer_raw)(args.messages)
        return 0

    load_before = os.getloadavg()
    endpoint, router = spawn_router()
    os.environ['ZENOH_ROUTER'] = endpoint
    try:
        results = run(args)
        raw, stf = results['raw'], results['stf']
    finally:
        router.send_signal(signal.SIGINT)
        router.wait(timeout=10)

    print(
        f'graph benchmark: MotorState ({len(PAYLOAD)} bytes CDR), two processes, router at '
        f'{endpoint}; {args.pings} pings and {args.calls} calls per side in {args.rounds} '
        f'alternating batches; {args.bursts} bursts of {args.messages} messages per side'
    )
    print(f'{"metric":<24}{"raw zenoh":>14}{"stf":>14}{"stf/raw":>10}')
    for key, label in [
        ('ping_p50_us', 'topic RTT p50 (us)'),
        ('ping_p99_us', 'topic RTT p99 (us)'),
        ('call_p50_us', 'service RTT p50 (us)'),
        ('call_p99_us', 'service RTT p99 (us)'),
        ('throughput_msg_s', 'throughput (msg/s)'),
        ('lost', 'lost messages'),
    ]:
        ratio = f'{stf[key] / raw[key]:.2f}' if raw[key] else '-'
        print(f'{label:<24}{raw[key]:>14.1f}{stf[key]:>14.1f}{ratio:>10}')
    checks = {  # issue 16
        'topic RTT p50 within 1.3x raw': stf['ping_p50_us'] <= 1.3 * raw['ping_p50_us'],
        'service RTT p50 within 1.2x raw': stf['call_p50_us'] <= 1.2 * raw['call_p50_us'],
        'throughput >= 150000 msg/s': stf['throughput_msg_s'] >= 150000,
        'zero loss': stf['lost'] == 0,
    }
    print(f'load average before {load_before}, after {os.getloadavg()}, {os.cpu_count()} cores')
    for name, passed in checks.items():
        print(f'target {name}: {"met" if passed else "MISSED"}')
    if args.json:
        print(json.dumps({'raw': raw, 'stf': stf}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
