"""CommandQueue on SQLite, PostgreSQL and MariaDB: validation, reservations, order, transitions,
cancellation, crash recovery and inventory."""

from __future__ import annotations

import itertools
import random
import re
import threading
from collections.abc import Callable, Iterator
from datetime import timezone

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from stf_nodes.scheduler import (
    FLAVORS,
    SLOTS,
    CommandKind,
    CommandQueue,
    CommandRecord,
    CommandStatus,
    InventorySlot,
    Rejected,
    SlotChange,
    Workpiece,
    WorkpieceStatus,
    plan_for,
)
from stf_nodes.storage import make_engine
from stf_nodes.storage.models import (
    CommandEventRow,
    CommandRow,
    InventoryEventRow,
    InventoryRow,
)
from tests.scheduler.conftest import RAW, STOCK

NOT_AN_ID = re.compile(r'[^A-Za-z0-9_.:-]|^[_.:-]|^.{33}')

PENDING, IN_PROGRESS = CommandStatus.PENDING, CommandStatus.IN_PROGRESS
COMPLETED, FAILED, CANCELLED = (
    CommandStatus.COMPLETED,
    CommandStatus.FAILED,
    CommandStatus.CANCELLED,
)


def row_counts(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        return {
            table.__tablename__: session.scalar(select(func.count()).select_from(table)) or 0
            for table in (CommandRow, CommandEventRow, InventoryRow, InventoryEventRow)
        }


@pytest.fixture
def siblings(engine: Engine) -> Iterator[Callable[[int], list[CommandQueue]]]:
    """Makes queues on the same database, each through its own engine (like other processes)."""
    engines: list[Engine] = []

    def make(count: int) -> list[CommandQueue]:
        engines.extend(make_engine(engine.url) for _ in range(count))
        return [CommandQueue(engine=sibling) for sibling in engines[-count:]]

    yield make
    for sibling in engines:
        sibling.dispose()


# -- submission and validation -----------------------------------------------------------------


def test_submit_persists_pending_command_with_reservation(queue: CommandQueue) -> None:
    command = queue.submit_process(source_slot=' a1 ', flavor='choco', priority=3)
    assert (command.kind, command.status, command.priority) == (CommandKind.PROCESS, PENDING, 3)
    assert (command.source_slot, command.target_slot) == ('A1', 'A1')
    assert (command.flavor, command.workpiece_id) == ('CHOCO', 'w-a1')
    assert command.message == 'queued: bake CHOCO cookie from A1 (requested)'
    assert command.created_at.tzinfo is timezone.utc
    assert command.started_at is None and command.finished_at is None
    assert queue.get(command.id) == command
    assert queue.inventory()[0].reserved_by == command.id
    [event] = queue.events(command.id)
    assert (event.from_status, event.to_status, event.reason) == (None, PENDING, 'submitted')


def test_store_and_retrieve_fill_their_fields(queue: CommandQueue) -> None:
    store = queue.submit_store(flavor='Strawberry', slot='c2', workpiece_id='nfc-0042')
    assert (store.source_slot, store.target_slot) == ('', 'C2')
    assert (store.flavor, store.workpiece_id) == ('STRAWBERRY', 'nfc-0042')
    generated = queue.submit_store(flavor='VANILLA')
    assert generated.target_slot == 'B2' and len(generated.workpiece_id) == 14
    retrieve = queue.submit_retrieve(slot='B1')
    assert (retrieve.source_slot, retrieve.target_slot) == ('B1', '')
    assert (retrieve.flavor, retrieve.workpiece_id) == ('CHOCO', 'w-b1')


def test_auto_process_scans_row_major_and_never_picks_a_reserved_cookie(
    queue: CommandQueue,
) -> None:
    assert queue.submit_process(flavor='VANILLA').source_slot == 'A2'
    assert queue.submit_process(flavor='VANILLA').source_slot == 'B3'
    with pytest.raises(Rejected, match='no unreserved RAW_DOUGH VANILLA cookie'):
        queue.submit_process(flavor='VANILLA')
    assert [queue.submit_process().source_slot for _ in range(2)] == ['A1', 'A3']
    with pytest.raises(Rejected, match='no unreserved RAW_DOUGH cookie'):
        queue.submit_process()
    with pytest.raises(Rejected, match='reserved by command'):
        queue.submit_retrieve(slot='A1')


def test_auto_store_fills_free_slots_in_order_once_each(queue: CommandQueue) -> None:
    slots = [queue.submit_store(flavor='CHOCO').target_slot for _ in range(4)]
    assert slots == ['B2', 'C1', 'C2', 'C3']
    with pytest.raises(Rejected, match='no free slot'):
        queue.submit_store(flavor='CHOCO')


def test_cancelling_releases_the_reservation(queue: CommandQueue) -> None:
    first = queue.submit_process(source_slot='A1')
    queue.cancel(first.id)
    assert queue.submit_process().source_slot == 'A1'


@pytest.mark.parametrize(
    ('call', 'reason'),
    [
        (lambda q: q.submit_retrieve(slot=''), 'a slot is required'),
        (lambda q: q.submit_retrieve(slot='B2'), 'slot B2 is empty'),
        (lambda q: q.submit_retrieve(slot='D1'), "unknown slot 'D1'"),
        (lambda q: q.submit_retrieve(slot='A0'), 'expected one of A1, A2'),
        (lambda q: q.submit_retrieve(slot=None), 'slot must be a string'),
        (lambda q: q.submit_retrieve(slot="A1'; DROP TABLE commands; --"), 'unknown slot'),
        (lambda q: q.submit_retrieve(slot='\uff211'), 'unknown slot'),  # fullwidth A
        (lambda q: q.submit_retrieve(slot='A1\x00'), 'unknown slot'),
        (lambda q: q.submit_retrieve(slot='A' * 5_000_000), r"unknown slot 'AAAA.*\.\.\.'"),
        (lambda q: q.submit_process(source_slot='B1'), 'holds BAKED CHOCO w-b1, not RAW_DOUGH'),
        (lambda q: q.submit_process(source_slot='C1'), 'slot C1 is empty'),
        (lambda q: q.submit_process(source_slot='A1', flavor='VANILLA'), 'not VANILLA'),
        (lambda q: q.submit_process(flavor='MINT'), "unknown flavor 'MINT'"),
        (lambda q: q.submit_process(flavor="' OR 1=1 --"), 'unknown flavor'),
        (lambda q: q.submit_process(priority=2**31), 'outside the int32 range'),
        (lambda q: q.submit_process(priority='high'), 'priority must be an integer'),
        (lambda q: q.submit_process(priority=True), 'priority must be an integer'),
        (lambda q: q.submit_store(flavor='CHOCO', slot='A1'), 'occupied by RAW_DOUGH CHOCO'),
        (lambda q: q.submit_store(flavor=''), 'a flavor is required'),
        (lambda q: q.submit_store(flavor='choco', workpiece_id='w-a2'), 'already in slot A2'),
        (lambda q: q.submit_store(flavor='choco', workpiece_id='bad id'), 'invalid id'),
        (lambda q: q.submit_store(flavor='choco', workpiece_id='x' * 33), 'invalid id'),
    ],
)
def test_invalid_requests_are_rejected_with_reason_and_nothing_persisted(
    queue: CommandQueue, engine: Engine, call: Callable[[CommandQueue], object], reason: str
) -> None:
    before = row_counts(engine)
    with pytest.raises(Rejected, match=reason) as refused:
        call(queue)
    assert len(refused.value.reason) < 200
    assert row_counts(engine) == before
    assert queue.inventory() == queue.inventory() and queue.list() == ()


def _garbage(rng: random.Random) -> str:
    """A non-blank string that is no slot or flavor name in any case or padding."""
    kinds = [
        lambda: ''.join(chr(rng.randrange(0x20, 0x2FFF)) for _ in range(rng.randrange(1, 12))),
        lambda: rng.choice(["'", '"', '`', '\\', ';', '--', '/*', '%', '\x00']).join(
            rng.choice(['A1', 'CHOCO', 'x']) for _ in range(2)
        ),
        lambda: rng.choice(["A1' OR '1'='1", '1; DROP TABLE inventory', 'B2)); DELETE FROM x']),
        lambda: rng.choice(['A', 'D', 'Z', 'AA']) + str(rng.randrange(-5, 15)),
        lambda: 'x' * rng.choice([41, 1000, 70_000, 2_000_000]),
        lambda: rng.choice(['ｃｈｏｃｏ', 'CHOCO\u200b', 'VANILLA!', 'Ａ１', 'a1\ufeff']),  # noqa: RUF001
    ]
    while (junk := rng.choice(kinds)()).strip().upper() in ('', *SLOTS, *FLAVORS):
        pass
    return junk


def test_thousands_of_generated_invalid_requests_are_all_rejected(
    queue: CommandQueue, engine: Engine
) -> None:
    rng = random.Random(20240301)
    before_counts, before_inventory = row_counts(engine), queue.inventory()
    calls: list[Callable[[], object]] = []
    for _ in range(3000):
        junk = _garbage(rng)
        calls.append(
            rng.choice(
                [
                    lambda junk=junk: queue.submit_retrieve(slot=junk),
                    lambda junk=junk: queue.submit_process(source_slot=junk),
                    lambda junk=junk: queue.submit_process(flavor=junk),
                    lambda junk=junk: queue.submit_store(flavor=junk),
                    lambda junk=junk: queue.submit_store(flavor='CHOCO', slot=junk),
                    lambda junk=junk: queue.submit_store(
                        flavor='CHOCO', workpiece_id=junk if NOT_AN_ID.search(junk) else junk + '?'
                    ),
                    lambda junk=junk: queue.submit_retrieve(slot='A1', priority=junk),
                    # Well-formed but impossible against the stock: these reach the database.
                    lambda: queue.submit_retrieve(slot=rng.choice(['B2', 'C1', 'C2', 'C3'])),
                    lambda: queue.submit_process(source_slot=rng.choice(['B1', 'B2', 'C3'])),
                    lambda: queue.submit_store(flavor='VANILLA', slot=rng.choice(['A1', 'B1'])),
                ]
            )
        )
    rejected = 0
    for call in calls:
        with pytest.raises(Rejected):
            call()
        rejected += 1
    assert rejected == 3000
    assert row_counts(engine) == before_counts
    assert queue.inventory() == before_inventory
    assert queue.submit_retrieve(slot='A1').source_slot == 'A1'  # tables still work


# -- order and exactly-once start ---------------------------------------------------------------


def test_next_command_takes_highest_priority_then_oldest(queue: CommandQueue) -> None:
    low_a = queue.submit_retrieve(slot='A1')
    high_a = queue.submit_retrieve(slot='A2', priority=5)
    low_b = queue.submit_retrieve(slot='A3')
    high_b = queue.submit_retrieve(slot='B1', priority=5)
    urgent = queue.submit_retrieve(slot='B3', priority=-1)
    order = [queue.next_command() for _ in range(5)]
    assert [c.id for c in order if c] == [high_a.id, high_b.id, low_a.id, low_b.id, urgent.id]
    assert all(c is not None and c.status is IN_PROGRESS and c.started_at for c in order)
    assert queue.next_command() is None


def _fill_queue(queue: CommandQueue) -> list[int]:
    """Nine commands, one per slot: retrieve or process the full slots, store into empty."""
    ids = [queue.submit_retrieve(slot=slot).id for slot in ('A1', 'A2', 'A3', 'B1', 'B3')]
    ids += [queue.submit_store(flavor='CHOCO').id for _ in range(4)]
    return ids


def _drain(queue: CommandQueue, barrier: threading.Barrier, taken: list[int]) -> None:
    barrier.wait()
    while (command := queue.next_command()) is not None:
        taken.append(command.id)


def test_racing_schedulers_start_each_command_exactly_once(
    queue: CommandQueue, siblings: Callable[[int], list[CommandQueue]]
) -> None:
    schedulers = siblings(6)
    for _round in range(3):
        submitted = _fill_queue(queue)
        taken: list[list[int]] = [[] for _ in schedulers]
        barrier = threading.Barrier(len(schedulers))
        threads = [
            threading.Thread(target=_drain, args=(scheduler, barrier, ids))
            for scheduler, ids in zip(schedulers, taken, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        started = sorted(i for ids in taken for i in ids)
        assert started == sorted(submitted)
        for command_id in started:
            assert [e.to_status for e in queue.events(command_id)] == [PENDING, IN_PROGRESS]
            queue.fail(command_id, 'round over')  # frees the slots for the next round


def test_racing_submitters_never_reserve_one_cookie_twice(
    queue: CommandQueue, siblings: Callable[[int], list[CommandQueue]]
) -> None:
    submitters = siblings(8)
    accepted: list[CommandRecord] = []
    refusals: list[str] = []
    barrier = threading.Barrier(len(submitters))

    def submit(index: int) -> None:
        barrier.wait()
        try:
            accepted.append(submitters[index].submit_process())
        except Rejected as refused:
            refusals.append(refused.reason)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(submitters))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(c.source_slot for c in accepted) == ['A1', 'A2', 'A3', 'B3']
    assert len(refusals) == 4 and all('no unreserved RAW_DOUGH' in r for r in refusals)


# -- transitions ---------------------------------------------------------------------------------


def _run_plan(queue: CommandQueue, command: CommandRecord) -> CommandRecord:
    """Execute ``command`` the way the scheduler node does, every station step succeeding."""
    steps = plan_for(command)
    queue.set_step(command.id, steps[0].label)
    for index, step in enumerate(steps):
        change = step.slot_change(command)
        if index + 1 < len(steps):
            queue.set_step(command.id, steps[index + 1].label, change=change)
        else:
            return queue.complete(command.id, change=change)
    raise AssertionError('empty plan')


def test_process_runs_to_completion_with_every_transition_recorded(queue: CommandQueue) -> None:
    submitted = queue.submit_process(source_slot='A2')
    started = queue.next_command()
    assert started is not None and started.id == submitted.id
    done = _run_plan(queue, started)
    assert (done.status, done.step, done.message) == (COMPLETED, '', 'completed')
    assert done.created_at < done.started_at < done.finished_at  # type: ignore[operator]
    events = queue.events(done.id)
    assert [(e.from_status, e.to_status) for e in events] == (
        [(None, PENDING), (PENDING, IN_PROGRESS)]
        + [(IN_PROGRESS, IN_PROGRESS)] * len(plan_for(started))
        + [(IN_PROGRESS, COMPLETED)]
    )
    assert [e.step for e in events[2:4]] == ['hbw retrieve A2', 'conveyor load entry']
    assert all(a.at < b.at for a, b in itertools.pairwise(events))
    slot = queue.inventory()[1]
    assert slot.workpiece == Workpiece('w-a2', 'VANILLA', WorkpieceStatus.BAKED)
    assert slot.reserved_by is None and slot.carrier_id == 'c-a2'
    history = queue.inventory_events('A2')
    assert [(e.command_id, e.workpiece.id) for e in history] == [
        (None, 'w-a2'),  # seeded
        (done.id, ''),  # taken out by 'hbw retrieve A2'
        (done.id, 'w-a2'),  # stored back BAKED
    ]
    assert history[1].reason == "after step 'hbw retrieve A2'"


def test_store_and_retrieve_change_the_inventory(queue: CommandQueue) -> None:
    queue.submit_store(flavor='STRAWBERRY', workpiece_id='new-1')
    queue.submit_retrieve(slot='B1')
    for _ in range(2):
        command = queue.next_command()
        assert command is not None
        _run_plan(queue, command)
    inventory = {slot.slot: slot.workpiece for slot in queue.inventory()}
    assert inventory['B2'] == Workpiece('new-1', 'STRAWBERRY', RAW)
    assert inventory['B1'] == Workpiece()


def test_illegal_transitions_are_refused(queue: CommandQueue) -> None:
    command = queue.submit_retrieve(slot='A1')
    with pytest.raises(Rejected, match='is PENDING, not IN_PROGRESS'):
        queue.complete(command.id)
    with pytest.raises(Rejected, match='is PENDING, not IN_PROGRESS'):
        queue.set_step(command.id, 'hbw retrieve A1')
    queue.next_command()
    queue.complete(command.id)
    with pytest.raises(Rejected, match='is already COMPLETED'):
        queue.fail(command.id, 'late')
    with pytest.raises(Rejected, match='no command 999'):
        queue.complete(999)
    with pytest.raises(Rejected, match='positive integer'):
        queue.get(-1)


def test_failure_reasons_are_cleaned_and_capped(queue: CommandQueue) -> None:
    queue.submit_retrieve(slot='A1')
    command = queue.next_command()
    assert command is not None
    failed = queue.fail(command.id, 'VGR_M2_GRIP 💥 stall\x00\n' + 'x' * 10_000 + '\udcff')
    assert failed.status is FAILED and len(failed.message) == 500
    assert failed.message.startswith('VGR_M2_GRIP 💥 stall  xxx') and failed.message.endswith('...')
    assert queue.get(command.id) == failed
    assert queue.inventory()[0].reserved_by is None


# -- cancellation -------------------------------------------------------------------------------


def test_cancel_pending_removes_it_from_the_queue(queue: CommandQueue) -> None:
    command = queue.submit_retrieve(slot='A1')
    outcome = queue.cancel(command.id)
    assert not outcome.stop_required
    assert outcome.command.status is CANCELLED and outcome.command.finished_at is not None
    assert queue.next_command() is None
    assert [e.to_status for e in queue.events(command.id)] == [PENDING, CANCELLED]


def test_cancel_running_requires_stopping_stations_first(queue: CommandQueue) -> None:
    command = queue.submit_retrieve(slot='A1')
    queue.next_command()
    outcome = queue.cancel(command.id)
    assert outcome.stop_required and outcome.command.status is IN_PROGRESS
    assert outcome.command.cancel_requested
    assert queue.cancel(command.id).stop_required  # asking twice is harmless
    assert queue.inventory()[0].reserved_by == command.id  # still running
    cancelled = queue.finish_cancel(command.id)
    assert cancelled.status is CANCELLED and queue.inventory()[0].reserved_by is None
    assert [e.reason for e in queue.events(command.id)] == [
        'submitted',
        'started',
        'cancel requested',
        'cancelled; stations stopped',
    ]


def test_cancel_unknown_or_finished_is_refused(queue: CommandQueue) -> None:
    with pytest.raises(Rejected, match='no command 77'):
        queue.cancel(77)
    command = queue.submit_retrieve(slot='A1')
    queue.cancel(command.id)
    with pytest.raises(Rejected, match='already CANCELLED'):
        queue.cancel(command.id)


# -- crash recovery -------------------------------------------------------------------------------


def test_recover_fails_the_interrupted_command_and_keeps_the_queue(
    queue: CommandQueue, siblings: Callable[[int], list[CommandQueue]]
) -> None:
    running = queue.submit_process(source_slot='A1')
    queue.next_command()
    waiting = [queue.submit_retrieve(slot='A2'), queue.submit_store(flavor='CHOCO', priority=1)]
    queue.set_step(running.id, 'hbw retrieve A1')
    queue.set_step(
        running.id, 'conveyor load entry', change=SlotChange(slot='A1', workpiece=Workpiece())
    )
    # The scheduler process dies here; a new one opens the same database.
    [restarted] = siblings(1)
    [interrupted] = restarted.recover()
    assert interrupted.id == running.id and interrupted.status is FAILED
    assert interrupted.message == (
        "interrupted: scheduler restarted during step 'conveyor load entry'"
    )
    assert restarted.recover() == ()
    assert restarted.inventory()[0].reserved_by is None
    with pytest.raises(Rejected, match='already FAILED'):
        queue.complete(running.id)  # the old scheduler cannot finish it any more
    order = [restarted.next_command(), restarted.next_command(), restarted.next_command()]
    assert [c.id if c else None for c in order] == [waiting[1].id, waiting[0].id, None]


def test_recover_finishes_a_requested_cancel_as_cancelled(queue: CommandQueue) -> None:
    command = queue.submit_retrieve(slot='A1')
    queue.next_command()
    queue.cancel(command.id)
    [recovered] = queue.recover()
    assert recovered.status is CANCELLED
    assert recovered.message == 'cancelled: scheduler restarted'


def test_reconcile_overwrites_records_and_fails_invalidated_commands(
    queue: CommandQueue,
) -> None:
    still_fine = queue.submit_process(source_slot='A1')
    invalidated = queue.submit_process(source_slot='A2')
    reported = list(STOCK)
    reported[1] = InventorySlot(slot='A2', carrier_id='c-a2')  # the cookie is gone
    reported[8] = InventorySlot(
        slot='C3', carrier_id='c-c3', workpiece=Workpiece('found', 'CHOCO', RAW)
    )
    result = queue.reconcile_inventory(reported)
    assert [slot.slot for slot in result.changed] == ['A2', 'C3']
    assert [c.id for c in result.failed] == [invalidated.id]
    assert result.failed[0].message == 'reconciled with the HBW: slot A2 is empty'
    assert queue.get(still_fine.id).status is PENDING  # type: ignore[union-attr]
    assert queue.inventory()[8].workpiece.id == 'found'
    [event] = queue.inventory_events('A2')[1:]
    assert event.reason == 'reconciled with the HBW; was RAW_DOUGH VANILLA w-a2'
    assert queue.reconcile_inventory(reported).changed == ()


def test_seeding_happens_only_once(queue: CommandQueue) -> None:
    assert not queue.seed_inventory([InventorySlot(slot='C1')])
    assert queue.inventory()[0].workpiece.id == 'w-a1'


def test_unseeded_inventory_reads_empty_and_refuses_commands(engine: Engine) -> None:
    queue = CommandQueue(engine=engine)
    assert [slot.workpiece.present for slot in queue.inventory()] == [False] * 9
    with pytest.raises(Rejected, match='not initialised'):
        queue.submit_store(flavor='CHOCO')


# -- inventory changes --------------------------------------------------------------------------


def test_manual_inventory_changes_respect_reservations(queue: CommandQueue) -> None:
    command = queue.submit_retrieve(slot='A1')
    empty = SlotChange(slot='A1', workpiece=Workpiece())
    with pytest.raises(Rejected, match=r'reserved by \d+; a manual change cannot'):
        queue.apply_inventory_change(empty)
    with pytest.raises(Rejected, match='PENDING, not IN_PROGRESS'):
        queue.apply_inventory_change(empty, command_id=command.id)
    queue.next_command()
    with pytest.raises(Rejected, match='slot C1 is not reserved; command'):
        queue.apply_inventory_change(SlotChange('C1', Workpiece()), command_id=command.id)
    assert not queue.apply_inventory_change(empty, command_id=command.id).workpiece.present
    added = queue.apply_inventory_change(
        SlotChange('C1', Workpiece('hand', 'vanilla', RAW), carrier_id='c-new'), reason='by hand'
    )
    assert added.workpiece == Workpiece('hand', 'VANILLA', RAW) and added.carrier_id == 'c-new'
    assert queue.inventory_events('C1')[-1].reason == 'by hand'
    with pytest.raises(Rejected, match='unknown flavor'):
        queue.apply_inventory_change(SlotChange('C2', Workpiece('x', 'MINT', RAW)))


# -- listing -----------------------------------------------------------------------------------


def test_list_is_newest_first_with_status_filter_and_limit(queue: CommandQueue) -> None:
    ids = [queue.submit_retrieve(slot=slot).id for slot in ('A1', 'A2', 'A3')]
    queue.next_command()
    assert [c.id for c in queue.list()] == ids[::-1]
    assert [c.id for c in queue.list(limit=2)] == ids[:0:-1]
    assert [c.id for c in queue.list('in_progress')] == [ids[0]]
    assert [c.id for c in queue.list(PENDING)] == ids[:0:-1]
    assert queue.list('') == queue.list()
    with pytest.raises(Rejected, match='unknown status'):
        queue.list('DONE')
    with pytest.raises(Rejected, match='non-negative'):
        queue.list(limit=-1)
