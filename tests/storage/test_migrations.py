"""Schema migrations on SQLite, PostgreSQL and MariaDB: empty databases, databases written by
main before migrations existed (frozen DDL and rows in ``data/``), concurrent upgrades, a
database newer than the code, and `stf db upgrade`."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, MetaData, select, text

from stf_nodes.scheduler import CommandQueue
from stf_nodes.storage import (
    Base,
    SchemaError,
    SchemaTooNewError,
    current_revision,
    head_revision,
    make_engine,
    upgrade_schema,
)
from stf_nodes.storage.schema import BASELINE_REVISION, BASELINE_TABLES
from tests.conftest import stf

from .conftest import BACKENDS, own_database

DATA = Path(__file__).with_name('data')
MAIN_SCHEMA = {backend: DATA / f'main_b46987e_{backend}.sql' for backend in BACKENDS}
MAIN_ROWS = DATA / 'main_b46987e_rows.sql'


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def empty_engine(backend: str, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a brand-new database of each backend."""
    with own_database(backend, tmp_path) as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _run_sql_file(engine: Engine, path: Path) -> None:
    body = '\n'.join(line for line in path.read_text().splitlines() if not line.startswith('--'))
    with engine.begin() as connection:
        for statement in body.split(';\n'):
            if statement.strip():
                connection.exec_driver_sql(statement)


def _all_rows(engine: Engine, tables: frozenset[str]) -> dict[str, list[dict[str, Any]]]:
    reflected = MetaData()
    reflected.reflect(engine, only=sorted(tables))
    with engine.connect() as connection:
        return {
            name: [
                dict(row._mapping)
                for row in connection.execute(
                    select(table).order_by(*table.primary_key.columns)
                ).all()
            ]
            for name, table in reflected.tables.items()
        }


def _as_before(
    rows: dict[str, list[dict[str, Any]]], before: dict[str, list[dict[str, Any]]]
) -> dict[str, list[dict[str, Any]]]:
    """``rows`` with only the columns ``before`` had (later revisions add columns)."""
    return {
        name: [{column: row[column] for column in before[name][0]} for row in table_rows]
        if before[name]
        else table_rows
        for name, table_rows in rows.items()
    }


def _schema_differences(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={'compare_type': True})
        return compare_metadata(context, Base.metadata)


def test_empty_database_is_upgraded_to_exactly_the_models(empty_engine: Engine) -> None:
    result = upgrade_schema(empty_engine)
    assert (result.before, result.after, result.stamped_baseline) == (None, head_revision(), False)
    assert _schema_differences(empty_engine) == []
    again = upgrade_schema(empty_engine)
    assert not again.changed and again.after == head_revision()


def test_database_written_by_main_is_upgraded_without_losing_a_row(
    backend: str, empty_engine: Engine
) -> None:
    _run_sql_file(empty_engine, MAIN_SCHEMA[backend])
    _run_sql_file(empty_engine, MAIN_ROWS)
    before = _all_rows(empty_engine, BASELINE_TABLES)
    assert sum(len(rows) for rows in before.values()) == 22
    assert current_revision(empty_engine) is None

    result = upgrade_schema(empty_engine)

    assert result.stamped_baseline and result.before == BASELINE_REVISION
    assert result.after == head_revision()
    assert _as_before(_all_rows(empty_engine, BASELINE_TABLES), before) == before
    assert _schema_differences(empty_engine) == []
    commands = _all_rows(empty_engine, frozenset({'commands'}))['commands']
    assert all(len(row['uid']) == 16 for row in commands)  # task keys of old commands unique
    # The scheduler carries on where it stopped: old commands listed, ids continue.
    queue = CommandQueue(engine=empty_engine)
    assert [record.id for record in queue.list('', 0)] == [3, 2, 1]
    assert queue.submit_store(flavor='CHOCO', slot='C2', priority=0).id == 4


def test_concurrent_upgrades_from_several_processes(empty_engine: Engine, processes) -> None:
    url = _url(empty_engine)
    started = [
        processes.start(sys.executable, '-m', 'stf_nodes.cli', 'db', 'upgrade', '--db', url)
        for _ in range(3)
    ]
    outputs = [process.communicate(timeout=120)[0] for process in started]
    assert [process.returncode for process in started] == [0, 0, 0], outputs
    assert sum('upgraded from empty' in output for output in outputs) == 1, outputs
    assert current_revision(empty_engine) == head_revision()
    assert _schema_differences(empty_engine) == []


def test_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    url = f'sqlite:///{tmp_path / "new.db"}'
    engine = make_engine(url)
    upgrade_schema(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099_from_the_future'"))
    with pytest.raises(SchemaTooNewError, match=r'0099_from_the_future.*upgrade the software'):
        upgrade_schema(engine)
    assert current_revision(engine) == '0099_from_the_future'
    engine.dispose()
    result = stf('db', 'upgrade', '--db', url, check=False)
    assert result.returncode == 1
    assert result.stderr.count('\n') == 1 and 'newer version' in result.stderr


def test_foreign_database_with_some_baseline_tables_is_refused(tmp_path: Path) -> None:
    engine = make_engine(f'sqlite:///{tmp_path / "foreign.db"}')
    with engine.begin() as connection:
        connection.execute(text('CREATE TABLE commands (id INTEGER PRIMARY KEY, what TEXT)'))
    with pytest.raises(SchemaError, match='not created by stf_digital_twin'):
        upgrade_schema(engine)
    assert current_revision(engine) is None
    engine.dispose()


def test_stf_db_upgrade_and_current(tmp_path: Path) -> None:
    url = f'sqlite:///{tmp_path / "cli.db"}'
    assert 'upgraded from empty' in stf('db', 'upgrade', '--db', url).stdout
    assert f'{head_revision()} (newest)' in stf('db', 'current', '--db', url).stdout


@pytest.mark.parametrize(
    ('url', 'reason'),
    [
        ('postgresql://postgres@127.0.0.1:1/none', 'cannot use database'),
        ('nosuchdb://x', 'invalid database URL'),
    ],
)
def test_stf_db_upgrade_reports_an_unusable_database_in_one_line(url: str, reason: str) -> None:
    result = stf('db', 'upgrade', '--db', url, check=False)
    assert result.returncode == 1
    assert result.stderr.count('\n') == 1 and reason in result.stderr


def test_forecasts_written_before_the_band_keep_their_values(empty_engine: Engine) -> None:
    """0004 adds the HealthForecast band, confidence, method and severity to ``forecasts``:
    a row of 0003 keeps its values and reads NULL / '' / 255 (none) for the new fields."""
    from alembic import command

    from stf_nodes.storage.schema import _config

    config = _config()
    with empty_engine.begin() as connection:
        config.attributes['connection'] = connection
        command.upgrade(config, '0003_resumable_scheduler')
        connection.execute(
            text(
                'INSERT INTO forecasts (time, factory, component_id, health, degradation_per_h, '
                "remaining_useful_life_h, recommendation) VALUES ('2026-01-01 00:00:00', '', "
                "'CONV_M1', 0.9, 0.01, 40.0, 'watch CONV_M1')"
            )
        )
    assert upgrade_schema(empty_engine).after == head_revision() == '0005_order_request_keys'
    (row,) = _all_rows(empty_engine, frozenset({'forecasts'}))['forecasts']
    assert (row['component_id'], row['remaining_useful_life_h']) == ('CONV_M1', 40.0)
    new = ('rul_lower_h', 'rul_upper_h', 'confidence', 'method', 'severity')
    assert tuple(row[name] for name in new) == (None, None, None, '', 255)
    assert _schema_differences(empty_engine) == []
