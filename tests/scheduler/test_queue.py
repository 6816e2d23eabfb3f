"""CommandQueue on SQLite, PostgreSQL and MariaDB: validation, reservations, order, transitions,
cancellation, crash recovery and inventory."""

from __future__ import annotations

import itertools
import random
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timezone

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from stf_nodes.scheduler import (
    CommandKind,
    CommandQueue,
    CommandRecord,
    CommandStatus,
    Fence,
    InventorySlot,
    LeaseLost,
    Phase,
    Rejected,
    StepState,
    Workpiece,
    WorkpieceStatus,
    plan_for,
)
from stf_nodes.storage import make_engine
from stf_nodes.storage.models import (
    CommandEventRow,
    CommandRow,
    CommandStepRow,
    InventoryEventRow,
    InventoryRow,
)
from stf_nodes.workpieces import FLAVORS
from tests.scheduler.conftest import RAW, SLOTS, lead, queue_engine

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
            for table in (
                CommandRow,
                CommandEventRow,
                CommandStepRow,
                InventoryRow,
                InventoryEventRow,
            )
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


def test_a_request_key_sent_again_returns_the_command_it_made(
    queue: CommandQueue, engine: Engine
) -> None:
    """A client's retry after a lost reply (an MQTT order delivered again to a respawned
    bridge) gets the command of its first request, as it is now; nothing is made twice."""
    first = queue.submit_process(request_key='mqtt:1', flavor='CHOCO')
    queue.cancel(first.id)
    again = queue.submit_process(request_key='mqtt:1', flavor='CHOCO')
    assert again == queue.get(first.id) and again.status is CommandStatus.CANCELLED
    # The key used again for another order (a sender repeating its ts): refused, not mixed up.
    for different in ({'flavor': 'VANILLA'}, {'source_slot': 'A3'}):
        with pytest.raises(Rejected, match=f'already used by command {first.id}'):
            queue.submit_process(request_key='mqtt:1', **different)
    with pytest.raises(Rejected, match='invalid request_key'):
        queue.submit_process(request_key='MQTT:1 ')  # nothing a database compares loosely
    other = queue.submit_process(request_key='MQTT:1')  # case is kept
    unkeyed = [queue.submit_process(), queue.submit_process()]
    assert len({first.id, other.id, *(c.id for c in unkeyed)}) == 4
    assert len(queue.list()) == 4
    with engine.connect() as connection:
        keys = connection.scalars(select(CommandRow.request_key).order_by(CommandRow.id)).all()
    assert keys == ['mqtt:1', 'MQTT:1', None, None]


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
        (lambda q: q.submit_process(request_key='k' * 65), 'invalid request_key'),
        (lambda q: q.submit_process(request_key='key\n'), 'invalid request_key'),
        (lambda q: q.submit_process(request_key=7), 'request_key must be a string'),
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


def start_next(queue: CommandQueue, fence: Fence) -> CommandRecord | None:
    """What the runner does when idle: start the next PENDING command (another scheduler may
    take it first: then look again)."""
    while (pending := queue.peek_next()) is not None:
        plan = plan_for(pending)
        started = queue.start(pending.id, fence, step_count=len(plan), location=plan[0].source)
        if started is not None:
            return started
    return None


def test_next_command_takes_highest_priority_then_oldest(queue: CommandQueue) -> None:
    fence = lead(queue)
    low_a = queue.submit_retrieve(slot='A1')
    high_a = queue.submit_retrieve(slot='A2', priority=5)
    low_b = queue.submit_retrieve(slot='A3')
    high_b = queue.submit_retrieve(slot='B1', priority=5)
    urgent = queue.submit_retrieve(slot='B3', priority=-1)
    order = [start_next(queue, fence) for _ in range(5)]
    assert [c.id for c in order if c] == [high_a.id, high_b.id, low_a.id, low_b.id, urgent.id]
    assert all(c is not None and c.status is IN_PROGRESS and c.started_at for c in order)
    assert all(c is not None and c.step_count == 6 and c.location == f'rack {c.source_slot}'
               for c in order)  # fmt: skip
    assert start_next(queue, fence) is None


