"""History generator benchmark: `stf history generate --days 30 --orders-per-day 50` into SQLite.

Prints the wall time, the rows per table, rows/s and the peak memory (max RSS) of the command,
run as a user runs it (a process of its own), with the default scenario. Baselines measured in
the same run: the floor of writing that many rows (raw `sqlite3.executemany` of as many
motor_samples-shaped rows), and one day simulated without reuse (every command segment
simulated step by step), extrapolated to the days asked for.

Run: `python bench/history_bench.py [--days 30] [--orders-per-day 50]`.
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bench_report import report

from stf_nodes.history.generator import HistoryGenerator, HistoryOptions
from stf_nodes.history.scenario import load_scenario
from stf_nodes.history.simulation import FactorySettings, SimFactory
from stf_nodes.storage import make_engine, upgrade_schema

REPO = Path(__file__).resolve().parents[1]


def raw_rows_per_s(path: Path, count: int) -> float:
    upgrade_schema(make_engine(f'sqlite:///{path}'))
    connection = sqlite3.connect(path)
    connection.execute('PRAGMA journal_mode=WAL')
    rows = [
        (f'2024-01-01 00:00:{n % 60:02d}.{n % 1_000_000:06d}', '', 'hbw', 'HBW_M1_X', 1, 1, 1.2,
         24.0, 28.8, 0.5, 30.0, 0.99, n, 3, 0.1, '')
        for n in range(count)
    ]  # fmt: skip
    sql = (
        'INSERT INTO motor_samples (time, factory, station, motor_id, running, direction, '
        'current_a, voltage_v, power_w, energy_wh, temperature_c, health, encoder_pulses, '
        'start_count, runtime_h, fault) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)'
    )
    start = time.perf_counter()
    with connection:
        connection.executemany(sql, rows)
    elapsed = time.perf_counter() - start
    connection.close()
    return count / elapsed


def without_reuse_s(days: int, orders: int) -> float:
    """Seconds to generate one day with every segment simulated, times ``days``."""
    settings = FactorySettings.from_parameter_file(REPO / 'config' / 'factory.yaml')
    scenario = load_scenario(REPO / 'config' / 'scenarios' / 'healthy.yaml',
                             SimFactory(settings, seed=0).components)  # fmt: skip
    options = HistoryOptions(days=1, orders_per_day=orders, seed=1, reuse=False,
                             start=datetime(2024, 1, 1, tzinfo=timezone.utc))  # fmt: skip
    start = time.perf_counter()
    for _ in HistoryGenerator(settings, scenario, options).days():
        pass
    return (time.perf_counter() - start) * days


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--days', type=int, default=30)
    parser.add_argument('--orders-per-day', type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        db = Path(directory) / 'history.db'
        command = [sys.executable, '-m', 'stf_nodes.cli', 'history', 'generate', '--days',
                   str(args.days), '--orders-per-day', str(args.orders_per_day), '--seed', '1',
                   '--start', '2024-01-01', '--db', f'sqlite:///{db}']  # fmt: skip
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_mib = usage.ru_maxrss / 1024
        cpu_s = usage.ru_utime + usage.ru_stime
        if result.returncode:
            print(result.stderr, file=sys.stderr)
            return 1
        with sqlite3.connect(db) as connection:
            tables = [
                name
                for (name,) in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                )
            ]
            counts = {
                t: connection.execute(f'SELECT COUNT(*) FROM {t}').fetchone()[0] for t in tables
            }
        total = sum(n for t, n in counts.items() if t not in ('alembic_version',))
        telemetry = sum(
            n for t, n in counts.items()
            if not t.startswith(('ground_truth', 'history_runs', 'alembic', 'commands',
                                 'command_events', 'inventory', 'recorder_'))
        )  # fmt: skip
        baseline = raw_rows_per_s(Path(directory) / 'raw.db', total)
    naive = without_reuse_s(args.days, args.orders_per_day)
    print(f'history benchmark: --days {args.days} --orders-per-day {args.orders_per_day}, '
          'default scenario, SQLite')  # fmt: skip
    print(result.stdout.rstrip())
    print(f'{"wall time of the command (s)":44s} {wall:10.1f}')
    print(f'{"rows written / telemetry rows":44s} {total:>10,} / {telemetry:,}')
    print(f'{"CPU time of the command (s, two threads)":44s} {cpu_s:10.1f}')
    print(f'{"load average (1 min) at the end":44s} {os.getloadavg()[0]:10.2f}')
    print(f'{"rows/s":44s} {total / wall:10,.0f}')
    print(f'{"peak memory, max RSS (MiB)":44s} {peak_mib:10.0f}')
    print(f'{"baseline: raw sqlite3 executemany (rows/s)":44s} {baseline:10,.0f}')
    print(f'{"baseline: without reuse, extrapolated (s)":44s} {naive:10.0f}')
    checks = {
        '<= 30 s': wall <= 30,
        '>= 1,090,000 telemetry rows': telemetry >= 1_090_000,
        'peak memory < 1 GB': peak_mib < 1024,
    }
    for name, ok in checks.items():
        print(f'target {name}: {"met" if ok else "MISSED"}')
    full = (args.days, args.orders_per_day) == (30, 50)  # the targets are for this size
    report(
        f'generate {args.days} days x {args.orders_per_day} orders',
        wall,
        's',
        target='<= 30 s (30 days x 50)',
        met=checks['<= 30 s'] if full else None,
        baseline=naive,
        baseline_name='without reuse, extrapolated',
    )
    report(
        'telemetry rows',
        telemetry,
        'rows',
        target='>= 1,090,000 (30 days)',
        met=checks['>= 1,090,000 telemetry rows'] if full else None,
    )
    report('peak memory', peak_mib, 'MiB', target='< 1 GB', met=checks['peak memory < 1 GB'])
    return 0


if __name__ == '__main__':
    sys.exit(main())
