"""Recorder benchmark: sustained MotorState throughput into SQLite with zero loss, and the whole
factory at 100 Hz, against raw sqlite3 in the same run.

1. Throughput: this process publishes N `stf_msgs/msg/MotorState` messages on one reliable topic,
   as fast as it can (or at `--rate`), to a `recorder_node` process writing SQLite; the rate is
   N over the time from the first publish to the last row committed (the recorder's
   diagnostics), then checked in the database: N rows, no gap, the publisher's last sequence
   number N. The same run first times the floor: raw `sqlite3.executemany` of N rows into the
   same table and indexes.
2. Whole factory: hbw, vgr and conveyor nodes set to publish state at 100 Hz (physics at
   200 Hz: a station publishes on physics ticks, and at equal rates it skips every other one)
   for D seconds with the recorder; zero loss means every state stream's sequence
   numbers arrived without a hole from the first one recorded (no gap rows; the first
   messages of a publisher may go out before its link to the recorder exists, as in ROS).
   Prints the rate the stations achieved.

Run: `python bench/recorder_bench.py [--messages 100000] [--rate 20000] [--factory-s 20]`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench_report import report

from stf_msgs.msg import MotorState
from stf_nodes import interfaces, runtime
from stf_nodes.runtime.router import spawn_router
from stf_nodes.storage import make_engine, upgrade_schema

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
TOPIC = '/bench/motors'
DiagnosticArray = interfaces.get_message_class('diagnostic_msgs/msg/DiagnosticArray')
SAMPLE = MotorState(
    motor_id='CONV_M1', running=True, direction=1, current_a=1.21, voltage_v=24.0, power_w=29.04,
    energy_wh=12.5, temperature_c=41.2, health=0.93, encoder_pulses=5625, start_count=17,
    runtime_h=3.5,
)  # fmt: skip


def raw_sqlite_baseline(path: Path, count: int) -> float:
    """Rows/s of plain sqlite3 executemany into motor_samples (schema and indexes as ours)."""
    upgrade_schema(make_engine(f'sqlite:///{path}'))
    connection = sqlite3.connect(path)
    connection.execute('PRAGMA journal_mode=WAL')
    connection.execute('PRAGMA synchronous=NORMAL')
    rows = [
        (f'2024-01-01 00:00:00.{n % 1_000_000:06d}', '', '', 'CONV_M1', 1, 1, 1.21, 24.0, 29.04,
         12.5, 41.2, 0.93, 5625, 17, 3.5, '')
        for n in range(count)
    ]  # fmt: skip
    sql = (
        'INSERT INTO motor_samples (time, factory, station, motor_id, running, direction, '
        'current_a, voltage_v, power_w, energy_wh, temperature_c, health, encoder_pulses, '
        'start_count, runtime_h, fault) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)'
    )
    start = time.perf_counter()
    for offset in range(0, count, 20_000):  # the recorder's batch size
        with connection:
            connection.executemany(sql, rows[offset : offset + 20_000])
    elapsed = time.perf_counter() - start
    connection.close()
    return count / elapsed


class Watcher:
    """Publishes and listens to the recorder's diagnostics."""

    def __init__(self) -> None:
        self.context = runtime.Context([])
        self.node = runtime.Node('recorder_bench', context=self.context, enable_rosout=False)
        self.status: dict[str, str] = {}
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)
        self.executor = runtime.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()

    def _on_diagnostics(self, array: Any) -> None:
        for status in array.status:
            if status.name == 'recorder: database':
                self.status = {kv.key: kv.value for kv in status.values}
                self.status['level'] = str(status.level)

    def wait(self, predicate: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.status):
                return True
            time.sleep(0.005)
        return False


def start_recorder(url: str, *params: str) -> subprocess.Popen[bytes]:
    args = [str(BIN / 'recorder_node'), '--ros-args', '-p', f'db_url:={url}', '-p',
            'diagnostics_rate:=50.0']  # fmt: skip
    for param in params:
        args += ['-p', param]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()


def throughput(watcher: Watcher, path: Path, count: int, rate: float) -> dict[str, Any]:
    url = f'sqlite:///{path}'
    recorder = start_recorder(url, f'topics:=["{TOPIC}"]')
    try:
        publisher = watcher.node.create_publisher(MotorState, TOPIC, 1000)
        if not publisher.wait_for_subscribers(60) or not watcher.wait(bool, 60):
            raise RuntimeError('the recorder did not come up')
        payload = interfaces.serialize(SAMPLE)
        start = time.perf_counter()
        period = 1.0 / rate if rate else 0.0
        for n in range(count):
            publisher.publish_serialized(payload)
            if rate and n % 200 == 199:  # pace in bursts: a sleep per message costs too much
                delay = start + (n + 1) * period - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
        published_s = time.perf_counter() - start
        done = watcher.wait(lambda s: s.get('recorded') == str(count), 120)
        elapsed = time.perf_counter() - start
        status = dict(watcher.status)
    finally:
        stop(recorder)
    with sqlite3.connect(path) as connection:
        rows = connection.execute('SELECT COUNT(*) FROM motor_samples').fetchone()[0]
        gaps = connection.execute('SELECT COALESCE(SUM(count), 0) FROM recorder_gaps').fetchone()[0]
        last = connection.execute('SELECT MAX(last_sequence) FROM recorder_streams').fetchone()[0]
    return {
        'published_per_s': count / published_s,
        'recorded_per_s': count / elapsed if done else 0.0,
        'rows': rows,
        'gaps': gaps,
        'last_sequence': last,
        'dropped': status.get('dropped'),
        'complete': done,
    }


