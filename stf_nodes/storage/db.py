"""Engine factory for the twin's database: SQLite by default, PostgreSQL and MySQL/MariaDB too.

The caller reads ``DATABASE_URL`` (ARCHITECTURE.md §7) and passes it here; this module never
looks at the environment.

Policies:

- Bare server URLs get the project's drivers: ``postgresql://``/``postgres://`` become
  ``postgresql+psycopg://`` (psycopg 3); ``mysql://``/``mariadb://`` become
  ``mysql+pymysql://`` with ``charset=utf8mb4`` so any Unicode text round-trips. A URL naming its
  driver explicitly is left alone.
- SQLite runs in WAL mode with ``synchronous=NORMAL`` (durable at every checkpoint, survives
  process crashes; only an OS crash can lose the last transactions), foreign keys on and a busy
  timeout. Every SQLite transaction starts with ``BEGIN IMMEDIATE``: a deferred transaction that
  reads and then writes can fail at once with ``SQLITE_BUSY`` when another connection committed in
  between, whereas an immediate one waits for the write lock (up to the busy timeout). Writers
  are serialised; readers of other connections still proceed thanks to WAL. A connection that
  only reads (:func:`read_connection`: replays, reports, exports) begins deferred instead: a
  snapshot that never takes the write lock, so a long analysis of a live database does not hold
  up the recorder writing into it.
- Server connections are pinged before use, so a long-running node survives server restarts and
  idle-connection timeouts.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_DATABASE_URL = 'sqlite:///./stf_digital_twin.db'
DEFAULT_BUSY_TIMEOUT_S = 10.0
READ_ONLY = 'stf_read_only'  # execution option of read_connection

_DEFAULT_DRIVERS = {
    'postgresql': 'postgresql+psycopg',
    'postgres': 'postgresql+psycopg',
    'mysql': 'mysql+pymysql',
    'mariadb': 'mysql+pymysql',
}


def normalize_url(url: str | URL) -> URL:
    """Return ``url`` with the project's default driver and connection options filled in."""
    parsed = make_url(url)
    if parsed.drivername in _DEFAULT_DRIVERS:
        parsed = parsed.set(drivername=_DEFAULT_DRIVERS[parsed.drivername])
    if parsed.get_backend_name() in ('mysql', 'mariadb') and 'charset' not in parsed.query:
        parsed = parsed.update_query_dict({'charset': 'utf8mb4'})
    return parsed


def shown_url(url: str | URL) -> str:
    """``url`` as it may be logged or shown to the graph: its password hidden (the whole URL
    when it does not parse, as it may still hold one)."""
    try:
        return normalize_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return '***'


def make_engine(
    url: str | URL = DEFAULT_DATABASE_URL,
    *,
    busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    echo: bool = False,
) -> Engine:
    """Create an engine for ``url`` with the policies of this module's docstring applied."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == 'sqlite':
        engine = create_engine(parsed, echo=echo, connect_args={'timeout': busy_timeout_s})
        _configure_sqlite(engine, busy_timeout_ms=int(busy_timeout_s * 1000))
        return engine
    return create_engine(parsed, echo=echo, pool_pre_ping=True)


def read_connection(engine: Engine) -> Connection:
    """A connection for reading only (on SQLite its transactions take no write lock; see the
    module docstring). Writing through it is a mistake the database may refuse late."""
    return engine.connect().execution_options(**{READ_ONLY: True})


def _configure_sqlite(engine: Engine, *, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, 'connect')
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver must not open transactions itself; `_on_begin` does it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute('PRAGMA journal_mode=WAL')
            cursor.execute('PRAGMA synchronous=NORMAL')
            cursor.execute('PRAGMA foreign_keys=ON')
            cursor.execute(f'PRAGMA busy_timeout={busy_timeout_ms:d}')
        finally:
            cursor.close()

    @event.listens_for(engine, 'begin')
    def _on_begin(connection: Any) -> None:
        reading = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql('BEGIN' if reading else 'BEGIN IMMEDIATE')
