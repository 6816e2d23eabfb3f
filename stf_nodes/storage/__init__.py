"""Durable storage: the SQL engine factory, the shared declarative schema and its migrations.

Everything the twin persists lives in one database described by one ``Base.metadata``: the
scheduler's commands, their audit trail and the rack inventory (``models``), the recorder's
telemetry and the history generator's ground truth (``history``). ``upgrade_schema`` brings a
database to the newest revision (``schema``, Alembic).
"""

from __future__ import annotations

from stf_nodes.storage import history
from stf_nodes.storage.db import (
    DEFAULT_DATABASE_URL,
    make_engine,
    normalize_url,
    read_connection,
    shown_url,
)
from stf_nodes.storage.models import Base
from stf_nodes.storage.schema import (
    SchemaError,
    SchemaTooNewError,
    UpgradeResult,
    current_revision,
    head_revision,
    upgrade_schema,
)

__all__ = [
    'DEFAULT_DATABASE_URL',
    'Base',
    'SchemaError',
    'SchemaTooNewError',
    'UpgradeResult',
    'current_revision',
    'head_revision',
    'history',
    'make_engine',
    'normalize_url',
    'read_connection',
    'shown_url',
    'upgrade_schema',
]
