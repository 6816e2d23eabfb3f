"""Durable command queue and rack inventory of the scheduler, in SQL (no transport import).

A scheduler node wraps one :class:`CommandQueue`: service requests become ``submit_*``/``cancel``
/``list`` calls, its executor loop calls ``next_command``, ``set_step``, ``complete``/``fail``,
and it publishes the returned records after the call returned: every method commits its
transaction (command row, audit-trail event, inventory change together) before returning.

Policies:

- **Validation.** Requests are checked before anything is written; a refused request raises
  :class:`Rejected` with a sentence for the client and persists nothing. Slot and flavor names
  are case-insensitive and surrounding whitespace is ignored (``' a1 '`` is ``A1``, ``'choco'``
  is ``CHOCO``); anything else that is not exactly one of ``SLOTS``/``FLAVORS`` in ASCII is
  refused, and the refusal quotes at most a few dozen characters of the input. Priorities are
  int32. Free text coming from the node (step names, failure reasons) is never refused: control
  characters are replaced and it is cut to the column width.
- **Validation against the current rack.** PROCESS needs a RAW_DOUGH cookie (of the flavor, if
  given), RETRIEVE a workpiece, STORE an empty slot. Without a slot, PROCESS and STORE scan the
  rack in ``SLOTS`` order (row-major: A1, A2, A3, B1, ..., C3) and take the first suitable one.
- **Reservations.** An accepted command reserves its slot until it finishes (PROCESS: the slot
  its cookie comes from and returns to; STORE: the target; RETRIEVE: the source), so two
  queued commands never count on the same cookie or the same free slot. A slot serves one
  unfinished command at a time: a RETRIEVE of a slot whose cookie is queued for baking is
  refused until the bake finishes. Submission locks the inventory rows it reads
  (``SELECT ... FOR UPDATE``; SQLite transactions are ``BEGIN IMMEDIATE``), so concurrent
  submitters, even other processes, cannot reserve one slot twice.
- **Order and exactly-once start.** ``next_command`` takes the PENDING command with the highest
  priority, oldest first, and moves it to IN_PROGRESS with a compare-and-set ``UPDATE ... WHERE
  status = PENDING``; a scheduler that loses the race looks again in a fresh transaction. A
  command is therefore started at most once even with several schedulers on one database.
  Running one command at a time is the caller's job: call ``next_command`` only when idle.
- **Transitions.** PENDING -> IN_PROGRESS -> COMPLETED | FAILED | CANCELLED, plus PENDING ->
  CANCELLED (cancel) and PENDING -> FAILED (invalidated by reconciliation, or ``fail``). Each
  is checked against the current status under a row lock, stored with its time and reason in
  ``command_events``, and releases the slot reservation when it finishes the command.
- **Crash safety** (:meth:`recover`, call it at start-up). Acknowledged commands are durable
  (committed before the id is returned). PENDING commands stay queued with their reservations.
  An IN_PROGRESS command was interrupted with the factory in an unknown state: it is not
  resumed (a step might run twice) but finished as FAILED, reason "interrupted: scheduler
  restarted", or CANCELLED when a cancel had been requested. The caller then reads the rack
  from the HBW and calls :meth:`reconcile_inventory`, which overwrites the stored contents,
  records each difference, and fails queued commands the new contents invalidate.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import datetime, timezone
from typing import Any, cast

from sqlalchemy import Connection, Engine, Row, Table, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from stf_nodes.scheduler.records import (
    FLAVORS,
    SLOTS,
    CancelOutcome,
    CommandEvent,
    CommandKind,
    CommandRecord,
    CommandStatus,
    InventoryEvent,
    InventorySlot,
    Reconciliation,
    Rejected,
    SlotChange,
    Workpiece,
    WorkpieceStatus,
)
from stf_nodes.storage.models import (
    ID_LEN,
    STEP_LEN,
    TEXT_LEN,
    CommandEventRow,
    CommandRow,
    InventoryEventRow,
    InventoryRow,
)

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
_ACTIVE = (CommandStatus.PENDING, CommandStatus.IN_PROGRESS)
_ID_PATTERN = re.compile(rf'[A-Za-z0-9][A-Za-z0-9_.:-]{{0,{ID_LEN - 1}}}')
_CONTROL = re.compile(r'[\x00-\x1f\x7f]')
_SHOWN = 40  # characters of a refused input quoted back in the reason
# The hot paths (submit, next_command, events) use Core statements on the tables: a fraction of
# the ORM unit of work's cost, and these rows are never read back as objects in the same call.
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
_RELEASE = (
    update(_INVENTORY)
    .where(_INVENTORY.c.reserved_by == bindparam('command_'))
    .values(reserved_by=None)
)
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
_PENDING_CANCELLED = 'cancelled while queued'


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class CommandQueue:
    """The scheduler's durable queue and inventory; see the module docstring for the policies.

    Thread-safe: every call runs in its own session and transaction.
    """

    def __init__(self, *, engine: Engine, clock: Callable[[], datetime] = _utcnow) -> None:
        """``clock`` returns aware UTC datetimes; a node using sim time passes its own."""
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._clock = clock

    # -- submission ------------------------------------------------------------------------

    def submit_process(
        self, *, source_slot: str = '', flavor: str = '', priority: int = 0
    ) -> CommandRecord:
        """Queue baking the RAW_DOUGH cookie in ``source_slot`` (empty: pick one of ``flavor``,
        empty: any flavor). Keyword-only like all submissions: slots and flavors are both strings
        and the three services order them differently."""
        return self._submit(
            CommandKind.PROCESS,
            slot=parse_slot(source_slot, required=False),
            flavor=parse_flavor(flavor, required=False),
            priority=parse_priority(priority),
        )

    def submit_store(
        self, *, flavor: str, slot: str = '', priority: int = 0, workpiece_id: str = ''
    ) -> CommandRecord:
        """Queue storing a new RAW_DOUGH cookie of ``flavor`` into ``slot`` (empty: the first
        free one); ``workpiece_id`` must not be in the rack yet, empty generates one."""
        return self._submit(
            CommandKind.STORE,
            slot=parse_slot(slot, required=False),
            flavor=parse_flavor(flavor, required=True),
            priority=parse_priority(priority),
            workpiece_id=parse_workpiece_id(workpiece_id),
        )

    def submit_retrieve(self, *, slot: str, priority: int = 0) -> CommandRecord:
        """Queue taking the workpiece in ``slot`` out to the output."""
        return self._submit(
            CommandKind.RETRIEVE,
            slot=parse_slot(slot, required=True),
            flavor='',
            priority=parse_priority(priority),
        )

    def _submit(
        self, kind: CommandKind, *, slot: str, flavor: str, priority: int, workpiece_id: str = ''
    ) -> CommandRecord:
        now = self._clock()
        with self._engine.begin() as session:
            rows = _read_rack_for_update(session, [slot] if slot else SLOTS)
            if not rows:
                raise Rejected('the inventory is not initialised yet')
            if kind is CommandKind.STORE and workpiece_id:
                _check_new_workpiece(session, workpiece_id)
            if slot:
                problem = _reservation_problem(rows.get(slot), slot) or _content_problem(
                    kind, rows[slot], flavor
                )
                if problem:
                    raise Rejected(problem)
                chosen, how = rows[slot], 'requested'
            else:
                chosen, how = _choose_slot(kind, rows, flavor), 'chosen automatically'
            if kind is CommandKind.STORE and not workpiece_id:
                workpiece_id = uuid.uuid4().hex[:14]  # the length of a 7-byte NFC tag uid
            command = _new_command(kind, chosen, flavor, priority, workpiece_id, now)
            command = replace(command, message=f'queued: {_describe(command)} ({how})')
            values = {name: value for name, value in asdict(command).items() if name != 'id'}
            inserted = session.execute(insert(_COMMANDS), values)
            command = replace(command, id=inserted.inserted_primary_key[0])
            session.execute(_RESERVE, {'slot_': chosen.slot, 'command_': command.id})
            _add_event(session, command, None, 'submitted', now)
            return command

    # -- execution -------------------------------------------------------------------------

    def next_command(self) -> CommandRecord | None:
        """Start the next PENDING command (priority, then arrival) or return None if none."""
        while True:
            # A fresh transaction per attempt: under REPEATABLE READ (MariaDB) a retry inside
            # the same transaction would keep seeing the command another scheduler just took.
            with self._engine.begin() as session:
                candidate = session.scalar(
                    select(_COMMANDS.c.id)
                    .where(_COMMANDS.c.status == CommandStatus.PENDING)
                    .order_by(_COMMANDS.c.priority.desc(), _COMMANDS.c.id)
                    .limit(1)
                )
                if candidate is None:
                    return None
                now = self._clock()
                taken = session.execute(
                    update(_COMMANDS)
                    .where(_COMMANDS.c.id == candidate, _COMMANDS.c.status == CommandStatus.PENDING)
                    .values(status=CommandStatus.IN_PROGRESS, started_at=now, message='started')
                )
                if taken.rowcount == 1:
                    row = session.execute(select(_COMMANDS).where(_COMMANDS.c.id == candidate))
                    command = _command_record(row.one())
                    _add_event(session, command, CommandStatus.PENDING, 'started', now)
                    return command

    def set_step(
        self, command_id: int, step: str, *, change: SlotChange | None = None
    ) -> CommandRecord:
        """Record that the running command now executes ``step``; ``change`` is the inventory
        effect of the step just finished, stored in the same transaction."""
        now = self._clock()
        with self._transaction() as session:
            command = _lock_command(session, command_id, (CommandStatus.IN_PROGRESS,))
            if change is not None:
                _apply_change(session, change, command, f'after step {command.step!r}', now)
            command.step = clean_text(step, STEP_LEN)
            _add_event(session, command, CommandStatus.IN_PROGRESS, 'step', now)
            return _command_record(command)

    def complete(
        self, command_id: int, *, message: str = 'completed', change: SlotChange | None = None
    ) -> CommandRecord:
        """Finish the running command successfully; ``change`` as for :meth:`set_step`."""
        now = self._clock()
        with self._transaction() as session:
            command = _lock_command(session, command_id, (CommandStatus.IN_PROGRESS,))
            if change is not None:
                _apply_change(session, change, command, f'after step {command.step!r}', now)
            _finish(session, command, CommandStatus.COMPLETED, message, now)
            return _command_record(command)

    def fail(self, command_id: int, reason: str) -> CommandRecord:
        """Finish a running or pending command as FAILED (station error, emergency stop)."""
        now = self._clock()
        with self._transaction() as session:
            command = _lock_command(session, command_id, _ACTIVE)
            _finish(session, command, CommandStatus.FAILED, reason, now)
            return _command_record(command)

    def cancel(self, command_id: int) -> CancelOutcome:
        """Cancel a command: a PENDING one is CANCELLED at once; for a running one the cancel
        request is recorded and ``stop_required`` tells the caller to stop the stations and
        call :meth:`finish_cancel`. Unknown or finished commands are refused."""
        now = self._clock()
        # The common case, a queued command, in prepared statements (the submission rate
        # depends on it); anything else takes the locking path below.
        with self._engine.begin() as connection:
            values = {'id_': command_id, 'message_': _PENDING_CANCELLED, 'now_': now}
            if connection.execute(_CANCEL_PENDING, values).rowcount == 1:
                connection.execute(_RELEASE, {'command_': command_id})
                row = connection.execute(select(_COMMANDS).where(_COMMANDS.c.id == command_id))
                command = _command_record(row.one())
                _add_event(connection, command, CommandStatus.PENDING, _PENDING_CANCELLED, now)
                return CancelOutcome(command=command, stop_required=False)
        with self._transaction() as session:
            # Not PENDING above, so running (a command never returns to PENDING) or refused.
            command = _lock_command(session, command_id, _ACTIVE)
            if not command.cancel_requested:
                command.cancel_requested = True
                command.message = 'cancel requested; stopping stations'
                _add_event(session, command, CommandStatus.IN_PROGRESS, 'cancel requested', now)
            return CancelOutcome(command=_command_record(command), stop_required=True)

    def finish_cancel(
        self, command_id: int, reason: str = 'cancelled; stations stopped'
    ) -> CommandRecord:
        """Finish a running command as CANCELLED once its stations have stopped."""
        now = self._clock()
        with self._transaction() as session:
            command = _lock_command(session, command_id, (CommandStatus.IN_PROGRESS,))
            _finish(session, command, CommandStatus.CANCELLED, reason, now)
            return _command_record(command)

    def recover(self) -> tuple[CommandRecord, ...]:
        """Finish the commands a previous scheduler left running (see the module docstring);
        returns them so the caller can announce the transitions."""
        now = self._clock()
        with self._transaction() as session:
            interrupted = session.scalars(
                select(CommandRow)
                .where(CommandRow.status == CommandStatus.IN_PROGRESS)
                .order_by(CommandRow.id)
                .with_for_update()
            ).all()
            for command in interrupted:
                during = f' during step {command.step!r}' if command.step else ''
                if command.cancel_requested:
                    status, reason = CommandStatus.CANCELLED, 'cancelled: scheduler restarted'
                else:
                    status, reason = CommandStatus.FAILED, 'interrupted: scheduler restarted'
                _finish(session, command, status, reason + during, now)
            return tuple(_command_record(command) for command in interrupted)

    # -- queries ---------------------------------------------------------------------------

    def get(self, command_id: int) -> CommandRecord | None:
        """The command with this id, or None."""
        with self._transaction() as session:
            command = session.get(CommandRow, parse_command_id(command_id))
            return None if command is None else _command_record(command)

    def list(
        self, status: CommandStatus | str | None = None, limit: int = 0
    ) -> tuple[CommandRecord, ...]:
        """Commands newest first; ``status`` a CommandStatus or its name (empty/None: all),
        ``limit`` 0 for all."""
        wanted = parse_status(status)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise Rejected(f'limit must be a non-negative integer, got {_show(limit)}')
        query = select(CommandRow).order_by(CommandRow.id.desc())
        if wanted is not None:
            query = query.where(CommandRow.status == wanted)
        if limit:
            query = query.limit(limit)
        with self._transaction() as session:
            return tuple(_command_record(row) for row in session.scalars(query))

    def events(self, command_id: int) -> tuple[CommandEvent, ...]:
        """The audit trail of one command, oldest first."""
        query = (
            select(CommandEventRow)
            .where(CommandEventRow.command_id == parse_command_id(command_id))
            .order_by(CommandEventRow.id)
        )
        with self._transaction() as session:
            return tuple(_event_record(row) for row in session.scalars(query))

    # -- inventory -------------------------------------------------------------------------

    def inventory(self) -> tuple[InventorySlot, ...]:
        """All nine slots in ``SLOTS`` order (a slot never stored reads as empty)."""
        with self._transaction() as session:
            rows = {row.slot: row for row in session.scalars(select(InventoryRow))}
            return tuple(
                _slot_record(rows[slot]) if slot in rows else InventorySlot(slot=slot)
                for slot in SLOTS
            )

    def inventory_events(self, slot: str = '') -> tuple[InventoryEvent, ...]:
        """Changes of the rack contents (of one slot, if given), oldest first."""
        query = select(InventoryEventRow).order_by(InventoryEventRow.id)
        wanted = parse_slot(slot, required=False)
        if wanted:
            query = query.where(InventoryEventRow.slot == wanted)
        with self._transaction() as session:
            return tuple(_inventory_event_record(row) for row in session.scalars(query))

    def seed_inventory(self, slots: Iterable[InventorySlot] = ()) -> bool:
        """Fill the inventory with ``slots`` (unlisted slots empty) if it has no rows yet;
        returns whether it did. A seeded inventory is only changed by commands and
        reconciliation, so restarting with the initial configuration keeps the real stock."""
        contents = _parse_contents(slots)
        now = self._clock()
        try:
            with self._transaction() as session:
                if session.scalar(select(func.count()).select_from(InventoryRow)):
                    return False
                for slot in SLOTS:
                    row = InventoryRow(slot=slot, updated_at=now)
                    _store_contents(row, contents.get(slot, InventorySlot(slot=slot)), now)
                    session.add(row)
                    session.flush()  # the event's foreign key needs the slot row
                    _add_inventory_event(session, row, None, 'seeded', now)
                return True
        except IntegrityError:  # another process seeded it concurrently
            return False

    def reconcile_inventory(
        self, slots: Iterable[InventorySlot], *, reason: str = 'reconciled with the HBW'
    ) -> Reconciliation:
        """Overwrite the listed slots with what the station reports (unlisted slots keep their
        contents), record each difference, and fail queued commands it invalidates."""
        contents = _parse_contents(slots)
        reason = clean_text(reason, TEXT_LEN // 2)
        now = self._clock()
        with self._transaction() as session:
            rows = _lock_inventory(session, SLOTS)
            changed = []
            for slot, reported in contents.items():
                row = rows.get(slot)
                if row is None:
                    row = rows[slot] = InventoryRow(slot=slot)
                    session.add(row)
                elif _workpiece(row) == reported.workpiece and (
                    row.carrier_id == reported.carrier_id
                ):
                    continue
                was = _describe_contents(row)
                _store_contents(row, reported, now)
                session.flush()
                _add_inventory_event(session, row, None, f'{reason}; was {was}', now)
                changed.append(row)
            failed = []
            for row in changed:
                if row.reserved_by is None:
                    continue
                command = _lock_command(session, row.reserved_by, _ACTIVE)
                # A running command is not second-guessed: its stations report its outcome.
                problem = command.status == CommandStatus.PENDING and _still_valid_problem(
                    command, row
                )
                if problem:
                    _finish(session, command, CommandStatus.FAILED, f'{reason}: {problem}', now)
                    failed.append(_command_record(command))
            return Reconciliation(
                changed=tuple(_slot_record(row) for row in changed), failed=tuple(failed)
            )

    def apply_inventory_change(
        self, change: SlotChange, *, command_id: int | None = None, reason: str = ''
    ) -> InventorySlot:
        """Record a workpiece entering or leaving a slot outside any step/transition call.

        With ``command_id`` the command must be running and hold the slot's reservation;
        without, the slot must not be reserved (a manual correction)."""
        now = self._clock()
        with self._transaction() as session:
            command = (
                None
                if command_id is None
                else _lock_command(session, command_id, (CommandStatus.IN_PROGRESS,))
            )
            row = _apply_change(session, change, command, clean_text(reason, TEXT_LEN), now)
            return _slot_record(row)

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session


# -- validation (pure) ---------------------------------------------------------------------


def _show(value: object) -> str:
    """A short printable quote of a refused input (never megabytes of it)."""
    if isinstance(value, str) and len(value) > _SHOWN:
        value = value[:_SHOWN]
        return repr(value)[:-1] + f'...{repr(value)[-1]}'
    return repr(value)[: _SHOWN + 10]


def _parse_name(value: object, allowed: Sequence[str], what: str, *, required: bool) -> str:
    if not isinstance(value, str):
        raise Rejected(f'{what} must be a string, got {type(value).__name__}')
    # Long inputs are refused unread: nothing below should ever work on megabytes.
    text = value.strip() if len(value) <= _SHOWN else None
    if text == '':
        if not required:
            return ''
        raise Rejected(f'a {what} is required: one of {", ".join(allowed)}')
    if text is not None and text.isascii() and text.upper() in allowed:
        return text.upper()
    raise Rejected(f'unknown {what} {_show(value)}: expected one of {", ".join(allowed)}')


def parse_slot(value: object, *, required: bool) -> str:
    """Normalise a slot name (``' a1 '`` -> ``'A1'``); empty allowed unless ``required``."""
    return _parse_name(value, SLOTS, 'slot', required=required)


def parse_flavor(value: object, *, required: bool) -> str:
    """Normalise a flavor name (``'choco'`` -> ``'CHOCO'``); empty allowed unless required."""
    return _parse_name(value, FLAVORS, 'flavor', required=required)


def parse_priority(value: object) -> int:
    """An int32 priority (higher runs first)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise Rejected(f'priority must be an integer, got {_show(value)}')
    if not INT32_MIN <= value <= INT32_MAX:
        raise Rejected(f'priority {value} is outside the int32 range')
    return value


