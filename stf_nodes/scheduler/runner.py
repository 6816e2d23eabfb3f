"""The command runner: carries commands out through the stations, one at a time, and resumes
wherever it stood after any crash (no transport; the node supplies the stations and the clock).

:class:`CommandRunner` is a state machine advanced by :meth:`CommandRunner.tick` on the node
clock (so every wait and timeout follows sim time). It reaches the stations through the
:class:`StationLink` protocol and the database through the :class:`Queue` protocol.

**Where the cookie is.** Each command's workpiece has a place (``routes``): a rack slot, a
station's belt/fork/gripper, or a spot between stations. The journal (``command_steps``) and
the command row say where it was after the last step that ended; the step in flight, if any,
is journalled STARTED before its task is sent. After a crash the runner reads them and goes on.

**Policies.**

- *One job at a time*, in this order: a command left IN_PROGRESS (resumed), then a *stranded*
  workpiece (its command ended away from the rack: it is carried back), then the next PENDING
  command. Nothing new starts while a cookie is away from the rack, so two cookies never meet
  on the belt.
- *The whole path first.* A PENDING command starts only when every station its plan uses is
  up (its state is fresh on the node clock), READY, idle and holds what the records say; a
  cookie never leaves the rack otherwise. While a station is unavailable the command waits
  PENDING and one ``STATION_UNAVAILABLE`` alert says why (cleared when it is back).
- *The records are the truth* for what stations hold. A station that restarted (``restored``
  false in its state) is restored (``RestoreStation``) before it is used: the HBW gets the
  rack from the database, the station holding the cookie in flight gets the cookie back. A
  restored station that disagrees with the records raises a ``CONTENTS_MISMATCH`` alert naming
  both views and is restored from the records (the database wins; it is never overwritten
  from a station). While a step is journalled STARTED and its outcome is unknown (after a
  takeover, or a lost reply), its station may also hold what the step leaves: the result is
  asked for under the step's key before anything is restored.
- *Idempotent steps.* Each attempt has a key ``<command>.<uid>/<P|R><index>/<attempt>``
  (the random ``uid`` keeps keys unique beyond one database, which the stations outlive); a station
  that already ran it answers with that task's result instead of running it again. After a
  crash the STARTED step is sent again with the same key: a station that finished it reports
  the result, one that restarted meanwhile runs it (its contents restored first).
- *Failures are retried, bounded.* A step refused or failed is journalled FAILED with where
  the cookie ended up (asked from the station: it may have finished the move, or not started
  it), then retried with a new attempt once the station is able, up to ``step_attempts``.
  A station that does not answer is waited for, up to ``station_wait_s`` of node time. A step
  whose task outlives its timeout is stopped (emergency stop + reset of that station).
  Only then does a command give up: FAILED, with the cookie's place in its message; if the
  cookie is away from the rack it is carried back, and the command's message says when it is.
  A return is never given up (a ``RETURN_BLOCKED`` alert says where the cookie waits), except
  when nobody knows where the cookie is: then it is recorded as lost (``WORKPIECE_LOST``).
- *Cancel* of the running command ends it after the step in flight: CANCELLED where the cookie
  is, then the cookie is carried back. *Emergency stop* fails the running command at once and
  pauses; after :meth:`reset` the cookie is located and carried back, then the queue resumes.
- *Fencing.* Every write carries this scheduler's lease token (:meth:`fence`) and every task
  and restore carries it to the station: once another scheduler has taken over, nothing this
  one sends or writes takes effect (``queue.LeaseLost`` ends its turn). A runner whose lease
  was not renewed (:meth:`renewed`) for ``lease_s`` of steady (monotonic, real) time stops by
  itself: by then a standby may have taken over. The lease is on steady time, not node time:
  under a 20x sim clock a lease of node time would last a twentieth of the wall time, and a
  restarted sim clock would confuse it.
- *Node time may jump back* (a respawned clock node restarts sim time from the wall clock,
  far behind): the runner moves its marks (waits, deadlines, the last change) with the jump,
  and a station state stamped far ahead of now is from before the jump: not fresh.
- *Commit, then announce.* Each transition is committed before ``announce`` is called with
  the returned record; ``inventory_changed`` follows every change of the rack or of a
  cookie's place.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Protocol

from stf_nodes.scheduler.records import (
    CancelOutcome,
    CommandRecord,
    CommandStatus,
    Fence,
    InventorySlot,
    LeaseLost,
    Phase,
    StepRecord,
    StepState,
    Workpiece,
)
from stf_nodes.scheduler.routes import (
    GRIPPER,
    HBW_FORK,
    UNKNOWN,
    PlanSettings,
    Step,
    holder_of,
    plan_for,
    rack_place,
    return_route,
    slot_of,
    start_place,
)

# -- what the runner sees of the stations --------------------------------------------------


@dataclass(frozen=True)
class StationView:
    """A station's latest state: its stamp (node clock, s), whether a task runs, whether it
    can take one (READY and idle), its state's name, whether it was restored since it started,
    what it holds (HBW fork, conveyor belt, VGR gripper) and, for the HBW, its rack."""

    stamp_s: float
    busy: bool
    able: bool
    condition: str
    restored: bool
    holding: Workpiece = field(default_factory=Workpiece)
    rack: tuple[InventorySlot, ...] = ()


class Outcome(Enum):
    """How a station task ended."""

    #: The task ran to its end.
    SUCCEEDED = 'succeeded'
    #: The station refused to start it.
    REFUSED = 'refused'
    #: It started and then failed or was aborted.
    FAILED = 'failed'
    #: The station did not answer (no server, timeout): it is probably restarting.
    UNREACHABLE = 'unreachable'


@dataclass(frozen=True)
class TaskRequest:
    """A station task (``StationTask`` request)."""

    station: str
    verb: str
    target: str
    workpiece: Workpiece
    value: float
    key: str
    fencing_token: int


@dataclass(frozen=True)
class TaskResult:
    """The end of a station task; ``workpiece`` is what the task ended with (may be empty)."""

    outcome: Outcome
    message: str = ''
    workpiece: Workpiece = field(default_factory=Workpiece)


#: Polls a started task: None while it runs, then its result (repeatable).
TaskPoll = Callable[[], TaskResult | None]
#: Polls a restore: None while it runs, then '' (done) or why it failed (repeatable).
RestorePoll = Callable[[], str | None]


@dataclass(frozen=True)
class Contents:
    """What a station should hold according to the records (a ``RestoreStation`` request)."""

    workpiece: Workpiece = field(default_factory=Workpiece)
    place: str = ''
    rack: tuple[InventorySlot, ...] = ()


class StationLink(Protocol):
    """How the runner reaches the stations. Nothing here blocks: the runner shares its node's
    executor with the stations' services when nodes are composed into one process."""

    def views(self) -> Mapping[str, StationView]:
        """The latest state of every station heard from."""
        ...

    def start_task(self, request: TaskRequest) -> TaskPoll:
        """Send the task without waiting; the poll reports its end."""
        ...

    def restore(self, station: str, contents: Contents, fencing_token: int) -> RestorePoll:
        """Start restoring the station's contents; the poll reports the end."""
        ...

    def stop_station(self, station: str) -> None:
        """Halt the station's running task (emergency stop, then reset), without waiting."""
        ...


