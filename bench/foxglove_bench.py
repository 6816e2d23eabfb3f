"""Foxglove bridge benchmark: what the bridge adds between the graph and a WebSocket client.

Measures, with the real `foxglove_bridge_node` process and a Foxglove protocol client
(`tests/bridges/foxglove_client.py`):
- latency graph publish → WebSocket client receive (p50, p99), against the baseline graph
  publish → graph subscriber, both receivers fed by the same samples in the same run (one
  message at a time; stamps are CLOCK_MONOTONIC, shared by the processes);
- throughput to one client: a peer process publishes N messages as fast as it can; rates at
  the WebSocket client and at a graph subscriber of the same stream, with losses;
- CPU of the bridge process (utime+stime from /proc) with the three stations at 10 Hz: idle,
  then with one client subscribed to every channel (scene, transforms and logs included); the
  hbw station node's CPU over the same windows is the reference.

Run: `python bench/foxglove_bench.py [--pings 1000] [--messages 50000] [--cpu-seconds 20]`.
Starts its own router on a free port, the stations and the bridge.
"""

from __future__ import annotations

import argparse
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
from stf_nodes.runtime.router import free_port, spawn_router  # noqa: E402
from tests.bridges.foxglove_client import FoxgloveClient  # noqa: E402

String = interfaces.get_message_class('std_msgs/msg/String')
BIN = Path(sys.executable).parent
CLOCK_TICKS = os.sysconf('SC_CLK_TCK')


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def cpu_seconds(pid: int) -> float:
    fields = Path(f'/proc/{pid}/stat').read_text().rpartition(')')[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def flood(router: str, messages: int, ready: Any, go: Any) -> None:
    """The peer process: publishes `messages` small strings as fast as it can."""
    os.environ['ZENOH_ROUTER'] = router
    context = runtime.Context([])
    node = runtime.Node('bench_flood', context=context)
    publisher = node.create_publisher(String, '/bench/flood', runtime.QoSProfile(depth=1000))
    publisher.wait_for_subscribers(20)
    time.sleep(1.0)  # both subscribers (bridge and graph) linked
    ready.set()
    go.wait()
    for index in range(messages):
        publisher.publish_serialized(interfaces.serialize(String(data=f'{index:08d}')))
    time.sleep(2.0)
    context.shutdown()


class GraphReceiver:
    """The baseline: a graph subscription in its own context."""

    def __init__(self, topic: str, depth: int) -> None:
        self.context = runtime.Context([])
        self.node = runtime.Node('bench_baseline', context=self.context)
        self.stamps: list[tuple[int, bytes]] = []
        self.node.create_subscription(
            String,
            topic,
            lambda payload: self.stamps.append((time.monotonic_ns(), payload)),
            depth,
            raw=True,
        )
        executor = runtime.SingleThreadedExecutor(context=self.context)
        executor.add_node(self.node)
        threading.Thread(target=executor.spin, daemon=True).start()


def bench_latency(url: str, pings: int) -> tuple[list[float], list[float]]:
    baseline = GraphReceiver('/bench/latency', 100)
    context = runtime.Context([])
    node = runtime.Node('bench_pinger', context=context)
    publisher = node.create_publisher(String, '/bench/latency', 10)
    ws_ms, graph_ms = [], []
    with FoxgloveClient(url) as client:
        subscription = client.subscribe('/bench/latency', timeout=20)
        publisher.wait_for_subscribers(20)
        time.sleep(1.0)
        for index in range(pings + 50):
            sent = time.monotonic_ns()
            publisher.publish(String(data=str(sent)))
            client.wait_for(lambda i=index: client.counts[subscription] > i, timeout=10)
            deadline = time.monotonic() + 5
            while len(baseline.stamps) <= index and time.monotonic() < deadline:
                time.sleep(0.0002)
            if index < 50:
                continue  # warm-up
            ws_ms.append((client.received_at[subscription][-1] - sent) / 1e6)
            graph_ms.append((baseline.stamps[-1][0] - sent) / 1e6)
            time.sleep(0.002)
    context.shutdown()
    baseline.context.shutdown()
    return ws_ms, graph_ms


def bench_throughput(router: str, url: str, messages: int) -> dict[str, float]:
    baseline = GraphReceiver('/bench/flood', messages)
    spawn = multiprocessing.get_context('spawn')
    ready, go = spawn.Event(), spawn.Event()
    peer = spawn.Process(target=flood, args=(router, messages, ready, go))
    peer.start()
    with FoxgloveClient(url, max_queue=None) as client:
        subscription = client.subscribe('/bench/flood', timeout=30)
        ready.wait(60)
        go.set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if client.counts[subscription] >= messages and len(baseline.stamps) >= messages:
                break
            previous = client.counts[subscription]
            time.sleep(1.0)
            if client.counts[subscription] == previous and previous > 0:
                break  # the stream ended (with losses)
        ws = client.received_at[subscription]
        result = {
            'ws_received': float(client.counts[subscription]),
            'ws_rate': (len(ws) - 1) / ((ws[-1] - ws[0]) / 1e9) if len(ws) > 1 else 0.0,
        }
    graph = [stamp for stamp, _ in baseline.stamps]
    result['graph_received'] = float(len(graph))
    result['graph_rate'] = (len(graph) - 1) / ((graph[-1] - graph[0]) / 1e9) if graph else 0.0
    peer.join(30)
    baseline.context.shutdown()
    return result


def bench_cpu(url: str, bridge_pid: int, hbw_pid: int, seconds: float) -> dict[str, float]:
    def window() -> tuple[float, float]:
        start = (cpu_seconds(bridge_pid), cpu_seconds(hbw_pid), time.monotonic())
        time.sleep(seconds)
        wall = time.monotonic() - start[2]
        return (
            100 * (cpu_seconds(bridge_pid) - start[0]) / wall,
            100 * (cpu_seconds(hbw_pid) - start[1]) / wall,
        )

    idle_bridge, idle_hbw = window()
    with FoxgloveClient(url, max_queue=None) as client:
        client.channel('/foxglove/scene', timeout=20)
        time.sleep(1.0)
        for topic in sorted(client.topics()):
            client.subscribe(topic)
        time.sleep(2.0)
        busy_bridge, busy_hbw = window()
        received = sum(client.counts.values())
    return {
        'idle_bridge': idle_bridge,
        'idle_hbw': idle_hbw,
        'busy_bridge': busy_bridge,
        'busy_hbw': busy_hbw,
        'messages': received,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--pings', type=int, default=1000)
    parser.add_argument('--messages', type=int, default=50_000)
    parser.add_argument('--cpu-seconds', type=float, default=20.0)
    args = parser.parse_args()

    router, router_process = spawn_router()
    os.environ['ZENOH_ROUTER'] = router
    port = free_port()
    params = ['--params-file', str(REPO / 'config' / 'factory.yaml')]
    processes = [
        subprocess.Popen(
            [
                str(BIN / 'foxglove_bridge_node'),
                '--ros-args',
                *params,
                '-p',
                f'port:={port}',
                '-p',
                f'subscription_depth:={args.messages}',
                '-p',
                f'message_backlog_size:={args.messages}',
            ],
            stderr=subprocess.DEVNULL,
        )
    ]
    url = f'ws://127.0.0.1:{port}'
    try:
        _wait_for_server(url)
        ws_ms, graph_ms = bench_latency(url, args.pings)
        throughput = bench_throughput(router, url, args.messages)
        for station in ('hbw', 'vgr', 'conveyor'):
            processes.append(
                subprocess.Popen(
                    [str(BIN / f'{station}_node'), '--ros-args', *params],
                    stderr=subprocess.DEVNULL,
                )
            )
        cpu = bench_cpu(url, processes[0].pid, processes[1].pid, args.cpu_seconds)
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
        for process in processes:
            process.wait(10)
        router_process.send_signal(signal.SIGINT)
        router_process.wait(10)

    print(f'latency, {len(ws_ms)} messages (std_msgs/String, one at a time)')
    print(f'  {"path":44} {"p50 ms":>8} {"p99 ms":>8}')
    for name, values in (
        ('graph publish -> graph subscriber (baseline)', graph_ms),
        ('graph publish -> bridge -> WebSocket client', ws_ms),
    ):
        print(f'  {name:44} {percentile(values, 0.5):8.3f} {percentile(values, 0.99):8.3f}')
    added = [w - g for w, g in zip(ws_ms, graph_ms, strict=True)]
    print(
        f'  {"added by the bridge (per message difference)":44} '
        f'{percentile(added, 0.5):8.3f} {percentile(added, 0.99):8.3f}'
    )
    print(f'throughput, {args.messages} messages published as fast as possible')
    print(
        f'  graph subscriber (baseline): {throughput["graph_rate"]:9.0f} msg/s, '
        f'{args.messages - throughput["graph_received"]:.0f} lost'
    )
    print(
        f'  WebSocket client:            {throughput["ws_rate"]:9.0f} msg/s, '
        f'{args.messages - throughput["ws_received"]:.0f} lost'
    )
    print(f'CPU (% of one core) over {args.cpu_seconds:g} s windows, stations at 10 Hz')
    print(f'  bridge, no client:                   {cpu["idle_bridge"]:6.1f}')
    print(
        f'  bridge, one client on every channel: {cpu["busy_bridge"]:6.1f} '
        f'({cpu["messages"]} messages delivered)'
    )
    print(f'  hbw station node (reference):        {cpu["busy_hbw"]:6.1f}')
    report(
        'latency added by the bridge, p50',
        percentile(added, 0.5),
        'ms',
        target='<= 2 ms',
        met=percentile(added, 0.5) <= 2.0,
        baseline=percentile(graph_ms, 0.5),
        baseline_name='graph subscriber latency',
    )
    report(
        'forwarded to one client',
        throughput['ws_rate'],
        'msg/s',
        target='>= 10,000 msg/s',
        met=throughput['ws_rate'] >= 10_000,
        baseline=throughput['graph_rate'],
        baseline_name='graph subscriber',
    )
    report(
        'bridge CPU, factory at 10 Hz, one client',
        cpu['busy_bridge'],
        '% core',
        baseline=cpu['busy_hbw'],
        baseline_name='hbw station node',
    )


def _wait_for_server(url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with FoxgloveClient(url) as client:
                client.wait_for(lambda: client.server_info, timeout=5)
                return
        except (OSError, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


if __name__ == '__main__':
    main()
