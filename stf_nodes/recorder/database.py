"""The recorder's side of the database: schema upgrade at start, the streams it already holds,
and one transaction per batch (rows, gaps and streams together, so a crash never leaves rows
without the sequence numbers that account for them)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine, and_, event, select, update
from sqlalchemy.engine import URL

from stf_nodes.recorder.core import Batch
from stf_nodes.storage import Base, make_engine, normalize_url, upgrade_schema
from stf_nodes.storage.writer import BulkWriter

_STREAMS = Base.metadata.tables['recorder_streams']
_GAPS = Base.metadata.tables['recorder_gaps']

#: Connection timeouts for servers, so an unreachable database fails a write in seconds instead
#: of blocking the writer for the operating system's TCP timeout (minutes).
_SERVER_TIMEOUTS = {
    'postgresql': {'connect_timeout': '5', 'keepalives': '1', 'keepalives_idle': '5',
                   'keepalives_interval': '2', 'keepalives_count': '2',
                   'tcp_user_timeout': '10000'},
    'mysql': {'connect_timeout': '5', 'read_timeout': '30', 'write_timeout': '30'},
}  # fmt: skip


def recorder_url(url: str) -> URL:
    """``url`` with the server timeouts above filled in where it does not set them."""
    parsed = normalize_url(url)
    extra = _SERVER_TIMEOUTS.get(parsed.get_backend_name(), {})
    missing = {key: value for key, value in extra.items() if key not in parsed.query}
    return parsed.update_query_dict(missing) if missing else parsed


class RecorderDatabase:
    """Writes recorder batches to one database."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = make_engine(recorder_url(url))
        self._writer: BulkWriter | None = None
        if self.engine.dialect.name == 'sqlite':
            # Sustained inserts update three B-trees per row; 64 MiB of page cache (instead of
            # 2 MiB) keeps the indexes' hot pages in memory.
            event.listen(self.engine, 'connect', _large_cache)

    def prepare(self) -> list[tuple[str, str, int]]:
        """Upgrade the schema; return the (topic, gid, last sequence) already recorded."""
        upgrade_schema(self.engine)
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(_STREAMS.c.topic, _STREAMS.c.publisher_gid, _STREAMS.c.last_sequence)
            ).all()
        return [(topic, gid, int(last)) for topic, gid, last in rows]

    def write(self, batch: Batch) -> None:
        """Everything of the batch in one transaction (raises SQLAlchemyError)."""
        with self.engine.begin() as connection:
            if self._writer is None:
                self._writer = BulkWriter.for_connection(connection)
            writer = self._writer
            for name, columns in batch.tables.items():
                writer.insert(connection, Base.metadata.tables[name], columns)
            if batch.gaps:
                writer.insert(connection, _GAPS, _gap_columns(batch))
            for (topic, gid), (factory, last, when_ns, received) in batch.streams.items():
                updated = connection.execute(
                    update(_STREAMS)
                    .where(and_(_STREAMS.c.topic == topic, _STREAMS.c.publisher_gid == gid))
                    .values(
                        last_sequence=last,
                        last_time=_aware(when_ns),
                        received=_STREAMS.c.received + received,
                    )
                )
                if updated.rowcount == 0:
                    writer.insert(
                        connection,
                        _STREAMS,
                        {
                            'topic': [topic],
                            'publisher_gid': [gid],
                            'factory': [factory],
                            'last_sequence': [last],
                            'last_time': [when_ns // 1000],
                            'received': [received],
                        },
                    )

    def dispose(self) -> None:
        self.engine.dispose()


def _aware(when_ns: int) -> datetime:
    return datetime.fromtimestamp(when_ns / 1e9, timezone.utc)


def _large_cache(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute('PRAGMA cache_size=-65536')
    finally:
        cursor.close()


def _gap_columns(batch: Batch) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {
        name: []
        for name in ('time', 'factory', 'topic', 'publisher_gid', 'first_sequence',
                     'last_sequence', 'count', 'reason')
    }  # fmt: skip
    for gap in batch.gaps:
        columns['time'].append(gap.detected_ns // 1000)
        columns['factory'].append(gap.source.factory)
        columns['topic'].append(gap.source.topic)
        columns['publisher_gid'].append(gap.gid)
        columns['first_sequence'].append(gap.first)
        columns['last_sequence'].append(gap.last)
        columns['count'].append(gap.count)
        columns['reason'].append(gap.reason)
    return columns