class Queue(Protocol):
    """The part of :class:`~stf_nodes.scheduler.queue.CommandQueue` the runner uses."""

    @property
    def slots(self) -> tuple[str, ...]: ...

    def seed_inventory(self, slots: Sequence[InventorySlot]) -> bool: ...

    def inventory(self) -> tuple[InventorySlot, ...]: ...

    def peek_next(self) -> CommandRecord | None: ...

    def unsettled(self) -> tuple[CommandRecord, ...]: ...

    def last_step(self, command_id: int) -> StepRecord | None: ...

    def start(
        self, command_id: int, fence: Fence, *, step_count: int, location: str
    ) -> CommandRecord | None: ...

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
    ) -> tuple[StepRecord, CommandRecord]: ...

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
        change: object = None,
    ) -> CommandRecord: ...

    def complete(self, command_id: int, fence: Fence) -> CommandRecord: ...

    def finish(
        self, command_id: int, fence: Fence, *, status: CommandStatus, reason: str
    ) -> CommandRecord: ...

    def returned(self, command_id: int, fence: Fence, *, workpiece: Workpiece) -> CommandRecord: ...

    def lost(self, command_id: int, fence: Fence, *, reason: str) -> CommandRecord: ...


class Severity(Enum):
    """Alert severities (``stf_msgs/Alert``)."""

    INFO = 0
    WARNING = 1
    ERROR = 2


#: Alerts: (severity, code, component id, message). A code+component is raised once while its
#: condition lasts and cleared once (an INFO with the same code) when it ends.
AlertSink = Callable[[Severity, str, str, str], None]


