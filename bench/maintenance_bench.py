"""Maintenance benchmark: the evaluation of every scenario, `evaluate` and `report` times on the
default 30-day database, and the live node's CPU with the factory at 10 Hz.

1. Scenarios: `config/scenarios/default.yaml` over 30 days and `refail`, `hbw_axis`, `vgr_arm`
   over 12 days (50 orders a day, seed 0) are generated into `--workdir` (reused when there),
   and `stf maintenance evaluate` prints each one's table with the issue's targets.
2. Times on the default database: `stf maintenance evaluate --json` and `stf report` (whole
   commands, wall time; targets 30 s and 15 s); baseline in the same run: reading the same
   telemetry rows without the estimator (`replay`'s two queries, iterated).
3. CPU (utime+stime from /proc, % of one core) over `--cpu-s` seconds of the three station
   nodes at 10 Hz with the maintenance node (target < 5 %); baseline: the conveyor node of the
   same run.

Run: `python bench/maintenance_bench.py [--workdir DIR] [--cpu-s 30]`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench_report import report

from stf_nodes.maintenance.replay import _edge_stream, _motor_stream
from stf_nodes.runtime.router import spawn_router
from stf_nodes.storage import make_engine

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = {'default': 30, 'refail': 12, 'hbw_axis': 12, 'vgr_arm': 12}
STF = [sys.executable, '-m', 'stf_nodes.cli']
TICK = os.sysconf('SC_CLK_TCK')


def generate(workdir: Path, name: str, days: int) -> str:
    path = workdir / f'{name}.db'
    url = f'sqlite:///{path}'
    if not path.exists():
        scenario = REPO / 'config' / 'scenarios' / f'{name}.yaml'
        subprocess.run(
            [*STF, 'history', 'generate', '--days', str(days), '--scenario', str(scenario),
             '--db', url, '--start', '2026-01-01'],
            check=True, capture_output=True,
        )  # fmt: skip
    return url


def timed(argv: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(argv, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, result.stdout


def read_only(url: str) -> float:
    """Seconds to read the rows a replay reads, without the estimator."""
    engine = make_engine(url)
    start = time.perf_counter()
    edges = sum(1 for _ in _edge_stream(engine, '', ['CONV_L1_ENTRY'], None))
    samples = sum(1 for _ in _motor_stream(engine, '', None))
    engine.dispose()
    assert samples and edges >= 0
    return time.perf_counter() - start


def cpu_seconds(pid: int) -> float:
    fields = Path(f'/proc/{pid}/stat').read_text().rpartition(')')[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def node_cpu(seconds: float) -> tuple[float, float]:
    """(maintenance %, conveyor %) of one core with the three stations at 10 Hz."""
    endpoint, router = spawn_router()
    env = {**os.environ, 'ZENOH_ROUTER': endpoint}
    params = ('--params-file', str(REPO / 'config' / 'factory.yaml'))
    commands = {
        name: [sys.executable, '-m', f'stf_nodes.{name}_node', '--ros-args', *params]
        for name in ('hbw', 'vgr', 'conveyor', 'maintenance')
    }
    processes = {
        name: subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        for name, argv in commands.items()
    }
    try:
        time.sleep(8.0)  # start-up (imports, discovery) is not the steady state
        before = {name: cpu_seconds(p.pid) for name, p in processes.items()}
        start = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - start
        after = {name: cpu_seconds(p.pid) for name, p in processes.items()}
        dead = [name for name, p in processes.items() if p.poll() is not None]
        if dead:  # an exited node measures 0 %: no number rather than a false one
            raise RuntimeError(f'nodes exited during the measurement: {dead}')
    finally:
        for process in [*processes.values(), router]:
            process.send_signal(signal.SIGINT)
        for process in [*processes.values(), router]:
            process.wait(10)
    return tuple(  # type: ignore[return-value]
        100.0 * (after[name] - before[name]) / elapsed for name in ('maintenance', 'conveyor')
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--workdir', type=Path, default=None)
    parser.add_argument('--cpu-s', type=float, default=30.0)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix='stf-maintenance-bench-'))
    workdir.mkdir(parents=True, exist_ok=True)
    urls = {name: generate(workdir, name, days) for name, days in SCENARIOS.items()}
    for name, url in urls.items():
        _, table = timed([*STF, 'maintenance', 'evaluate', '--db', url])
        print(f'== scenario {name} ({SCENARIOS[name]} days) ==\n{table}')
    default = urls['default']
    baseline = read_only(default)
    evaluate_s, episodes = timed([*STF, 'maintenance', 'evaluate', '--db', default, '--json'])
    report_s, _ = timed([*STF, 'report', '--db', default, '--out', str(workdir / 'report')])
    print(
        f'default 30 days: evaluate {evaluate_s:.1f} s (target <= 30 s), report '
        f'{report_s:.1f} s (target <= 15 s); baseline, reading the rows alone: '
        f'{baseline:.1f} s'
    )
    maintenance, conveyor = node_cpu(args.cpu_s)
    print(
        f'live, stations at 10 Hz for {args.cpu_s:.0f} s: maintenance node {maintenance:.1f} % '
        f'of one core (target < 5 %); baseline, conveyor node: {conveyor:.1f} %'
    )
    print(f'{datetime.now().isoformat(timespec="seconds")} workdir {workdir}')
    report('evaluate, default 30 days', evaluate_s, 's', target='<= 30 s', met=evaluate_s <= 30,
           baseline=baseline, baseline_name='reading the rows alone')  # fmt: skip
    report('stf report, default 30 days', report_s, 's', target='<= 15 s', met=report_s <= 15,
           baseline=baseline, baseline_name='reading the rows alone')  # fmt: skip
    report('live node, stations at 10 Hz', maintenance, '% core', target='< 5 %',
           met=maintenance < 5, baseline=conveyor, baseline_name='conveyor node')  # fmt: skip
    for line in episodes.splitlines():
        episode = json.loads(line)
        if episode.get('failure_time') is None:
            continue
        name = f'default: {episode["component_id"]} failing {episode["failure_time"][:16]}'
        lead = episode['lead_time_h']
        if (episode['precursor_h'] or 0.0) >= 48:  # the target's scope
            report(f'{name}: first WARNING before failure', lead if lead is not None else math.nan,
                   'h', target='>= 24 h', met=lead is not None and lead >= 24)  # fmt: skip
        error = episode['rul_median_ape']
        report(f'{name}: RUL median abs. % error', 100 * error if error is not None else math.nan,
               '%', target='<= 20 %', met=error is not None and error <= 0.2)  # fmt: skip
    return 0


if __name__ == '__main__':
    sys.exit(main())
