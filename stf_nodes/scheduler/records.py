"""Plain value types of the scheduler core, mirroring the ``stf_msgs`` constants.

These are what :class:`~stf_nodes.scheduler.queue.CommandQueue` accepts and returns: immutable
dataclasses, never ORM rows or sessions, so a node converts them to messages without touching
the database again. Flavors and workpiece statuses are the factory-wide ones
(``stf_nodes.workpieces``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum

from stf_nodes.workpieces import WorkpieceStatus


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
    #: Where its workpiece is (a place of ``stf_nodes.scheduler.routes``), last known.
    location: str = ''
    #: The workpiece's status as it is now (RAW_DOUGH until baked).
    workpiece_status: WorkpieceStatus = WorkpieceStatus.UNKNOWN
    #: Plan steps done, and the plan's length.
    step_index: int = 0
    step_count: int = 0
    #: Finished away from the rack: its workpiece still has to be brought back.
    stranded: bool = False

    @property
    def workpiece(self) -> Workpiece:
        """The command's workpiece as it is now (empty before a STORE's cookie exists)."""
        if not self.workpiece_id:
            return Workpiece()
        return Workpiece(self.workpiece_id, self.flavor, self.workpiece_status)

    @property
    def home_slot(self) -> str:
        """The slot its workpiece comes from and returns to (the target of a STORE)."""
        return self.source_slot or self.target_slot


class Phase(IntEnum):
    """Which steps a journal entry belongs to."""

    #: The command's plan (``routes.plan_for``).
    PLAN = 1
    #: Bringing the workpiece back to the rack after a cancel or a failure.
    RETURN = 2


class StepState(IntEnum):
    """A journal entry's state: a step is STARTED before its task is sent."""

    STARTED = 1
    SUCCEEDED = 2
    FAILED = 3


@dataclass(frozen=True)
class StepRecord:
    """One attempt of one station task of a command, as journalled (``command_steps``).

    ``key`` (``<command>.<created>/<P|R><index>/<attempt>``, ``<created>`` the command's
    submission time in hex microseconds) is the station's idempotency key;
    ``workpiece`` is what the task was sent with, and once SUCCEEDED what it ended with.
    """

    id: int
    command_id: int
    phase: Phase
    index: int
    attempt: int
    key: str
    station: str
    verb: str
    target: str
    value: float
    source: str
    destination: str
    state: StepState
    workpiece: Workpiece
    message: str
    fencing_token: int
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class Fence:
    """Proof of leadership, checked in the same transaction as every write of the runner: the
    lease ``name`` must still be held by ``holder`` with ``token`` and unexpired at ``now_ns``
    (node clock), else the write raises :class:`LeaseLost` and nothing is written."""

    name: str
    holder: str
    token: int
    now_ns: int


class LeaseLost(Exception):  # noqa: N818 - a state, like Rejected
    """This scheduler no longer holds the lease: it must not write or run another step."""


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