@dataclass(frozen=True, kw_only=True)
class RunnerSettings:
    """Tunable numbers of the runner (scheduler parameters); times are node time."""

    plan: PlanSettings = field(default_factory=PlanSettings)
    #: How long a station may stay unavailable before a command gives up.
    station_wait_s: float = 120.0
    #: A station whose latest state is older than this is down.
    stale_after_s: float = 2.0
    #: Attempts of one step before a command gives up.
    step_attempts: int = 3
    #: Node time between looks at the queue for commands other processes submitted.
    poll_interval_s: float = 1.0
    #: Lease duration in steady (real) time: without a renewal for this long the runner stops
    #: (a standby takes over).
    lease_s: float = 2.0


# -- the job being driven ------------------------------------------------------------------


@dataclass
class _Flight:
    """A task sent and not yet ended."""

    record: StepRecord
    step: Step
    poll: TaskPoll
    deadline_s: float
    sent_s: float


@dataclass
class _Job:
    """A command being carried out (PLAN) or a workpiece being carried back (RETURN)."""

    command: CommandRecord
    phase: Phase
    plan: tuple[Step, ...]
    #: PLAN: index of the next plan step; RETURN: return steps done so far.
    index: int = 0
    attempt: int = 1
    failures: int = 0
    flight: _Flight | None = None
    #: A journalled attempt whose outcome is still open (STARTED: to be sent again; or
    #: failed and waiting to be located).
    open: StepRecord | None = None
    #: Node time the open attempt failed (its station's view must be newer to locate).
    failed_s: float | None = None
    failure: str = ''
    #: Node time since which the job waits for a station.
    waiting_since_s: float | None = None
    #: Why the running command must end after the step in flight ('' = it goes on).
    abort: str = ''
    abort_status: CommandStatus = CommandStatus.FAILED

    @property
    def workpiece(self) -> Workpiece:
        return self.command.workpiece

    @property
    def location(self) -> str:
        return self.command.location