def parse_command_id(value: object) -> int:
    """A positive command id."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise Rejected(f'command id must be a positive integer, got {_show(value)}')
    return value


def parse_workpiece_id(value: object) -> str:
    """A workpiece/carrier id: empty, or 1..32 ASCII letters, digits and ``_.:-``."""
    if not isinstance(value, str):
        raise Rejected(f'workpiece id must be a string, got {type(value).__name__}')
    if value and not _ID_PATTERN.fullmatch(value):
        raise Rejected(
            f'invalid id {_show(value)}: up to {ID_LEN} ASCII letters, digits, "_", ".", ":", "-"'
        )
    return value


def parse_status(value: object) -> CommandStatus | None:
    """A CommandStatus, its name (any case), or empty/None for "any"."""
    if value is None or value == '':
        return None
    if isinstance(value, CommandStatus):
        return value
    names = [status.name for status in CommandStatus]
    return CommandStatus[_parse_name(value, names, 'status', required=True)]


def clean_text(value: object, limit: int) -> str:
    """Free text made storable everywhere: control characters (PostgreSQL refuses NUL) and lone
    surrogates replaced, cut to ``limit`` characters."""
    text = str(value)[: limit * 2]
    text = text.encode('utf-8', 'replace').decode('utf-8')
    text = _CONTROL.sub(' ', text)
    return text if len(text) <= limit else text[: limit - 3] + '...'


def _parse_contents(slots: Iterable[InventorySlot]) -> dict[str, InventorySlot]:
    """Validated slot contents by slot; a slot listed twice is refused."""
    contents: dict[str, InventorySlot] = {}
    for entry in slots:
        slot = parse_slot(entry.slot, required=True)
        if slot in contents:
            raise Rejected(f'slot {slot} is listed twice')
        contents[slot] = InventorySlot(
            slot=slot,
            carrier_id=parse_workpiece_id(entry.carrier_id),
            workpiece=_parse_workpiece(entry.workpiece),
        )
    return contents


def _parse_workpiece(workpiece: Workpiece) -> Workpiece:
    if not parse_workpiece_id(workpiece.id):
        return Workpiece()
    try:
        status = WorkpieceStatus(workpiece.status)
    except ValueError:
        raise Rejected(f'unknown workpiece status {_show(workpiece.status)}') from None
    return Workpiece(
        id=workpiece.id, flavor=parse_flavor(workpiece.flavor, required=True), status=status
    )


# -- rows and records ----------------------------------------------------------------------


def _lock_inventory(session: Session, slots: Sequence[str]) -> dict[str, InventoryRow]:
    """The inventory rows of ``slots``, locked for this transaction, in slot order (a fixed
    lock order: concurrent submitters cannot deadlock)."""
    query = (
        select(InventoryRow)
        .where(InventoryRow.slot.in_(slots))
        .order_by(InventoryRow.slot)
        .with_for_update()
    )
    return {row.slot: row for row in session.scalars(query)}


def _read_rack_for_update(session: Connection, slots: Sequence[str]) -> dict[str, Row[Any]]:
    """As :func:`_lock_inventory`, as plain rows: submission only reads them, and skipping
    the ORM halves its cost."""
    return {row.slot: row for row in session.execute(_READ_RACK, {'slots_': list(slots)})}


def _lock_command(
    session: Session, command_id: int, allowed: Sequence[CommandStatus]
) -> CommandRow:
    """The command row, locked; refused unless its status is one of ``allowed``."""
    command = session.get(CommandRow, parse_command_id(command_id), with_for_update=True)
    if command is None:
        raise Rejected(f'no command {command_id}')
    status = CommandStatus(command.status)
    if status not in allowed:
        expected = ' or '.join(state.name for state in allowed)
        done = ' already' if status.finished else ''
        raise Rejected(f'command {command_id} is{done} {status.name}, not {expected}')
    return command


def _reservation_problem(row: InventoryRow | Row[Any] | None, slot: str) -> str | None:
    if row is None:
        return f'slot {slot} is not in the inventory'
    if row.reserved_by is not None:
        return f'slot {slot} is reserved by command {row.reserved_by}'
    return None


def _content_problem(kind: CommandKind, row: InventoryRow | Row[Any], flavor: str) -> str | None:
    """Why the slot's contents do not suit a new command of ``kind``, or None."""
    if kind is CommandKind.STORE:
        return (
            f'slot {row.slot} is occupied by {_describe_contents(row)}'
            if row.workpiece_id
            else None
        )
    if not row.workpiece_id:
        return f'slot {row.slot} is empty'
    if kind is CommandKind.PROCESS and row.status != WorkpieceStatus.RAW_DOUGH:
        return f'slot {row.slot} holds {_describe_contents(row)}, not RAW_DOUGH'
    if flavor and row.flavor != flavor:
        return f'slot {row.slot} holds {_describe_contents(row)}, not {flavor}'
    return None


