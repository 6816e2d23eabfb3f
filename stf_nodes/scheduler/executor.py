"""The command executor: runs queued commands step by step through the stations (no transport).

:class:`Executor` is a state machine advanced by :meth:`Executor.tick` (the scheduler node calls
it from a timer on the node clock, so step timeouts follow sim time). It reaches the stations
only through the small :class:`StationLink` protocol: the node implements it with service
clients and ``task_status`` subscriptions, unit tests with fakes.

Policies:

- **One command at a time**, taken with ``CommandQueue.next_command`` (priority, then arrival)
  only when idle and not paused. Each plan step (``plan_for``) is sent as a station task with
  the workpiece the previous step ended with (a STORE starts with its new RAW_DOUGH cookie); a
  step succeeds when its task does within ``step.timeout_s`` of node time.
- **Commit, then announce.** Every transition is committed (``set_step``/``complete``/``fail``
  with the step's slot change) before ``announce`` is called with the returned record;
  ``inventory_changed`` is called after every committed inventory change.
- **Failure** (task refused, failed, or timed out): the command is FAILED with the reason at
  once; a timed-out task's station is stopped (emergency stop + reset). Then a *recovery* runs
  before anything else (see below).
- **Cancel of the running command** waits for the running step to end (stopping a station in
  mid-move strands a cookie between stations) and for a step after which a station holds the
  cookie (``HOLDING_VERBS``: on the belt, in the gripper; after a hand-over or a place it lies
  between stations where no recovery can reach it), records the slot change, runs the recovery
  and then finishes the command CANCELLED. A cancel that reaches the last step is too late:
  the command completes.
- **Emergency stop** fails the running command, drops the task in flight and pauses: no task
  is sent until :meth:`Executor.reset`, which runs the recovery and resumes the queue.
- **Recovery** brings a stranded cookie back into the rack and makes the inventory match the
  HBW. It waits until every station reports a state newer than the incident and is idle, then
  plans from what the stations hold (:func:`recovery_steps`): a cookie held by the gripper, on
  the belt or on the HBW fork is carried back and stored into the command's slot (or the first
  slot the HBW shows empty). A recovery step that fails ends the recovery (the cookie stays
  where it is; the log says where). Last, the inventory is reconciled with the HBW's rack
  (``reconcile_inventory``): whatever happened, the stored contents are what the HBW sees. A
  cookie inside the oven or between stations (handed over, held by no station) cannot be
  recovered automatically; it is missing from the rack after reconciliation. The same
  recovery runs at start-up, after ``CommandQueue.recover`` failed an interrupted command.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from stf_nodes.scheduler.plan import PlanSettings, PlanStep, plan_for
from stf_nodes.scheduler.queue import CommandQueue
from stf_nodes.scheduler.records import (
    SLOTS,
    CommandKind,
    CommandRecord,
    InventorySlot,
    Rejected,
    Workpiece,
    WorkpieceStatus,
)


@dataclass(frozen=True)
class TaskRequest:
    """A station task (``StationTask`` request)."""

    station: str
    verb: str
    target: str
    workpiece: Workpiece = field(default_factory=Workpiece)
    value: float = 0.0


class Outcome(Enum):
    """How a station task ended."""

    #: The task ran to its end.
    SUCCEEDED = 'succeeded'
    #: The station refused to start it (or could not be reached).
    REFUSED = 'refused'
    #: It started and then failed or was aborted.
    FAILED = 'failed'


@dataclass(frozen=True)
class TaskResult:
    """The end of a station task; ``workpiece`` is what the task ended with (may be empty)."""

    outcome: Outcome
    message: str = ''
    workpiece: Workpiece = field(default_factory=Workpiece)


@dataclass(frozen=True)
class StationView:
    """What one station's latest state message says: its time stamp (node clock seconds),
    whether a task runs, and the workpiece it holds (fork, belt or gripper; empty if none)."""

    stamp_s: float
    busy: bool
    holding: Workpiece = field(default_factory=Workpiece)


@dataclass(frozen=True)
class FactoryView:
    """The latest state of every station and the rack contents the HBW reports."""

    stations: Mapping[str, StationView]
    rack: tuple[InventorySlot, ...]

    def settled_since(self, since_s: float, stations: Sequence[str]) -> bool:
        """Every station reported after ``since_s`` and none runs a task."""
        views = [self.stations.get(name) for name in stations]
        return all(v is not None and v.stamp_s >= since_s and not v.busy for v in views)


#: Verbs after which the station they ran on holds the workpiece (a cancel stops there).
HOLDING_VERBS = frozenset({'load', 'transport', 'pick'})

#: Polls a started task: None while it runs, then its result (repeatable).
TaskPoll = Callable[[], TaskResult | None]


class StationLink(Protocol):
    """How the executor reaches the stations."""

    def start_task(self, request: TaskRequest) -> TaskPoll:
        """Send the task without waiting; the returned poll reports its end (a refusal and an
        unreachable station are REFUSED results)."""
        ...

    def stop_station(self, station: str) -> None:
        """Halt the station's running task (emergency stop, then reset)."""
        ...

    def view(self) -> FactoryView | None:
        """The stations' latest states; None until every station was heard from."""
        ...


