"""One factory of the pure station models (``stf_nodes.sim``) driven through scheduler plans
the way the live scheduler drives the station nodes, with reuse of simulated commands.

:class:`SimFactory` owns an ``Hbw``, a ``Vgr`` and a ``Conveyor`` built from the same
parameters as the live nodes (``config/factory.yaml``) and steps them together at the nodes'
physics rate. :meth:`SimFactory.run_plan` executes the steps of a command (``plan_for``, the
scheduler's own plans) like ``stf_nodes.scheduler.runner``: each step is a station task sent
with the workpiece the previous step ended with; a refused, failed or timed-out task fails the
command, a timed-out station is stopped (emergency stop, reset), the cookie is located the way
the runner does it (``locate``) and carried back to its slot (``return_route``); between two
steps one scheduler tick passes. Unlike the live runner, a failed step is not tried again
before the command fails (the history shows a little more failures than a live factory with
the same faults).

Reuse. Simulating 30 days step by step would take minutes, so a simulated piece of a plan
(the generator cuts plans before bakes, picks and around the crane's steps) is reused when a
later one starts from the same state (``start_key``): the plan piece, the positions of the
involved stations' axes, what the stations hold, the phase of the belt marks (in quarters of a
pitch), the oven temperature for a bake (10 °C buckets), the vacuum for the gripper (0.2 bar
buckets), the motors' running states and the faults that change motion (STALL, BELT_SLIP,
STUCK, of the involved stations). Stations a piece does not use only stand still and are
stepped in one go (``reuse``); a piece that failed depends on every station (the recovery may
use any). What a reused piece does to the motors is computed exactly from their state at its
start: every call the stations made on each motor (``command``, ``step``) is recorded,
replayed once through a fresh ``Motor`` carrying the motor's electrical fault (OVERCURRENT,
BEARING_WEAR, VIBRATION, with the magnitude the scenario has then) and applied to the real
motor, because the motor model is linear in what depends on the start: energy, running time
and starts add up; the temperature is the replay's plus the decay of the start's excess over
ambient (C·dT/dt is linear in T, stepped exactly); the health loss does not depend on the
health unless the winding passes ``wear_temperature_c``; the health a worn bearing takes is
the real motor's, taken when its fault is set between pieces, never in a replay. Pieces where
the winding could get that hot, with a failed motor (MOTOR_FAILURE collapses health toward a
level), or during which a fault starts or ends, are simulated step by step on the real state
instead (``CommandRun.exact``); the steps of an onset take effect at the next piece.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from stf_nodes.runtime.parameters import load_parameter_file
from stf_nodes.scheduler.records import InventorySlot
from stf_nodes.scheduler.records import Workpiece as RackWorkpiece
from stf_nodes.scheduler.routes import PlanSettings, Step, return_route
from stf_nodes.scheduler.runner import StationView, locate
from stf_nodes.sim import (
    Conveyor,
    ConveyorConfig,
    Hbw,
    HbwConfig,
    Motor,
    Station,
    TaskRefused,
    TaskStatus,
    Vgr,
    VgrConfig,
    Workpiece,
    WorkpieceStatus,
)
from stf_nodes.sim.faults import Fault, FaultKind
from stf_nodes.sim.station import Checkpoint
from stf_nodes.workpieces import WorkpieceStatus as RackStatus

#: Electrical faults: they change currents, heat and wear but not motion.
ELECTRICAL_FAULTS = frozenset({FaultKind.OVERCURRENT, FaultKind.BEARING_WEAR, FaultKind.VIBRATION})
#: Sensor faults applied on top of the simulation (their randomness must not repeat).
OVERLAY_FAULTS = frozenset({FaultKind.GHOST_READINGS})
STATIONS = ('hbw', 'vgr', 'conveyor')
MOTOR_FIELDS = (
    'current_a',
    'direction',
    'energy_wh',
    'temperature_c',
    'health',
    'start_count',
    'runtime_h',
)

FaultState = Mapping[str, tuple[FaultKind, float]]
#: (physics step index, the faults from then on, components maintained then)
FaultChange = tuple[int, FaultState, tuple[str, ...]]


@dataclass(frozen=True, kw_only=True)
class FactorySettings:
    """The live factory's parameters as the generator uses them."""

    hbw: HbwConfig = field(default_factory=HbwConfig)
    vgr: VgrConfig = field(default_factory=VgrConfig)
    conveyor: ConveyorConfig = field(default_factory=ConveyorConfig)
    plan: PlanSettings = field(default_factory=PlanSettings)
    physics_dt_s: float = 0.02  # station node physics_rate 50 Hz
    tick_s: float = 0.05  # scheduler tick_rate 20 Hz: the time between two steps

    @classmethod
    def from_parameter_file(cls, path: Path) -> FactorySettings:
        """The sections ``hbw``, ``vgr``, ``conveyor`` of a ROS 2 parameter file
        (``config/factory.yaml``) and the scheduler's file beside it (``scheduler.yaml``), with
        the nodes' defaults for anything not in them."""
        sections = {name: load_parameter_file(path, f'/{name}') for name in STATIONS}
        scheduler_file = path.parent / 'scheduler.yaml'
        sections['scheduler'] = (
            load_parameter_file(scheduler_file, '/scheduler') if scheduler_file.is_file() else {}
        )
        configs = {}
        for name, config_class in (
            ('hbw', HbwConfig),
            ('vgr', VgrConfig),
            ('conveyor', ConveyorConfig),
        ):
            params = {
                k: v
                for k, v in sections[name].items()
                if k not in ('physics_rate', 'diagnostics_rate', 'mount_xyz_m', 'mount_rpy_deg')
            }
            configs[name] = config_class.from_parameters(params)
        scheduler = sections['scheduler']
        defaults = PlanSettings()
        timeouts = {
            station: float(scheduler.get(f'timeout.{station}_s', defaults.timeouts[station]))
            for station in STATIONS
        }
        physics_rate = float(sections['hbw'].get('physics_rate', 50.0))
        return cls(
            **configs,
            plan=PlanSettings(timeouts=timeouts),
            physics_dt_s=1.0 / physics_rate,
            tick_s=1.0 / float(scheduler.get('tick_rate', 20.0)),
        )


