"""Group commit on SQLite, PostgreSQL and MariaDB: concurrent writes share one transaction, and
a refused or failing write in a group leaves the others committed."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from stf_nodes.scheduler import CommandQueue, CommandRecord, CommandStatus, Rejected
from stf_nodes.scheduler.group_commit import GroupCommitter
from tests.conftest import wait_until

PENDING, CANCELLED = CommandStatus.PENDING, CommandStatus.CANCELLED


def _reserved(queue: CommandQueue) -> dict[str, int | None]:
    with queue._engine.connect() as connection:
        rows = connection.execute(text('SELECT slot, reserved_by FROM inventory'))
        return {slot: reserved for slot, reserved in rows}


def test_a_refused_request_in_a_group_leaves_the_others(queue: CommandQueue) -> None:
    outcomes = queue.commit_group(
        [
            queue.process_write(source_slot='A1'),
            queue.process_write(source_slot='A1'),  # A1 is reserved by the first one now
            queue.process_write(source_slot='B2'),  # empty
            queue.process_write(source_slot='A2'),
        ]
    )
    first, reserved, empty, last = outcomes
    assert isinstance(first, CommandRecord) and isinstance(last, CommandRecord)
    assert isinstance(reserved, Rejected) and 'reserved by command' in reserved.reason
    assert isinstance(empty, Rejected) and 'empty' in empty.reason
    assert [c.id for c in queue.list()] == [last.id, first.id]
    assert _reserved(queue)['A1'] == first.id and _reserved(queue)['A2'] == last.id


def test_a_write_failing_halfway_is_undone_alone(queue: CommandQueue) -> None:
    """A database error after a write's first statements (on PostgreSQL it aborts the
    transaction) undoes the group, which runs again a write at a time: the failing write's
    insert is gone, the others are committed."""

    def fails_after_inserting(session: Session) -> Any:
        queue.process_write(source_slot='A3')(session)
        session.execute(text('INSERT INTO no_such_table VALUES (1)'))

    before = queue.process_write(source_slot='A1')
    after = queue.process_write(source_slot='A2')
    outcomes = queue.commit_group([before, fails_after_inserting, after])
    assert isinstance(outcomes[1], SQLAlchemyError)
    assert {c.source_slot for c in queue.list()} == {'A1', 'A2'}
    assert _reserved(queue)['A3'] is None
    assert all(c.status == CommandStatus.PENDING for c in queue.list())


def test_cancels_and_orders_share_a_group(queue: CommandQueue) -> None:
    queued = queue.submit_process(source_slot='A1')
    cancelled, again, unknown = queue.commit_group(
        [
            queue.cancel_write(queued.id),
            queue.process_write(source_slot='A1'),  # free again after the cancel
            queue.cancel_write(queued.id + 1000),
        ]
    )
    assert cancelled.command.status == CommandStatus.CANCELLED
    assert again.source_slot == 'A1' and _reserved(queue)['A1'] == again.id
    assert isinstance(unknown, Rejected)


def test_requests_arriving_during_a_commit_form_the_next_group(
    queue: CommandQueue, engine: Engine
) -> None:
    commits: list[int] = []
    event.listen(engine, 'commit', lambda _: commits.append(1))
    started, release = threading.Event(), threading.Event()
    first = queue.process_write(source_slot='A1')

    def slow_first(session: Session) -> Any:
        started.set()
        release.wait(10)
        return first(session)

    outcomes: list[Any] = []
    committer = GroupCommitter(queue)
    try:
        committer.submit(slow_first, outcomes.append)
        assert started.wait(10)
        for slot in ('A2', 'A3', 'B3', 'A2'):  # the second A2 is refused, alone
            committer.submit(queue.process_write(source_slot=slot), outcomes.append)
        release.set()
        wait_until(lambda: len(outcomes) == 5)
    finally:
        committer.close()
    assert len(commits) == 2  # the first alone, then the four that waited, together
    assert [type(o).__name__ for o in outcomes] == ['CommandRecord'] * 4 + ['Rejected']
    assert len(queue.list()) == 4


def test_a_failed_transaction_fails_the_whole_group(queue: CommandQueue, engine: Engine) -> None:
    """An error of the transaction itself (here: its commit) reaches every request of the
    group, and nothing of it is in the database."""
    outcomes: list[Any] = []

    def refuse_commit(_: Any) -> None:
        raise SQLAlchemyError('commit failed')

    committer = GroupCommitter(queue)
    started, release = threading.Event(), threading.Event()

    def blocker(session: Session) -> Any:
        started.set()
        release.wait(10)
        return queue.process_write(source_slot='A1')(session)

    try:
        committer.submit(blocker, outcomes.append)
        assert started.wait(10)
        event.listen(engine, 'commit', refuse_commit)
        committer.submit(queue.process_write(source_slot='A2'), outcomes.append)
        committer.submit(queue.process_write(source_slot='A3'), outcomes.append)
        release.set()
        wait_until(lambda: len(outcomes) == 3)
    finally:
        event.remove(engine, 'commit', refuse_commit)
        committer.close()
    assert all(isinstance(o, SQLAlchemyError) for o in outcomes)
    assert queue.list() == ()


def test_a_group_reads_as_if_each_write_ran_alone(queue: CommandQueue) -> None:
    """A group's new commands are inserted together, yet the writes after one see it: the next
    order for its slot is refused naming its id, a cancel of its id (the next one) cancels it,
    and a store of a workpiece id already queued in the group is refused."""
    last = queue.submit_process(source_slot='A3')
    ordered, taken, cancelled, again, first, second = queue.commit_group(
        [
            queue.process_write(source_slot='A1'),
            queue.process_write(source_slot='A1'),
            queue.cancel_write(last.id + 1),  # the id `ordered` gets
            queue.process_write(source_slot='A1'),
            queue.store_write(flavor='CHOCO', workpiece_id='w-new'),
            queue.store_write(flavor='CHOCO', workpiece_id='w-new'),
        ]
    )
    assert ordered.id == last.id + 1
    assert taken.reason == f'slot A1 is reserved by command {ordered.id}'
    assert cancelled.command.id == ordered.id and cancelled.command.status == CANCELLED
    assert again.id > ordered.id and _reserved(queue)['A1'] == again.id
    assert first.id > again.id and first.target_slot == 'B2'
    assert second.reason == f'workpiece w-new belongs to command {first.id}'
    for command in (ordered, again, first):  # each with its own submission event
        assert queue.events(command.id)[0].reason == 'submitted'
    assert [e.to_status for e in queue.events(ordered.id)] == [PENDING, CANCELLED]
    assert {c.id: c.status for c in queue.list()} == {
        last.id: PENDING,
        ordered.id: CANCELLED,
        again.id: PENDING,
        first.id: PENDING,
    }


def test_a_group_of_orders_and_cancels_costs_a_few_statements(
    queue: CommandQueue, engine: Engine
) -> None:
    """However many orders a group holds, it reads the rack once and writes the new commands,
    the reservations and the events with one statement each; a queued cancel is one more."""
    queued = [queue.submit_process(source_slot=slot) for slot in ('A1', 'A2')]
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, 'before_cursor_execute', record)
    try:
        outcomes = queue.commit_group(
            [queue.cancel_write(command.id) for command in queued]
            + [queue.process_write(source_slot=slot) for slot in ('A1', 'A2', 'A3', 'B3')]
        )
    finally:
        event.remove(engine, 'before_cursor_execute', record)
    assert all(not isinstance(outcome, Exception) for outcome in outcomes)
    written = [s.split()[0].upper() for s in statements if not s.upper().startswith('BEGIN')]
    # two cancels (one UPDATE each, plus a SELECT where UPDATE cannot return rows), then one
    # SELECT of the rack, one INSERT of the four commands, one UPDATE of the reservations and
    # one INSERT of the six events
    cancels = 2 if engine.dialect.update_returning else 4
    assert len(written) == cancels + 4, statements
    assert len(queue.list(CommandStatus.PENDING)) == 4


def test_a_request_key_sent_twice_in_one_group_makes_one_command(queue: CommandQueue) -> None:
    first, again, other = queue.commit_group(
        [
            queue.process_write(source_slot='A1', request_key='mqtt:7'),
            queue.process_write(source_slot='A1', request_key='mqtt:7'),  # a repeat
            queue.process_write(source_slot='A2', request_key='mqtt:7'),  # another order
        ]
    )
    assert again == first and first.source_slot == 'A1'
    assert isinstance(other, Rejected)
    assert other.reason == f'request_key already used by command {first.id} for another order'
    assert [c.id for c in queue.list()] == [first.id]
    assert _reserved(queue)['A2'] is None


# SQLite is left out: it runs one writing transaction at a time, so two cannot interleave.
@pytest.mark.parametrize('database_url', ['postgresql', 'mariadb'], indirect=True)
def test_a_key_another_scheduler_commits_meanwhile_still_makes_one_command(
    queue: CommandQueue, engine: Engine
) -> None:
    """A deposed leader still committing the request that the new leader takes again: the
    unique key fails the later insert, and the write, run again alone, finds the first."""
    deposed = CommandQueue(engine=engine)
    theirs: list[CommandRecord] = []
    fired = threading.Event()

    def meanwhile(connection: Any, cursor: Any, statement: str, *args: Any) -> None:
        if 'request_key' in statement and statement.startswith('SELECT') and not fired.is_set():
            fired.set()  # once: the deposed leader's own statements come through here too
            theirs.append(deposed.submit_process(request_key='mqtt:9'))

    event.listen(engine, 'after_cursor_execute', meanwhile)
    try:
        [mine] = queue.commit_group([queue.process_write(request_key='mqtt:9')])
    finally:
        event.remove(engine, 'after_cursor_execute', meanwhile)
    assert mine == theirs[0]
    assert [c.id for c in queue.list()] == [mine.id]
