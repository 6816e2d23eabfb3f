"""Plain value types of the scheduler core, mirroring the ``stf_msgs`` constants.

These are what :class:`~stf_nodes.scheduler.queue.CommandQueue` accepts and returns: immutable
dataclasses, never ORM rows or sessions, so a node converts them to messages without touching
the database again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum

#: Rack slots in the scheduler's scan order: row-major, A1, A2, A3, B1, ..., C3.
SLOTS: tuple[str, ...] = tuple(f'{row}{column}' for row in 'ABC' for column in '123')

#: Cookie flavors (``Workpiece.FLAVOR_*``).
FLAVORS: tuple[str, ...] = ('CHOCO', 'VANILLA', 'STRAWBERRY')


class CommandKind(IntEnum):
    """What a command does (``CommandStatus.PROCESS`` ...)."""

    #: Take a RAW_DOUGH cookie out, bake it, store it back into the same slot as BAKED.
    PROCESS = 1
    #: Put a new workpiece from the conveyor entry into a free slot.
    STORE = 2
    #: Take a workpiece out of its slot to the output.
    RETRIEVE = 3


class CommandStatus(IntEnum):
    """Life cycle of a command (``CommandStatus.PENDING`` ...)."""

    #: Accepted and queued; its slot is reserved.
    PENDING = 0
    #: Taken by a scheduler; stations are working on it.
    IN_PROGRESS = 1
    #: Finished successfully.
    COMPLETED = 2
    #: Finished unsuccessfully (station failure, emergency stop, restart, stale inventory).
    FAILED = 3
    #: Withdrawn by a client before or while running.
    CANCELLED = 4

    @property
    def finished(self) -> bool:
        """True for the three terminal states."""
        return self >= CommandStatus.COMPLETED


class WorkpieceStatus(IntEnum):
    """State of a cookie (``Workpiece.RAW_DOUGH`` ...)."""

    #: No workpiece, or its state is not known.
    UNKNOWN = 0
    #: Fresh dough, ready for PROCESS.
    RAW_DOUGH = 1
    #: Processed by the oven.
    BAKED = 2
    #: Packaged (not produced by this scheduler yet).
    PACKAGED = 3
    #: Stored for shipping (not produced by this scheduler yet).
    STORED = 4
    #: Left the factory (not produced by this scheduler yet).
    SHIPPED = 5


class Rejected(Exception):  # noqa: N818 - a refusal the client is told about, not an error
    """A request the queue refuses; ``reason`` is a sentence meant for the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Workpiece:
    """A cookie; the default (empty id) means "no workpiece"."""

    id: str = ''
    flavor: str = ''
    status: WorkpieceStatus = WorkpieceStatus.UNKNOWN

    @property
    def present(self) -> bool:
        """True when this describes an actual workpiece."""
        return bool(self.id)


@dataclass(frozen=True)
class InventorySlot:
    """One rack slot as stored; ``reserved_by`` is the unfinished command holding the slot.

    As input (seeding, reconciliation) only ``slot``, ``carrier_id`` and ``workpiece`` count.
    """

    slot: str
    carrier_id: str = ''
    workpiece: Workpiece = field(default_factory=Workpiece)
    reserved_by: int | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class SlotChange:
    """A workpiece entering a slot, or leaving it (``workpiece`` empty).

    ``carrier_id`` None keeps the slot's carrier as it is.
    """

    slot: str
    workpiece: Workpiece
    carrier_id: str | None = None


@dataclass(frozen=True)
class CommandRecord:
    """A command as stored (``CommandStatus.msg`` fields); times are aware UTC datetimes."""

    id: int
    kind: CommandKind
    status: CommandStatus
    priority: int
    source_slot: str
    target_slot: str
    flavor: str
    workpiece_id: str
    step: str
    message: str
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class CommandEvent:
    """One audit-trail entry: a transition, a step change or a cancel request."""

    id: int
    command_id: int
    from_status: CommandStatus | None
    to_status: CommandStatus
    step: str
    reason: str
    at: datetime


@dataclass(frozen=True)
class InventoryEvent:
    """One change of a slot's contents: the contents afterwards and why they changed."""

    id: int
    slot: str
    command_id: int | None
    carrier_id: str
    workpiece: Workpiece
    reason: str
    at: datetime


@dataclass(frozen=True)
class CancelOutcome:
    """Result of :meth:`CommandQueue.cancel`.

    ``stop_required`` False: the command was pending and is now CANCELLED. True: it is running;
    the caller must stop the stations and then call ``finish_cancel``.
    """

    command: CommandRecord
    stop_required: bool


@dataclass(frozen=True)
class Reconciliation:
    """Result of :meth:`CommandQueue.reconcile_inventory`: what changed and what it invalidated."""

    changed: tuple[InventorySlot, ...]
    failed: tuple[CommandRecord, ...]