# ---------------------------------------------------------------------------------------------
# Results of simulated commands


@dataclass
class StepResult:
    """How one plan step went: physics step indices of its start and end, the reason of a
    failure as the executor words it, and the workpiece the task ended with."""

    step: Step
    succeeded: bool
    message: str
    start_step: int
    end_step: int
    workpiece: Workpiece | None = None


@dataclass
class MotorTrace:
    """One motor through a command, sampled every ``sample_steps`` physics steps (sample k is
    the state ``k·sample_steps`` steps after the command started), plus the end state."""

    values: dict[str, np.ndarray]  # MOTOR_FIELDS, running and encoder_pulses per sample
    end: dict[str, float]  # motor attributes after the command
    max_temperature_c: float
    # (step index, current) at the stations' publish instants where the current was at least
    # the watched level, and the first one after each such run: the live alert monitor sees
    # currents at the publish rate, so a short overcurrent must not fall between samples.
    currents: list[tuple[int, float]] = field(default_factory=list)


@dataclass
class CommandRun:
    """A simulated command (``exact``: on the real state, not reusable)."""

    n_steps: int
    results: list[StepResult]
    recovery: list[StepResult]
    station_changes: list[tuple[int, str, int, str, int]]  # step, station, state, task, task n
    sensor_changes: list[
        tuple[int, str, str, bool, float, str]
    ]  # step, station, id, trig, value, fault
    encoders: dict[str, np.ndarray]
    end: dict[str, Checkpoint]
    tasks_started: dict[str, int]
    cookie_id: str  # the workpiece the command moved ('' if none)
    cookie_status: WorkpieceStatus | None  # its status when the run got hold of it
    start_slots: dict[str, Workpiece | None]
    start_axes: dict[str, float]  # axis position per motor id at the start
    start_belt_mm: float
    exact: bool
    call_logs: dict[str, list[tuple[int, int, float]]] = field(default_factory=dict)
    traces: dict[str, MotorTrace] = field(default_factory=dict)  # exact runs only
    replays: dict[tuple[str, Any], MotorTrace] = field(default_factory=dict)
    stacks: dict[tuple[Any, ...], Any] = field(default_factory=dict)  # generator's stacked replays

    @property
    def failed(self) -> StepResult | None:
        return next((r for r in self.results if not r.succeeded), None)

    def rebind(self, workpiece: Workpiece | None, actual: Workpiece | None) -> Workpiece | None:
        """``workpiece`` as it is in a history where ``actual`` took the place of this run's
        cookie: ``actual``'s identity, and the status this run gave the cookie if it changed
        it (a bake), else ``actual``'s."""
        if workpiece is None or actual is None or workpiece.id != self.cookie_id:
            return workpiece
        status = workpiece.status if workpiece.status != self.cookie_status else actual.status
        return replace(actual, status=status)


