"""``stf history generate``: the command line of the history generator.

    stf history generate --days 30 --orders-per-day 50 [--seed N] [--scenario FILE]
                         [--db URL] [--start DATE] [--bag DIR] [--append | --replace]
                         [--factory NAME] [--params FILE]

Defaults: 30 days, 50 orders a day, seed 0, ``config/scenarios/default.yaml`` (cut to the
events within ``--days``; a scenario given with ``--scenario`` must fit), the database of
``DATABASE_URL`` (else ``sqlite:///./stf_digital_twin.db``), a history ending at today's 00:00
UTC, the parameters of ``config/factory.yaml`` (the live nodes' parameters). Errors (bad
scenario, unusable database, existing history, bad numbers) print one line and exit 1; nothing
is written then. A progress bar shows on a terminal only; the summary (rows per table,
rows/s) goes to stdout.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a whole number, got {text!r}') from None
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be at least 1, got {value}')
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a whole number, got {text!r}') from None
    if value < 0:
        raise argparse.ArgumentTypeError(f'must not be negative, got {value}')
    return value


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a date YYYY-MM-DD, got {text!r}') from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--days', type=_positive, default=30, help='days of history (default 30)')
    parser.add_argument(
        '--orders-per-day', type=_non_negative, default=50, help='customer orders a day (50)'
    )
    parser.add_argument('--seed', type=_non_negative, default=0, help='random seed (default 0)')
    parser.add_argument(
        '--scenario', type=Path, help='scenario YAML (default config/scenarios/default.yaml)'
    )
    parser.add_argument('--db', metavar='URL', help='database (default DATABASE_URL, else SQLite)')
    parser.add_argument(
        '--start', type=_date, help='first day, YYYY-MM-DD (default: the history ends today)'
    )
    parser.add_argument('--bag', type=Path, metavar='DIR', help='also write a rosbag2 MCAP bag')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--append', action='store_true', help='continue the history already there')
    mode.add_argument('--replace', action='store_true', help='delete the history already there')
    parser.add_argument('--factory', default='', help='factory name (namespace), default none')
    parser.add_argument('--params', type=Path, help='ROS 2 parameter file of the factory')


def _share() -> Path:
    from stf_nodes.launcher.substitutions import find_pkg_share

    return find_pkg_share('stf_digital_twin')


def run(args: argparse.Namespace, database: Any, error: type[Exception]) -> int:
    """Run the command; ``database`` is the CLI's engine context, ``error`` its error type."""
    from stf_nodes.history.generator import HistoryOptions
    from stf_nodes.history.run import HistoryError, generate_history
    from stf_nodes.history.scenario import ScenarioError, load_scenario
    from stf_nodes.history.simulation import FactorySettings, SimFactory
    from stf_nodes.runtime.names import InvalidNameError, normalize_namespace

    share = _share()
    params = args.params or share / 'config' / 'factory.yaml'
    scenario_path = args.scenario or share / 'config' / 'scenarios' / 'default.yaml'
    try:
        factory = normalize_namespace(args.factory).strip('/')
        settings = FactorySettings.from_parameter_file(params)
        scenario = load_scenario(scenario_path, SimFactory(settings, seed=0).components)
        if args.scenario is None:  # the default scenario is written for 30 days: cut it
            shortened = scenario.within(args.days)
            if len(shortened.events) < len(scenario.events):
                print(
                    f'default scenario: {len(shortened.events)} of its {len(scenario.events)} '
                    f'events fall within {args.days} days'
                )
            scenario = shortened
        scenario.check_period(args.days)
        if args.start is None:
            end = datetime.now(timezone.utc).date()
            first = end - timedelta(days=args.days)
        else:
            first = args.start
        start = datetime.combine(first, datetime.min.time(), timezone.utc)
        options = HistoryOptions(
            days=args.days,
            orders_per_day=args.orders_per_day,
            start=start,
            seed=args.seed,
            factory=factory,
        )
    except (ScenarioError, InvalidNameError, ValueError, OSError) as exc:
        raise error(str(exc)) from exc
    if args.bag is not None and args.bag.exists():
        raise error(f'{args.bag} exists; --bag writes a new directory')
    mode = 'append' if args.append else 'replace' if args.replace else 'new'
    progress, bar = _progress(args.days)
    try:
        with database as (engine, shown):
            try:
                report = generate_history(
                    engine,
                    settings=settings,
                    scenario=scenario,
                    options=options,
                    mode=mode,
                    bag=args.bag,
                    progress=progress,
                )
            except HistoryError as exc:
                raise error(f'{shown}: {exc}') from exc
    finally:
        if bar is not None:
            bar.close()
    _summary(report, scenario.name, shown, args)
    return 0


def _progress(days: int) -> tuple[Any, Any]:
    if not sys.stderr.isatty():
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=days, unit='day', desc='history', file=sys.stderr, leave=False)

    def update(day: int, rows: dict[str, int]) -> None:
        bar.update(day - bar.n)
        bar.set_postfix(rows=f'{sum(rows.values()):,}')

    return update, bar


def _summary(report: Any, scenario: str, shown: str, args: argparse.Namespace) -> None:
    assert report.start is not None and report.end is not None
    print(
        f'{shown}: {args.days} days from {report.start:%Y-%m-%d} to {report.end:%Y-%m-%d} '
        f'(scenario {scenario!r}, seed {args.seed}, {args.orders_per_day} orders/day)'
    )
    width = max(len(name) for name in report.rows) if report.rows else 0
    for name, count in sorted(report.rows.items(), key=lambda item: -item[1]):
        print(f'  {name:<{width}}  {count:>10,}')
    rate = report.total / report.seconds if report.seconds else 0.0
    print(
        f'{report.total:,} rows in {report.seconds:.1f} s ({rate:,.0f} rows/s); commands '
        f'simulated {report.stats.get("simulated", 0)}, reused {report.stats.get("reused", 0)}, '
        f'step by step {report.stats.get("exact", 0)}'
    )
    if args.bag is not None:
        print(f'bag {args.bag}: {report.bag_messages:,} messages')
