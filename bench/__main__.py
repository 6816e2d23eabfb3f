"""`python -m bench [--quick] [--json] [--only NAME ...]`: every benchmark, one table.

Runs each benchmark script of this folder as its own process (each starts the router,
nodes, brokers and databases it needs, as a user would), collects the ``BENCH`` lines they
print (see ``bench_report``) and prints one table: metric, value, target, the baseline
measured in the same run, value/baseline and whether the target is met. ``--quick`` runs
shorter versions of the same measurements (under about two minutes in all; numbers are
noisier); ``--json`` prints the rows as one JSON array instead. A benchmark that fails or
whose prerequisites are missing (``.venv-dds`` for the DDS bridge) is listed as such; the
exit status is 1 when a target is missed or a benchmark failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_report import PREFIX  # noqa: E402


@dataclass(frozen=True)
class Bench:
    name: str
    script: str
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()
    needs: str = ''  # a path (relative to the repository) that must exist, else skipped


BENCHES = (
    Bench(
        'graph',
        'graph_bench.py',
        quick=('--pings', '1000', '--calls', '500', '--messages', '20000'),
    ),
    Bench('scheduler', 'scheduler_bench.py', quick=('--calls', '300', '--seconds', '3')),
    Bench('recorder', 'recorder_bench.py', quick=('--messages', '20000', '--factory-s', '5')),
    Bench('bag', 'bag_bench.py', quick=('--flood-seconds', '2', '--factory-seconds', '4')),
    Bench(
        'foxglove',
        'foxglove_bench.py',
        quick=('--pings', '300', '--messages', '10000', '--cpu-seconds', '5'),
    ),
    Bench('mqtt', 'mqtt_bench.py', quick=('--seconds', '2')),
    Bench('standby', 'standby_bench.py', quick=('--rounds', '1')),
    Bench('history', 'history_bench.py', quick=('--days', '3')),
)


def run(bench: Bench, quick: bool, timeout_s: float) -> tuple[list[dict[str, Any]], str]:
    """The rows a benchmark reported, and '' or why it did not finish."""
    if bench.needs and not (HERE.parent / bench.needs).exists():
        return [], f'skipped: {bench.needs} is missing'
    command = [sys.executable, str(HERE / bench.script), *(bench.quick if quick else bench.full)]
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, cwd=HERE.parent
        )
    except subprocess.TimeoutExpired:
        return [], f'timed out after {timeout_s:g} s'
    rows = [
        {'bench': bench.name, **json.loads(line[len(PREFIX) :])}
        for line in done.stdout.splitlines()
        if line.startswith(PREFIX)
    ]
    sys.stderr.write(f'{bench.name}: {len(rows)} results in {time.monotonic() - started:.0f} s\n')
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ['no output'])[-1]
        return rows, f'exit status {done.returncode}: {last}'
    return rows, '' if rows else 'reported nothing'


def ratio(row: dict[str, Any]) -> float | None:
    if row['baseline'] in (None, 0) or row['value'] is None:
        return None
    return float(row['value']) / float(row['baseline'])


def number(value: float) -> str:
    return f'{value:,.0f}' if abs(value) >= 1000 else f'{value:.3g}'


def table(rows: list[dict[str, Any]], failures: dict[str, str]) -> str:
    header = ('metric', 'value', 'target', 'baseline (same run)', 'ratio', 'pass')
    lines = [header]
    for row in rows:
        value = 'n/a' if row['value'] is None else f'{number(row["value"])} {row["unit"]}'
        baseline = (
            '' if row['baseline'] is None else f'{number(row["baseline"])} {row["baseline_name"]}'
        )
        factor = ratio(row)
        verdict = {True: 'yes', False: 'NO', None: ''}[row['met']]
        lines.append((f'{row["bench"]}: {row["metric"]}', value, row['target'], baseline,
                      '' if factor is None else f'{factor:.2f}x', verdict))  # fmt: skip
    lines += [(f'{name}: (benchmark)', 'n/a', '', '', '', why) for name, why in failures.items()]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return '\n'.join(
        '  '.join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m bench', description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='shorter runs (about 2 minutes)')
    parser.add_argument('--json', action='store_true', help='print the rows as JSON')
    parser.add_argument('--only', nargs='+', metavar='NAME', choices=[b.name for b in BENCHES])
    parser.add_argument('--timeout', type=float, default=900.0, help='per benchmark, s')
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    failures: dict[str, str] = {}
    for bench in BENCHES:
        if args.only and bench.name not in args.only:
            continue
        sys.stderr.write(f'running {bench.name} ...\n')
        reported, failure = run(bench, args.quick, args.timeout)
        rows += reported
        if failure:
            failures[bench.name] = failure
    if args.json:
        print(json.dumps({'rows': rows, 'failures': failures}, indent=1))
    else:
        print(table(rows, failures))
    missed = any(row['met'] is False for row in rows)
    return 1 if missed or any(not why.startswith('skipped') for why in failures.values()) else 0


if __name__ == '__main__':
    sys.exit(main())