# Motor call log entries: (kind, direction, value): kind 0 = command(direction, load=value),
# kind 1 = step(value physics steps); consecutive steps of a stopped motor are merged.
_COMMAND, _STEP = 0, 1


class _CallRecorder:
    """Records every ``command``/``step`` call the stations make on one motor."""

    def __init__(self, motor: Motor, dt: float) -> None:
        self.motor = motor
        self.dt = dt
        self.log: list[tuple[int, int, float]] = []
        self._command, self._step = motor.command, motor.step

    def install(self) -> None:
        self.motor.command = self.command  # type: ignore[method-assign]
        self.motor.step = self.step  # type: ignore[method-assign]

    def remove(self) -> None:
        del self.motor.command
        del self.motor.step

    def command(self, direction: int, load: float = 1.0) -> None:
        self.log.append((_COMMAND, direction, load))
        self._command(direction, load)

    def step(self, dt: float) -> None:
        # Logged, not integrated: currents, heat and wear do not feed back into motion, and the
        # replay integrates them with the motor's real fault and state.
        log = self.log
        direction = self.motor.direction
        steps = round(dt / self.dt)  # a station standing still is stepped in one go
        if direction == 0 and log and log[-1][0] == _STEP and log[-1][1] == 0:
            log[-1] = (_STEP, 0, log[-1][2] + steps)
        else:
            log.append((_STEP, direction, steps))


def replay(
    log: list[tuple[int, int, float]],
    motor: Motor,
    *,
    dt: float,
    sample_steps: int,
    n_steps: int,
    encoder: np.ndarray,
    publish_steps: int,
    watch_current_a: float,
) -> MotorTrace:
    """Replay a call log through ``motor`` and sample it (see :class:`MotorTrace`)."""
    n_samples = n_steps // sample_steps + 1
    out = {name: np.empty(n_samples) for name in (*MOTOR_FIELDS, 'running')}
    taken = 0
    max_t = motor.temperature_c
    index = 0
    currents: list[tuple[int, float]] = []
    watching = False
    publish = False

    def watch() -> None:
        nonlocal watching
        high = motor.current_a >= watch_current_a
        if high or watching:
            currents.append((index, motor.current_a))
        watching = high

    def sample() -> None:
        nonlocal taken
        out['current_a'][taken] = motor.current_a
        out['direction'][taken] = motor.direction
        out['running'][taken] = motor.running
        out['energy_wh'][taken] = motor.energy_wh
        out['temperature_c'][taken] = motor.temperature_c
        out['health'][taken] = motor.health
        out['start_count'][taken] = motor.start_count
        out['runtime_h'][taken] = motor.runtime_s / 3600.0
        taken += 1

    pending = True  # sample 0: the state at the start
    for kind, direction, value in log:
        if kind == _COMMAND:
            motor.command(direction, value)
            continue
        remaining = int(value)
        while remaining:
            if pending:
                sample()
                pending = False
            if publish:
                watch()
                publish = False
            chunk = remaining if direction == 0 else 1
            chunk = min(chunk, sample_steps - index % sample_steps)
            if chunk > 1 and watching:  # the first publish after an overcurrent, exactly
                chunk = min(chunk, publish_steps - index % publish_steps)
            motor.step(chunk * dt)
            max_t = max(max_t, motor.temperature_c)
            index += chunk
            remaining -= chunk
            if index % sample_steps == 0:
                pending = True
            if index % publish_steps == 0:
                publish = True
    if pending and taken < n_samples:
        sample()
    if publish:
        watch()
    assert taken == n_samples, (taken, n_samples)
    values = {name: array for name, array in out.items()}
    values['encoder_pulses'] = encoder
    return MotorTrace(
        values=values, end=motor_state(motor), max_temperature_c=max_t, currents=currents
    )


