"""Durable command queue, step journal, rack inventory and leader lease of the scheduler, in
SQL (no transport import): every method is one transaction, committed before it returns.

A scheduler node wraps one :class:`CommandQueue`: service requests become ``submit_*`` /
``cancel`` / ``list`` calls; its runner (``stf_nodes.scheduler.runner``) starts commands and
journals their steps; the records returned are published after the call returned.

Policies:

- **Validation** (``validation``): a refused request raises :class:`Rejected` with a sentence
  for the client and persists nothing. The rack's slots are those of the inventory, which is
  seeded once from the HBW's rack (``seed_inventory``); until then every order is refused.
- **Validation against the current rack.** PROCESS needs a RAW_DOUGH cookie (of the flavor, if
  given), RETRIEVE a workpiece, STORE an empty slot. Without a slot, PROCESS and STORE scan the
  rack in slot order (row-major: A1, A2, A3, B1, ..., C3) and take the first suitable one.
- **Reservations.** An accepted command reserves its slot until its workpiece is settled
  (PROCESS: the slot its cookie comes from and returns to; STORE: the target; RETRIEVE: the
  source), so two queued commands never count on the same cookie or the same free slot; a
  command that ended with its cookie away from the rack (*stranded*) keeps the reservation
  until the cookie is back (``returned``) or given up (``lost``). Submissions and cancels
  lock the rack's rows (``SELECT ... FOR UPDATE``, in slot order; SQLite transactions are
  ``BEGIN IMMEDIATE``), so concurrent submitters, even other processes, cannot reserve one
  slot twice.
- **Group commit** (``commit_group``): the writes of concurrent requests run in one
  transaction; they read the rack once and insert their commands, reservations and events
  with one statement per table (``_Group``), each still validated and answered on its own.
- **Order and exactly-once start.** ``peek_next`` names the PENDING command with the highest
  priority, oldest first; ``start`` moves it to IN_PROGRESS with a compare-and-set, so a
  command is started at most once even with several schedulers on one database.
- **The journal.** ``begin_step`` records an attempt as STARTED before its task is sent;
  ``end_step`` records its outcome together with the command's progress (place of the
  workpiece, its status, steps done) and the inventory change of a step into or out of the
  rack, all in one transaction. A restarted scheduler reads ``last_step`` and resumes
  (``stf_nodes.scheduler.runner``); nothing is finished as "interrupted".
- **Fencing.** Every write of the runner takes a :class:`Fence` and checks, in the same
  transaction, that its lease (``acquire_lease``) is still held with that token; otherwise
  it raises :class:`LeaseLost` and writes nothing. The token grows with each change of holder
  (and is at least the wall clock in ms, so tokens keep growing across a new database:
  stations remember the highest). A holder that cannot renew stops by itself after its lease
  duration (``runner``); a contender takes over once the holder's heartbeat stood still that
  long on the contender's own clock.
- **Transitions.** PENDING -> IN_PROGRESS -> COMPLETED | FAILED | CANCELLED, plus PENDING ->
  CANCELLED (cancel); each is checked under a row lock and stored in ``command_events``.
- **Inventory.** The database owns the rack's contents: only commands change them (one slot
  change per step into or out of the rack), and the HBW is restored from them after it
  restarts; the HBW's own view never overwrites them (``stf_nodes.scheduler.runner``).
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields, replace
from datetime import datetime, timezone
from typing import Any, cast

from sqlalchemy import Connection, Engine, Row, Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from stf_nodes.scheduler import rows as mapping
from stf_nodes.scheduler.records import (
    CancelOutcome,
    CommandEvent,
    CommandKind,
    CommandRecord,
    CommandStatus,
    Fence,
    InventoryEvent,
    InventorySlot,
    LeaseLost,
    Phase,
    Rejected,
    SlotChange,
    StepRecord,
    StepState,
    Workpiece,
)
from stf_nodes.scheduler.routes import Step, is_away, rack_place
from stf_nodes.scheduler.validation import (
    clean_text,
    parse_command_id,
    parse_flavor,
    parse_limit,
    parse_priority,
    parse_request_key,
    parse_slot,
    parse_status,
    parse_workpiece_id,
)
from stf_nodes.storage.models import (
    STEP_LEN,
    TEXT_LEN,
    CommandEventRow,
    CommandRow,
    CommandStepRow,
    InventoryEventRow,
    InventoryRow,
    SchedulerLeaseRow,
)
from stf_nodes.workpieces import WorkpieceStatus, slot_order

_ACTIVE = (CommandStatus.PENDING, CommandStatus.IN_PROGRESS)
# The hot paths (submit, start, events) use Core statements on the tables: a fraction of the
# ORM unit of work's cost, and these rows are never read back as objects in the same call.
_COMMANDS = cast(Table, CommandRow.__table__)
_EVENTS = cast(Table, CommandEventRow.__table__)
_INVENTORY = cast(Table, InventoryRow.__table__)
# Statements with bound parameters, built once: building one per call costs more than running it.
_READ_RACK = (
    select(_INVENTORY)
    .where(_INVENTORY.c.slot.in_(bindparam('slots_', expanding=True)))
    .order_by(_INVENTORY.c.slot)
    .with_for_update()
)
_RESERVE = (
    update(_INVENTORY)
    .where(_INVENTORY.c.slot == bindparam('slot_'))
    .values(reserved_by=bindparam('command_'))
)
_INSERT_EVENT = insert(_EVENTS)
_INSERT_COMMANDS = insert(_COMMANDS).returning(_COMMANDS.c.id, _COMMANDS.c.uid)
#: The columns a new command is inserted with from its record (the database numbers it).
_INSERTED = tuple(f.name for f in fields(CommandRecord) if f.name in _COMMANDS.c and f.name != 'id')
_CANCEL_PENDING = (
    update(_COMMANDS)
    .where(_COMMANDS.c.id == bindparam('id_'), _COMMANDS.c.status == CommandStatus.PENDING)
    .values(
        status=CommandStatus.CANCELLED,
        message=bindparam('message_'),
        step='',
        finished_at=bindparam('now_'),
    )
)
_CANCEL_PENDING_RETURNING = _CANCEL_PENDING.returning(*_COMMANDS.c)
_PENDING_CANCELLED = 'cancelled while queued'
#: A request's reads and writes, run in a transaction it is given; returns the request's result.
Write = Callable[[Session], Any]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class _Group:
    """What the writes of one transaction share (kept in its ``session.info``), so a group of
    them costs few statements: the rack's rows, read and locked by the first write that needs
    them, with the reservations made and released since; and the new commands, reservations
    and journal events still to be written, by one statement each in ``flush`` before the
    commit. A write's reads therefore see the writes before it, as if each had run alone.

    A new command has no id until it is inserted: till then its reservation and its events
    name it by its uid, and its write's result has id 0 (``result`` gives the final one).
    Whatever needs the id or the row of a new command earlier inserts them all at once
    (``insert_new``)."""

    def __init__(self) -> None:
        self._rows: dict[str, Row[Any]] | None = None
        self._reserved: dict[str, int | str | None] = {}
        self._changed: set[str] = set()
        self._new: list[dict[str, Any]] = []
        self._ids: dict[str, int] = {}
        self._events: list[dict[str, Any]] = []

    @classmethod
    def of(cls, session: Session) -> _Group:
        group = session.info.get(_Group)
        if group is None:
            group = session.info[_Group] = cls()
        return group

    def rack(
        self, connection: Connection, slots: Sequence[str]
    ) -> tuple[dict[str, Row[Any]], dict[str, int | str | None]]:
        """The rack's rows (locked for the transaction) and who has reserved each slot now."""
        if self._rows is None:
            self._rows = _read_rack_for_update(connection, slots)
            self._reserved = {slot: row.reserved_by for slot, row in self._rows.items()}
        return self._rows, self._reserved

    def holder(self, connection: Connection, slot: str) -> int | None:
        """The id of the command that reserved ``slot`` (after ``rack``), or None."""
        if isinstance(self._reserved.get(slot), str):
            self.insert_new(connection)
        holder = self._reserved.get(slot)
        assert not isinstance(holder, str)
        return holder

    def add_command(
        self, command: CommandRecord, slot: str, now: datetime, request_key: str
    ) -> None:
        """Insert ``command`` (id 0, a new uid) with its reservation of ``slot``."""
        values = {column: getattr(command, column) for column in _INSERTED}
        self._new.append(values | {'request_key': request_key or None})
        self._reserve(slot, command.uid)
        self.add_event(command, None, 'submitted', now)

    def add_event(
        self, command: CommandRecord, previous: CommandStatus | None, reason: str, now: datetime
    ) -> None:
        event = _event_values(command, previous, reason, now)
        event['command_id'] = command.id or command.uid
        self._events.append(event)

    def release(self, connection: Connection, slots: Sequence[str], command_id: int) -> None:
        """Free the slot ``command_id`` reserved."""
        self.rack(connection, slots)
        for slot, holder in self._reserved.items():
            if holder == command_id:
                self._reserve(slot, None)

    def _reserve(self, slot: str, holder: int | str | None) -> None:
        self._reserved[slot] = holder
        self._changed.add(slot)

    def insert_new(self, connection: Connection) -> bool:
        """Insert the new commands (one statement), named by id from now on; whether there
        were any."""
        if not self._new:
            return False
        inserted = connection.execute(_INSERT_COMMANDS, self._new)
        self._ids.update({row.uid: row.id for row in inserted})
        self._new = []
        for slot, holder in self._reserved.items():
            if isinstance(holder, str):
                self._reserved[slot] = self._ids[holder]
        for event in self._events:
            if isinstance(event['command_id'], str):
                event['command_id'] = self._ids[event['command_id']]
        return True

    def flush(self, connection: Connection) -> None:
        """Write what the writes left, one statement per table."""
        self.insert_new(connection)
        if self._changed:
            changes = [
                {'slot_': slot, 'command_': self._reserved[slot]} for slot in sorted(self._changed)
            ]
            connection.execute(_RESERVE, changes)
            self._changed.clear()
        if self._events:
            connection.execute(_INSERT_EVENT, self._events)
            self._events = []

    def result(self, outcome: Any) -> Any:
        """A write's result after ``flush``: a new command with its id."""
        if isinstance(outcome, CommandRecord) and not outcome.id:
            return replace(outcome, id=self._ids[outcome.uid])
        return outcome


