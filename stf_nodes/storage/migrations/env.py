"""Alembic environment of the twin's database (see ``stf_nodes.storage.schema``).

Run by ``upgrade_schema`` with the connection it has locked (``config.attributes``), or by the
``alembic`` command line of a developer (``alembic.ini`` beside this file), which connects to
``DATABASE_URL`` with the project's engine policies.
"""

from __future__ import annotations

import os
from typing import Any

from alembic import context

from stf_nodes.storage import Base, make_engine
from stf_nodes.storage.db import DEFAULT_DATABASE_URL


def _configure(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == 'sqlite',
        # SQLite does transactional DDL well; alembic only assumes it for PostgreSQL.
        transactional_ddl=connection.dialect.name != 'mysql',
        compare_type=True,
    )


def run() -> None:
    connection = context.config.attributes.get('connection')
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(os.environ.get('DATABASE_URL', DEFAULT_DATABASE_URL))
    try:
        with engine.connect() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


run()