def motor_state(motor: Motor) -> dict[str, float]:
    """The motor's changing state (what a replay or a reuse sets)."""
    return {
        'current_a': motor.current_a,
        'direction': motor.direction,
        'load': motor.load,
        'energy_wh': motor.energy_wh,
        'temperature_c': motor.temperature_c,
        'health': motor.health,
        'bearing_damage': motor.bearing_damage,
        'start_count': motor.start_count,
        'runtime_s': motor.runtime_s,
        '_since_start_s': motor._since_start_s,
    }


# ---------------------------------------------------------------------------------------------
# The factory


class SimFactory:
    """The three station models stepped together (see the module docstring)."""

    def __init__(self, settings: FactorySettings, *, seed: int) -> None:
        self.settings = settings
        self.hbw = Hbw(config=settings.hbw, seed=seed * 1000 + settings.hbw.seed)
        self.vgr = Vgr(config=settings.vgr, seed=seed * 1000 + settings.vgr.seed)
        self.conveyor = Conveyor(
            config=settings.conveyor, seed=seed * 1000 + settings.conveyor.seed
        )
        self.stations: dict[str, Station] = {
            'hbw': self.hbw,
            'vgr': self.vgr,
            'conveyor': self.conveyor,
        }
        self.motors: dict[str, Motor] = {}
        self.parts: dict[str, Any] = {}
        self.station_of: dict[str, str] = {}
        for name, station in self.stations.items():
            self.motors.update(station.parts.motors)
            self.parts.update(station.parts.motors)
            self.parts.update(station.parts.sensors)
            self.station_of.update(dict.fromkeys(station.component_ids, name))
        self.axes = {
            axis.motor.motor_id: axis
            for station in self.stations.values()
            for axis in station.parts.axes.values()
        }
        self._scratch_conveyor = Conveyor(config=settings.conveyor)  # idle: only its oven
        self._standing_s = 0.0
        self.dt = settings.physics_dt_s
        self.tick_steps = max(1, round(settings.tick_s / self.dt))
        # The stations publish (and their alert monitors look) at publish_rate.
        self.publish_steps = max(1, round(1.0 / (settings.hbw.publish_rate * self.dt)))
        self.watch_current_a = min(
            c.alert.overcurrent_clear_a for c in (settings.hbw, settings.vgr, settings.conveyor)
        )
        self.task_counts = dict.fromkeys(STATIONS, 0)

    @property
    def components(self) -> dict[str, frozenset[FaultKind]]:
        return {component: part.fault_kinds for component, part in self.parts.items()}

    # -- faults ---------------------------------------------------------------------------

    def set_faults(self, state: FaultState, *, include: Callable[[FaultKind], bool]) -> None:
        """Put exactly the faults of ``state`` that ``include`` selects on the parts."""
        for component, part in self.parts.items():
            fault = state.get(component)
            wanted = Fault(fault[0], fault[1], None) if fault and include(fault[0]) else None
            if part.fault != wanted:
                part.set_fault(wanted)

    # -- keys -----------------------------------------------------------------------------

    def involved(self, plan: tuple[Step, ...], *, recovery: bool) -> frozenset[str]:
        """Stations whose course in ``plan`` is simulated: those it uses (all of them if it
        failed and a recovery ran), and the gripper while its vacuum switch is on (it will
        fall during the plan). The others only stand still."""
        used = set(STATIONS) if recovery else {step.station for step in plan}
        if self.vgr.pressure_bar >= self.vgr.config.pick_min_bar:
            used.add('vgr')
        return frozenset(used)

    def start_key(
        self, faults: FaultState, plan: tuple[Step, ...], used: frozenset[str]
    ) -> tuple[Any, ...]:
        """What the course of ``plan`` depends on besides the plan, with ``used`` the
        involved stations (see ``reuse``). The belt's roller has no end stops and moves
        relative to where it is, so only the phase of the belt marks counts; the oven counts
        for a plan that bakes, in 10 °C buckets, the vacuum for one that uses the gripper, in
        0.2 bar buckets (the start of a reused plan may differ by that much)."""
        c = self.conveyor
        motion_faults = tuple(f for f in _motion_faults(faults) if self.station_of[f[0]] in used)
        positions = tuple(
            round(axis.position_mm, 6)
            for name in ('hbw', 'vgr')
            if name in used
            for axis in self.stations[name].parts.axes.values()
        )
        holding = (
            _status(self.hbw.fork),
            _status(self.vgr.held),
            _status(c.workpiece),
            round(c.workpiece_mm, 6),
            _status(c.oven_workpiece),
        )
        bakes = any(step.verb == 'bake' for step in plan)
        return (
            used,
            positions,
            # The trail marks' phase, in quarters of a pitch: a reused run's trail edges may
            # be off by an eighth of a pitch of travel (12.5 ms at full speed by default).
            round(4 * (c.belt_mm % c.config.trail_pitch_mm) / c.config.trail_pitch_mm) % 4
            if 'conveyor' in used
            else None,
            holding,
            # Where a recovery stores a stranded cookie.
            tuple(slot for slot, wp in self.hbw.slots.items() if wp is None)
            if len(used) == len(STATIONS)
            else None,
            round(c.oven_c / 10.0) if bakes else None,
            (round(self.vgr.pressure_bar / 0.2), self.vgr.valve_open) if 'vgr' in used else None,
            tuple((m.direction, m.load) for m in self.motors.values()),
            motion_faults,
        )

    # -- idle -----------------------------------------------------------------------------

    def idle(self, seconds: float) -> None:
        """Let the factory stand still for ``seconds``: the motors at once (they are sampled),
        the rest of the stations (oven, vacuum, sensors) when ``settle`` is called."""
        if seconds > 0:
            for motor in self.motors.values():
                motor.step(seconds)
            self._standing_s += seconds

    def settle(self) -> None:
        """Step the stations over the time they stood still since the last call, in one exact
        step each, without stepping their motors again."""
        if self._standing_s <= 0:
            return
        motors = {motor_id: motor_state(m) for motor_id, m in self.motors.items()}
        for station in self.stations.values():
            station.step(self._standing_s)
        for motor_id, state in motors.items():
            for name, value in state.items():
                setattr(self.motors[motor_id], name, value)
        self._standing_s = 0.0

    # -- commands -------------------------------------------------------------------------

    def run_plan(
        self,
        plan: tuple[Step, ...],
        *,
        first_workpiece: Workpiece | None,
        home_slot: str,
        sample_steps: int,
        exact: bool,
        lead: bool = False,
        involved: frozenset[str] = frozenset(STATIONS),
        fault_changes: list[FaultChange] | None = None,
    ) -> CommandRun:
        """Simulate the plan (and the recovery after a failure) from the present state.

        ``exact`` samples the real motors (all faults but the overlay ones applied, changes from
        ``fault_changes`` at their step index); otherwise electrical faults are off and every
        motor call is logged for replay. Stations not ``involved`` stand still until a task
        (of a recovery) needs them: they are stepped in one go over the time they stood still.
        """
        recorders = {}
        if not exact:
            recorders = {i: _CallRecorder(m, self.dt) for i, m in self.motors.items()}
            for recorder in recorders.values():
                recorder.install()
        start_slots = dict(self.hbw.slots)
        start_axes = {i: axis.position_mm for i, axis in self.axes.items()}
        start_belt_mm = self.conveyor.belt_mm
        active = [s for name, s in self.stations.items() if name in involved]
        run = _Run(
            self,
            active,
            sample_steps=sample_steps,
            exact=exact,
            fault_changes=fault_changes or [],
        )
        try:
            run.execute(plan, first_workpiece, home_slot, lead=lead)
            for station in self.stations.values():
                run.catch_up(station)
        finally:
            for recorder in recorders.values():
                recorder.remove()
        tasks = {name: run.tasks[name] for name in STATIONS}
        for name, count in tasks.items():
            self.task_counts[name] += count
        result = CommandRun(
            n_steps=run.index,
            results=run.results,
            recovery=run.recovery,
            station_changes=run.station_changes,
            sensor_changes=run.sensor_changes,
            encoders={i: np.array(v, dtype=np.int64) for i, v in run.encoders.items()},
            end={name: s.checkpoint() for name, s in self.stations.items()},
            tasks_started=tasks,
            cookie_id=run.cookie_id,
            cookie_status=run.cookie_status,
            start_slots=start_slots,
            start_axes=start_axes,
            start_belt_mm=start_belt_mm,
            exact=exact,
            call_logs={i: r.log for i, r in recorders.items()},
        )
        if exact:
            result.traces = {
                motor_id: MotorTrace(
                    values={
                        name: np.array(values, dtype=np.float64)
                        for name, values in run.samples[motor_id].items()
                    },
                    end=motor_state(self.motors[motor_id]),
                    max_temperature_c=max(run.samples[motor_id]['temperature_c']),
                    currents=run.currents[motor_id],
                )
                for motor_id in self.motors
            }
        return result

    def load_checkpoint(self, end: Mapping[str, Checkpoint]) -> None:
        for name, checkpoint in end.items():
            self.stations[name].load_checkpoint(checkpoint)

    def checkpoint(self) -> dict[str, Checkpoint]:
        return {name: station.checkpoint() for name, station in self.stations.items()}

    def reuse(
        self,
        run: CommandRun,
        plan: tuple[Step, ...],
        used: frozenset[str],
        start_axes: Mapping[str, float],
        start_belt_mm: float,
        oven: tuple[float, bool],
    ) -> None:
        """Put the factory into the state ``run`` ended in, from where it is now (see
        ``start_key``): the involved stations as the run left them, the roller and the belt
        moved on from where they are; the other stations, and the oven of a plan that does not
        bake (``oven``: its temperature and heater at the start), stand still for the run's
        duration."""
        duration = run.n_steps * self.dt
        for name in STATIONS:
            if name in used:
                self.stations[name].load_checkpoint(run.end[name])
            elif duration > 0:
                self.stations[name].step(duration)
        for motor_id, axis in self.axes.items():
            if self.station_of[motor_id] in used:
                axis.position_mm += start_axes[motor_id] - run.start_axes[motor_id]
        c = self.conveyor
        if 'conveyor' in used:
            c._roller_mm = c.parts.axes['belt'].position_mm
            c.belt_mm += start_belt_mm - run.start_belt_mm
        if 'conveyor' in used and not any(step.verb == 'bake' for step in plan):
            scratch = self._scratch_conveyor
            scratch.oven_c, scratch.heater_on = oven
            if duration > 0:
                scratch.step(duration)
            c.oven_c, c.heater_on = scratch.oven_c, scratch.heater_on