class CommandQueue:
    """The scheduler's durable queue, journal and inventory; see the module docstring.

    Thread-safe: every call runs in its own session and transaction.
    """

    def __init__(self, *, engine: Engine, clock: Callable[[], datetime] = _utcnow) -> None:
        """``clock`` returns aware UTC datetimes; a node using sim time passes its own."""
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._clock = clock
        self._slots: tuple[str, ...] = ()
        #: Lease name -> (holder, token, beat) last seen and the node time it was first seen.
        self._watched: dict[str, tuple[tuple[str, int, int], int]] = {}

    # -- the rack --------------------------------------------------------------------------

    @property
    def slots(self) -> tuple[str, ...]:
        """The rack's slots in scan order; empty until the inventory is seeded."""
        if not self._slots:
            with self._engine.connect() as connection:
                names: list[str] = list(connection.scalars(select(_INVENTORY.c.slot)))
            self._slots = tuple(sorted(names, key=slot_order))
        return self._slots

    def seed_inventory(self, slots: Iterable[InventorySlot]) -> bool:
        """Fill an empty inventory with ``slots`` (the whole rack, as the HBW reports it);
        returns whether it did. A seeded inventory is only changed by commands, so restarting
        with the initial configuration keeps the real stock."""
        contents = self._parse_contents(slots)
        now = self._clock()
        try:
            with self._transaction() as session:
                if session.scalar(select(InventoryRow.slot).limit(1)) is not None:
                    return False
                for entry in contents:
                    row = InventoryRow(slot=entry.slot, updated_at=now)
                    _store_contents(row, entry, now)
                    session.add(row)
                    session.flush()  # the event's foreign key needs the slot row
                    _add_inventory_event(session, row, None, 'seeded', now)
        except IntegrityError:  # another process seeded it concurrently
            return False
        self._slots = ()
        return True

    def _parse_contents(self, slots: Iterable[InventorySlot]) -> list[InventorySlot]:
        contents: dict[str, InventorySlot] = {}
        for entry in slots:
            try:
                slot_order(entry.slot)
            except ValueError:
                raise Rejected(f'not a rack slot: {entry.slot[:8]!r}') from None
            if entry.slot in contents:
                raise Rejected(f'slot {entry.slot} is listed twice')
            contents[entry.slot] = InventorySlot(
                slot=entry.slot,
                carrier_id=parse_workpiece_id(entry.carrier_id),
                workpiece=_parse_workpiece(entry.workpiece),
            )
        if not contents:
            raise Rejected('a rack has at least one slot')
        return sorted(contents.values(), key=lambda entry: slot_order(entry.slot))

    # -- submission ------------------------------------------------------------------------

    def submit_process(
        self, *, source_slot: str = '', flavor: str = '', priority: int = 0, request_key: str = ''
    ) -> CommandRecord:
        """Queue baking the RAW_DOUGH cookie in ``source_slot`` (empty: pick one of ``flavor``,
        empty: any flavor). Keyword-only like all submissions: slots and flavors are both strings
        and the three services order them differently. A ``request_key`` the database knows
        returns the command it made, as it is now (a client's retry after a lost reply)."""
        write = self.process_write(
            source_slot=source_slot, flavor=flavor, priority=priority, request_key=request_key
        )
        return cast(CommandRecord, self._commit(write))

    def submit_store(
        self, *, flavor: str, slot: str = '', priority: int = 0, workpiece_id: str = ''
    ) -> CommandRecord:
        """Queue storing a new RAW_DOUGH cookie of ``flavor`` into ``slot`` (empty: the first
        free one); ``workpiece_id`` must not be in the rack yet, empty generates one."""
        write = self.store_write(
            flavor=flavor, slot=slot, priority=priority, workpiece_id=workpiece_id
        )
        return cast(CommandRecord, self._commit(write))

    def submit_retrieve(self, *, slot: str, priority: int = 0) -> CommandRecord:
        """Queue taking the workpiece in ``slot`` out to the output."""
        return cast(CommandRecord, self._commit(self.retrieve_write(slot=slot, priority=priority)))

    # Each submission and cancel is also available as a *write*: the request checked on its own
    # (raising Rejected at once), then a function doing its reads and writes in a transaction
    # it is given, so `commit_group` can run the writes of concurrent requests in one. A write
    # raises Rejected only before its first change (commit_group relies on it). Part of what it
    # writes waits in the transaction's `_Group` until `commit_group` flushes it, which also
    # gives a new command its id in the write's result.

    def process_write(
        self, *, source_slot: str = '', flavor: str = '', priority: int = 0, request_key: str = ''
    ) -> Write:
        """``submit_process`` as a write."""
        return functools.partial(
            self._submit,
            kind=CommandKind.PROCESS,
            slot=parse_slot(source_slot, self.slots, required=False),
            flavor=parse_flavor(flavor, required=False),
            priority=parse_priority(priority),
            request_key=parse_request_key(request_key),
        )

    def store_write(
        self, *, flavor: str, slot: str = '', priority: int = 0, workpiece_id: str = ''
    ) -> Write:
        """``submit_store`` as a write."""
        return functools.partial(
            self._submit,
            kind=CommandKind.STORE,
            slot=parse_slot(slot, self.slots, required=False),
            flavor=parse_flavor(flavor, required=True),
            priority=parse_priority(priority),
            workpiece_id=parse_workpiece_id(workpiece_id),
        )

    def retrieve_write(self, *, slot: str, priority: int = 0) -> Write:
        """``submit_retrieve`` as a write."""
        return functools.partial(
            self._submit,
            kind=CommandKind.RETRIEVE,
            slot=parse_slot(slot, self.slots, required=True),
            flavor='',
            priority=parse_priority(priority),
        )

    def cancel_write(self, command_id: int) -> Write:
        """``cancel`` as a write."""
        command_id = parse_command_id(command_id)
        return lambda session: self._cancel(session, command_id)

    def commit_group(self, writes: Sequence[Write]) -> list[Any]:
        """Run ``writes`` in one transaction, committed once (group commit); per write, its
        result or the Rejected / SQLAlchemyError that undid it alone.

        A write refuses (raises Rejected) before it writes anything, so a refused request
        simply leaves the transaction to the others. A database error inside a write may
        leave part of it written: then the transaction is rolled back and each write runs
        again in a transaction of its own, so the error reaches only the request that caused
        it. An error of the group's transaction itself (its commit, a lost connection) is
        raised: nothing of the group was committed.

        The writes share the rack (``_Group``), read and locked once; the group's new
        commands, reservations and journal events are written by one statement per table
        after the last write, before the commit."""
        if len(writes) == 1:
            return [self._commit_alone(writes[0])]
        outcomes: list[Any] = []
        written = False
        try:
            with self._transaction() as session:
                for write in writes:
                    try:
                        outcomes.append(write(session))
                    except Rejected as exc:
                        outcomes.append(exc)
                group = _Group.of(session)
                group.flush(session.connection())
                written = True
        except SQLAlchemyError:
            if written:
                raise  # the commit: whether it happened is unknown, so nothing is run again
            return [self._commit_alone(write) for write in writes]
        return [group.result(outcome) for outcome in outcomes]

    def _commit_alone(self, write: Write) -> Any:
        outcome = self._outcome(write)
        if isinstance(outcome, IntegrityError):
            # Another transaction committed a row this write conflicts with (the same request
            # key, from a deposed leader still committing): once more, now seeing that row.
            outcome = self._outcome(write)
        return outcome

    def _outcome(self, write: Write) -> Any:
        try:
            return self._commit(write)
        except (Rejected, SQLAlchemyError) as exc:
            return exc

    def _commit(self, write: Write) -> Any:
        with self._transaction() as session:
            result = write(session)
            group = _Group.of(session)
            group.flush(session.connection())
            return group.result(result)

    def _submit(
        self,
        session: Session,
        kind: CommandKind,
        *,
        slot: str,
        flavor: str,
        priority: int,
        workpiece_id: str = '',
        request_key: str = '',
    ) -> CommandRecord:
        connection = session.connection()
        group = _Group.of(session)
        if request_key:
            group.insert_new(connection)  # an order before it in the group may carry the key
            made = connection.execute(
                select(_COMMANDS).where(_COMMANDS.c.request_key == request_key)
            ).first()
            if made is not None:
                return _same_request(mapping.command_record(made), kind, slot, flavor)
        now = self._clock()
        rows, reserved = group.rack(connection, self.slots)
        if kind is CommandKind.STORE and workpiece_id:
            group.insert_new(connection)  # they may carry it
            _check_new_workpiece(connection, workpiece_id)
        if slot:
            problem = _reservation_problem(rows.get(slot), group.holder(connection, slot), slot)
            problem = problem or _content_problem(kind, rows[slot], flavor)
            if problem:
                raise Rejected(problem)
            chosen, how = rows[slot], 'requested'
        else:
            chosen = _choose_slot(kind, rows, reserved, self.slots, flavor)
            how = 'chosen automatically'
        if kind is CommandKind.STORE and not workpiece_id:
            workpiece_id = uuid.uuid4().hex[:14]  # the length of a 7-byte NFC tag uid
        command = _new_command(kind, chosen, flavor, priority, workpiece_id, now, how)
        group.add_command(command, chosen.slot, now, request_key)
        return command

    def cancel(self, command_id: int) -> CancelOutcome:
        """Cancel a command: a PENDING one is CANCELLED at once; for a running one the cancel
        request is recorded and ``stop_required`` tells the caller (the runner) to end it
        after its running step. Unknown or finished commands are refused."""
        return cast(CancelOutcome, self._commit(self.cancel_write(command_id)))

    def _cancel(self, session: Session, command_id: int) -> CancelOutcome:
        now = self._clock()
        # The common case, a queued command, in prepared statements (the submission rate
        # depends on it); anything else takes the locking path below.
        connection = session.connection()
        values = {'id_': command_id, 'message_': _PENDING_CANCELLED, 'now_': now}
        if connection.dialect.update_returning:
            row = connection.execute(_CANCEL_PENDING_RETURNING, values).first()
        elif connection.execute(_CANCEL_PENDING, values).rowcount == 1:
            row = connection.execute(select(_COMMANDS).where(_COMMANDS.c.id == command_id)).one()
        else:
            row = None
        group = _Group.of(session)
        if row is not None:
            group.release(connection, self.slots, command_id)
            cancelled = mapping.command_record(row)
            group.add_event(cancelled, CommandStatus.PENDING, _PENDING_CANCELLED, now)
            return CancelOutcome(command=cancelled, stop_required=False)
        if group.insert_new(connection):  # it may be one of them
            return self._cancel(session, command_id)
        # Not PENDING above, so running (a command never returns to PENDING) or refused.
        running = _lock_command(session, command_id, _ACTIVE)
        if not running.cancel_requested:
            running.cancel_requested = True
            running.message = 'cancel requested; the workpiece goes back to the rack'
            _add_event(session, running, CommandStatus.IN_PROGRESS, 'cancel requested', now)
        return CancelOutcome(command=mapping.command_record(running), stop_required=True)

    # -- execution (the runner; every write fenced) -----------------------------------------

    def peek_next(self) -> CommandRecord | None:
        """The PENDING command to start next (priority, then arrival), or None."""
        with self._engine.connect() as connection:
            row = connection.execute(
                select(_COMMANDS)
                .where(_COMMANDS.c.status == CommandStatus.PENDING)
                .order_by(_COMMANDS.c.priority.desc(), _COMMANDS.c.id)
                .limit(1)
            ).first()
        return None if row is None else mapping.command_record(row)

    def start(
        self, command_id: int, fence: Fence, *, step_count: int, location: str
    ) -> CommandRecord | None:
        """Move a PENDING command to IN_PROGRESS (compare-and-set); None if it is no longer
        pending (cancelled, or started by another scheduler)."""
        now = self._clock()
        with self._transaction() as session:
            _check_fence(session, fence)
            command = session.get(CommandRow, command_id, with_for_update=True)
            if command is None or command.status != CommandStatus.PENDING:
                return None
            command.status = CommandStatus.IN_PROGRESS
            command.started_at = now
            command.message = 'started'
            command.step_count = step_count
            command.location = location
            command.workpiece_status = int(
                WorkpieceStatus.RAW_DOUGH
                if command.kind == CommandKind.STORE
                else _slot_status(session, command.source_slot)
            )
            _add_event(session, command, CommandStatus.PENDING, 'started', now)
            return mapping.command_record(command)

    def begin_step(
        self,
        command_id: int,
        step: Step,
        fence: Fence,
        *,
        phase: Phase,
        index: int,
        attempt: int,
        workpiece: Workpiece,
    ) -> tuple[StepRecord, CommandRecord]:
        """Journal an attempt of ``step`` as STARTED (the task is sent afterwards); its key is
        ``<command>.<uid>/<P|R><index>/<attempt>``: unique beyond this database, because the
        stations remember keys longer than a database may live. Returns the entry and the
        command."""
        now = self._clock()
        with self._transaction() as session:
            _check_fence(session, fence)
            command = _lock_command(session, command_id, (*_ACTIVE, *_FINISHED))
            prefix = 'P' if phase is Phase.PLAN else 'R'
            key = f'{command_id}.{command.uid}/{prefix}{index}/{attempt}'
            row = CommandStepRow(
                command_id=command_id,
                phase=int(phase),
                step_index=index,
                attempt=attempt,
                key=key,
                station=step.station,
                verb=step.verb,
                target=step.target,
                value=step.value,
                source=step.source,
                destination=step.destination,
                state=int(StepState.STARTED),
                workpiece_id=workpiece.id,
                flavor=workpiece.flavor,
                workpiece_status=int(workpiece.status),
                fencing_token=fence.token,
                started_at=now,
            )
            session.add(row)
            if command.status == CommandStatus.IN_PROGRESS:
                command.step = clean_text(step.label, STEP_LEN)
                command.message = clean_text(f'{step.label} started (attempt {attempt})', TEXT_LEN)
            session.flush()
            return mapping.step_record(row), mapping.command_record(command)

    def end_step(
        self,
        key: str,
        fence: Fence,
        *,
        state: StepState,
        location: str,
        workpiece: Workpiece,
        message: str = '',
        step_index: int | None = None,
        change: SlotChange | None = None,
    ) -> CommandRecord:
        """Journal the outcome of the attempt ``key`` and, in the same transaction, the
        command's progress: where its workpiece is now, the workpiece's status, the plan steps
        done (``step_index``, plan steps only) and ``change`` to the inventory."""
        now = self._clock()
        with self._transaction() as session:
            _check_fence(session, fence)
            row = session.scalars(
                select(CommandStepRow).where(CommandStepRow.key == key).with_for_update()
            ).one()
            command = _lock_command(session, row.command_id, (*_ACTIVE, *_FINISHED))
            row.state = int(state)
            row.message = clean_text(message, TEXT_LEN)
            row.finished_at = now
            if state is StepState.SUCCEEDED:
                row.workpiece_id, row.flavor = workpiece.id, workpiece.flavor
                row.workpiece_status = int(workpiece.status)
            command.location = location
            if workpiece.present:
                command.workpiece_status = int(workpiece.status)
            if step_index is not None:
                command.step_index = step_index
            if change is not None:
                _apply_change(session, change, command, f'after step {row.key}', now)
            if command.status == CommandStatus.IN_PROGRESS:
                reason = f'{row.station} {row.verb} {row.target} {state.name.lower()}'
                command.message = clean_text(f'{reason}; at {location}', TEXT_LEN)
                _add_event(session, command, CommandStatus.IN_PROGRESS, reason, now)
            return mapping.command_record(command)

    def complete(self, command_id: int, fence: Fence) -> CommandRecord:
        """Finish the running command successfully (its last step ended)."""
        now = self._clock()
        with self._transaction() as session:
            _check_fence(session, fence)
            command = _lock_command(session, command_id, (CommandStatus.IN_PROGRESS,))
            _finish(session, command, CommandStatus.COMPLETED, 'completed', now)
            return mapping.command_record(command)

    def finish(
        self, command_id: int, fence: Fence, *, status: CommandStatus, reason: str
    ) -> CommandRecord:
        """End a running command as FAILED or CANCELLED where its workpiece is now; away from
        the rack it is *stranded*: it keeps its slot reserved until ``returned``/``lost``."""
        if status not in (CommandStatus.FAILED, CommandStatus.CANCELLED):
            raise ValueError(f'finish is for FAILED or CANCELLED, not {status.name}')
        now = self._clock()
        with self._transaction() as session:
            _check_fence(session, fence)
            command = _lock_command(session, command_id, (CommandStatus.IN_PROGRESS,))
            stranded = is_away(command.location)
            if stranded:
                reason = f'{reason}; {_describe_workpiece(command)} is at {command.location}'
            _finish(session, command, status, reason, now, keep_reservation=stranded)
            command.stranded = stranded
            return mapping.command_record(command)

    def returned(self, command_id: int, fence: Fence, *, workpiece: Workpiece) -> CommandRecord:
        """A stranded command's workpiece is back in its reserved slot: store it, release the
        reservation, clear ``stranded``."""
        now = self._clock()
        with self._transaction() as session:
            _check_fence(session, fence)
            command = _lock_command(session, command_id, _FINISHED)
            slot = command.source_slot or command.target_slot
            change = SlotChange(slot=slot, workpiece=workpiece)
            _apply_change(session, change, command, 'returned to the rack', now)
            _release(session, command)
            command.stranded = False
            command.location = rack_place(slot)
            command.message = clean_text(f'{command.message}; returned to {slot}', TEXT_LEN)
            _add_event(session, command, CommandStatus(command.status), f'returned to {slot}', now)
            return mapping.command_record(command)

    def lost(self, command_id: int, fence: Fence, *, reason: str) -> CommandRecord:
        """Give up a stranded workpiece that cannot be found: release its reservation."""
        now = self._clock()
        with self._transaction() as session:
            _check_fence(session, fence)
            command = _lock_command(session, command_id, _FINISHED)
            _release(session, command)
            command.stranded = False
            command.message = clean_text(f'{command.message}; {reason}', TEXT_LEN)
            _add_event(session, command, CommandStatus(command.status), reason, now)
            return mapping.command_record(command)

    # -- the lease -------------------------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, *, now_ns: int, duration_ns: int) -> int:
        """Take or renew lease ``name`` for ``holder``; returns the fencing token, or 0 while
        another holder keeps renewing it.

        The holder renews by counting its heartbeat (``beat``) up; call this every
        ``duration_ns / 10`` or so (a contender too: its takeover is up to one interval late).
        A contender compares no clocks: it watches the heartbeat on
        its own steady clock (``now_ns``) and takes the lease once the beat has stood still for
        the holder's ``duration_ns``, or at once when the lease was given up. Hosts with
        skewed clocks, and a sim clock that restarted after a power loss, therefore never
        leave the factory without a leader.
        """
        wall = datetime.now(timezone.utc)
        try:
            with self._transaction() as session:
                lease = session.get(SchedulerLeaseRow, name, with_for_update=True)
                if lease is None:
                    lease = SchedulerLeaseRow(name=name, token=0, holder='', beat=0)
                    session.add(lease)
                elif lease.holder == holder:
                    lease.beat += 1
                    lease.duration_ns, lease.renewed_at = duration_ns, wall
                    return lease.token
                elif lease.holder and not self._stood_still(name, lease, now_ns):
                    return 0
                lease.token = max(lease.token + 1, time.time_ns() // 1_000_000)
                lease.holder, lease.beat = holder, 0
                lease.duration_ns, lease.renewed_at = duration_ns, wall
                session.flush()
                self._watched.pop(name, None)
                return lease.token
        except IntegrityError:  # another scheduler created the row at the same moment
            return 0

    def _stood_still(self, name: str, lease: SchedulerLeaseRow, now_ns: int) -> bool:
        """Whether ``lease``'s heartbeat has not moved for its duration on our clock."""
        seen = (lease.holder, lease.token, lease.beat)
        watched = self._watched.get(name)
        if watched is None or watched[0] != seen or now_ns < watched[1]:  # moved, or clock reset
            self._watched[name] = (seen, now_ns)
            return False
        return now_ns - watched[1] >= lease.duration_ns

    def release_lease(self, name: str, holder: str) -> None:
        """Give lease ``name`` up at once (a clean shutdown), if ``holder`` holds it."""
        with self._transaction() as session:
            session.execute(
                update(SchedulerLeaseRow)
                .where(SchedulerLeaseRow.name == name, SchedulerLeaseRow.holder == holder)
                .values(holder='')
            )

    # -- queries ---------------------------------------------------------------------------

    def get(self, command_id: int) -> CommandRecord | None:
        """The command with this id, or None."""
        with self._transaction() as session:
            command = session.get(CommandRow, parse_command_id(command_id))
            return None if command is None else mapping.command_record(command)

    def list(
        self, status: CommandStatus | str | None = None, limit: int = 0
    ) -> tuple[CommandRecord, ...]:
        """Commands newest first; ``status`` a CommandStatus or its name (empty/None: all),
        ``limit`` 0 for all."""
        wanted = parse_status(status)
        query = select(CommandRow).order_by(CommandRow.id.desc())
        if wanted is not None:
            query = query.where(CommandRow.status == wanted)
        if parse_limit(limit):
            query = query.limit(limit)
        with self._transaction() as session:
            return tuple(mapping.command_record(row) for row in session.scalars(query))

    def unsettled(self) -> tuple[CommandRecord, ...]:
        """What the runner has to carry on with, oldest first: commands IN_PROGRESS (to
        resume) and stranded ones (to bring their workpiece back)."""
        query = (
            select(CommandRow)
            .where((CommandRow.status == CommandStatus.IN_PROGRESS) | CommandRow.stranded.is_(True))
            .order_by(CommandRow.id)
        )
        with self._transaction() as session:
            return tuple(mapping.command_record(row) for row in session.scalars(query))

    def events(self, command_id: int) -> tuple[CommandEvent, ...]:
        """The audit trail of one command, oldest first."""
        query = (
            select(CommandEventRow)
            .where(CommandEventRow.command_id == parse_command_id(command_id))
            .order_by(CommandEventRow.id)
        )
        with self._transaction() as session:
            return tuple(mapping.event_record(row) for row in session.scalars(query))

    def steps(self, command_id: int) -> tuple[StepRecord, ...]:
        """The step journal of one command, oldest first."""
        query = (
            select(CommandStepRow)
            .where(CommandStepRow.command_id == parse_command_id(command_id))
            .order_by(CommandStepRow.id)
        )
        with self._transaction() as session:
            return tuple(mapping.step_record(row) for row in session.scalars(query))

    def last_step(self, command_id: int) -> StepRecord | None:
        """The newest journal entry of one command, or None."""
        query = (
            select(CommandStepRow)
            .where(CommandStepRow.command_id == parse_command_id(command_id))
            .order_by(CommandStepRow.id.desc())
            .limit(1)
        )
        with self._transaction() as session:
            row = session.scalars(query).first()
            return None if row is None else mapping.step_record(row)

    def inventory(self) -> tuple[InventorySlot, ...]:
        """Every slot of the rack in scan order (empty before seeding)."""
        with self._transaction() as session:
            rows = session.scalars(select(InventoryRow)).all()
            return tuple(
                mapping.slot_record(row) for row in sorted(rows, key=lambda r: slot_order(r.slot))
            )

    def elsewhere(self) -> tuple[CommandRecord, ...]:
        """Commands whose workpiece is in the factory but not in the rack (running, or
        stranded), oldest first."""
        return tuple(command for command in self.unsettled() if is_away(command.location))

    def inventory_events(self, slot: str = '') -> tuple[InventoryEvent, ...]:
        """Changes of the rack contents (of one slot, if given), oldest first."""
        query = select(InventoryEventRow).order_by(InventoryEventRow.id)
        wanted = parse_slot(slot, self.slots, required=False) if slot else ''
        if wanted:
            query = query.where(InventoryEventRow.slot == wanted)
        with self._transaction() as session:
            return tuple(mapping.inventory_event_record(row) for row in session.scalars(query))

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session


_FINISHED = (CommandStatus.COMPLETED, CommandStatus.FAILED, CommandStatus.CANCELLED)


def _check_fence(session: Session, fence: Fence) -> None:
    """Raise LeaseLost unless ``fence`` still holds its lease (row locked for the transaction)."""
    lease = session.get(SchedulerLeaseRow, fence.name, with_for_update=True)
    if lease is None or lease.holder != fence.holder or lease.token != fence.token:
        holder = f'{lease.holder} (token {lease.token})' if lease and lease.holder else 'nobody'
        raise LeaseLost(f'lease {fence.name} is held by {holder}, not token {fence.token}')


def _parse_workpiece(workpiece: Workpiece) -> Workpiece:
    if not parse_workpiece_id(workpiece.id):
        return Workpiece()
    try:
        status = WorkpieceStatus(workpiece.status)
    except ValueError:
        raise Rejected(f'unknown workpiece status {workpiece.status!r:.20}') from None
    return Workpiece(
        id=workpiece.id, flavor=parse_flavor(workpiece.flavor, required=True), status=status
    )


def _read_rack_for_update(connection: Connection, slots: Iterable[str]) -> dict[str, Row[Any]]:
    """The inventory rows of ``slots``, locked for this transaction in slot order (a fixed
    lock order: concurrent submitters cannot deadlock), as plain rows: skipping the ORM
    halves the cost of a submission."""
    rows = connection.execute(_READ_RACK, {'slots_': list(slots)})
    return {row.slot: row for row in rows}


def _lock_slot(session: Session, slot: str) -> InventoryRow | None:
    return session.get(InventoryRow, slot, with_for_update=True)


def _slot_status(session: Session, slot: str) -> WorkpieceStatus:
    row = session.get(InventoryRow, slot)
    return WorkpieceStatus.UNKNOWN if row is None else WorkpieceStatus(row.status)


def _lock_command(
    session: Session, command_id: int, allowed: Iterable[CommandStatus]
) -> CommandRow:
    """The command row, locked; refused unless its status is one of ``allowed``."""
    allowed = tuple(allowed)
    command = session.get(CommandRow, parse_command_id(command_id), with_for_update=True)
    if command is None:
        raise Rejected(f'no command {command_id}')
    status = CommandStatus(command.status)
    if status not in allowed:
        expected = ' or '.join(state.name for state in allowed)
        done = ' already' if status.finished else ''
        raise Rejected(f'command {command_id} is{done} {status.name}, not {expected}')
    return command


def _reservation_problem(row: Row[Any] | None, holder: int | None, slot: str) -> str | None:
    if row is None:
        return f'slot {slot} is not in the inventory'
    if holder is not None:
        return f'slot {slot} is reserved by command {holder}'
    return None


def _content_problem(kind: CommandKind, row: Row[Any], flavor: str) -> str | None:
    """Why the slot's contents do not suit a new command of ``kind``, or None."""
    if kind is CommandKind.STORE:
        if row.workpiece_id:
            return f'slot {row.slot} is occupied by {mapping.describe_contents(row)}'
        return None
    if not row.workpiece_id:
        return f'slot {row.slot} is empty'
    if kind is CommandKind.PROCESS and row.status != WorkpieceStatus.RAW_DOUGH:
        return f'slot {row.slot} holds {mapping.describe_contents(row)}, not RAW_DOUGH'
    if flavor and row.flavor != flavor:
        return f'slot {row.slot} holds {mapping.describe_contents(row)}, not {flavor}'
    return None


def _choose_slot(
    kind: CommandKind,
    rows: dict[str, Row[Any]],
    reserved: dict[str, int | str | None],
    slots: Iterable[str],
    flavor: str,
) -> Row[Any]:
    for slot in slots:
        row = rows.get(slot)
        if row is not None and reserved[slot] is None and not _content_problem(kind, row, flavor):
            return row
    if kind is CommandKind.STORE:
        raise Rejected('no free slot: every slot is occupied or reserved')
    wanted = f'{flavor} ' if flavor else ''
    raise Rejected(f'no unreserved RAW_DOUGH {wanted}cookie in the rack')


def _check_new_workpiece(connection: Connection, workpiece_id: str) -> None:
    holder = connection.scalar(
        select(_INVENTORY.c.slot).where(_INVENTORY.c.workpiece_id == workpiece_id)
    )
    if holder is not None:
        raise Rejected(f'workpiece {workpiece_id} is already in slot {holder}')
    moving = connection.scalar(
        select(_COMMANDS.c.id).where(
            _COMMANDS.c.workpiece_id == workpiece_id,
            _COMMANDS.c.status.in_(_ACTIVE) | _COMMANDS.c.stranded.is_(True),
        )
    )
    if moving is not None:
        raise Rejected(f'workpiece {workpiece_id} belongs to command {moving}')


def _same_request(made: CommandRecord, kind: CommandKind, slot: str, flavor: str) -> CommandRecord:
    """``made``, the command a request's key already made, if the request asks for what it
    did (a repeat); a key used again for another order is refused."""
    asked_slot = made.target_slot if kind is CommandKind.STORE else made.source_slot
    if made.kind is not kind or (slot and slot != asked_slot) or (flavor and flavor != made.flavor):
        raise Rejected(f'request_key already used by command {made.id} for another order')
    return made


def _new_command(
    kind: CommandKind,
    slot_row: Row[Any],
    flavor: str,
    priority: int,
    workpiece_id: str,
    now: datetime,
    how: str,
) -> CommandRecord:
    """The record of a new command (``how`` its slot was found); its id is filled in after the
    insert."""
    slot = slot_row.slot
    if kind is CommandKind.STORE:
        source, target = '', slot
    else:
        flavor, workpiece_id = slot_row.flavor, slot_row.workpiece_id
        source, target = slot, (slot if kind is CommandKind.PROCESS else '')
    command = CommandRecord(
        id=0,
        kind=kind,
        status=CommandStatus.PENDING,
        priority=priority,
        source_slot=source,
        target_slot=target,
        flavor=flavor,
        workpiece_id=workpiece_id,
        step='',
        message='',
        cancel_requested=False,
        created_at=now,
        started_at=None,
        finished_at=None,
        uid=uuid.uuid4().hex[:16],
    )
    return replace(command, message=f'queued: {_describe(command)} ({how})')


def _describe(command: CommandRow | CommandRecord) -> str:
    kind = CommandKind(command.kind)
    if kind is CommandKind.PROCESS:
        return f'bake {command.flavor} cookie from {command.source_slot}'
    if kind is CommandKind.STORE:
        return f'store new {command.flavor} cookie into {command.target_slot}'
    return f'retrieve {command.flavor} {command.workpiece_id} from {command.source_slot}'


def _describe_workpiece(command: CommandRow) -> str:
    status = WorkpieceStatus(command.workpiece_status).name
    return f'{status} {command.flavor} cookie {command.workpiece_id}'


def _finish(
    session: Session,
    command: CommandRow,
    status: CommandStatus,
    reason: str,
    now: datetime,
    *,
    keep_reservation: bool = False,
) -> None:
    """Move an active command to a terminal status; release its slot unless kept."""
    previous = CommandStatus(command.status)
    command.status = status
    command.message = clean_text(reason, TEXT_LEN)
    command.step = ''
    command.finished_at = now
    if not keep_reservation:
        _release(session, command)
    _add_event(session, command, previous, command.message, now)


def _release(session: Session, command: CommandRow) -> None:
    session.execute(
        update(InventoryRow)
        .where(InventoryRow.reserved_by == command.id)
        .values(reserved_by=None)
        .execution_options(synchronize_session='fetch')
    )


def _apply_change(
    session: Session, change: SlotChange, command: CommandRow, reason: str, now: datetime
) -> InventoryRow:
    row = _lock_slot(session, change.slot)
    if row is None:
        raise Rejected(f'slot {change.slot} is not in the inventory')
    if row.reserved_by != command.id:
        owner = 'not reserved' if row.reserved_by is None else f'reserved by {row.reserved_by}'
        raise Rejected(f'slot {change.slot} is {owner}; command {command.id} cannot change it')
    contents = InventorySlot(slot=row.slot, carrier_id=row.carrier_id, workpiece=change.workpiece)
    _store_contents(row, contents, now)
    _add_inventory_event(session, row, command.id, reason, now)
    return row


def _store_contents(row: InventoryRow, contents: InventorySlot, now: datetime) -> None:
    row.carrier_id = contents.carrier_id
    row.workpiece_id = contents.workpiece.id
    row.flavor = contents.workpiece.flavor
    row.status = contents.workpiece.status
    row.updated_at = now


def _add_event(
    session: Session,
    command: CommandRow | CommandRecord,
    previous: CommandStatus | None,
    reason: str,
    now: datetime,
) -> None:
    session.execute(_INSERT_EVENT, _event_values(command, previous, reason, now))


def _event_values(
    command: CommandRow | CommandRecord,
    previous: CommandStatus | None,
    reason: str,
    now: datetime,
) -> dict[str, Any]:
    """A ``command_events`` row: ``command`` moved from ``previous`` to its status now."""
    return {
        'command_id': command.id,
        'from_status': previous,
        'to_status': command.status,
        'step': command.step,
        'reason': clean_text(reason, TEXT_LEN),
        'at': now,
    }


def _add_inventory_event(
    session: Session, row: InventoryRow, command_id: int | None, reason: str, now: datetime
) -> None:
    session.execute(
        insert(InventoryEventRow).values(
            slot=row.slot,
            command_id=command_id,
            carrier_id=row.carrier_id,
            workpiece_id=row.workpiece_id,
            flavor=row.flavor,
            status=row.status,
            reason=clean_text(reason, TEXT_LEN),
            at=now,
        )
    )
