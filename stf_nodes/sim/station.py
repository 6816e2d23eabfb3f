"""Machinery shared by the stations: task runner, emergency stop, faults, snapshots.

A task is planned when it is started: the planner validates the request (raising
``TaskRefused`` without touching state) and returns a list of steps. A step is a generator that
acts when first advanced and then yields its own progress (0..1) once per tick until done;
raising ``TaskFailedError`` fails the task. Progress is (finished steps + step progress) / steps.

Each ``step(dt)``: expire faults, move axes and integrate motors, update sensors from the new
positions, advance the task. Finished tasks are queued for ``pop_events``.

Requests come from a scheduler that may crash, restart or be replaced (docs of
``stf_nodes.scheduler``), so a station keeps three promises:

- **Idempotent tasks.** A task started with a ``key`` is remembered (the last ``KEPT_TASKS``):
  ``task_for_key`` finds it, so a repeated request reports the first task instead of running it
  again. A restarted station has forgotten its keys, and its simulated contents with them.
- **Fencing.** ``fence(token)`` refuses a scheduler lease token lower than the highest seen, so
  a deposed scheduler cannot move anything once its successor has.
- **Restore.** ``restore`` puts back what the station holds (rack, fork, belt, gripper) from
  the scheduler's durable records after the station restarted; ``restored`` says it happened.

Between tasks, ``checkpoint()`` captures the complete mutable state of a station (every part,
the task counter, the random generator) and ``load_checkpoint()`` puts it back: a simulation can be
branched or replayed from a known state (the history generator reuses simulated commands this
way). Configs and the wiring between parts are not part of a checkpoint: load it into
the station it came from or one built from the same config.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from stf_nodes.sim.axis import Axis, AxisConfig
from stf_nodes.sim.faults import MOTOR_FAULTS, FaultKind, make_fault
from stf_nodes.sim.model import (
    FaultRefused,
    Pose,
    Refused,
    StationSnapshot,
    StationState,
    TaskRefused,
    TaskReport,
    TaskStatus,
    Workpiece,
)
from stf_nodes.sim.motor import Motor, MotorConfig
from stf_nodes.sim.params import ParameterConfig
from stf_nodes.sim.sensors import Sensor
from stf_nodes.validation import quote

Step = Generator[float, None, None]
Planner = Callable[[str, Workpiece | None, float], list[Step]]


def parse_coordinates(target: str, axes: str) -> tuple[float, ...] | None:
    """``"x,y,z"``-style coordinates in mm for ``axes`` (e.g. ``'xyz'``), None for a name."""
    if not target[:1].isdigit():
        return None
    values = target.split(',')
    try:
        if len(values) == len(axes):
            return tuple(float(v) for v in values)
    except ValueError:
        pass
    raise TaskRefused(f'coordinates must be "{",".join(axes)}" in mm, got {quote(target)}')


#: Tasks with an idempotency key remembered per station (finished ones beyond this are forgotten).
KEPT_TASKS = 256


class TaskFailedError(Exception):
    """Raised inside a step to fail the running task with a message."""


@dataclass
class _Task:
    task_id: int
    verb: str
    target: str
    steps: list[Step]
    index: int = 0
    progress: float = 0.0
    status: TaskStatus = TaskStatus.RUNNING
    message: str = ''
    workpiece: Workpiece | None = None

    def report(self) -> TaskReport:
        return TaskReport(
            task_id=self.task_id,
            task=self.verb,
            target=self.target,
            status=self.status,
            progress=self.progress,
            message=self.message,
            workpiece=self.workpiece,
        )


@dataclass(frozen=True)
class Checkpoint:
    """The mutable state of a station between tasks (see the module docstring)."""

    station: dict[str, Any]
    parts: dict[tuple[str, str], dict[str, Any]]
    rng: Any


def _state_of(obj: object, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """An object's own mutable state: plain values, containers copied, references to configs
    and other parts left out."""
    state = {}
    for name, value in vars(obj).items():
        if name in skip or isinstance(value, (ParameterConfig, Motor, Axis, Sensor, _Parts)):
            continue
        state[name] = value.copy() if isinstance(value, (dict, list)) else value
    return state


@dataclass
class _Parts:
    """The components of a station, by component id / axis name."""

    axes: dict[str, Axis] = field(default_factory=dict)
    motors: dict[str, Motor] = field(default_factory=dict)
    sensors: dict[str, Sensor] = field(default_factory=dict)
    references: dict[str, str] = field(default_factory=dict)  # axis name -> switch id


class Station(ABC):
    """Base of the station models; subclasses add parts, planners, sensors and snapshots."""

    name: ClassVar[str]

    def __init__(self, *, seed: int) -> None:
        self._rng = random.Random(seed)
        self.time_s = 0.0
        self.parts = _Parts()
        self._task: _Task | None = None
        self._next_task_id = 1
        self._events: list[TaskReport] = []
        self._estop = False
        self._keyed: OrderedDict[str, _Task] = OrderedDict()
        self._fence = 0
        self.restored = False

    # --- subclass hooks -------------------------------------------------------------------

    @abstractmethod
    def _planners(self) -> dict[str, Planner]:
        """Task verbs and their planners."""

    @abstractmethod
    def _update_sensors(self, dt: float) -> None:
        """Feed every sensor its true reading for the present state."""

    @abstractmethod
    def _poses(self) -> tuple[Pose, ...]:
        """Poses of the moving parts."""

    @abstractmethod
    def snapshot(self) -> StationSnapshot:
        """Immutable state after the last step."""

    @abstractmethod
    def _restore(
        self, workpiece: Workpiece | None, place: str, slots: Mapping[str, Workpiece | None]
    ) -> None:
        """Validate (raising ``Refused``, state untouched) and put back the contents."""

    def _physics(self, dt: float) -> None:
        """Move axes and integrate every motor; stations add their own processes."""
        driven: set[str] = set()
        for axis in self.parts.axes.values():
            axis.step(dt)
            driven.add(axis.motor.motor_id)
        for motor_id, motor in self.parts.motors.items():
            if motor_id not in driven:
                motor.step(dt)

    def _halt(self) -> None:
        """Stop all actuators (emergency stop, failed task); stations extend this."""
        for axis in self.parts.axes.values():
            axis.halt()

    # --- public API -----------------------------------------------------------------------

    @property
    def verbs(self) -> tuple[str, ...]:
        return tuple(self._planners())

    @property
    def component_ids(self) -> tuple[str, ...]:
        return (*self.parts.motors, *self.parts.sensors)

    @property
    def task(self) -> TaskReport | None:
        """The running task, else the last one."""
        return self._task.report() if self._task else None

    @property
    def running_task(self) -> str:
        """The verb of the running task, '' when none runs (cheaper than ``task``)."""
        task = self._task
        return task.verb if task is not None and task.status is TaskStatus.RUNNING else ''

    @property
    def state(self) -> StationState:
        if self._estop or any(m.failed for m in self.parts.motors.values()):
            return StationState.ERROR
        if self._task is None or self._task.status is not TaskStatus.RUNNING:
            return StationState.READY
        return StationState.CALIBRATING if self._task.verb == 'calibrate' else StationState.BUSY

    def step(self, dt: float) -> None:
        """Advance the simulation by ``dt`` seconds."""
        if dt <= 0:
            raise ValueError(f'dt must be positive, got {dt}')
        self.time_s += dt
        for part in self._all_parts():
            expires = part.fault.expires_s if part.fault else None
            if expires is not None and expires <= self.time_s:
                part.set_fault(None)
        self._physics(dt)
        self._update_sensors(dt)
        self._advance_task()

    def start_task(
        self,
        task: str,
        *,
        target: str = '',
        workpiece: Workpiece | None = None,
        value: float = 0.0,
        key: str = '',
    ) -> int:
        """Plan and start ``task``; return its id or raise ``TaskRefused`` (state untouched).

        A non-empty ``key`` is remembered for :meth:`task_for_key`; reusing one is refused.
        """
        if key and key in self._keyed:
            raise TaskRefused(f'task key {quote(key)} was used by task {self._keyed[key].task_id}')
        if self._estop:
            raise TaskRefused('emergency stop active; reset first')
        if self._task is not None and self._task.status is TaskStatus.RUNNING:
            raise TaskRefused(f'task {self._task.task_id} ({self._task.verb}) is running')
        failed = [m.motor_id for m in self.parts.motors.values() if m.failed]
        if failed:
            raise TaskRefused(f'motor failed: {", ".join(failed)}')
        planner = self._planners().get(task)
        if planner is None:
            known = ', '.join(self.verbs)
            raise TaskRefused(f'unknown task {quote(task)}; {self.name} knows {known}')
        steps = planner(target, workpiece, value)
        self._task = _Task(self._next_task_id, task, target, steps)
        self._next_task_id += 1
        if key:
            self._keyed[key] = self._task
            while len(self._keyed) > KEPT_TASKS:
                self._keyed.popitem(last=False)
        return self._task.task_id

    def task_for_key(self, key: str) -> TaskReport | None:
        """The task started with idempotency ``key`` (running or finished), or None."""
        task = self._keyed.get(key) if key else None
        return None if task is None else task.report()

    def fence(self, token: int) -> None:
        """Accept a request with a scheduler lease ``token`` (0: not fenced), or raise
        ``Refused`` when a newer scheduler has already been accepted."""
        if token and token < self._fence:
            raise Refused(f'fencing token {token} is stale: token {self._fence} was accepted')
        self._fence = max(self._fence, token)

    def restore(
        self,
        *,
        workpiece: Workpiece | None = None,
        place: str = '',
        slots: Mapping[str, Workpiece | None] | None = None,
    ) -> None:
        """Put back what the station holds (see the module docstring); ``Refused`` while a
        task runs or when the contents do not fit the station."""
        if self._task is not None and self._task.status is TaskStatus.RUNNING:
            raise Refused(f'task {self._task.task_id} ({self._task.verb}) is running')
        self._restore(workpiece, place, slots or {})
        self.restored = True

    def pop_events(self) -> list[TaskReport]:
        """Reports of the tasks that finished since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    def emergency_stop(self) -> None:
        """Halt all motion at once and fail the running task; tasks are refused until reset."""
        self._estop = True
        self._halt()
        self._finish(TaskStatus.FAILED, 'emergency stop')

    def reset(self) -> None:
        """Leave the emergency stop; the station is ready for tasks again."""
        self._estop = False

    def inject_fault(
        self, component_id: str, kind: str, magnitude: float = 0.0, duration_s: float = 0.0
    ) -> None:
        """Put a fault on a motor or sensor (see ``faults.py``) or raise ``FaultRefused``."""
        part = self._part(component_id)
        part.set_fault(
            make_fault(
                kind,
                magnitude,
                duration_s,
                allowed=part.fault_kinds,
                component_id=component_id,
                now_s=self.time_s,
            )
        )

    def clear_fault(self, component_id: str = '') -> None:
        """Clear the fault of one component, or of all when ``component_id`` is empty."""
        parts = [self._part(component_id)] if component_id else self._all_parts()
        for part in parts:
            part.set_fault(None)

    def checkpoint(self) -> Checkpoint:
        """The station's complete mutable state; only between tasks (raises RuntimeError)."""
        if self._task is not None and self._task.status is TaskStatus.RUNNING:
            raise RuntimeError(f'{self.name}: no checkpoint while task {self._task.task_id} runs')
        station = _state_of(self, frozenset({'_rng', '_task'}))
        # A finished task keeps only its report; its exhausted steps are not state.
        station['_task'] = replace(self._task, steps=[]) if self._task else None
        parts = {
            **{('axis', n): _state_of(a) for n, a in self.parts.axes.items()},
            **{('motor', n): _state_of(m) for n, m in self.parts.motors.items()},
            **{('sensor', n): _state_of(s) for n, s in self.parts.sensors.items()},
        }
        return Checkpoint(station=station, parts=parts, rng=self._rng.getstate())

    def load_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Put the state of ``checkpoint`` back (containers are copied, the checkpoint stays
        reusable)."""
        groups: dict[str, Mapping[str, object]] = {
            'axis': self.parts.axes,
            'motor': self.parts.motors,
            'sensor': self.parts.sensors,
        }
        for obj, state in (
            (self, checkpoint.station),
            *((groups[kind][name], part) for (kind, name), part in checkpoint.parts.items()),
        ):
            for name, value in state.items():
                setattr(obj, name, value.copy() if isinstance(value, (dict, list)) else value)
        self._rng.setstate(checkpoint.rng)

    def maintain(self, motor_id: str) -> None:
        """Service a motor: its health returns to 1."""
        motor = self.parts.motors.get(motor_id)
        if motor is None:
            raise FaultRefused(f'unknown motor {quote(motor_id)}')
        motor.maintain()

    # --- helpers for subclasses -----------------------------------------------------------

    def _all_parts(self) -> list[Motor | Sensor]:
        return [*self.parts.motors.values(), *self.parts.sensors.values()]

    def _part(self, component_id: str) -> Motor | Sensor:
        part = self.parts.motors.get(component_id) or self.parts.sensors.get(component_id)
        if part is None:
            known = ', '.join(self.component_ids)
            raise FaultRefused(f'unknown component {quote(component_id)}; {self.name} has {known}')
        return part

    def _common(self) -> dict[str, Any]:
        """Snapshot fields every station shares."""
        encoders = {a.motor.motor_id: a.encoder_pulses for a in self.parts.axes.values()}
        return {
            'station': self.name,
            'time_s': self.time_s,
            'state': self.state,
            'estop': self._estop,
            'restored': self.restored,
            'task': self.task,
            'motors': tuple(m.snapshot(encoders.get(i, 0)) for i, m in self.parts.motors.items()),
            'sensors': tuple(s.snapshot() for s in self.parts.sensors.values()),
            'poses': self._poses(),
        }

    def _running_task(self) -> _Task:
        assert self._task is not None
        return self._task

    def _move(self, **targets: float) -> Step:
        """Step: move the named axes together; targets are validated now, at plan time."""
        for name, target in targets.items():
            self.parts.axes[name].check(target)
        return self._run_move(targets)

    def _run_move(self, targets: dict[str, float]) -> Step:
        moves = [(self.parts.axes[name], target) for name, target in targets.items()]
        nominal = max(axis.travel_time(target) for axis, target in moves)
        config = moves[0][0].config
        budget = nominal * config.timeout_factor + config.timeout_margin_s
        for axis, target in moves:
            axis.move_to(target)
        start = self.time_s
        while not all(axis.idle for axis, _ in moves):
            elapsed = self.time_s - start
            if elapsed > budget:
                late = ', '.join(a.motor.motor_id for a, _ in moves if not a.idle)
                raise TaskFailedError(f'move timed out after {elapsed:.1f} s ({late} stuck)')
            yield min(1.0, elapsed / nominal)

    def _reference_run(self, *groups: tuple[str, ...]) -> list[Step]:
        """Steps: drive the axis groups, one group after the other, to their reference
        switches (position 0), then check every switch reports."""
        moves = [self._move(**dict.fromkeys(group, 0.0)) for group in groups]
        return [*moves, self._do(self._check_references)]

    def _check_references(self) -> None:
        missing = [
            sensor_id
            for sensor_id in self.parts.references.values()
            if not self.parts.sensors[sensor_id].triggered
        ]
        if missing:
            raise TaskFailedError(f'reference switch not reached: {", ".join(missing)}')

    def _add_motor(
        self, motor_id: str, config: MotorConfig, fault_kinds: frozenset[FaultKind] = MOTOR_FAULTS
    ) -> Motor:
        motor = Motor(motor_id=motor_id, config=config, fault_kinds=fault_kinds)
        self.parts.motors[motor_id] = motor
        return motor

    def _add_axis(
        self,
        name: str,
        *,
        motor: Motor,
        config: AxisConfig,
        limits_mm: tuple[float, float],
        position_mm: float,
        reference_id: str = '',
    ) -> None:
        """Register an axis driven by ``motor``, with its reference switch if it has one."""
        self.parts.axes[name] = Axis(
            name=motor.motor_id,
            motor=motor,
            config=config,
            min_mm=limits_mm[0],
            max_mm=limits_mm[1],
            position_mm=position_mm,
        )
        if reference_id:
            self.parts.references[name] = reference_id
            self.parts.sensors[reference_id] = Sensor(sensor_id=reference_id)

    def _update_references(self, dt: float) -> None:
        for axis, sensor_id in self.parts.references.items():
            hit = self.parts.axes[axis].at_reference
            self.parts.sensors[sensor_id].update(hit, float(hit), dt, self._rng)

    def _do(self, action: Callable[[], None]) -> Step:
        """Step: an instantaneous action (hand-over, valve, heater)."""
        action()
        yield from ()

    def _wait(self, done: Callable[[], bool], duration_s: float, failure: str = '') -> Step:
        """Step: wait until ``done()``; after ``duration_s`` fail with ``failure``, or succeed
        if ``failure`` is empty (a plain timed wait)."""
        start = self.time_s
        while not done():
            elapsed = self.time_s - start
            if elapsed >= duration_s - 1e-9:
                if failure:
                    raise TaskFailedError(failure)
                return
            yield elapsed / duration_s

    def _advance_task(self) -> None:
        task = self._task
        if task is None or task.status is not TaskStatus.RUNNING:
            return
        fraction = 0.0
        try:
            while task.index < len(task.steps):
                try:
                    fraction = next(task.steps[task.index])
                    break
                except StopIteration:
                    task.index += 1
        except TaskFailedError as exc:
            self._halt()
            self._finish(TaskStatus.FAILED, str(exc))
            return
        if task.index == len(task.steps):
            self._finish(TaskStatus.SUCCEEDED, '')
        else:
            task.progress = (task.index + fraction) / len(task.steps)

    def _finish(self, status: TaskStatus, message: str) -> None:
        task = self._task
        if task is None or task.status is not TaskStatus.RUNNING:
            return
        for step in task.steps[task.index :]:
            step.close()
        task.status, task.message = status, message
        if status is TaskStatus.SUCCEEDED:
            task.progress = 1.0
        self._events.append(task.report())