class CommandRunner:
    """Drives the queue's commands through the stations; see the module docstring."""

    def __init__(
        self,
        *,
        queue: Queue,
        link: StationLink,
        stations: Sequence[str],
        settings: RunnerSettings | None = None,
        lease_name: str,
        holder: str,
        announce: Callable[[CommandRecord], None],
        inventory_changed: Callable[[], None],
        alert: AlertSink,
        log: Callable[[str], None],
        steady: Callable[[], float] = time.monotonic,
    ) -> None:
        """``steady``: the steady clock (s) the lease is renewed and judged on."""
        self._queue = queue
        self._link = link
        self._stations = tuple(stations)
        self._settings = settings or RunnerSettings()
        self._lease_name = lease_name
        self._holder = holder
        self._announce = announce
        self._inventory_changed = inventory_changed
        self._alert_sink = alert
        self._log = log
        #: The lease token while this runner leads (0: it must not act).
        self.token = 0
        self._steady = steady
        self._renewed_s = 0.0
        self.paused = False
        self._job: _Job | None = None
        self._next_poll_s = float('-inf')
        self._cancels: set[int] = set()
        self._alerts: dict[tuple[str, str], str] = {}
        self._restores: dict[str, RestorePoll] = {}
        self._ready = False
        #: The rack as the database holds it (only this runner changes it: cached until then).
        self._rack: tuple[InventorySlot, ...] | None = None
        #: Node time of the last change to the records (station views must be newer to count).
        self._changed_s = float('-inf')
        #: Node time of the latest tick (to notice time jumping back).
        self._now_s = float('-inf')

    # -- inputs ----------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """A job is being driven."""
        return self._job is not None

    def fence(self, now_s: float) -> Fence:
        """This runner's proof of leadership for a write (``now_s``: node time)."""
        return Fence(self._lease_name, self._holder, self.token)

    def lead(self, token: int) -> None:
        """The lease was taken with ``token``: act."""
        self.token = token
        self._renewed_s = self._steady()

    def renewed(self) -> None:
        """The lease was renewed."""
        self._renewed_s = self._steady()

    def notify(self) -> None:
        """A command was submitted: look at the queue on the next tick."""
        self._next_poll_s = float('-inf')

    def stop(self) -> None:
        """Forget the job in memory (the lease was lost; the next leader resumes it)."""
        self._job = None
        self._restores.clear()
        self._ready = False
        self._rack = None
        self.token = 0

    def request_cancel(self, outcome: CancelOutcome) -> None:
        """A cancel of a running command was recorded: end it after its step in flight."""
        self._cancels.add(outcome.command.id)
        self.notify()

    def emergency_stop(self, reason: str, now_s: float) -> None:
        """The stations were stopped at ``now_s``: fail the running command and pause until
        :meth:`reset` (the failure is committed on the next ticks, once the cookie is located;
        it goes back after the reset)."""
        self.paused = True
        job = self._job
        if job is None:
            return
        if job.flight is not None:
            reason = f'{reason} during {job.flight.step.label}'
            self._ground(job, reason, now_s)
        if job.phase is Phase.PLAN:
            job.abort, job.abort_status = reason, CommandStatus.FAILED

    def reset(self) -> None:
        """Leave the emergency stop: locate the cookie, carry it back, resume the queue."""
        self.paused = False
        self.notify()

    # -- the state machine -----------------------------------------------------------------

    def tick(self, now_s: float) -> None:
        """Advance by one decision at node time ``now_s`` (at most one transition is written).

        Raises ``LeaseLost`` when another scheduler has taken over or the lease was not
        renewed for ``lease_s``, and the database's errors (nothing in memory changed; the same
        tick is tried again)."""
        if now_s < self._now_s:
            self._time_jumped_back(now_s - self._now_s)
        self._now_s = now_s
        if not self.token:
            return
        unrenewed_s = self._steady() - self._renewed_s
        if unrenewed_s > self._settings.lease_s:
            raise LeaseLost(
                f'lease not renewed for {unrenewed_s:.1f} s (the database is away or this '
                'process was frozen); a standby may lead now'
            )
        job = self._job
        if job is None:
            if self.paused or now_s < self._next_poll_s:
                return
            self._next_poll_s = now_s + self._settings.poll_interval_s
            self._take_job(now_s)
            return
        if job.flight is not None:
            self._poll(job, job.flight, now_s)
        elif job.open is not None and job.failed_s is not None:
            self._locate(job, job.open, now_s)
        elif job.abort and job.open is None:
            self._end_plan(job, now_s)
        elif self.paused:
            return
        elif job.open is not None:
            self._resend(job, job.open, now_s)
        else:
            self._next_step(job, now_s)

    def _time_jumped_back(self, shift_s: float) -> None:
        """Node time went back by ``-shift_s`` (a respawned /clock restarts sim time from the
        wall clock): every mark taken on the old time line moves with it, so waits, timeouts
        and "reported since the last change" keep their meaning."""
        self._log(f'node time jumped back {-shift_s:.1f} s')
        self._changed_s += shift_s
        self._next_poll_s = float('-inf')
        job = self._job
        if job is None:
            return
        if job.waiting_since_s is not None:
            job.waiting_since_s += shift_s
        if job.failed_s is not None:
            job.failed_s += shift_s
        if job.flight is not None:
            job.flight.sent_s += shift_s
            job.flight.deadline_s += shift_s

    # -- choosing the job ------------------------------------------------------------------

    def _take_job(self, now_s: float) -> None:
        if not self._queue.slots:
            self._seed()
            return
        for command in self._queue.unsettled():
            self._job = self._resume(command)
            self._log(f'command {command.id}: resuming at {command.location or "the start"}')
            return
        if not self._sync_idle(now_s):
            return
        if not self._ready:
            self._ready = True
            self._log('scheduler ready: the stations hold what the records say')
        pending = self._queue.peek_next()
        if pending is None:
            return
        plan = plan_for(pending, self._settings.plan)
        blocked = self._unavailable({step.station for step in plan}, now_s)
        if blocked:
            return
        started = self._queue.start(
            pending.id, self.fence(now_s), step_count=len(plan), location=start_place(pending)
        )
        if started is None:  # cancelled or taken meanwhile
            self.notify()
            return
        self._commit(started, now_s)
        self._log(f'command {started.id}: started, {len(plan)} steps')
        self._job = _Job(command=started, phase=Phase.PLAN, plan=plan)

    def _resume(self, command: CommandRecord) -> _Job:
        """The job of an unsettled command, where its journal says it stands."""
        if command.status is CommandStatus.IN_PROGRESS:
            plan = plan_for(command, self._settings.plan)
            job = _Job(command=command, phase=Phase.PLAN, plan=plan, index=command.step_index)
            if command.cancel_requested:
                job.abort, job.abort_status = 'cancelled', CommandStatus.CANCELLED
        else:
            job = _Job(command=command, phase=Phase.RETURN, plan=())
        last = self._queue.last_step(command.id)
        if last is None:
            return job
        if last.phase is job.phase:
            if job.phase is Phase.RETURN:
                job.index = last.index + (last.state is StepState.SUCCEEDED)
            job.attempt = (
                1
                if last.state is StepState.SUCCEEDED
                else last.attempt + (last.state is StepState.FAILED)
            )
            job.failures = job.attempt - 1
        if last.state is StepState.STARTED:
            job.open = last
            if last.phase is not job.phase:  # the plan step its command ended in
                job.failed_s, job.failure = float('-inf'), 'interrupted when its command ended'
        return job

    def _seed(self) -> None:
        hbw = self._link.views().get('hbw')
        if hbw is None or not hbw.rack:
            return
        if self._queue.seed_inventory(hbw.rack):
            self._rack = None
            self._log('inventory seeded from the HBW rack (a new database)')
            self._inventory_changed()
        self.notify()

    # -- stations: availability and contents -----------------------------------------------

    def _unavailable(self, stations: set[str], now_s: float) -> str:
        """Why one of ``stations`` cannot be used now ('' when all can): down, not able, or
        not (yet) holding what the records say (then it is restored)."""
        views = self._link.views()
        for station in sorted(stations):
            view = views.get(station)
            if view is None or not self._fresh(view, now_s):
                reason = f'{station} is not running (no fresh state)'
            elif not view.able:
                reason = f'{station} is {view.condition}'
            else:
                self._clear('STATION_UNAVAILABLE', station)
                reason = self._sync(station, view, now_s)
                if reason:
                    return reason
                continue
            self._raise(Severity.WARNING, 'STATION_UNAVAILABLE', station, reason)
            return reason
        return ''

    def _fresh(self, view: StationView, now_s: float) -> bool:
        """The station reported lately; a stamp far ahead of ``now_s`` is from before time
        jumped back, not from now."""
        return abs(now_s - view.stamp_s) <= self._settings.stale_after_s

    def _sync_idle(self, now_s: float) -> bool:
        """With no job: every station that is up holds what the records say (restored after a
        restart). False when one could not be checked yet."""
        views = self._link.views()
        waiting = [
            self._sync(station, view, now_s)
            for station, view in views.items()
            if station in self._stations and view.able and self._fresh(view, now_s)
        ]
        return not any(waiting)

    def _sync(self, station: str, view: StationView, now_s: float) -> str:
        """Restore ``station`` if it restarted or disagrees with the records; '' when it holds
        what they say, else why it cannot be used yet."""
        restoring = self._restores.get(station)
        if restoring is not None:
            error = restoring()
            if error is None:
                return f'{station} is being restored'
            del self._restores[station]
            if error:
                reason = f'{station} could not be restored: {error}'
                self._raise(Severity.ERROR, 'RESTORE_REFUSED', station, reason)
                return reason
            self._clear('RESTORE_REFUSED', station)
            self._log(f'{station} restored')
            self._changed_s = now_s
        if view.stamp_s < self._changed_s:
            return f'{station} has not reported since the last change'
        expected, *finished = self._expected(station)
        if view.restored and any(_matches(view, c) for c in (expected, *finished)):
            return ''
        if view.restored:
            self._raise(
                Severity.WARNING,
                'CONTENTS_MISMATCH',
                station,
                f'{station} holds {_describe_view(view)}; the records say '
                f'{_describe_contents(expected)}; restoring it from the records',
            )
        self._log(f'restoring {station}: {_describe_contents(expected)}')
        self._restores[station] = self._link.restore(station, expected, self.token)
        return f'{station} is being restored'

    def _expected(self, station: str) -> tuple[Contents, ...]:
        """What ``station`` holds according to the records and the job in hand; then, while
        an attempt of ``station`` is journalled STARTED with its outcome unknown (the
        scheduler died, or the reply was lost), what it holds if it finished that attempt:
        its result is asked for under its key next, so neither is a mismatch."""
        job = self._job
        if station == 'hbw' and self._rack is None:
            self._rack = self._queue.inventory()
        rack = self._rack if station == 'hbw' and self._rack is not None else ()
        if job is None:
            return (_contents(station, '', Workpiece(), rack),)
        expected = [_contents(station, job.location, job.workpiece, rack)]
        record = job.open
        if record is not None and record.state is StepState.STARTED and record.station == station:
            step = _step_of(record, self._settings.plan)
            change = step.slot_change(job.workpiece)
            if change is not None:
                rack = tuple(
                    replace(entry, workpiece=change.workpiece)
                    if entry.slot == change.slot
                    else entry
                    for entry in rack
                )
            expected.append(_contents(station, step.destination, job.workpiece, rack))
        return tuple(expected)

    def _wait(self, job: _Job, reason: str, now_s: float) -> bool:
        """Note that ``job`` waits for a station; True once it waited ``station_wait_s``."""
        if job.waiting_since_s is None:
            job.waiting_since_s = now_s
            self._log(f'command {job.command.id}: waiting: {reason}')
        return now_s - job.waiting_since_s >= self._settings.station_wait_s

    # -- steps -----------------------------------------------------------------------------

    def _next_step(self, job: _Job, now_s: float) -> None:
        if job.phase is Phase.PLAN:
            if self._cancel_pending(job):
                job.abort, job.abort_status = 'cancelled', CommandStatus.CANCELLED
                self._end_plan(job, now_s)
                return
            if job.index >= len(job.plan):
                self._complete(job, now_s)
                return
            step = job.plan[job.index]
            if step.source != job.location:
                self._give_up(
                    job, f'{job.workpiece.id} is at {job.location}, not {step.source}', now_s
                )
                return
        else:
            route = return_route(job.location, job.command.home_slot, self._settings.plan)
            if route is None:
                self._lose(
                    job, f'no way back to {job.command.home_slot} from {job.location}', now_s
                )
                return
            if not route:
                self._returned(job, now_s)
                return
            step = route[0]
        reason = self._unavailable({step.station}, now_s)
        if reason:
            if self._wait(job, reason, now_s):
                self._stuck(job, f'{step.label}: {reason}', now_s)
            return
        job.waiting_since_s = None
        record, command = self._queue.begin_step(
            job.command.id,
            step,
            self.fence(now_s),
            phase=job.phase,
            index=job.index,
            attempt=job.attempt,
            workpiece=job.workpiece,
        )
        job.command = command
        self._announce(command)
        self._send(job, record, step, now_s)

    def _resend(self, job: _Job, record: StepRecord, now_s: float) -> None:
        """Send a journalled STARTED attempt again with its key (after a crash, or when its
        station did not answer); the station reports the first run if it had one."""
        step = _step_of(record, self._settings.plan)
        reason = self._unavailable({step.station}, now_s)
        if reason:
            if self._wait(job, reason, now_s):
                job.failed_s, job.failure = float('-inf'), reason
            return
        job.waiting_since_s = None
        self._send(job, record, step, now_s)

    def _send(self, job: _Job, record: StepRecord, step: Step, now_s: float) -> None:
        job.open = record
        job.flight = _Flight(
            record=record,
            step=step,
            poll=self._link.start_task(
                TaskRequest(
                    station=step.station,
                    verb=step.verb,
                    target=step.target,
                    workpiece=record.workpiece,
                    value=step.value,
                    key=record.key,
                    fencing_token=self.token,
                )
            ),
            deadline_s=now_s + step.timeout_s,
            sent_s=now_s,
        )
        self._log(f'command {job.command.id}: {step.label} started (key {record.key})')

    def _poll(self, job: _Job, flight: _Flight, now_s: float) -> None:
        result = flight.poll()
        if result is None:
            view = self._link.views().get(flight.step.station)
            if view is not None and not view.restored and view.stamp_s > flight.sent_s:
                result = TaskResult(Outcome.UNREACHABLE, f'{flight.step.station} restarted')
            elif now_s >= flight.deadline_s:
                self._link.stop_station(flight.step.station)
                result = TaskResult(
                    Outcome.FAILED, f'timed out after {flight.step.timeout_s:g} s; stopped'
                )
            else:
                return
        if result.outcome is Outcome.UNREACHABLE:
            # Sent again with the same key once the station is back (it may have run it).
            job.flight = None
            self._log(f'command {job.command.id}: {flight.step.label}: {result.message}')
            return
        if result.outcome is Outcome.SUCCEEDED:
            workpiece = result.workpiece if result.workpiece.present else flight.record.workpiece
            self._step_ended(job, flight.record, flight.step, workpiece, now_s, note='')
            return
        self._ground(job, f'{flight.step.label} {result.outcome.value}: {result.message}', now_s)

    @staticmethod
    def _ground(job: _Job, failure: str, now_s: float) -> None:
        """The attempt in flight did not succeed at ``now_s``: locate the cookie next."""
        if job.flight is not None:
            job.open, job.flight = job.flight.record, None
        job.failure, job.failed_s = failure, now_s

    def _locate(self, job: _Job, record: StepRecord, now_s: float) -> None:
        """After an attempt did not succeed: ask its station where the cookie is, journal it,
        then retry (or give up). A station that does not report in ``station_wait_s`` leaves
        the cookie where the step started and the step stuck."""
        step = _step_of(record, self._settings.plan)
        view = self._link.views().get(step.station)
        failed_s = job.failed_s if job.failed_s is not None else float('-inf')
        settled = view is not None and view.stamp_s > failed_s and not view.busy
        stuck = False
        if not settled:
            if not self._wait(job, f'{step.station} to report after {job.failure}', now_s):
                return
            stuck = True
        place = (
            step.source if view is None or not settled else locate(step, record.workpiece.id, view)
        )
        job.waiting_since_s = None
        if place == step.destination:
            self._step_ended(job, record, step, record.workpiece, now_s, note=job.failure)
            return
        command = self._queue.end_step(
            record.key,
            self.fence(now_s),
            state=StepState.FAILED,
            location=place,
            workpiece=record.workpiece,
            message=job.failure,
        )
        self._commit(command, now_s)
        self._log(f'command {job.command.id}: {step.label} failed ({job.failure}); at {place}')
        job.command, job.open, job.failed_s = command, None, None
        job.attempt += 1
        job.failures += 1
        if place == UNKNOWN:
            self._lose(job, f'lost during {step.label}: {job.failure}', now_s)
        elif job.abort:
            return  # the command ends on the next tick
        elif stuck or job.failures >= self._settings.step_attempts:
            self._stuck(job, f'{step.label} failed {job.failures} times: {job.failure}', now_s)

    def _step_ended(
        self,
        job: _Job,
        record: StepRecord,
        step: Step,
        workpiece: Workpiece,
        now_s: float,
        *,
        note: str,
    ) -> None:
        plan_step = job.phase is Phase.PLAN
        command = self._queue.end_step(
            record.key,
            self.fence(now_s),
            state=StepState.SUCCEEDED,
            location=step.destination,
            workpiece=workpiece,
            message=note,
            step_index=job.index + 1 if plan_step else None,
            change=step.slot_change(workpiece),
        )
        self._commit(command, now_s)
        self._log(f'command {job.command.id}: {step.label} done; at {step.destination}')
        job.command, job.open, job.flight, job.failed_s = command, None, None, None
        job.index += 1
        job.attempt, job.failures = 1, 0
        if plan_step and self._cancel_pending(job):
            job.abort, job.abort_status = 'cancelled', CommandStatus.CANCELLED

    # -- ends ------------------------------------------------------------------------------

    def _cancel_pending(self, job: _Job) -> bool:
        return job.command.id in self._cancels or job.command.cancel_requested

    def _complete(self, job: _Job, now_s: float) -> None:
        command = self._queue.complete(job.command.id, self.fence(now_s))
        self._commit(command, now_s)
        self._cancels.discard(command.id)
        self._log(f'command {command.id}: completed')
        self._job = None
        self.notify()

    def _end_plan(self, job: _Job, now_s: float) -> None:
        """End the running command (cancel, emergency stop, or giving up) where its cookie is;
        a cookie away from the rack is carried back next."""
        if job.index >= len(job.plan):
            self._complete(job, now_s)
            return
        command = self._queue.finish(
            job.command.id, self.fence(now_s), status=job.abort_status, reason=job.abort
        )
        self._commit(command, now_s)
        self._cancels.discard(command.id)
        self._log(f'command {command.id}: {command.status.name}: {command.message}')
        if command.status is CommandStatus.FAILED:
            self._raise(Severity.WARNING, 'COMMAND_FAILED', str(command.id), command.message)
        self._job = _Job(command=command, phase=Phase.RETURN, plan=()) if command.stranded else None
        self.notify()

    def _give_up(self, job: _Job, reason: str, now_s: float) -> None:
        job.abort, job.abort_status = reason, CommandStatus.FAILED
        self._end_plan(job, now_s)

    def _stuck(self, job: _Job, reason: str, now_s: float) -> None:
        """A step cannot go on for now: a command gives up; a return waits (alerted)."""
        job.failures = 0
        job.waiting_since_s = None
        if job.phase is Phase.PLAN:
            self._give_up(job, reason, now_s)
            return
        self._raise(
            Severity.ERROR,
            'RETURN_BLOCKED',
            job.workpiece.id,
            f'{job.workpiece.id} of command {job.command.id} waits at {job.location}: {reason}',
        )

    def _returned(self, job: _Job, now_s: float) -> None:
        command = self._queue.returned(job.command.id, self.fence(now_s), workpiece=job.workpiece)
        self._commit(command, now_s)
        self._clear('RETURN_BLOCKED', job.workpiece.id)
        self._log(f'command {command.id}: {job.workpiece.id} back in {command.home_slot}')
        self._job = None
        self.notify()

    def _lose(self, job: _Job, reason: str, now_s: float) -> None:
        if job.phase is Phase.PLAN:
            self._give_up(job, reason, now_s)
            return
        command = self._queue.lost(job.command.id, self.fence(now_s), reason=reason)
        self._commit(command, now_s)
        self._raise(Severity.ERROR, 'WORKPIECE_LOST', job.workpiece.id, command.message)
        self._job = None
        self.notify()

    # -- output ----------------------------------------------------------------------------

    def _commit(self, command: CommandRecord, now_s: float) -> None:
        """After a committed write: announce it and the new inventory."""
        self._changed_s = now_s
        self._rack = None
        self._announce(command)
        self._inventory_changed()

    def _raise(self, severity: Severity, code: str, component: str, message: str) -> None:
        if self._alerts.get((code, component)) == message:
            return
        self._alerts[code, component] = message
        self._alert_sink(severity, code, component, message)

    def _clear(self, code: str, component: str) -> None:
        if self._alerts.pop((code, component), None) is not None:
            self._alert_sink(Severity.INFO, code, component, f'{code} on {component} cleared')


