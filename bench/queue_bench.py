"""Sustained submission rate of the scheduler's CommandQueue (target: >= 500 commands/s on SQLite).

Prints, from one run on the same disk:

- baseline: raw ``sqlite3`` INSERTs of a command-sized row, one commit each, WAL and
  ``synchronous=NORMAL`` like the engine factory (the ceiling for one durable write per call);
- submit: ``CommandQueue.submit_store`` with automatic slot choice (validate, lock the rack,
  insert command and event, reserve the slot: one transaction per call). A rack has nine slots,
  so after every nine submissions the commands are cancelled, untimed, to free the slots;
- lifecycle: submit, ``start`` and ``complete`` (the last two fenced by the lease): three
  transactions per command.

Usage: ``python bench/queue_bench.py [--commands N] [--database-url URL]`` (default: a SQLite file
in a temporary directory; with a URL, its tables are dropped and recreated and no baseline runs).
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from stf_nodes.scheduler import CommandQueue, Fence, InventorySlot
from stf_nodes.storage import Base, make_engine
from stf_nodes.workpieces import rack_slots

SLOTS = rack_slots(3, 3)


def raw_insert_rate(path: Path, count: int) -> float:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute('PRAGMA journal_mode=WAL')
    connection.execute('PRAGMA synchronous=NORMAL')
    connection.execute(
        'CREATE TABLE commands (id INTEGER PRIMARY KEY AUTOINCREMENT, kind INT, status INT,'
        ' priority INT, target_slot TEXT, flavor TEXT, workpiece_id TEXT, message TEXT,'
        ' created_at TEXT)'
    )
    started = time.perf_counter()
    for index in range(count):
        connection.execute('BEGIN IMMEDIATE')
        connection.execute(
            'INSERT INTO commands (kind, status, priority, target_slot, flavor, workpiece_id,'
            ' message, created_at) VALUES (2, 0, 0, ?, ?, ?, ?, ?)',
            (SLOTS[index % 9], 'CHOCO', f'w{index}', 'queued', datetime.now(timezone.utc)),
        )
        connection.execute('COMMIT')
    elapsed = time.perf_counter() - started
    connection.close()
    return count / elapsed


def timed_rounds(queue: CommandQueue, count: int, cycle: Callable[[], None]) -> float:
    """Rate of ``cycle`` over ``count`` commands; the rack is emptied between rounds, untimed."""
    elapsed, done = 0.0, 0
    while done < count:
        batch = min(len(SLOTS), count - done)
        started = time.perf_counter()
        for _ in range(batch):
            cycle()
        elapsed += time.perf_counter() - started
        for command in queue.list('PENDING'):
            queue.cancel(command.id)
        done += batch
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--commands', type=int, default=3000)
    parser.add_argument('--database-url', default='')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        url = args.database_url or f'sqlite:///{Path(scratch) / "queue.db"}'
        engine = make_engine(url)
        Base.metadata.drop_all(engine)
        Base.metadata.create_all(engine)
        queue = CommandQueue(engine=engine)
        queue.seed_inventory([InventorySlot(slot=slot) for slot in SLOTS])
        token = queue.acquire_lease('bench', 'bench', now_ns=0, duration_ns=10**18)
        fence = Fence('bench', 'bench', token)

        def submit() -> None:
            queue.submit_store(flavor='CHOCO')

        def lifecycle() -> None:
            submit()
            pending = queue.peek_next()
            assert pending is not None
            queue.start(pending.id, fence, step_count=3, location='input')
            queue.complete(pending.id, fence)  # no inventory change: the slot is free again

        print(f'database: {engine.url.render_as_string()}')
        if not args.database_url:
            baseline = raw_insert_rate(Path(scratch) / 'raw.db', args.commands)
            print(f'baseline raw sqlite3 INSERT, commit each: {baseline:8.0f} rows/s')
        rate = timed_rounds(queue, args.commands, submit)
        print(f'CommandQueue.submit_store (auto slot):     {rate:8.0f} commands/s (target >= 500)')
        rate = timed_rounds(queue, args.commands // 3, lifecycle)
        print(f'submit + start + complete:                {rate:8.0f} commands/s')
        engine.dispose()


if __name__ == '__main__':
    main()