def _motion_faults(faults: FaultState) -> tuple[tuple[str, str, float], ...]:
    return tuple(
        sorted(
            (component, kind.value, round(magnitude, 6))
            for component, (kind, magnitude) in faults.items()
            if kind not in ELECTRICAL_FAULTS and kind not in OVERLAY_FAULTS
        )
    )


def _status(workpiece: Workpiece | None) -> int:
    return -1 if workpiece is None else int(workpiece.status)


class _Run:
    """The executor's loop over one plan, stepping all stations and recording what happens."""

    def __init__(
        self,
        factory: SimFactory,
        active: list[Station],
        *,
        sample_steps: int,
        exact: bool,
        fault_changes: list[FaultChange],
    ) -> None:
        self.f = factory
        self.active = active
        self.publish_steps = factory.publish_steps
        self.watch_current_a = factory.watch_current_a
        self.currents: dict[str, list[tuple[int, float]]] = {i: [] for i in factory.motors}
        self._watching = dict.fromkeys(factory.motors, False)
        # Index up to which each standing station has been stepped.
        self.stepped = {s.name: 0 for s in factory.stations.values() if s not in active}
        self.sample_steps = sample_steps
        self.exact = exact
        self.fault_changes = sorted(fault_changes, key=lambda change: change[0])
        self.index = 0
        self.results: list[StepResult] = []
        self.recovery: list[StepResult] = []
        self.station_changes: list[tuple[int, str, int, str, int]] = []
        self.sensor_changes: list[tuple[int, str, str, bool, float, str]] = []
        self.tasks = dict.fromkeys(STATIONS, 0)
        self.cookie_id = ''
        self.cookie_status: WorkpieceStatus | None = None
        self.encoders: dict[str, list[int]] = {i: [] for i in factory.motors}
        self.samples: dict[str, dict[str, list[float]]] = {
            i: {name: [] for name in (*MOTOR_FIELDS, 'running', 'encoder_pulses')}
            for i in factory.motors
        }
        self._axis_of = {
            axis.motor.motor_id: axis
            for station in factory.stations.values()
            for axis in station.parts.axes.values()
        }
        self._station_seen = {s.name: (int(s.state), '', 0) for s in active}
        self._sensors = [
            ((s.name, sensor_id), sensor, [sensor.triggered, sensor.fault])
            for s in active
            for sensor_id, sensor in s.parts.sensors.items()
        ]
        self._sample()

    # -- recording ------------------------------------------------------------------------

    def _sample(self) -> None:
        for motor_id, motor in self.f.motors.items():
            axis = self._axis_of.get(motor_id)
            self.encoders[motor_id].append(axis.encoder_pulses if axis else 0)
            if self.exact:
                values = self.samples[motor_id]
                values['current_a'].append(motor.current_a)
                values['direction'].append(motor.direction)
                values['running'].append(motor.running)
                values['energy_wh'].append(motor.energy_wh)
                values['temperature_c'].append(motor.temperature_c)
                values['health'].append(motor.health)
                values['start_count'].append(motor.start_count)
                values['runtime_h'].append(motor.runtime_s / 3600.0)
                values['encoder_pulses'].append(axis.encoder_pulses if axis else 0)

    def _observe(self, *, states: bool = False) -> None:
        """Record sensor and station changes. A station's state code changes with its task,
        an emergency stop (``states``) or a fault injected mid-run (exact runs)."""
        for station in self.active:
            name = station.name
            verb = station.running_task
            seen = self._station_seen[name]
            if not (states or self.exact) and verb == seen[1]:
                continue
            seen = (int(station.state), verb, self.tasks[name] if verb else 0)
            if seen != self._station_seen[name]:
                self._station_seen[name] = seen
                self.station_changes.append((self.index, name, *seen))
        for key, sensor, last in self._sensors:
            if sensor.triggered != last[0] or sensor.fault is not last[1]:
                last[0], last[1] = sensor.triggered, sensor.fault
                fault = sensor.fault.kind.value if sensor.fault else ''
                self.sensor_changes.append(
                    (self.index, key[0], key[1], sensor.triggered, sensor.value, fault)
                )

    def _tick(self) -> None:
        while self.fault_changes and self.fault_changes[0][0] <= self.index:
            _, state, maintained = self.fault_changes.pop(0)
            self.f.set_faults(state, include=lambda kind: kind not in OVERLAY_FAULTS)
            for component in maintained:
                if component in self.f.motors:
                    self.f.motors[component].maintain()
        for station in self.active:
            station.step(self.f.dt)
        self.index += 1
        self._observe()
        if self.index % self.sample_steps == 0:
            self._sample()
        if self.exact and self.index % self.publish_steps == 0:
            for motor_id, motor in self.f.motors.items():
                high = motor.current_a >= self.watch_current_a
                if high or self._watching[motor_id]:
                    self.currents[motor_id].append((self.index, motor.current_a))
                self._watching[motor_id] = high

    # -- the executor ---------------------------------------------------------------------

    def catch_up(self, station: Station) -> None:
        """Step a station that stood still up to now (one exact step)."""
        behind = self.index - self.stepped.get(station.name, self.index)
        if behind > 0:
            station.step(behind * self.f.dt)
        self.stepped[station.name] = self.index

    def _task(self, step: Step, workpiece: Workpiece | None) -> StepResult:
        station = self.f.stations[step.station]
        if station not in self.active:
            self.catch_up(station)
            del self.stepped[station.name]
            self.active.append(station)
            self._station_seen[station.name] = (int(station.state), '', 0)
            self._sensors += [
                ((station.name, sensor_id), sensor, [sensor.triggered, sensor.fault])
                for sensor_id, sensor in station.parts.sensors.items()
            ]
        start = self.index
        try:
            station.start_task(step.verb, target=step.target, workpiece=workpiece, value=step.value)
        except TaskRefused as exc:
            return StepResult(step, False, f'{step.label} refused: {exc}', start, start)
        self.tasks[step.station] += 1
        self._observe()
        deadline = self.index + math.ceil(step.timeout_s / self.f.dt)
        while True:
            self._tick()
            if not station.running_task:
                report = station.task
                assert report is not None
                station.pop_events()
                if report.status is TaskStatus.SUCCEEDED:
                    return StepResult(step, True, '', start, self.index, report.workpiece)
                reason = f'{step.label} failed: {report.message}'
                return StepResult(step, False, reason, start, self.index)
            if self.index >= deadline:
                station.emergency_stop()
                station.reset()
                station.pop_events()
                self._observe(states=True)
                reason = f'{step.label} failed: timed out after {step.timeout_s:g} s'
                return StepResult(step, False, reason, start, self.index)

    def _handover(self) -> None:
        for _ in range(self.f.tick_steps):
            self._tick()

    def execute(
        self, plan: tuple[Step, ...], first: Workpiece | None, home_slot: str, *, lead: bool
    ) -> None:
        workpiece = first
        if first is not None:
            self.cookie_id, self.cookie_status = first.id, first.status
        for position, step in enumerate(plan):
            if position or lead:
                self._handover()
            result = self._task(step, workpiece)
            self.results.append(result)
            if not result.succeeded:
                self._carry_back(step, workpiece, home_slot)
                return
            if result.workpiece is not None:
                workpiece = result.workpiece
                if not self.cookie_id:
                    self.cookie_id, self.cookie_status = workpiece.id, workpiece.status

    def _carry_back(self, failed: Step, workpiece: Workpiece | None, home_slot: str) -> None:
        """What the runner does when a command gives up: locate the cookie from the failed
        step's station and carry it back to its slot."""
        self._handover()
        if workpiece is None:
            return
        place = locate(failed, workpiece.id, self._view(failed.station))
        for position, step in enumerate(return_route(place, home_slot, self.f.settings.plan) or ()):
            if position:
                self._handover()
            result = self._task(step, workpiece)
            self.recovery.append(result)
            if not result.succeeded:
                return
            if result.workpiece is not None:
                workpiece = result.workpiece

    def _view(self, name: str) -> StationView:
        """A station as the runner sees it in its state message."""
        f = self.f
        holding = {'hbw': f.hbw.fork, 'vgr': f.vgr.held, 'conveyor': f.conveyor.workpiece}[name]
        rack = tuple(
            InventorySlot(slot=slot, carrier_id=f'C-{slot}', workpiece=_rack_workpiece(wp))
            for slot, wp in f.hbw.slots.items()
        )
        return StationView(
            stamp_s=0.0,
            busy=False,
            able=True,
            condition='READY',
            restored=True,
            holding=_rack_workpiece(holding),
            rack=rack if name == 'hbw' else (),
        )


def _rack_workpiece(workpiece: Workpiece | None) -> RackWorkpiece:
    if workpiece is None:
        return RackWorkpiece()
    return RackWorkpiece(
        id=workpiece.id, flavor=workpiece.flavor.value, status=RackStatus(int(workpiece.status))
    )


def stable_seed(*parts: Any) -> int:
    """A seed derived from values, the same in every process (unlike ``hash``)."""
    return zlib.crc32(repr(parts).encode())
