"""Engine factory and schema on every backend."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError
from sqlalchemy.orm import Session

from stf_nodes.storage import make_engine, normalize_url, read_connection
from stf_nodes.storage.models import CommandEventRow, CommandRow


@pytest.mark.parametrize(
    ('given', 'expected'),
    [
        ('sqlite:///./x.db', 'sqlite:///./x.db'),
        ('postgresql://u@h:5432/db', 'postgresql+psycopg://u@h:5432/db'),
        ('postgres://u@h/db', 'postgresql+psycopg://u@h/db'),
        ('postgresql+psycopg://u@h/db', 'postgresql+psycopg://u@h/db'),
        ('mysql://root@h:3306/db', 'mysql+pymysql://root@h:3306/db?charset=utf8mb4'),
        ('mariadb://root@h/db', 'mysql+pymysql://root@h/db?charset=utf8mb4'),
        ('mysql+pymysql://root@h/db?charset=latin1', 'mysql+pymysql://root@h/db?charset=latin1'),
    ],
)
def test_normalize_url_fills_in_project_drivers(given: str, expected: str) -> None:
    assert normalize_url(given).render_as_string(hide_password=False) == expected


def test_sqlite_runs_in_wal_mode_with_pragmas(tmp_path) -> None:
    engine = make_engine(f'sqlite:///{tmp_path / "a.db"}', busy_timeout_s=3.0)
    with engine.connect() as connection:
        pragma = {
            name: connection.exec_driver_sql(f'PRAGMA {name}').scalar()
            for name in ('journal_mode', 'synchronous', 'foreign_keys', 'busy_timeout')
        }
    engine.dispose()
    assert pragma == {
        'journal_mode': 'wal',
        'synchronous': 1,
        'foreign_keys': 1,
        'busy_timeout': 3000,
    }


def test_a_long_read_does_not_hold_up_a_writer_on_sqlite(tmp_path) -> None:
    """A replay reading a live recorder's database for seconds must not lock the recorder out:
    a read connection is a WAL snapshot; a plain one takes the write lock (BEGIN IMMEDIATE)."""
    engine = make_engine(f'sqlite:///{tmp_path / "a.db"}', busy_timeout_s=0.2)
    with engine.begin() as connection:
        connection.exec_driver_sql('CREATE TABLE t (x INTEGER)')
        connection.exec_driver_sql('INSERT INTO t VALUES (1), (2), (3)')
    query = text('SELECT x FROM t ORDER BY x')
    with read_connection(engine).execution_options(yield_per=1) as reader:
        rows = reader.execute(query)
        assert next(iter(rows)) == (1,)  # a read in progress
        with engine.begin() as writer:
            writer.exec_driver_sql('INSERT INTO t VALUES (4)')
        assert [r.x for r in rows] == [2, 3]  # its snapshot
    with engine.connect() as plain:
        plain.execute(query).all()
        with pytest.raises(OperationalError, match='locked'), engine.begin() as writer:
            writer.exec_driver_sql('INSERT INTO t VALUES (5)')
    engine.dispose()


def test_timestamps_keep_utc_and_microseconds(engine: Engine) -> None:
    created = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2)))
    with Session(engine) as session, session.begin():
        row = CommandRow(kind=1, status=0, created_at=created)
        session.add(row)
    with Session(engine) as session:
        stored = session.scalars(select(CommandRow)).one()
    assert stored.created_at == created
    assert stored.created_at.tzinfo is timezone.utc
    assert stored.created_at.microsecond == 123456


def test_naive_timestamps_are_refused(engine: Engine) -> None:
    with pytest.raises(StatementError, match='naive datetime'), Session(engine) as session:
        session.add(CommandRow(kind=1, status=0, created_at=datetime(2024, 1, 1)))
        session.flush()


def test_foreign_keys_are_enforced(engine: Engine) -> None:
    now = datetime.now(timezone.utc)
    with pytest.raises(IntegrityError), Session(engine) as session:
        session.add(CommandEventRow(command_id=424242, to_status=0, at=now))
        session.flush()


def test_four_byte_unicode_round_trips(engine: Engine) -> None:
    message = 'Ofen 🔥 überhitzt — ок'
    with Session(engine) as session, session.begin():
        session.add(
            CommandRow(kind=1, status=0, message=message, created_at=datetime.now(timezone.utc))
        )
    with engine.connect() as connection:
        assert connection.execute(text('SELECT message FROM commands')).scalar() == message