def _still_valid_problem(command: CommandRow, row: InventoryRow) -> str | None:
    """Why a queued command no longer fits its reserved slot after the contents changed."""
    kind = CommandKind(command.kind)
    problem = _content_problem(kind, row, '' if kind is CommandKind.STORE else command.flavor)
    if (
        problem is None
        and kind is not CommandKind.STORE
        and row.workpiece_id != command.workpiece_id
    ):
        problem = f'slot {row.slot} now holds {_describe_contents(row)}'
    return problem


def _choose_slot(kind: CommandKind, rows: dict[str, Row[Any]], flavor: str) -> Row[Any]:
    for slot in SLOTS:
        row = rows.get(slot)
        if row is not None and row.reserved_by is None and not _content_problem(kind, row, flavor):
            return row
    if kind is CommandKind.STORE:
        raise Rejected('no free slot: every slot is occupied or reserved')
    wanted = f'{flavor} ' if flavor else ''
    raise Rejected(f'no unreserved RAW_DOUGH {wanted}cookie in the rack')


def _check_new_workpiece(session: Connection, workpiece_id: str) -> None:
    holder = session.scalar(
        select(InventoryRow.slot).where(InventoryRow.workpiece_id == workpiece_id)
    )
    if holder is not None:
        raise Rejected(f'workpiece {workpiece_id} is already in slot {holder}')