def recovery_steps(
    view: FactoryView, home_slot: str, settings: PlanSettings | None = None
) -> tuple[tuple[PlanStep, Workpiece], ...]:
    """Steps that carry a stranded cookie back into the rack, each with the workpiece to send.

    Only the first station found holding a cookie is cleared (at most one cookie is in flight).
    It goes back to ``home_slot`` if the HBW shows it empty, else to the first empty slot in
    ``SLOTS`` order; with no empty slot it is left at the HBW hand-off.
    """
    settings = settings or PlanSettings()
    held = {name: v.holding for name, v in view.stations.items() if v.holding.present}
    route: list[tuple[str, str, str]] = []
    if 'vgr' in held:
        route += [('vgr', 'place', 'conveyor'), ('conveyor', 'load', 'exit')]
    if 'vgr' in held or 'conveyor' in held:
        route += [('conveyor', 'transport', 'entry'), ('conveyor', 'unload', 'entry')]
    cookie = next(iter(held.values()), Workpiece())
    if not cookie.present:
        return ()
    empty = [entry.slot for entry in view.rack if not entry.workpiece.present]
    slot = home_slot if home_slot in empty else next((s for s in SLOTS if s in empty), '')
    if slot:
        route.append(('hbw', 'store', slot))
    steps = []
    for station, verb, target in route:
        step = PlanStep(station, verb, target, timeout_s=settings.timeouts[station])
        steps.append((step, cookie if not steps else Workpiece()))
    return tuple(steps)


@dataclass
class _Job:
    """The steps being run: a command's plan, or a recovery (``command`` kept only when it
    must be finished as CANCELLED afterwards)."""

    command: CommandRecord | None
    steps: tuple[PlanStep, ...]
    recovery: bool
    index: int = 0
    workpiece: Workpiece = field(default_factory=Workpiece)
    poll: TaskPoll | None = None
    deadline_s: float = 0.0

    @property
    def step(self) -> PlanStep:
        return self.steps[self.index]


@dataclass
class _PendingRecovery:
    """A recovery waiting for the stations to settle; ``cancelled`` is finished afterwards."""

    home_slot: str
    since_s: float
    cancelled: CommandRecord | None = None


@dataclass(frozen=True)
class _PendingReconcile:
    """A reconciliation waiting for fresh states; ``cancelled`` is finished afterwards, so its
    slot stays reserved until the inventory is right."""

    since_s: float
    cancelled: CommandRecord | None
    note: str


