"""``stf history generate``: a generated history into a database (and optionally a bag).

Order of work: the scenario is validated and the database checked before anything is written
(a bad scenario, an unreachable database or one that already holds history change nothing);
then the generator runs day by day while a writer thread inserts each day's rows
(``BulkWriter``), all in one transaction: the database gets the whole history or none of it.
A database holding history (live or generated rows in any history table) is refused unless
``append`` (the new history continues where the old one ends) or ``replace`` (the old history is
deleted in the same transaction) is asked for. The run is recorded in ``history_runs``.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, literal, select

from stf_nodes.history.generator import HistoryGenerator, HistoryOptions
from stf_nodes.history.scenario import Scenario
from stf_nodes.history.simulation import FactorySettings
from stf_nodes.storage import Base, upgrade_schema
from stf_nodes.storage.history import HISTORY_TABLES
from stf_nodes.storage.writer import BulkWriter

SOFTWARE_VERSION = '0.1.0'


class HistoryError(ValueError):
    """The history cannot be generated into this database; the message says why."""


@dataclass
class GenerationReport:
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    start: datetime | None = None
    end: datetime | None = None
    stats: dict[str, int] = field(default_factory=dict)
    bag_messages: int = 0

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def existing_history(connection: Connection) -> bool:
    """True if any history table has a row."""
    for name in HISTORY_TABLES:
        probe = select(literal(1)).select_from(Base.metadata.tables[name]).limit(1)
        if connection.execute(probe).first() is not None:
            return True
    return False


def _history_end(connection: Connection) -> tuple[datetime | None, int]:
    """The latest time in the history and the highest command id recorded."""
    latest = None
    for name in ('motor_samples', 'command_transitions', 'sensor_edges', 'ground_truth_health'):
        table = Base.metadata.tables[name]
        value = connection.execute(select(func.max(table.c.time))).scalar()
        if isinstance(value, str):  # SQLite hands back text for an aggregate
            value = datetime.fromisoformat(value).replace(tzinfo=timezone.utc)
        elif value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        if value is not None and (latest is None or value > latest):
            latest = value
    table = Base.metadata.tables['command_transitions']
    highest = connection.execute(select(func.max(table.c.command_id))).scalar() or 0
    return latest, int(highest)


def generate_history(
    engine: Engine,
    *,
    settings: FactorySettings,
    scenario: Scenario,
    options: HistoryOptions,
    mode: str = 'new',
    bag: Path | None = None,
    progress: Callable[[int, dict[str, int]], None] | None = None,
) -> GenerationReport:
    """Generate the history into ``engine``'s database (``mode``: new, append or replace)."""
    if mode not in ('new', 'append', 'replace'):
        raise ValueError(f'unknown mode {mode!r}')
    scenario.check_period(options.days)
    upgrade_schema(engine)
    report = GenerationReport()
    started = time.perf_counter()
    with engine.connect() as connection, connection.begin():
        if existing_history(connection):
            if mode == 'new':
                raise HistoryError(
                    'the database already holds history; pass --append to continue it or '
                    '--replace to delete it first (nothing was written)'
                )
            if mode == 'append':
                options = _appended(connection, options)
            else:
                for name in HISTORY_TABLES:
                    connection.execute(Base.metadata.tables[name].delete())
        report.start = options.start
        report.end = options.start + timedelta(days=options.days)
        generator = HistoryGenerator(settings, scenario, options)
        _pipeline(connection, generator, report, progress, bag)
        report.stats = dict(generator.stats)
        _record_run(connection, options, scenario, report)
    report.seconds = time.perf_counter() - started
    return report


def _appended(connection: Connection, options: HistoryOptions) -> HistoryOptions:
    latest, highest = _history_end(connection)
    first_id = highest + 1
    if latest is None:
        return replace(options, first_command_id=first_id)
    next_day = datetime.combine(
        latest.date() + timedelta(days=1), datetime.min.time(), timezone.utc
    )
    if options.start < latest:
        raise HistoryError(
            f'--start {options.start:%Y-%m-%d} overlaps the history already there (it ends '
            f'{latest:%Y-%m-%d %H:%M:%S} UTC); start at {next_day:%Y-%m-%d} or later'
        )
    return replace(options, first_command_id=first_id)


def _pipeline(
    connection: Connection,
    generator: HistoryGenerator,
    report: GenerationReport,
    progress: Callable[[int, dict[str, int]], None] | None,
    bag: Path | None,
) -> None:
    """Generate in this thread, write in another (the database releases the GIL while it
    works, so the two overlap on two cores)."""
    writer = BulkWriter.for_connection(connection)
    if connection.dialect.name == 'sqlite':
        # A bulk load updates three B-trees per row: a page cache of 256 MiB instead of 2 MiB
        # keeps them in memory (this connection only; it is freed with the engine).
        connection.exec_driver_sql('PRAGMA cache_size=-262144')
    batches: queue.Queue[dict[str, dict[str, Any]] | None] = queue.Queue(maxsize=2)
    failure: list[BaseException] = []

    def write() -> None:
        try:
            while (batch := batches.get()) is not None:
                for name, columns in batch.items():
                    written = writer.insert(connection, Base.metadata.tables[name], columns)
                    report.rows[name] = report.rows.get(name, 0) + written
        except BaseException as exc:  # handed to the generating thread
            failure.append(exc)
            while batches.get() is not None:  # unblock the producer
                pass

    thread = threading.Thread(target=write, name='history-writer', daemon=True)
    thread.start()
    bag_writer = None
    try:
        if bag is not None:
            from stf_nodes.history.bag import HistoryBag

            bag_writer = HistoryBag(
                bag, factory=generator.options.factory, slots=tuple(generator.db_rack)
            )
        for day, batch in generator.days():
            if failure:
                break
            if bag_writer is not None:
                bag_writer.add(batch)
            batches.put(batch)
            if progress is not None:
                progress(day, report.rows)
    finally:
        batches.put(None)
        thread.join()
        if bag_writer is not None:
            report.bag_messages = bag_writer.close()
    if failure:
        raise failure[0]


def _record_run(
    connection: Connection, options: HistoryOptions, scenario: Scenario, report: GenerationReport
) -> None:
    assert report.start is not None and report.end is not None
    table = Base.metadata.tables['history_runs']
    connection.execute(
        table.insert().values(
            created_at=datetime.now(timezone.utc),
            factory=options.factory,
            scenario=scenario.name,
            seed=options.seed,
            days=options.days,
            orders_per_day=options.orders_per_day,
            history_start=report.start,
            history_end=report.end,
            row_counts=json.dumps(report.rows, sort_keys=True),
            software_version=SOFTWARE_VERSION,
        )
    )
