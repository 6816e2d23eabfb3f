"""Bulk inserts of columnar batches into the history tables, shared by the recorder and the
history generator (one schema, one way of writing it).

A batch is ``{column: values}`` for one table: numpy arrays (the generator) or lists (the
recorder), all of one length. Values are converted column by column, vectorised where the data
is numpy, then sent as one ``executemany`` of a prepared ``INSERT`` over a SQLAlchemy Core
connection (``exec_driver_sql``): the per-row bind processing of ``connection.execute(insert,
dicts)`` costs three times the database's own work on SQLite (measured in
``bench/recorder_bench.py``), and a recorder sized for 20,000 messages/s cannot spend it.

Conversions, the same for every writer:

- ``UtcDateTime`` columns take int64 microseconds since the Unix epoch (UTC), or aware
  datetimes, or None. SQLite gets SQLAlchemy's own text format (``YYYY-MM-DD
  HH:MM:SS.ffffff``, what ``UtcDateTime`` reads back), the servers naive UTC datetimes.
- Floating-point columns: NaN and ±inf become NULL (MySQL/MariaDB refuse them, SQLite would
  store NULL for NaN only; the history is the same on every backend).
- Text columns are cut to their width (callers refuse bad ids before; this is the last guard
  so a write never fails on length).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
from sqlalchemy import Connection, Double, String, Table
from sqlalchemy.types import Text

from stf_nodes.storage.models import UtcDateTime

Columns = Mapping[str, Sequence[Any] | np.ndarray]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _sqlite_text(values: np.ndarray) -> list[str]:
    text = np.datetime_as_string(values.astype('datetime64[us]'), unit='us')
    return [value.replace('T', ' ') for value in text.tolist()]


def _convert_times(values: Sequence[Any] | np.ndarray, sqlite: bool) -> list[Any]:
    if not isinstance(values, np.ndarray) and all(type(v) is int for v in values):
        values = np.array(values, dtype=np.int64)
    if isinstance(values, np.ndarray):
        array = values.astype('datetime64[us]') if values.dtype.kind == 'i' else values
        return _sqlite_text(array) if sqlite else array.astype('datetime64[us]').tolist()
    out: list[Any] = []
    for value in values:
        if value is None:
            out.append(None)
            continue
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError(f'naive datetime {value!r}: pass an aware (UTC) datetime')
            value = micros(value)
        stamp = np.datetime64(int(value), 'us')
        out.append(_sqlite_text(np.array([stamp]))[0] if sqlite else stamp.tolist())
    return out


def _convert_floats(values: Sequence[Any] | np.ndarray) -> list[Any]:
    array = np.asarray(values, dtype=np.float64)
    out = array.tolist()
    for index in np.flatnonzero(~np.isfinite(array)).tolist():
        out[index] = None
    return out


def _convert_text(values: Sequence[Any] | np.ndarray, length: int | None) -> list[Any]:
    """Text as every backend stores it: cut to the column's length, NUL (which PostgreSQL
    refuses, failing the whole batch) replaced by U+FFFD."""
    out = values.tolist() if isinstance(values, np.ndarray) else list(values)
    return [_storable(v, length) if isinstance(v, str) else v for v in out]


def _storable(text: str, length: int | None) -> str:
    if '\x00' in text:
        text = text.replace('\x00', '\ufffd')
    return text[:length] if length and len(text) > length else text


class BulkWriter:
    """Writes columnar batches into tables of one database (one prepared INSERT per column
    set)."""

    def __init__(self, dialect_name: str, paramstyle: str, preparer: Any) -> None:
        self._sqlite = dialect_name == 'sqlite'
        self._placeholder = '?' if paramstyle == 'qmark' else '%s'
        self._preparer = preparer
        self._statements: dict[tuple[str, tuple[str, ...]], str] = {}

    @classmethod
    def for_connection(cls, connection: Connection) -> BulkWriter:
        dialect = connection.dialect
        return cls(dialect.name, dialect.paramstyle, dialect.identifier_preparer)

    def _statement(self, table: Table, names: tuple[str, ...]) -> str:
        key = (table.name, names)
        statement = self._statements.get(key)
        if statement is None:
            columns = ', '.join(self._preparer.quote(name) for name in names)
            marks = ', '.join([self._placeholder] * len(names))
            # Names come from the schema, never from data; values are bound parameters.
            into = self._preparer.format_table(table)
            statement = f'INSERT INTO {into} ({columns}) VALUES ({marks})'  # noqa: S608
            self._statements[key] = statement
        return statement

    def rows(self, table: Table, columns: Columns) -> list[tuple[Any, ...]]:
        """The batch as DBAPI parameter tuples (exposed for tests and the benchmark)."""
        converted = []
        length = None
        for name, values in columns.items():
            column = table.columns[name]
            if length is None:
                length = len(values)
            elif len(values) != length:
                raise ValueError(f'{table.name}.{name}: {len(values)} values, expected {length}')
            kind = column.type
            if isinstance(kind, UtcDateTime):
                converted.append(_convert_times(values, self._sqlite))
            elif isinstance(kind, Double):
                converted.append(_convert_floats(values))
            elif isinstance(kind, (String, Text)):
                converted.append(_convert_text(values, getattr(kind, 'length', None)))
            else:
                converted.append(values.tolist() if isinstance(values, np.ndarray) else values)
        return list(zip(*converted, strict=True))

    def insert(self, connection: Connection, table: Table, columns: Columns) -> int:
        """Insert the batch in the connection's transaction; returns the number of rows."""
        rows = self.rows(table, columns)
        if rows:
            connection.exec_driver_sql(self._statement(table, tuple(columns)), rows)
        return len(rows)
