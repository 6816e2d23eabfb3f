"""Schema migrations (Alembic) for every table the twin owns: ``upgrade_schema(engine)``.

The revisions live in ``stf_nodes/storage/migrations/versions`` inside the package, so an
installed twin finds them. Nodes call :func:`upgrade_schema` at start and ``stf db upgrade
[--db URL]`` calls it from the command line. Policies:

- **Baseline.** Revision ``0001_scheduler_baseline`` is exactly the schema ``create_all`` wrote
  before migrations existed (commands, command_events, inventory, inventory_events). A database
  with those tables and no ``alembic_version`` table is stamped with it, then upgraded: no row
  is touched. A database with only some of them is refused (it is not ours, or damaged).
- **Newer than the code.** A database whose revision this code does not know was upgraded by a
  newer twin: :class:`SchemaTooNewError` names both revisions; nothing is changed.
- **Concurrent upgrades** (scheduler and recorder starting at once) are serialised by a lock
  held around the whole check-stamp-upgrade: SQLite's write lock (``BEGIN IMMEDIATE``, up to
  the busy timeout), a PostgreSQL transaction-level advisory lock, a MySQL/MariaDB named lock
  (``GET_LOCK``). The second process then finds the database at head and does nothing.
  PostgreSQL and SQLite run the whole upgrade in one transaction (all or nothing); MySQL commits
  every DDL statement itself, so an interrupted upgrade there resumes at the last revision
  recorded.
- **Adding a revision.** Change the models, then write ``versions/NNNN_<what>.py`` with
  ``down_revision`` set to the current head (``alembic.ini`` beside the revisions has the
  command for ``alembic revision --autogenerate``). ``tests/storage/test_migrations.py``
  checks that a database upgraded to head matches ``Base.metadata`` on every backend.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

MIGRATIONS_DIR = Path(__file__).with_name('migrations')
BASELINE_REVISION = '0001_scheduler_baseline'
BASELINE_TABLES = frozenset({'commands', 'command_events', 'inventory', 'inventory_events'})
LOCK_NAME = 'stf_digital_twin.schema_migrations'
LOCK_TIMEOUT_S = 60


class SchemaError(ValueError):
    """The database schema cannot be brought up to date; the message says why (a node exits
    with it at start, like with a bad parameter)."""


class SchemaTooNewError(SchemaError):
    """The database was migrated by a newer version of the twin."""


@dataclass(frozen=True)
class UpgradeResult:
    """Revisions before and after an upgrade (``before`` None: an empty database)."""

    before: str | None
    after: str
    stamped_baseline: bool = False

    @property
    def changed(self) -> bool:
        return self.before != self.after


def _config() -> Config:
    config = Config()
    config.set_main_option('script_location', str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest revision this code knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's revision; None for a database without migration history."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_schema(engine: Engine) -> UpgradeResult:
    """Bring the database to the newest revision (see the module docstring); idempotent.

    Raises :class:`SchemaTooNewError` for a database newer than the code, :class:`SchemaError`
    for one that is neither empty, nor ours, nor unversioned-with-the-baseline.
    """
    config = _config()
    script = ScriptDirectory.from_config(config)
    with engine.connect() as connection, _locked(connection):
        before = MigrationContext.configure(connection).get_current_revision()
        stamped = False
        if before is None:
            stamped = _stamp_unversioned(connection, config)
        elif before not in {rev.revision for rev in script.walk_revisions()}:
            raise SchemaTooNewError(
                f'database schema is at revision {before!r}, which this version of '
                f'stf_digital_twin does not know (it knows up to {script.get_current_head()!r}): '
                'the database was upgraded by a newer version; upgrade the software'
            )
        config.attributes['connection'] = connection
        command.upgrade(config, 'head')
        after = MigrationContext.configure(connection).get_current_revision()
    assert after is not None
    return UpgradeResult(
        before=BASELINE_REVISION if stamped else before, after=after, stamped_baseline=stamped
    )


def _stamp_unversioned(connection: Connection, config: Config) -> bool:
    """Stamp a pre-migration database with the baseline; True if it was one."""
    present = BASELINE_TABLES & set(inspect(connection).get_table_names())
    if not present:
        return False
    if present != BASELINE_TABLES:
        raise SchemaError(
            f'database has the tables {sorted(present)} but not '
            f'{sorted(BASELINE_TABLES - present)} and no migration history: it was not created by '
            'stf_digital_twin; use another database'
        )
    config.attributes['connection'] = connection
    command.stamp(config, BASELINE_REVISION)
    return True


@contextmanager
def _locked(connection: Connection) -> Iterator[None]:
    """Hold the migration lock of the connection's database; commit at the end."""
    backend = connection.dialect.name
    if backend == 'mysql':
        name = f'{LOCK_NAME}.{connection.engine.url.database}'[:64]
        got = connection.execute(
            text('SELECT GET_LOCK(:name, :timeout)'), {'name': name, 'timeout': LOCK_TIMEOUT_S}
        ).scalar()
        connection.commit()
        if got != 1:
            raise SchemaError(f'could not get the migration lock {name!r} in {LOCK_TIMEOUT_S} s')
        try:
            with connection.begin():
                yield
        finally:
            connection.execute(text('SELECT RELEASE_LOCK(:name)'), {'name': name})
            connection.commit()
        return
    with connection.begin():  # SQLite: BEGIN IMMEDIATE (see db.py) is the lock
        if backend == 'postgresql':
            key = zlib.crc32(LOCK_NAME.encode())
            connection.execute(text('SELECT pg_advisory_xact_lock(:key)'), {'key': key})
        yield
