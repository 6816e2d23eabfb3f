"""`stf maintenance evaluate|forecast` and `stf report`: the maintenance estimator offline.

`evaluate` replays the stored telemetry through the node's estimator and scores it against the
ground truth (`stf_nodes.maintenance.replay`); `--json` prints one object per component and
degradation episode (the contract of issue 10). Without ground truth it says so on stderr and
prints the forecasts instead. `forecast` prints the estimate at `--at` (default: the end of the
history). `report` writes PNG charts and an index.html (`stf_nodes.maintenance.report`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import datetime, timezone
from typing import Any

from stf_nodes.cli.common import CliError, verb

DB_HELP = 'SQLAlchemy URL (default: DATABASE_URL, else SQLite ./stf_digital_twin.db)'


def add_parser(verbs: Any, group: Any) -> None:
    maintenance = group(verbs, 'maintenance', 'health forecasts from the stored telemetry')
    evaluate = verb(
        maintenance,
        'evaluate',
        'replay the telemetry through the estimator and score it against the ground truth',
        cmd_evaluate,
    )
    forecast = verb(
        maintenance,
        'forecast',
        'the estimate of every motor at a moment of the history',
        cmd_forecast,
    )
    forecast.add_argument('--at', metavar='TIME', help='ISO 8601 moment (default: the end)')
    for parser in (evaluate, forecast):
        parser.add_argument('--db', metavar='URL', help=DB_HELP)
        parser.add_argument('--factory', default='', help='factory (namespace), default none')
        parser.add_argument('--json', action='store_true', help='one JSON object per line')
    report = verb(verbs, 'report', 'charts and an index.html of the stored history', cmd_report)
    report.add_argument('--db', metavar='URL', help=DB_HELP)
    report.add_argument('--factory', default='', help='factory (namespace), default none')
    report.add_argument('--out', required=True, metavar='DIR', help='directory to write into')


def _replay(engine: Any, args: argparse.Namespace, until: datetime | None = None) -> Any:
    from stf_nodes.maintenance.replay import ReplayError, replay

    try:
        return replay(engine, factory=args.factory, until=until)
    except ReplayError as exc:
        raise CliError(str(exc)) from exc


def cmd_evaluate(args: argparse.Namespace) -> int:
    from stf_nodes.cli.main import _database, _database_url
    from stf_nodes.maintenance.replay import evaluate, has_ground_truth

    with _database(_database_url(args.db)) as (engine, shown):
        result = _replay(engine, args)
        if not has_ground_truth(engine, args.factory):
            print(
                f'{shown}: no ground truth (a recorded history, not a generated one): nothing '
                'to score; the forecasts at the end of the history follow',
                file=sys.stderr,
            )
            _print_forecasts(result, result.end_s, args.json)
            return 0
        episodes = evaluate(engine, result, args.factory)
    if args.json:
        for episode in episodes:
            print(json.dumps(episode.to_json()))
    else:
        print(format_table(episodes))
    return 0


def cmd_forecast(args: argparse.Namespace) -> int:
    from stf_nodes.cli.main import _database, _database_url

    until = _parse_time(args.at) if args.at else None
    with _database(_database_url(args.db)) as (engine, _):
        result = _replay(engine, args, until)
    at = until.timestamp() if until else result.end_s
    if at < result.start_s:
        raise CliError(f'--at {args.at} is before the history begins')
    _print_forecasts(result, at, args.json)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    from stf_nodes.cli.main import _database, _database_url
    from stf_nodes.maintenance.report import hourly_currents, write_report

    with _database(_database_url(args.db)) as (engine, _), ThreadPoolExecutor(1) as pool:
        # The database aggregates the currents (no GIL held) while the replay runs in Python.
        currents = pool.submit(hourly_currents, engine, args.factory)
        result = _replay(engine, args)
        index = write_report(
            engine, result, Path(args.out), factory=args.factory, currents=currents.result()
        )
    print(f'wrote {index}')
    return 0


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace('Z', '+00:00'))
    except ValueError as exc:
        raise CliError(f'--at {text!r} is not an ISO 8601 time') from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _print_forecasts(result: Any, at: float, as_json: bool) -> None:
    from stf_nodes.maintenance.replay import iso

    forecasts = result.estimator.forecasts(at)
    for f in forecasts:
        row = {
            'component_id': f.component_id,
            'time': iso(f.time_s),
            'health': round(f.health, 4),
            'remaining_useful_life_h': _finite(f.rul_h),
            'rul_lower_h': _finite(f.rul_lower_h),
            'rul_upper_h': _finite(f.rul_upper_h),
            'confidence': round(f.confidence, 3),
            'method': f.method,
            'severity': f.level.name,
            'recommendation': f.recommendation,
        }
        if as_json:
            print(json.dumps(row))
        else:
            rul = '-' if row['remaining_useful_life_h'] is None else f'{f.rul_h:.0f} h'
            print(
                f'{f.component_id:<12} health {f.health:.2f}  RUL {rul:>8}  '
                f'{f.level.name:<8} {f.recommendation}'
            )


def _finite(value: float) -> float | None:
    return round(value, 2) if math.isfinite(value) else None


def format_table(episodes: list[Any]) -> str:
    """The evaluation as a text table, with the issue's targets checked at the bottom."""
    from stf_nodes.maintenance.replay import iso

    def when(value: float | None) -> str:
        return (iso(value) or '-')[:16]

    lines = [
        f'{"component":<16} {"fault":<15} {"failure":<16} {"1st warning":<16} '
        f'{"1st critical":<16} {"precursor h":>11} {"lead h":>7} {"RUL MAPE":>8} {"false":>5} '
        f'{"detected":<16}'
    ]
    for e in episodes:
        lead = '-' if e.lead_time_h is None else f'{e.lead_time_h:.1f}'
        ape = '-' if e.rul_median_ape is None else f'{e.rul_median_ape:.0%}'
        precursor = '-' if e.precursor_h is None else f'{e.precursor_h:.1f}'
        lines.append(
            f'{e.component_id:<16} {(e.fault or "-"):<15} {when(e.failure_time):<16} '
            f'{when(e.first_warning_time):<16} {when(e.first_critical_time):<16} '
            f'{precursor:>11} {lead:>7} '
            f'{ape:>8} {"yes" if e.false_critical else "no":>5} {when(e.detected_at):<16}'
        )
    lines += [f'target {name}: {verdict}' for name, verdict in check_targets(episodes)]
    return '\n'.join(lines)


def check_targets(episodes: list[Any]) -> list[tuple[str, str]]:
    """The issue's quality targets as (name, 'met' or 'MISSED: ...')."""
    failures = [e for e in episodes if e.failure_time is not None]
    late = [
        e.component_id
        for e in failures
        if (e.precursor_h or 0.0) >= 48.0 and (e.lead_time_h or 0.0) < 24.0
    ]
    rul = [e.component_id for e in failures if e.rul_median_ape is None or e.rul_median_ape > 0.2]
    false = [e.component_id for e in episodes if e.false_critical]
    sensors = [e for e in episodes if e.fault == 'GHOST_READINGS']
    slow = [
        e.component_id
        for e in sensors
        if e.detected_at is None or e.detected_at - (e.fault_onset_time or 0.0) > 3600.0
    ]

    def verdict(missed: list[str]) -> str:
        return 'met' if not missed else 'MISSED: ' + ', '.join(missed)

    return [
        ('warning >= 24 h before a failure with a 48 h precursor', verdict(late)),
        ('RUL median APE <= 20 %', verdict(rul)),
        ('no false CRITICAL / sensor alert', verdict(false)),
        ('ghost readings flagged within 1 h', verdict(slow)),
    ]