def _new_command(
    kind: CommandKind,
    slot_row: Row[Any],
    flavor: str,
    priority: int,
    workpiece_id: str,
    now: datetime,
) -> CommandRecord:
    """The record of a new command; its id is filled in after the insert."""
    slot = slot_row.slot
    if kind is CommandKind.STORE:
        source, target = '', slot
    else:
        flavor, workpiece_id = slot_row.flavor, slot_row.workpiece_id
        source, target = slot, (slot if kind is CommandKind.PROCESS else '')
    return CommandRecord(
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
    )


def _describe(command: CommandRow | CommandRecord) -> str:
    kind = CommandKind(command.kind)
    if kind is CommandKind.PROCESS:
        return f'bake {command.flavor} cookie from {command.source_slot}'
    if kind is CommandKind.STORE:
        return f'store new {command.flavor} cookie into {command.target_slot}'
    return f'retrieve {command.flavor} {command.workpiece_id} from {command.source_slot}'


def _describe_contents(row: InventoryRow | Row[Any]) -> str:
    if not row.workpiece_id:
        return 'nothing'
    return f'{WorkpieceStatus(row.status).name} {row.flavor} {row.workpiece_id}'


def _finish(
    session: Session, command: CommandRow, status: CommandStatus, reason: str, now: datetime
) -> None:
    """Move an active command to a terminal status and release its slot."""
    previous = CommandStatus(command.status)
    command.status = status
    command.message = clean_text(reason, TEXT_LEN)
    command.step = ''
    command.finished_at = now
    session.execute(
        update(InventoryRow)
        .where(InventoryRow.reserved_by == command.id)
        .values(reserved_by=None)
        .execution_options(synchronize_session='fetch')
    )
    _add_event(session, command, previous, command.message, now)