class Executor:
    """Runs the queue's commands through the stations; see the module docstring."""

    def __init__(
        self,
        *,
        queue: CommandQueue,
        link: StationLink,
        stations: Sequence[str],
        settings: PlanSettings | None = None,
        announce: Callable[[CommandRecord], None],
        inventory_changed: Callable[[], None],
        log: Callable[[str], None],
        poll_interval_s: float = 1.0,
    ) -> None:
        """``poll_interval_s``: how often (node time) the queue is polled for commands
        submitted by other processes; :meth:`notify` makes the next tick look at once."""
        self._queue = queue
        self._link = link
        self._stations = tuple(stations)
        self._settings = settings or PlanSettings()
        self._announce = announce
        self._inventory_changed = inventory_changed
        self._log = log
        self._poll_interval_s = poll_interval_s
        self._job: _Job | None = None
        self._recovery: _PendingRecovery | None = None
        self._reconcile: _PendingReconcile | None = None
        self._cancel_requested: int | None = None
        self._next_poll_s = float('-inf')
        self.paused = False

    # -- inputs ----------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """A job runs or waits to run (recovery, reconciliation)."""
        return any(job is not None for job in (self._job, self._recovery, self._reconcile))

    def notify(self) -> None:
        """A command was submitted: look at the queue on the next tick."""
        self._next_poll_s = float('-inf')

    def start_up(self, interrupted: Sequence[CommandRecord], now_s: float) -> None:
        """After ``CommandQueue.recover``: recover what the interrupted command left behind and
        reconcile the inventory before running anything."""
        home = next((_home_slot(c) for c in interrupted), '')
        self._recovery = _PendingRecovery(home_slot=home, since_s=now_s)

    def request_cancel(self, command_id: int) -> bool:
        """Cancel the running command after its current step; False if it is not running."""
        if self._job is None or self._job.command is None or self._job.command.id != command_id:
            return False
        self._cancel_requested = command_id
        return True

    def emergency_stop(self, reason: str, now_s: float) -> None:
        """Fail the running command, drop the task in flight and pause until :meth:`reset`."""
        self.paused = True
        active = [
            pending.command if isinstance(pending, _Job) else pending.cancelled
            for pending in (self._job, self._recovery, self._reconcile)
            if pending is not None
        ]
        home = self._recovery.home_slot if self._recovery else ''
        for command in active:
            if command is not None:
                home = _home_slot(command)
                self._finish_failed(command, reason)
        self._job = self._reconcile = None
        self._cancel_requested = None
        self._recovery = _PendingRecovery(home_slot=home, since_s=now_s)

    def reset(self, now_s: float) -> None:
        """Leave the emergency stop: recover, then resume the queue."""
        if self._recovery is not None:
            self._recovery.since_s = now_s
        self.paused = False
        self.notify()

    # -- the state machine -----------------------------------------------------------------

    def tick(self, now_s: float) -> None:
        """Advance: poll the task in flight, check its deadline, or start the next job."""
        if self.paused:
            return
        if self._job is not None:
            self._advance(self._job, now_s)
        elif self._recovery is not None:
            self._start_recovery(self._recovery, now_s)
        elif self._reconcile is not None:
            self._reconcile_with_hbw(self._reconcile)
        elif now_s >= self._next_poll_s:
            self._next_poll_s = now_s + self._poll_interval_s
            self._start_next_command(now_s)

    def _start_next_command(self, now_s: float) -> None:
        command = self._queue.next_command()
        if command is None:
            return
        steps = plan_for(command, self._settings)
        command = self._queue.set_step(command.id, steps[0].label)
        self._announce(command)
        first = (
            Workpiece(command.workpiece_id, command.flavor, WorkpieceStatus.RAW_DOUGH)
            if command.kind is CommandKind.STORE
            else Workpiece()
        )
        self._job = _Job(command=command, steps=steps, recovery=False, workpiece=first)
        self._send(self._job, now_s)

    def _send(self, job: _Job, now_s: float) -> None:
        step = job.step
        job.poll = self._link.start_task(
            TaskRequest(step.station, step.verb, step.target, job.workpiece, step.value)
        )
        job.deadline_s = now_s + step.timeout_s

    def _advance(self, job: _Job, now_s: float) -> None:
        assert job.poll is not None
        result = job.poll()
        if result is None:
            if now_s < job.deadline_s:
                return
            self._link.stop_station(job.step.station)
            result = TaskResult(
                Outcome.FAILED, f'timed out after {job.step.timeout_s:g} s', Workpiece()
            )
        if result.outcome is not Outcome.SUCCEEDED:
            self._step_failed(job, result, now_s)
            return
        if result.workpiece.present:
            job.workpiece = result.workpiece
        if job.recovery:
            self._recovery_step_done(job, now_s)
        else:
            self._command_step_done(job, now_s)

    def _command_step_done(self, job: _Job, now_s: float) -> None:
        assert job.command is not None
        step, last = job.step, job.index + 1 == len(job.steps)
        change = step.slot_change(job.command)
        if last:
            record = self._queue.complete(job.command.id, change=change)
            self._job = None
            self._cancel_requested = None
        elif self._cancel_requested == job.command.id and step.verb in HOLDING_VERBS:
            record = self._queue.set_step(job.command.id, 'recovery after cancel', change=change)
            self._job = None
            self._cancel_requested = None
            self._recovery = _PendingRecovery(_home_slot(record), now_s, cancelled=record)
        else:
            job.index += 1
            record = self._queue.set_step(job.command.id, job.step.label, change=change)
            job.command = record
            self._send(job, now_s)
        self._announce(record)
        if change is not None:
            self._inventory_changed()
        self.notify()

    def _step_failed(self, job: _Job, result: TaskResult, now_s: float) -> None:
        reason = f'{job.step.label} {result.outcome.value}: {result.message}'
        self._job = None
        if job.recovery:
            self._log(f'recovery stopped, {reason}; the cookie stays where it is')
            self._end_recovery(job, now_s, note=f'; recovery stopped: {reason}')
            return
        assert job.command is not None
        self._cancel_requested = None
        self._finish_failed(job.command, reason)
        self._recovery = _PendingRecovery(_home_slot(job.command), now_s)

    def _finish_failed(self, command: CommandRecord, reason: str) -> None:
        try:
            record = self._queue.fail(command.id, reason)
        except Rejected as exc:  # finished meanwhile (e.g. by another scheduler's recover)
            self._log(f'command {command.id} not failed: {exc.reason}')
            return
        self._announce(record)

    # -- recovery --------------------------------------------------------------------------

    def _start_recovery(self, pending: _PendingRecovery, now_s: float) -> None:
        view = self._link.view()
        if view is None or not view.settled_since(pending.since_s, self._stations):
            return
        self._recovery = None
        planned = recovery_steps(view, pending.home_slot, self._settings)
        job = _Job(
            command=pending.cancelled,
            steps=tuple(step for step, _ in planned),
            recovery=True,
            workpiece=planned[0][1] if planned else Workpiece(),
        )
        if not planned:
            self._end_recovery(job, now_s, note='')
            return
        self._log(f'recovery: {", ".join(step.label for step in job.steps)}')
        self._job = job
        self._send(job, now_s)

    def _recovery_step_done(self, job: _Job, now_s: float) -> None:
        job.index += 1
        if job.index < len(job.steps):
            self._send(job, now_s)
            return
        self._job = None
        self._end_recovery(job, now_s, note='; cookie returned to the rack')

    def _end_recovery(self, job: _Job, now_s: float, *, note: str) -> None:
        self._reconcile = _PendingReconcile(now_s, job.command, note)

    def _reconcile_with_hbw(self, pending: _PendingReconcile) -> None:
        view = self._link.view()
        if view is None or not view.settled_since(pending.since_s, self._stations):
            return
        self._reconcile = None
        result = self._queue.reconcile_inventory(view.rack)
        if pending.cancelled is not None:
            reason = f'cancelled; stations stopped{pending.note}'
            self._announce(self._queue.finish_cancel(pending.cancelled.id, reason))
        for record in result.failed:
            self._announce(record)
        if result.changed:
            changed = ', '.join(entry.slot for entry in result.changed)
            self._log(f'inventory reconciled with the HBW: {changed} corrected')
            self._inventory_changed()
        self.notify()


def _home_slot(command: CommandRecord) -> str:
    """The slot a stranded cookie of ``command`` goes back to."""
    return command.source_slot or command.target_slot