def _fill_queue(queue: CommandQueue) -> list[int]:
    """Nine commands, one per slot: retrieve or process the full slots, store into empty."""
    ids = [queue.submit_retrieve(slot=slot).id for slot in ('A1', 'A2', 'A3', 'B1', 'B3')]
    ids += [queue.submit_store(flavor='CHOCO').id for _ in range(4)]
    return ids


def test_racing_schedulers_start_each_command_exactly_once(
    queue: CommandQueue, siblings: Callable[[int], list[CommandQueue]]
) -> None:
    schedulers = siblings(6)
    fence = lead(queue)  # the same lease, as if each thread were the leader for a moment
    for _round in range(3):
        submitted = _fill_queue(queue)
        taken: list[list[int]] = [[] for _ in schedulers]
        barrier = threading.Barrier(len(schedulers))

        def drain(scheduler: CommandQueue, ids: list[int], barrier: threading.Barrier) -> None:
            barrier.wait()
            while (command := start_next(scheduler, fence)) is not None:
                ids.append(command.id)

        threads = [
            threading.Thread(target=drain, args=(scheduler, ids, barrier))
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
            queue.finish(command_id, fence, status=FAILED, reason='round over')  # frees slots


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


# -- the journal and transitions -------------------------------------------------------------------


def _run_plan(queue: CommandQueue, command: CommandRecord, fence: Fence) -> CommandRecord:
    """Journal every plan step of ``command`` as the runner does, every step succeeding (the
    bake turns the cookie BAKED)."""
    workpiece = command.workpiece
    for index, step in enumerate(plan_for(command)):
        record, _ = queue.begin_step(
            command.id, step, fence, phase=Phase.PLAN, index=index, attempt=1, workpiece=workpiece
        )
        assert record.key == f'{command.id}.{command.uid}/P{index}/1'
        assert record.state is StepState.STARTED and len(command.uid) == 16
        if step.verb == 'bake':
            workpiece = replace(workpiece, status=WorkpieceStatus.BAKED)
        queue.end_step(
            record.key,
            fence,
            state=StepState.SUCCEEDED,
            location=step.destination,
            workpiece=workpiece,
            step_index=index + 1,
            change=step.slot_change(workpiece),
        )
    return queue.complete(command.id, fence)


def test_process_runs_to_completion_with_every_transition_recorded(queue: CommandQueue) -> None:
    fence = lead(queue)
    submitted = queue.submit_process(source_slot='A2')
    started = start_next(queue, fence)
    assert started is not None and started.id == submitted.id
    assert started.workpiece == Workpiece('w-a2', 'VANILLA', RAW)
    done = _run_plan(queue, started, fence)
    assert (done.status, done.step, done.message) == (COMPLETED, '', 'completed')
    assert (done.location, done.step_index, done.step_count) == ('rack A2', 13, 13)
    assert done.created_at < done.started_at < done.finished_at  # type: ignore[operator]
    events = queue.events(done.id)
    assert [(e.from_status, e.to_status) for e in events] == (
        [(None, PENDING), (PENDING, IN_PROGRESS)]
        + [(IN_PROGRESS, IN_PROGRESS)] * len(plan_for(started))
        + [(IN_PROGRESS, COMPLETED)]
    )
    assert events[2].reason == 'hbw retrieve A2 succeeded'
    assert all(a.at < b.at for a, b in itertools.pairwise(events))
    steps = queue.steps(done.id)
    assert [s.state for s in steps] == [StepState.SUCCEEDED] * 13
    assert steps[6].verb == 'bake' and steps[6].workpiece.status is WorkpieceStatus.BAKED
    slot = queue.inventory()[1]
    assert slot.workpiece == Workpiece('w-a2', 'VANILLA', WorkpieceStatus.BAKED)
    assert slot.reserved_by is None and slot.carrier_id == 'c-a2'
    history = queue.inventory_events('A2')
    assert [(e.command_id, e.workpiece.id) for e in history] == [
        (None, 'w-a2'),  # seeded
        (done.id, ''),  # taken out by 'hbw retrieve A2'
        (done.id, 'w-a2'),  # stored back BAKED
    ]
    assert history[1].reason == f'after step {done.id}.{done.uid}/P0/1'


def test_store_and_retrieve_change_the_inventory(queue: CommandQueue) -> None:
    fence = lead(queue)
    queue.submit_store(flavor='STRAWBERRY', workpiece_id='new-1')
    queue.submit_retrieve(slot='B1')
    for _ in range(2):
        command = start_next(queue, fence)
        assert command is not None
        _run_plan(queue, command, fence)
    inventory = {slot.slot: slot.workpiece for slot in queue.inventory()}
    assert inventory['B2'] == Workpiece('new-1', 'STRAWBERRY', RAW)
    assert inventory['B1'] == Workpiece()


def test_illegal_transitions_are_refused(queue: CommandQueue) -> None:
    fence = lead(queue)
    command = queue.submit_retrieve(slot='A1')
    with pytest.raises(Rejected, match='is PENDING, not IN_PROGRESS'):
        queue.complete(command.id, fence)
    start_next(queue, fence)
    queue.complete(command.id, fence)
    with pytest.raises(Rejected, match='is already COMPLETED'):
        queue.finish(command.id, fence, status=FAILED, reason='late')
    with pytest.raises(Rejected, match='no command 999'):
        queue.complete(999, fence)
    with pytest.raises(Rejected, match='positive integer'):
        queue.get(-1)
    with pytest.raises(ValueError, match='FAILED or CANCELLED'):
        queue.finish(command.id, fence, status=COMPLETED, reason='no')


def test_failure_reasons_are_cleaned_and_capped(queue: CommandQueue) -> None:
    fence = lead(queue)
    queue.submit_retrieve(slot='A1')
    command = start_next(queue, fence)
    assert command is not None
    reason = 'VGR_M2_GRIP 💥 stall\x00\n' + 'x' * 10_000 + '\udcff'
    failed = queue.finish(command.id, fence, status=FAILED, reason=reason)
    assert failed.status is FAILED and len(failed.message) == 500 and not failed.stranded
    assert failed.message.startswith('VGR_M2_GRIP 💥 stall  xxx') and failed.message.endswith('...')
    assert queue.get(command.id) == failed
    assert queue.inventory()[0].reserved_by is None  # still in the rack: nothing to return


def _take_out(queue: CommandQueue, fence: Fence, slot: str = 'A1') -> CommandRecord:
    """A PROCESS of ``slot`` started, its cookie retrieved and loaded onto the belt."""
    queue.submit_process(source_slot=slot)
    command = start_next(queue, fence)
    assert command is not None
    for index, step in enumerate(plan_for(command)[:2]):
        record, _ = queue.begin_step(
            command.id, step, fence, phase=Phase.PLAN, index=index, attempt=1,
            workpiece=command.workpiece,
        )  # fmt: skip
        command = queue.end_step(
            record.key, fence, state=StepState.SUCCEEDED, location=step.destination,
            workpiece=command.workpiece, step_index=index + 1,
            change=step.slot_change(command.workpiece),
        )  # fmt: skip
    return command


def test_a_command_ending_away_from_the_rack_is_stranded_until_its_cookie_is_back(
    queue: CommandQueue,
) -> None:
    fence = lead(queue)
    command = _take_out(queue, fence)
    assert command.location == 'conveyor belt entry' and command.step_index == 2
    assert [c.id for c in queue.elsewhere()] == [command.id]
    failed = queue.finish(command.id, fence, status=FAILED, reason='conveyor broke')
    assert failed.stranded and failed.message == (
        'conveyor broke; RAW_DOUGH CHOCO cookie w-a1 is at conveyor belt entry'
    )
    assert queue.inventory()[0].reserved_by == command.id  # A1 is kept for its return
    with pytest.raises(Rejected, match='reserved by'):
        queue.submit_store(flavor='CHOCO', slot='A1')
    assert [c.id for c in queue.unsettled()] == [command.id]
    back = queue.returned(command.id, fence, workpiece=failed.workpiece)
    assert not back.stranded and back.location == 'rack A1' and back.status is FAILED
    assert back.message.endswith('; returned to A1')
    slot = queue.inventory()[0]
    assert slot.workpiece.id == 'w-a1' and slot.reserved_by is None
    assert queue.unsettled() == () and queue.elsewhere() == ()


def test_a_lost_cookie_releases_its_slot(queue: CommandQueue) -> None:
    fence = lead(queue)
    command = _take_out(queue, fence)
    queue.finish(command.id, fence, status=CANCELLED, reason='cancelled')
    lost = queue.lost(command.id, fence, reason='lost on the belt')
    assert not lost.stranded and lost.message.endswith('; lost on the belt')
    assert queue.inventory()[0].reserved_by is None and not queue.inventory()[0].workpiece.id


def test_journal_keys_are_unique_and_the_last_step_is_read_back(queue: CommandQueue) -> None:
    fence = lead(queue)
    command = _take_out(queue, fence)
    step = plan_for(command)[2]
    first, _ = queue.begin_step(
        command.id, step, fence, phase=Phase.PLAN, index=2, attempt=1, workpiece=command.workpiece
    )
    assert queue.last_step(command.id) == first
    with pytest.raises(IntegrityError):  # an attempt is journalled once
        queue.begin_step(
            command.id, step, fence, phase=Phase.PLAN, index=2, attempt=1,
            workpiece=command.workpiece,
        )  # fmt: skip
    failed = queue.end_step(
        first.key, fence, state=StepState.FAILED, location=step.source,
        workpiece=command.workpiece, message='belt slipped',
    )  # fmt: skip
    assert failed.location == step.source and failed.step_index == 2
    assert queue.last_step(command.id).state is StepState.FAILED  # type: ignore[union-attr]
    assert queue.inventory_events('A1')[-1].command_id == command.id


# -- cancellation -------------------------------------------------------------------------------


def test_cancel_pending_removes_it_from_the_queue(queue: CommandQueue) -> None:
    command = queue.submit_retrieve(slot='A1')
    outcome = queue.cancel(command.id)
    assert not outcome.stop_required
    assert outcome.command.status is CANCELLED and outcome.command.finished_at is not None
    assert queue.peek_next() is None
    assert [e.to_status for e in queue.events(command.id)] == [PENDING, CANCELLED]


def test_cancel_running_is_recorded_for_the_runner(queue: CommandQueue) -> None:
    fence = lead(queue)
    command = queue.submit_retrieve(slot='A1')
    start_next(queue, fence)
    outcome = queue.cancel(command.id)
    assert outcome.stop_required and outcome.command.status is IN_PROGRESS
    assert outcome.command.cancel_requested
    assert queue.cancel(command.id).stop_required  # asking twice is harmless
    assert queue.inventory()[0].reserved_by == command.id  # still running
    cancelled = queue.finish(command.id, fence, status=CANCELLED, reason='cancelled')
    assert cancelled.status is CANCELLED and queue.inventory()[0].reserved_by is None
    assert [e.reason for e in queue.events(command.id)] == [
        'submitted',
        'started',
        'cancel requested',
        'cancelled',
    ]


def test_cancel_unknown_or_finished_is_refused(queue: CommandQueue) -> None:
    with pytest.raises(Rejected, match='no command 77'):
        queue.cancel(77)
    command = queue.submit_retrieve(slot='A1')
    queue.cancel(command.id)
    with pytest.raises(Rejected, match='already CANCELLED'):
        queue.cancel(command.id)


# -- the lease and fencing ----------------------------------------------------------------------


def test_the_lease_is_taken_when_its_heartbeat_stood_still_on_the_contenders_clock(
    queue: CommandQueue, siblings: Callable[[int], list[CommandQueue]]
) -> None:
    [standby] = siblings(1)  # another process: its own memory of the heartbeat
    first = queue.acquire_lease('g', 'a', now_ns=0, duration_ns=2_000)
    assert first > 0
    # The standby's clock is unrelated to the leader's (another host, a restarted sim clock).
    assert standby.acquire_lease('g', 'b', now_ns=10**12, duration_ns=2_000) == 0
    assert queue.acquire_lease('g', 'a', now_ns=1_000, duration_ns=2_000) == first  # a beat
    assert standby.acquire_lease('g', 'b', now_ns=10**12 + 1_500, duration_ns=2_000) == 0
    assert standby.acquire_lease('g', 'b', now_ns=10**12 + 3_000, duration_ns=2_000) == 0
    # 'a' dies: its heartbeat stands still for 2,000 ns of the standby's clock.
    second = standby.acquire_lease('g', 'b', now_ns=10**12 + 3_500, duration_ns=2_000)
    assert second > first
    assert queue.acquire_lease('g', 'a', now_ns=2_000, duration_ns=2_000) == 0
    standby.release_lease('g', 'b')
    assert queue.acquire_lease('g', 'a', now_ns=2_001, duration_ns=2_000) > second  # at once
    assert queue.acquire_lease('other', 'b', now_ns=0, duration_ns=2_000) > 0  # its own group


def test_a_deposed_leader_with_a_frozen_clock_cannot_write(
    queue: CommandQueue, siblings: Callable[[int], list[CommandQueue]]
) -> None:
    """The old leader freezes (its clock stops, it renews nothing); the standby's clock runs
    on and takes the lease; every write of the old leader is refused, whatever it believes."""
    lease_ns = 2_000_000_000
    old = Fence('g', 'old', queue.acquire_lease('g', 'old', now_ns=0, duration_ns=lease_ns))
    command = _take_out(queue, old)
    frozen = old  # it still believes it leads
    [standby] = siblings(1)
    assert standby.acquire_lease('g', 'new', now_ns=500_000_000, duration_ns=lease_ns) == 0
    new_token = standby.acquire_lease('g', 'new', now_ns=2_500_000_000, duration_ns=lease_ns)
    new = Fence('g', 'new', new_token)
    step = plan_for(command)[2]
    writes: list[Callable[[], object]] = [
        lambda: queue.begin_step(
            command.id,
            step,
            frozen,
            phase=Phase.PLAN,
            index=2,
            attempt=1,
            workpiece=command.workpiece,
        ),
        lambda: queue.complete(command.id, frozen),
        lambda: queue.finish(command.id, frozen, status=FAILED, reason='x'),
        lambda: queue.start(1, frozen, step_count=1, location='x'),
    ]
    before = row_counts(queue_engine(queue))
    for write in writes:
        with pytest.raises(LeaseLost, match='held by new'):
            write()
    assert row_counts(queue_engine(queue)) == before
    record, _ = queue.begin_step(
        command.id, step, new, phase=Phase.PLAN, index=2, attempt=1, workpiece=command.workpiece
    )
    assert record.fencing_token == new_token


def test_seeding_happens_only_once(queue: CommandQueue) -> None:
    assert not queue.seed_inventory([InventorySlot(slot='C1')])
    assert queue.inventory()[0].workpiece.id == 'w-a1'


def test_unseeded_inventory_reads_empty_and_refuses_commands(engine: Engine) -> None:
    queue = CommandQueue(engine=engine)
    assert queue.inventory() == () and queue.slots == ()
    with pytest.raises(Rejected, match='not initialised'):
        queue.submit_store(flavor='CHOCO')


def test_the_rack_slots_come_from_the_seeded_inventory(engine: Engine) -> None:
    queue = CommandQueue(engine=engine)
    with pytest.raises(Rejected, match='listed twice'):
        queue.seed_inventory([InventorySlot(slot='A1'), InventorySlot(slot='A1')])
    with pytest.raises(Rejected, match='not a rack slot'):
        queue.seed_inventory([InventorySlot(slot='1A')])
    assert queue.seed_inventory([InventorySlot(slot=s) for s in ('B2', 'A2', 'B1', 'A1')])
    assert queue.slots == ('A1', 'A2', 'B1', 'B2')  # a 2x2 rack, scan order
    assert queue.submit_store(flavor='CHOCO').target_slot == 'A1'
    with pytest.raises(Rejected, match="unknown slot 'C3'"):
        queue.submit_store(flavor='CHOCO', slot='C3')


# -- listing -----------------------------------------------------------------------------------


def test_list_is_newest_first_with_status_filter_and_limit(queue: CommandQueue) -> None:
    ids = [queue.submit_retrieve(slot=slot).id for slot in ('A1', 'A2', 'A3')]
    start_next(queue, lead(queue))
    assert [c.id for c in queue.list()] == ids[::-1]
    assert [c.id for c in queue.list(limit=2)] == ids[:0:-1]
    assert [c.id for c in queue.list('in_progress')] == [ids[0]]
    assert [c.id for c in queue.list(PENDING)] == ids[:0:-1]
    assert queue.list('') == queue.list()
    with pytest.raises(Rejected, match='unknown status'):
        queue.list('DONE')
    with pytest.raises(Rejected, match='non-negative'):
        queue.list(limit=-1)