def whole_factory(watcher: Watcher, path: Path, seconds: float) -> dict[str, Any]:
    url = f'sqlite:///{path}'
    recorder = start_recorder(url)
    stations = []
    try:
        if not watcher.wait(bool, 60):
            raise RuntimeError('the recorder did not come up')
        for station in ('hbw', 'vgr', 'conveyor'):
            stations.append(subprocess.Popen(
                [str(BIN / f'{station}_node'), '--ros-args', '--params-file',
                 str(REPO / 'config' / 'factory.yaml'), '-p', 'publish_rate:=100.0', '-p',
                 'physics_rate:=200.0'],
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            ))  # fmt: skip
        time.sleep(seconds)
        for process in stations:
            stop(process)
        time.sleep(2.0)
    finally:
        for process in stations:
            if process.poll() is None:
                process.kill()
        stop(recorder)
    with sqlite3.connect(path) as connection:
        streams = connection.execute(
            "SELECT topic, last_sequence, received FROM recorder_streams WHERE topic LIKE '%/state'"
        ).fetchall()
        gaps = connection.execute('SELECT COALESCE(SUM(count), 0) FROM recorder_gaps').fetchone()[0]
        samples = connection.execute('SELECT COUNT(*) FROM motor_samples').fetchone()[0]
        spans = dict(
            connection.execute(
                "SELECT '/stf/' || station || '/state', (julianday(MAX(time)) - "
                'julianday(MIN(time))) * 86400 FROM motor_samples GROUP BY station'
            ).fetchall()
        )
    return {'streams': streams, 'gaps': gaps, 'motor_samples': samples, 'spans': spans}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--messages', type=int, default=100_000)
    parser.add_argument('--rate', type=float, default=0.0, help='messages/s, 0 = unpaced')
    parser.add_argument('--factory-s', type=float, default=20.0)
    args = parser.parse_args()
    endpoint, router = spawn_router()
    os.environ['ZENOH_ROUTER'] = endpoint
    watcher = Watcher()
    try:
        with tempfile.TemporaryDirectory() as directory:
            folder = Path(directory)
            baseline = raw_sqlite_baseline(folder / 'raw.db', args.messages)
            result = throughput(watcher, folder / 'recorder.db', args.messages, args.rate)
            factory = whole_factory(watcher, folder / 'factory.db', args.factory_s)
    finally:
        router.send_signal(signal.SIGINT)
        router.wait(10)
    pace = f'{args.rate:,.0f}/s' if args.rate else 'as fast as published'
    print(f'recorder benchmark: router {endpoint}, {args.messages} MotorState messages, {pace}, '
          'into SQLite')  # fmt: skip
    print(f'{"metric":40s} {"value":>14s}')
    print(f'{"raw sqlite3 executemany (rows/s)":40s} {baseline:14,.0f}')
    print(f'{"published (msg/s)":40s} {result["published_per_s"]:14,.0f}')
    print(f'{"recorded, end to end (msg/s)":40s} {result["recorded_per_s"]:14,.0f}')
    print(f'{"rows / gaps / last sequence":40s} {result["rows"]:>6} / {result["gaps"]} / '
          f'{result["last_sequence"]}')  # fmt: skip
    zero_loss = result['rows'] == args.messages and result['gaps'] == 0
    met = 'met' if zero_loss and result['recorded_per_s'] >= 20_000 else 'MISSED'
    print(f'target >= 20,000 msg/s into SQLite with zero loss: {met}')
    print(f'whole factory set to 100 Hz for {args.factory_s:g} s: '
          f'{factory["motor_samples"]} motor samples, gaps {factory["gaps"]}')  # fmt: skip
    for topic, last, received in factory['streams']:
        span = factory['spans'].get(topic) or 1.0
        print(f'  {topic}: messages {last - received + 1}..{last} all recorded ({received}); '
              f'{received / span:.0f} Hz while publishing')  # fmt: skip
    factory_met = factory['gaps'] == 0 and len(factory['streams']) == 3
    print(f'target whole factory at 100 Hz with zero loss: {"met" if factory_met else "MISSED"}')
    report(
        'recorded into SQLite, end to end',
        result['recorded_per_s'],
        'msg/s',
        target='>= 20,000 msg/s, zero loss',
        met=met == 'met',
        baseline=baseline,
        baseline_name='raw sqlite3 executemany',
    )
    report('whole factory at 100 Hz: lost', factory['gaps'], 'msgs', target='0', met=factory_met)
    return 0


if __name__ == '__main__':
    sys.exit(main())