def _apply_change(
    session: Session, change: SlotChange, command: CommandRow | None, reason: str, now: datetime
) -> InventoryRow:
    slot = parse_slot(change.slot, required=True)
    workpiece = _parse_workpiece(change.workpiece)
    carrier = None if change.carrier_id is None else parse_workpiece_id(change.carrier_id)
    row = _lock_inventory(session, [slot]).get(slot)
    if row is None:
        raise Rejected(f'slot {slot} is not in the inventory')
    holder = None if command is None else command.id
    if row.reserved_by != holder:
        owner = 'not reserved' if row.reserved_by is None else f'reserved by {row.reserved_by}'
        actor = 'a manual change' if holder is None else f'command {holder}'
        raise Rejected(f'slot {slot} is {owner}; {actor} cannot change it')
    reported = InventorySlot(
        slot=slot, carrier_id=row.carrier_id if carrier is None else carrier, workpiece=workpiece
    )
    _store_contents(row, reported, now)
    _add_inventory_event(session, row, holder, reason or 'changed', now)
    return row


def _store_contents(row: InventoryRow, contents: InventorySlot, now: datetime) -> None:
    row.carrier_id = contents.carrier_id
    row.workpiece_id = contents.workpiece.id
    row.flavor = contents.workpiece.flavor
    row.status = contents.workpiece.status
    row.updated_at = now


