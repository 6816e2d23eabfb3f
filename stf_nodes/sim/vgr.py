"""Vacuum gripper robot: a gantry with a horizontal arm axis and a vertical lift, and a
suction cup fed by a compressor through a valve.

Kinematics (station frame, mm): the arm carriage runs along X on a rail at ``rail_y_mm``
(motor ``VGR_M1_ARM``); the lift lowers the suction cup by Z below the travel height (motor
``VGR_M3_Z``; 0 = up, at its reference switch). Named positions give the rail X and the cup
depth Z at which a workpiece is picked or placed: ``home``, ``conveyor``, ``oven``, ``output``.

Vacuum (bar below ambient): the compressor motor ``VGR_M2_GRIP`` pulls the line toward
``pressure_max_bar`` with time constant ``pressure_tau_s``; off or stalled, leakage lets it
decay with ``leak_tau_s``; both solved exactly per step:
p ← p_eq + (p - p_eq)·exp(-dt/tau). The pressure switch ``VGR_P1_VACUUM`` reports the pressure
and triggers at ``pick_min_bar``. A pick waits (up to ``vacuum_timeout_s``) for enough vacuum
before lowering, so a stalled compressor fails the pick. The compressor keeps running while a
workpiece is held.

Verbs: ``pick`` target position, workpiece (the one lying there; the scheduler hands it over
from the previous station); ``place`` target position (the task reports the placed workpiece);
``move`` target position or ``"x,z"`` in mm; ``calibrate`` (reference run, then home).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated

from stf_nodes.sim.alerts import AlertConfig
from stf_nodes.sim.axis import AxisConfig
from stf_nodes.sim.model import Pose, Refused, TaskRefused, VgrSnapshot, Workpiece
from stf_nodes.sim.motor import MotorConfig
from stf_nodes.sim.params import Doc, ParameterConfig
from stf_nodes.sim.sensors import Sensor
from stf_nodes.sim.station import Planner, Station, Step, TaskFailedError, parse_coordinates
from stf_nodes.validation import quote

PRESSURE_ID = 'VGR_P1_VACUUM'


@dataclass(frozen=True, kw_only=True)
class VgrConfig(ParameterConfig):
    """Vacuum gripper robot parameters (``vgr`` in ``config/factory.yaml``)."""

    publish_rate: Annotated[float, Doc('state topic rate', unit='Hz', low=0.01, high=1000.0)] = 10.0
    seed: Annotated[
        int, Doc('seed of the station random generator (sensor noise, ghost readings)')
    ] = 2
    motor: MotorConfig = field(default_factory=MotorConfig)
    axis: AxisConfig = field(default_factory=AxisConfig)
    alert: AlertConfig = field(default_factory=AlertConfig)
    max_mm: Annotated[
        tuple[float, ...],
        Doc('upper axis limits (lower limits are the reference switches at 0)', unit='mm'),
    ] = (400.0, 80.0)
    rail_y_mm: Annotated[float, Doc('y of the arm rail in the station frame', unit='mm')] = 150.0
    position_names: Annotated[tuple[str, ...], Doc('named positions for pick/place/move')] = (
        'home',
        'conveyor',
        'oven',
        'output',
    )
    position_x_mm: Annotated[
        tuple[float, ...], Doc('arm (rail) position of each named position', unit='mm')
    ] = (0.0, 100.0, 220.0, 340.0)
    position_z_mm: Annotated[
        tuple[float, ...],
        Doc('depth the suction cup is lowered to at each named position', unit='mm'),
    ] = (0.0, 60.0, 50.0, 60.0)
    pressure_max_bar: Annotated[
        float, Doc('vacuum the compressor reaches, below ambient', unit='bar', low=0.0, high=1.0)
    ] = 0.8
    pressure_tau_s: Annotated[
        float, Doc('time constant of the vacuum build-up', unit='s', low=0.0)
    ] = 0.5
    leak_tau_s: Annotated[
        float, Doc('time constant of the vacuum decay with the compressor off', unit='s', low=0.0)
    ] = 20.0
    pick_min_bar: Annotated[
        float,
        Doc('vacuum needed to pick (pressure switch threshold)', unit='bar', low=0.0, high=1.0),
    ] = 0.6
    vacuum_timeout_s: Annotated[
        float, Doc('a pick fails if the vacuum is not reached within this time', unit='s', low=0.0)
    ] = 5.0


class Vgr(Station):
    """The vacuum gripper robot model."""

    name = 'vgr'

    def __init__(self, *, config: VgrConfig | None = None, seed: int | None = None) -> None:
        self.config = config = config or VgrConfig()
        super().__init__(seed=config.seed if seed is None else seed)
        for i, (axis, motor_id) in enumerate((('x', 'VGR_M1_ARM'), ('z', 'VGR_M3_Z'))):
            self._add_axis(
                axis,
                motor=self._add_motor(motor_id, config.motor),
                config=config.axis,
                limits_mm=(0.0, config.max_mm[i]),
                position_mm=0.0,
                reference_id=f'VGR_S{i + 1}_REF_{axis.upper()}',
            )
        self.compressor = self._add_motor('VGR_M2_GRIP', config.motor)
        self.parts.sensors[PRESSURE_ID] = Sensor(sensor_id=PRESSURE_ID)
        self.positions = {
            n: (x, z)
            for n, x, z in zip(
                config.position_names, config.position_x_mm, config.position_z_mm, strict=True
            )
        }
        self.pressure_bar = 0.0
        self.valve_open = False
        self.held: Workpiece | None = None

    @property
    def position(self) -> tuple[float, float, float]:
        x, z = self.parts.axes['x'].position_mm, self.parts.axes['z'].position_mm
        return x, self.config.rail_y_mm, -z

    def _position(self, target: str) -> tuple[float, float]:
        if target in self.positions:
            return self.positions[target]
        coordinates = parse_coordinates(target, 'xz')
        if coordinates is not None:
            x, z = coordinates
            return x, z
        raise TaskRefused(f'unknown position {quote(target)}; known: {", ".join(self.positions)}')

    # --- tasks ----------------------------------------------------------------------------

    def _planners(self) -> dict[str, Planner]:
        return {
            'pick': self._plan_pick,
            'place': self._plan_place,
            'move': lambda target, _wp, _v: self._travel(*self._position(target)),
            'calibrate': lambda _t, _wp, _v: [
                *self._reference_run(('z',), ('x',)),
                *self._travel(*self.positions['home']),
            ],
        }

    def _travel(self, x: float, z: float) -> list[Step]:
        """Lift up, arm along the rail, lower to ``z``."""
        return [self._move(z=0.0), self._move(x=x), self._move(z=z)]

    def _plan_pick(self, target: str, wp: Workpiece | None, _value: float) -> list[Step]:
        x, z = self._position(target)
        if self.held is not None:
            raise TaskRefused(f'already holding {self.held.id}')
        if wp is None:
            raise TaskRefused(f'pick needs the workpiece lying at {target}')
        up, arm, down = self._travel(x, z)
        return [
            up,
            arm,
            self._do(lambda: self.compressor.command(1)),
            self._wait(
                lambda: self.pressure_bar >= self.config.pick_min_bar,
                self.config.vacuum_timeout_s,
                f'no vacuum: {PRESSURE_ID} below {self.config.pick_min_bar} bar',
            ),
            down,
            self._do(lambda: self._grip(wp)),
            self._move(z=0.0),
        ]

    def _plan_place(self, target: str, _wp: Workpiece | None, _value: float) -> list[Step]:
        x, z = self._position(target)
        if self.held is None:
            raise TaskRefused('not holding a workpiece')
        return [*self._travel(x, z), self._do(self._release), self._move(z=0.0)]

    def _grip(self, wp: Workpiece) -> None:
        self.valve_open = True
        if self.pressure_bar < self.config.pick_min_bar:
            raise TaskFailedError(f'vacuum lost: {self.pressure_bar:.2f} bar')
        self.held = self._running_task().workpiece = wp

    def _release(self) -> None:
        self._running_task().workpiece = self.held
        self.held, self.valve_open = None, False
        self.compressor.command(0)

    def _restore(
        self, workpiece: Workpiece | None, place: str, slots: Mapping[str, Workpiece | None]
    ) -> None:
        """The workpiece held by suction (vacuum up, compressor running), or nothing."""
        if slots or place:
            raise Refused('the vgr restores the workpiece in its gripper only')
        self.held, self.valve_open = workpiece, workpiece is not None
        self.compressor.command(1 if workpiece else 0)
        if workpiece:
            self.pressure_bar = self.config.pressure_max_bar

    def _halt(self) -> None:
        """Stop the axes and the compressor; the valve stays as it is so a held part stays."""
        super()._halt()
        self.compressor.command(0)

    # --- physics and observation ----------------------------------------------------------

    def _physics(self, dt: float) -> None:
        super()._physics(dt)
        c = self.config
        pumping = self.compressor.running and not self.compressor.stalled
        target, tau = (c.pressure_max_bar, c.pressure_tau_s) if pumping else (0.0, c.leak_tau_s)
        self.pressure_bar = target + (self.pressure_bar - target) * math.exp(-dt / tau)

    def _update_sensors(self, dt: float) -> None:
        self._update_references(dt)
        enough = self.pressure_bar >= self.config.pick_min_bar
        self.parts.sensors[PRESSURE_ID].update(enough, self.pressure_bar, dt, self._rng)

    def _poses(self) -> tuple[Pose, ...]:
        x, y, z = self.position
        poses = [Pose('vgr_arm', 'vgr', x, y, 0.0), Pose('vgr_gripper', 'vgr_arm', 0.0, 0.0, z)]
        if self.held is not None:
            poses.append(Pose('vgr_workpiece', 'vgr_gripper', 0.0, 0.0, 0.0))
        return tuple(poses)

    def snapshot(self) -> VgrSnapshot:
        return VgrSnapshot(
            **self._common(),
            position=self.position,
            vacuum_on=self.valve_open,
            pressure_bar=self.pressure_bar,
            holding=self.held is not None,
            workpiece=self.held,
        )
