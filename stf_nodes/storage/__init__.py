"""Durable storage: the SQL engine factory and the shared declarative schema.

Everything the twin persists (scheduler commands, their audit trail, the rack inventory and,
later, recorder telemetry) lives in one database described by one ``Base.metadata``.
"""

from __future__ import annotations

from stf_nodes.storage.db import DEFAULT_DATABASE_URL, create_schema, make_engine, normalize_url
from stf_nodes.storage.models import Base

__all__ = ['DEFAULT_DATABASE_URL', 'Base', 'create_schema', 'make_engine', 'normalize_url']