def _add_event(
    session: Session | Connection,
    command: CommandRow | CommandRecord,
    previous: CommandStatus | None,
    reason: str,
    now: datetime,
) -> None:
    session.execute(
        insert(_EVENTS),
        {
            'command_id': command.id,
            'from_status': previous,
            'to_status': command.status,
            'step': command.step,
            'reason': clean_text(reason, TEXT_LEN),
            'at': now,
        },
    )


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


def _command_record(row: CommandRow | Row[Any]) -> CommandRecord:
    return CommandRecord(
        id=row.id,
        kind=CommandKind(row.kind),
        status=CommandStatus(row.status),
        priority=row.priority,
        source_slot=row.source_slot,
        target_slot=row.target_slot,
        flavor=row.flavor,
        workpiece_id=row.workpiece_id,
        step=row.step,
        message=row.message,
        cancel_requested=row.cancel_requested,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def _event_record(row: CommandEventRow) -> CommandEvent:
    return CommandEvent(
        id=row.id,
        command_id=row.command_id,
        from_status=None if row.from_status is None else CommandStatus(row.from_status),
        to_status=CommandStatus(row.to_status),
        step=row.step,
        reason=row.reason,
        at=row.at,
    )


def _slot_record(row: InventoryRow) -> InventorySlot:
    return InventorySlot(
        slot=row.slot,
        carrier_id=row.carrier_id,
        workpiece=_workpiece(row),
        reserved_by=row.reserved_by,
        updated_at=row.updated_at,
    )


def _inventory_event_record(row: InventoryEventRow) -> InventoryEvent:
    return InventoryEvent(
        id=row.id,
        slot=row.slot,
        command_id=row.command_id,
        carrier_id=row.carrier_id,
        workpiece=_workpiece(row),
        reason=row.reason,
        at=row.at,
    )


def _workpiece(row: InventoryRow | InventoryEventRow) -> Workpiece:
    """The workpiece columns of an inventory or inventory-event row."""
    return Workpiece(id=row.workpiece_id, flavor=row.flavor, status=WorkpieceStatus(row.status))
