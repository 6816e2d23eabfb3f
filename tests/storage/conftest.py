"""Database fixtures: every storage/scheduler test runs against SQLite, PostgreSQL and MariaDB.

SQLite gets a file in the test's ``tmp_path``. For each server, one scratch database
``stf_test_<random>`` is created per test session (so concurrent test runs never meet) and
dropped at the end; each test starts from freshly created tables. A server that does not answer
skips its parameter with the reason (fails under ``CI=true``). Override the server URLs with
``STF_TEST_POSTGRES_URL`` and ``STF_TEST_MARIADB_URL``. ``own_database`` gives a test a
database of its own (migration tests need an empty one, not just empty tables).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError

from stf_nodes.storage import Base, make_engine, normalize_url
from tests.conftest import unavailable

SERVERS = {
    'postgresql': os.environ.get(
        'STF_TEST_POSTGRES_URL', 'postgresql+psycopg://postgres@127.0.0.1:5432/test'
    ),
    'mariadb': os.environ.get('STF_TEST_MARIADB_URL', 'mysql+pymysql://root@127.0.0.1:3306/test'),
}
BACKENDS = ('sqlite', *SERVERS)


class ScratchDatabases:
    """Creates one scratch database per server on first use; drops them all in ``close``."""

    def __init__(self) -> None:
        self._name = f'stf_test_{uuid.uuid4().hex[:12]}'
        self._urls: dict[str, URL] = {}
        self._failures: dict[str, str] = {}

    def url(self, backend: str) -> URL:
        if backend in self._failures:
            unavailable(self._failures[backend])
        if backend not in self._urls:
            server = normalize_url(SERVERS[backend])
            try:
                with _admin(server) as connection:
                    connection.execute(text(self._create_statement(backend)))
            except OperationalError as error:
                reason = f'{backend} server at {server.render_as_string()} unreachable: {error}'
                self._failures[backend] = reason.splitlines()[0]
                unavailable(self._failures[backend])
            self._urls[backend] = server.set(database=self._name)
        return self._urls[backend]

    def close(self) -> None:
        for backend in self._urls:
            drop = f'DROP DATABASE IF EXISTS {self._name}'
            if backend == 'postgresql':
                drop += ' WITH (FORCE)'
            with _admin(normalize_url(SERVERS[backend])) as connection:
                connection.execute(text(drop))

    def _create_statement(self, backend: str) -> str:
        if backend == 'mariadb':
            return f'CREATE DATABASE {self._name} CHARACTER SET utf8mb4'
        return f'CREATE DATABASE {self._name}'


@contextmanager
def _admin(url: URL) -> Iterator[Connection]:
    """An autocommit connection (CREATE/DROP DATABASE cannot run in a transaction)."""
    engine = create_engine(url, isolation_level='AUTOCOMMIT')
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


@contextmanager
def own_database(backend: str, directory: Path) -> Iterator[URL | str]:
    """A new, empty database of ``backend`` (a file in ``directory`` for SQLite), dropped after."""
    if backend == 'sqlite':
        yield f'sqlite:///{directory / "own.db"}'
        return
    name = f'stf_own_{uuid.uuid4().hex[:12]}'
    server = normalize_url(SERVERS[backend])
    try:
        with _admin(server) as connection:
            charset = ' CHARACTER SET utf8mb4' if backend == 'mariadb' else ''
            connection.execute(text(f'CREATE DATABASE {name}{charset}'))
    except OperationalError as error:
        unavailable(f'{backend} server unreachable: {str(error).splitlines()[0]}')
    try:
        yield server.set(database=name)
    finally:
        force = ' WITH (FORCE)' if backend == 'postgresql' else ''
        with _admin(server) as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS {name}{force}'))


@pytest.fixture(scope='session')
def scratch_databases() -> Iterator[ScratchDatabases]:
    databases = ScratchDatabases()
    yield databases
    databases.close()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> URL | str:
    """A URL of an empty database of each backend."""
    if request.param == 'sqlite':
        return f'sqlite:///{tmp_path / "stf.db"}'
    databases: ScratchDatabases = request.getfixturevalue('scratch_databases')
    return databases.url(request.param)


@pytest.fixture
def engine(database_url: URL | str) -> Iterator[Engine]:
    """An engine on ``database_url`` with the schema freshly created.

    The tables come straight from ``Base.metadata`` (fast); ``test_migrations`` checks that the
    migrations build exactly the same schema.
    """
    engine = make_engine(database_url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()
