"""MQTT bridge throughput and latency through Mosquitto, against a paho → paho baseline.

Runs the real `mqtt_bridge_node` executable with two generic routes (graph `bench/out` →
MQTT, MQTT → graph `bench/in`; std_msgs/String carrying a sequence number, QoS 0) against
the Mosquitto on 127.0.0.1:1883 (or `--port`), under a unique topic prefix, and a Zenoh router
of its own. For each direction and for the baseline (a paho publisher → the same broker → a
paho subscriber, in this process):

- **paced**: `--rate` messages per second for `--seconds`: achieved rate, loss, latency
  percentiles (send → receive, one clock: both ends are in this process);
- **burst**: `--count` messages as fast as the sender can: delivered messages per second.

Targets (issue 13): ≥ 2,000 msg/s each way, p50 ≤ 5 ms.

    python bench/mqtt_bench.py [--rate 2000] [--seconds 3] [--count 20000] [--port 1883]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as paho
from bench_report import report
from paho.mqtt.enums import CallbackAPIVersion

from stf_nodes import interfaces, runtime
from stf_nodes.runtime.router import spawn_router

String = interfaces.get_message_class('std_msgs/msg/String')


class Recorder:
    """Receive times by sequence number."""

    def __init__(self) -> None:
        self.sent: dict[int, float] = {}
        self.received: dict[int, float] = {}
        self.lock = threading.Lock()

    def on_receive(self, text: str) -> None:
        now = time.perf_counter()
        sequence = int(text.split(':', 1)[0])
        with self.lock:
            self.received.setdefault(sequence, now)

    def reset(self) -> None:
        with self.lock:
            self.sent.clear()
            self.received.clear()


def mqtt_client(port: int, name: str) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=name)
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(1000)
    client.connect('127.0.0.1', port)
    client.loop_start()
    return client


def run_phase(
    send: Callable[[str], None], recorder: Recorder, *, count: int, rate: float | None
) -> dict[str, float]:
    """Send ``count`` messages (paced at ``rate``, or as fast as possible) and collect."""
    recorder.reset()
    padding = 'x' * 64
    start = time.perf_counter()
    for sequence in range(count):
        if rate:
            due = start + sequence / rate
            while (now := time.perf_counter()) < due:
                time.sleep(min(due - now, 0.0005))
        recorder.sent[sequence] = time.perf_counter()
        send(f'{sequence}:{padding}')
    sent_end = time.perf_counter()
    deadline = sent_end + 10.0
    while len(recorder.received) < count and time.perf_counter() < deadline:
        time.sleep(0.01)
        # no more arrivals for 1 s: the rest is lost
        if recorder.received and time.perf_counter() - max(recorder.received.values()) > 1.0:
            break
    with recorder.lock:
        latencies = sorted(
            (recorder.received[s] - recorder.sent[s]) * 1000 for s in recorder.received
        )
        last = max(recorder.received.values(), default=sent_end)
    delivered = len(latencies)
    return {
        'sent_per_s': count / (sent_end - start),
        'delivered_per_s': delivered / (last - start) if delivered else 0.0,
        'loss_pct': 100.0 * (count - delivered) / count,
        'p50_ms': statistics.median(latencies) if latencies else float('nan'),
        'p99_ms': latencies[int(0.99 * (delivered - 1))] if latencies else float('nan'),
    }


def print_row(
    name: str, paced: dict[str, float], burst: dict[str, float], baseline: dict[str, float]
) -> None:
    """One line of the table, and the bridged directions' results for `python -m bench`."""
    print(
        f'{name:<26} paced: {paced["delivered_per_s"]:7.0f} msg/s  loss {paced["loss_pct"]:5.2f} %'
        f'  p50 {paced["p50_ms"]:6.2f} ms  p99 {paced["p99_ms"]:7.2f} ms   '
        f'burst: {burst["delivered_per_s"]:7.0f} msg/s (loss {burst["loss_pct"]:.2f} %)',
        flush=True,
    )
    if paced is baseline:
        return
    report(
        f'{name}: paced p50',
        paced['p50_ms'],
        'ms',
        target='<= 5 ms at >= 2,000 msg/s, no loss',
        met=paced['p50_ms'] <= 5.0
        and paced['delivered_per_s'] >= 0.98 * 2000
        and paced['loss_pct'] == 0.0,
        baseline=baseline['p50_ms'],
        baseline_name='paho -> Mosquitto -> paho',
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rate', type=float, default=2000.0, help='paced rate, msg/s')
    parser.add_argument('--seconds', type=float, default=3.0, help='paced duration, s')
    parser.add_argument('--count', type=int, default=20000, help='burst size')
    parser.add_argument('--port', type=int, default=int(os.environ.get('MQTT_PORT', '1883')))
    options = parser.parse_args()
    paced_count = int(options.rate * options.seconds)
    prefix = f'bench-{uuid.uuid4().hex[:8]}'

    endpoint, router = spawn_router()
    os.environ['ZENOH_ROUTER'] = endpoint
    workdir = Path(tempfile.mkdtemp(prefix='stf_mqtt_bench_'))
    mapping = workdir / 'routes.yaml'
    mapping.write_text(
        'routes:\n'
        '  - {graph: bench/out, type: std_msgs/msg/String, mqtt: bench/out}\n'
        '  - {mqtt: bench/in, graph: bench/in, type: std_msgs/msg/String, direction: in}\n'
    )
    bridge = subprocess.Popen(
        [sys.executable, '-m', 'stf_nodes.mqtt_bridge_node', '--ros-args',
         '-r', '__ns:=/bench', '-p', f'broker_port:={options.port}',
         '-p', f'topic_prefix:={prefix}', '-p', f'client_id:={prefix}',
         '-p', 'persistent_session:=false', '-p', f'mapping_file:={mapping}'],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    context = runtime.Context([])
    node = runtime.Node('mqtt_bench', context=context)
    executor = runtime.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    try:
        print(
            f'MQTT bench: Mosquitto 127.0.0.1:{options.port}, paced {options.rate:g} msg/s for '
            f'{options.seconds:g} s, burst {options.count}; 64-byte payloads, QoS 0',
            flush=True,
        )
        # Baseline: paho → broker → paho.
        baseline = Recorder()
        listener = mqtt_client(options.port, f'{prefix}-base-sub')
        listener.on_message = lambda c, u, m: baseline.on_receive(m.payload.decode())
        listener.subscribe(f'{prefix}/base', qos=0)
        talker = mqtt_client(options.port, f'{prefix}-base-pub')
        time.sleep(0.5)

        def base_send(text: str) -> None:
            talker.publish(f'{prefix}/base', text, qos=0)

        paho = run_phase(base_send, baseline, count=paced_count, rate=options.rate)
        print_row(
            'baseline paho -> paho',
            paho,
            run_phase(base_send, baseline, count=options.count, rate=None),
            paho,
        )

        # graph -> bridge -> MQTT
        outward = Recorder()
        mqtt_out = mqtt_client(options.port, f'{prefix}-out-sub')
        mqtt_out.on_message = lambda c, u, m: outward.on_receive(
            m.payload.decode().split('"data":"', 1)[1]
        )
        mqtt_out.subscribe(f'{prefix}/bench/out', qos=0)
        publisher = node.create_publisher(String, '/bench/bench/out', 1000)
        if not publisher.wait_for_subscribers(30):
            print('the bridge did not subscribe to /bench/bench/out', file=sys.stderr)
            return 1
        time.sleep(0.5)

        def graph_send(text: str) -> None:
            publisher.publish(String(data=text))

        print_row(
            'graph -> bridge -> MQTT',
            run_phase(graph_send, outward, count=paced_count, rate=options.rate),
            run_phase(graph_send, outward, count=options.count, rate=None),
            paho,
        )

        # MQTT -> bridge -> graph
        inward = Recorder()
        subscription = node.create_subscription(
            String, '/bench/bench/in', lambda message: inward.on_receive(message.data), 1000
        )
        runtime_wait = time.monotonic() + 30
        while subscription.get_publisher_count() == 0 and time.monotonic() < runtime_wait:
            time.sleep(0.05)
        time.sleep(1.0)  # the peer link behind the graph entry
        mqtt_in = mqtt_client(options.port, f'{prefix}-in-pub')

        def mqtt_send(text: str) -> None:
            mqtt_in.publish(f'{prefix}/bench/in', '{"data":"' + text + '"}', qos=0)

        print_row(
            'MQTT -> bridge -> graph',
            run_phase(mqtt_send, inward, count=paced_count, rate=options.rate),
            run_phase(mqtt_send, inward, count=options.count, rate=None),
            paho,
        )
        for client in (listener, talker, mqtt_out, mqtt_in):
            client.disconnect()
            client.loop_stop()
    finally:
        executor.shutdown()
        node.destroy_node()
        context.shutdown()
        bridge.send_signal(signal.SIGINT)
        bridge.wait(timeout=10)
        router.send_signal(signal.SIGINT)
        router.wait(timeout=10)
        print(f'(router {endpoint})', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
