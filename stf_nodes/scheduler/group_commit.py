"""Group commit: the queue writes of concurrent requests share one transaction.

A scheduler answers each order or cancel only once it is committed (durable before
acknowledged). Committing each request on its own costs a transaction, and on PostgreSQL a
WAL flush, per request. :class:`GroupCommitter` runs one thread that takes every write waiting
at the moment, runs them in one transaction (``CommandQueue.commit_group``: a refused request
leaves the others in; a request failing with a database error midway makes the group run again
a request per transaction, so the error reaches only its own), commits once, and then
reports each request's outcome to its own callback. Requests that arrive while a group
commits form the next group: nothing waits for a timer, so a lone request is committed at
once, and under load the groups grow with the rate.

The outcome is the write's result, or the ``Rejected`` / ``SQLAlchemyError`` that undid it;
when the transaction itself fails (the commit, a lost connection, a defect that raised) every
request of the group gets that exception: none of them was committed, and the committer goes
on with the next group. Callbacks run on the committer thread,
after the commit returned.
"""

from __future__ import annotations

import queue as queues
import threading
from collections.abc import Callable
from typing import Any

from stf_nodes.scheduler.queue import CommandQueue, Write

Done = Callable[[Any], None]


class GroupCommitter:
    """Commits the writes handed to :meth:`submit` in groups, on its own thread."""

    def __init__(self, queue: CommandQueue, *, max_group: int = 256) -> None:
        self._queue = queue
        self._max_group = max_group
        self._waiting: queues.SimpleQueue[tuple[Write, Done] | None] = queues.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name='group-commit', daemon=True)
        self._thread.start()

    def submit(self, write: Write, done: Done) -> None:
        """Commit ``write`` with whatever else is waiting; then ``done(outcome)``."""
        self._waiting.put((write, done))

    def close(self) -> None:
        """Commit what is waiting, then stop the thread."""
        self._waiting.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            item = self._waiting.get()
            group: list[tuple[Write, Done]] = []
            while item is not None:
                group.append(item)
                if len(group) >= self._max_group:
                    break
                try:
                    item = self._waiting.get_nowait()
                except queues.Empty:
                    break
            if group:
                self._commit(group)
            if item is None:
                return

    def _commit(self, group: list[tuple[Write, Done]]) -> None:
        try:
            outcomes: list[Any] = self._queue.commit_group([write for write, _ in group])
        except Exception as exc:  # every request is answered; the thread lives on
            outcomes = [exc] * len(group)
        for (_, done), outcome in zip(group, outcomes, strict=True):
            done(outcome)