# -- pure helpers --------------------------------------------------------------------------


def locate(step: Step, workpiece_id: str, view: StationView) -> str:
    """Where a workpiece is after ``step`` did not succeed, from its station's latest view.

    A station that restarted lost its contents: the step starts over from its source. Else the
    station's own contents say it (a rack slot, the fork, the belt, the gripper); a workpiece
    it does not hold lies at the end of the step that no station holds (the source of a step
    that never took it, the destination of one that let it go); otherwise it is lost.
    """
    if not view.restored:
        return step.source
    held = _held_place(step.station, view, workpiece_id)
    if held:
        if held == 'belt':
            return step.source if holder_of(step.source) else step.destination
        return held
    if holder_of(step.destination) is None:
        return step.destination
    if holder_of(step.source) is None:
        return step.source
    return UNKNOWN


def _held_place(station: str, view: StationView, workpiece_id: str) -> str:
    """Where ``station``'s view shows the workpiece ('belt': anywhere on the belt), or ''."""
    for entry in view.rack:
        if entry.workpiece.id == workpiece_id:
            return rack_place(entry.slot)
    if not workpiece_id or view.holding.id != workpiece_id:
        return ''
    return {'hbw': HBW_FORK, 'vgr': GRIPPER}.get(station, 'belt')


def _contents(
    station: str, location: str, workpiece: Workpiece, rack: tuple[InventorySlot, ...]
) -> Contents:
    """What ``station`` holds when ``workpiece`` is at ``location`` and the rack is ``rack``
    (the HBW's; empty for the others)."""
    holder = holder_of(location)
    holds = holder is not None and holder.station == station and not slot_of(location)
    return Contents(
        workpiece=workpiece if holds else Workpiece(),
        place=holder.part if holds and holder else '',
        rack=rack,
    )


def _matches(view: StationView, expected: Contents) -> bool:
    if view.holding.id != expected.workpiece.id:
        return False
    if not expected.rack:
        return True
    have = {entry.slot: (entry.workpiece.id, entry.workpiece.status) for entry in view.rack}
    want = {entry.slot: (entry.workpiece.id, entry.workpiece.status) for entry in expected.rack}
    return have == want


def _describe_contents(contents: Contents) -> str:
    held = contents.workpiece.id or 'nothing'
    if not contents.rack:
        return f'{held}' + (f' at {contents.place}' if contents.place else '')
    stocked = ', '.join(f'{e.slot}={e.workpiece.id}' for e in contents.rack if e.workpiece.present)
    return f'rack [{stocked or "empty"}], fork {held}'


def _describe_view(view: StationView) -> str:
    return _describe_contents(Contents(workpiece=view.holding, rack=view.rack))


def _step_of(record: StepRecord, settings: PlanSettings) -> Step:
    """The step a journal entry is an attempt of (its timeout from the current settings)."""
    return Step(
        record.station,
        record.verb,
        record.target,
        record.source,
        record.destination,
        record.value,
        settings.timeouts[record.station] + record.value,
    )
