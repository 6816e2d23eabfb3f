"""Conveyor belt with light barriers and the oven/process station beside it.

Belt. Motor ``CONV_M1`` turns the drive roller through a trapezoidal profile (``axis.*``); the
encoder counts roller travel. The belt surface moves ``(1 - slip)`` of it (slip from the
BELT_SLIP fault, else 0) and carries the workpiece along; positions are measured from the entry
end and the workpiece stops at the end stops 0 and ``belt_length_mm``. The trail sensor
``CONV_T1_TRAIL`` sees marks on the belt every ``trail_pitch_mm`` (triggered on the first half
of each pitch), so it measures real belt travel: comparing it with the encoder reveals slip.

Light barriers ``barrier_ids`` at ``barrier_positions_mm`` trigger while the workpiece is within
``barrier_window_mm`` of them; the value is the received light (0.9 clear, 0.1 blocked) plus
Gaussian noise ``barrier_noise``. ``barrier_targets`` names the positions for ``transport``.

Oven. The heater ramps the temperature linearly at ``oven_heat_rate_c_s`` up to
``oven_setpoint_c``; off, it cools as T ← T_amb + (T - T_amb)·exp(-dt/``oven_cool_tau_s``).

Verbs:

- ``load`` target position (default ``entry``), workpiece: a workpiece is set onto the belt.
- ``transport`` target position: run the belt the distance from the workpiece to the target,
  then check the target's light barrier sees it (fails if slip left it short).
- ``unload``: the workpiece is taken off the belt; the task reports it.
- ``bake`` workpiece, value = seconds (0 = ``bake_time_s``): the workpiece goes into the oven,
  the oven heats to ``oven_bake_min_c`` (at most ``oven_timeout_s``), bakes, and the task
  reports it BAKED; the oven is empty again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated

from stf_nodes.sim.alerts import AlertConfig
from stf_nodes.sim.axis import AxisConfig
from stf_nodes.sim.faults import BELT_MOTOR_FAULTS, FaultKind
from stf_nodes.sim.model import (
    ConveyorSnapshot,
    Pose,
    Refused,
    TaskRefused,
    Workpiece,
)
from stf_nodes.sim.motor import MotorConfig
from stf_nodes.sim.params import Doc, ParameterConfig
from stf_nodes.sim.sensors import Sensor
from stf_nodes.sim.station import Planner, Station, Step, TaskFailedError
from stf_nodes.validation import quote
from stf_nodes.workpieces import WorkpieceStatus

MOTOR_ID = 'CONV_M1'
TRAIL_ID = 'CONV_T1_TRAIL'
LIGHT_CLEAR, LIGHT_BLOCKED = 0.9, 0.1  # received light of a light barrier
BELT_TRAVEL_LIMIT_MM = 1e9  # the roller turns without end stops


@dataclass(frozen=True, kw_only=True)
class ConveyorConfig(ParameterConfig):
    """Conveyor and oven parameters (``conveyor`` in ``config/factory.yaml``)."""

    publish_rate: Annotated[float, Doc('state topic rate', unit='Hz', low=0.01, high=1000.0)] = 10.0
    seed: Annotated[
        int, Doc('seed of the station random generator (sensor noise, ghost readings)')
    ] = 3
    motor: MotorConfig = field(default_factory=MotorConfig)
    axis: AxisConfig = field(default_factory=AxisConfig)
    alert: AlertConfig = field(default_factory=AlertConfig)
    belt_length_mm: Annotated[
        float, Doc('belt length; the workpiece stops at 0 and at this end', unit='mm', low=0.0)
    ] = 120.0
    barrier_ids: Annotated[tuple[str, ...], Doc('light barrier component ids')] = (
        'CONV_L1_ENTRY',
        'CONV_L2_PROCESS',
        'CONV_L3_EXIT',
        'CONV_L4_OVERFLOW',
    )
    barrier_targets: Annotated[
        tuple[str, ...], Doc('the position names transport and load use for the barriers')
    ] = ('entry', 'process', 'exit', 'overflow')
    barrier_positions_mm: Annotated[
        tuple[float, ...], Doc('barrier positions from the entry end', unit='mm')
    ] = (10.0, 60.0, 95.0, 115.0)
    barrier_window_mm: Annotated[
        float,
        Doc('a barrier triggers while the workpiece is within this distance', unit='mm', low=0.0),
    ] = 10.0
    barrier_noise: Annotated[
        float, Doc('standard deviation of the received-light reading (0..1)', low=0.0, high=1.0)
    ] = 0.01
    trail_pitch_mm: Annotated[
        float, Doc('spacing of the belt marks the trail sensor counts', unit='mm', low=0.0)
    ] = 10.0
    oven_setpoint_c: Annotated[float, Doc('oven heater setpoint', unit='°C', low=-273.15)] = 180.0
    oven_bake_min_c: Annotated[
        float, Doc('baking starts once the oven is this hot', unit='°C', low=-273.15)
    ] = 170.0
    oven_heat_rate_c_s: Annotated[float, Doc('heating ramp', unit='K/s', low=0.0)] = 10.0
    oven_cool_tau_s: Annotated[
        float, Doc('cooling time constant with the heater off', unit='s', low=0.0)
    ] = 120.0
    oven_ambient_c: Annotated[float, Doc('oven ambient temperature', unit='°C', low=-273.15)] = 25.0
    oven_timeout_s: Annotated[
        float,
        Doc('bake fails if the oven does not get hot enough within this time', unit='s', low=0.0),
    ] = 60.0
    bake_time_s: Annotated[
        float, Doc('bake time when the task value is 0 (the scheduler sends 0)', unit='s', low=0.0)
    ] = 10.0


class Conveyor(Station):
    """The conveyor and oven model."""

    name = 'conveyor'

    def __init__(self, *, config: ConveyorConfig | None = None, seed: int | None = None) -> None:
        self.config = config = config or ConveyorConfig()
        super().__init__(seed=config.seed if seed is None else seed)
        self.motor = self._add_motor(MOTOR_ID, config.motor, BELT_MOTOR_FAULTS)
        self._add_axis(
            'belt',
            motor=self.motor,
            config=config.axis,
            limits_mm=(-BELT_TRAVEL_LIMIT_MM, BELT_TRAVEL_LIMIT_MM),
            position_mm=0.0,
        )
        self.barriers = dict(zip(config.barrier_ids, config.barrier_positions_mm, strict=True))
        self.targets = dict(zip(config.barrier_targets, config.barrier_ids, strict=True))
        for sensor_id in config.barrier_ids:
            self.parts.sensors[sensor_id] = Sensor(
                sensor_id=sensor_id, noise=config.barrier_noise, triggered_value=LIGHT_BLOCKED
            )
        self.parts.sensors[TRAIL_ID] = Sensor(sensor_id=TRAIL_ID)
        self.belt_mm = 0.0
        self.belt_speed_mm_s = 0.0
        self.workpiece: Workpiece | None = None
        self.workpiece_mm = 0.0
        self.oven_c = config.oven_ambient_c
        self.heater_on = False
        self.oven_workpiece: Workpiece | None = None
        self._roller_mm = 0.0

    @property
    def slip(self) -> float:
        return self.motor.fault_magnitude(FaultKind.BELT_SLIP)

    def _target_mm(self, target: str) -> float:
        if target not in self.targets:
            raise TaskRefused(f'unknown position {quote(target)}; known: {", ".join(self.targets)}')
        return self.barriers[self.targets[target]]

    # --- tasks ----------------------------------------------------------------------------

    def _planners(self) -> dict[str, Planner]:
        return {
            'load': self._plan_load,
            'transport': self._plan_transport,
            'unload': self._plan_unload,
            'bake': self._plan_bake,
        }

    def _plan_load(self, target: str, wp: Workpiece | None, _value: float) -> list[Step]:
        at = self._target_mm(target or 'entry')
        if wp is None:
            raise TaskRefused('load needs a workpiece')
        if self.workpiece is not None:
            raise TaskRefused(f'belt already carries {self.workpiece.id}')
        return [self._do(lambda: self._put_on_belt(wp, at))]

    def _plan_transport(self, target: str, _wp: Workpiece | None, _value: float) -> list[Step]:
        at = self._target_mm(target)
        if self.workpiece is None:
            raise TaskRefused('no workpiece on the belt')
        belt = self.parts.axes['belt']
        return [
            self._move(belt=belt.position_mm + at - self.workpiece_mm),
            self._do(lambda: self._check_arrival(target)),
        ]

    def _plan_unload(self, _target: str, _wp: Workpiece | None, _value: float) -> list[Step]:
        if self.workpiece is None:
            raise TaskRefused('no workpiece on the belt')
        return [self._do(self._take_off_belt)]

    def _plan_bake(self, _target: str, wp: Workpiece | None, value: float) -> list[Step]:
        c = self.config
        if wp is None:
            raise TaskRefused('bake needs a workpiece')
        if wp.status is not WorkpieceStatus.RAW_DOUGH:
            raise TaskRefused(f'{wp.id} is {wp.status.name}, not RAW_DOUGH')
        if self.oven_workpiece is not None:
            raise TaskRefused(f'oven holds {self.oven_workpiece.id}')
        if value < 0:
            raise TaskRefused(f'bake time must be >= 0 s, got {value}')
        return [
            self._do(lambda: self._into_oven(wp)),
            self._wait(
                lambda: self.oven_c >= c.oven_bake_min_c,
                c.oven_timeout_s,
                f'oven did not reach {c.oven_bake_min_c} °C',
            ),
            self._wait(lambda: False, value or c.bake_time_s),
            self._do(self._out_of_oven),
        ]

    def _put_on_belt(self, wp: Workpiece, at: float) -> None:
        self.workpiece, self.workpiece_mm = wp, at
        self._running_task().workpiece = wp

    def _take_off_belt(self) -> None:
        self._running_task().workpiece, self.workpiece = self.workpiece, None
        self.workpiece_mm = 0.0

    def _check_arrival(self, target: str) -> None:
        self._running_task().workpiece = self.workpiece
        sensor = self.targets[target]
        if not self.parts.sensors[sensor].triggered:
            raise TaskFailedError(
                f'workpiece at {self.workpiece_mm:.1f} mm did not reach {target} ({sensor} clear)'
            )

    def _into_oven(self, wp: Workpiece) -> None:
        self.oven_workpiece, self.heater_on = wp, True

    def _out_of_oven(self) -> None:
        assert self.oven_workpiece is not None
        baked = replace(self.oven_workpiece, status=WorkpieceStatus.BAKED)
        self._running_task().workpiece = baked
        self.oven_workpiece, self.heater_on = None, False

    def _restore(
        self, workpiece: Workpiece | None, place: str, slots: Mapping[str, Workpiece | None]
    ) -> None:
        """The workpiece on the belt at ``place`` (a belt position, default entry); the
        oven comes back empty (an interrupted bake starts again)."""
        if slots:
            raise Refused('the conveyor has no rack to restore')
        at = self._target_mm(place or 'entry')
        self.workpiece, self.workpiece_mm = workpiece, at if workpiece else 0.0
        self.oven_workpiece, self.heater_on = None, False

    def _halt(self) -> None:
        """Stop the belt and switch the heater off. A workpiece in the oven stays in it, but
        the conveyor no longer counts it as baking: it lies there until a gripper takes it or
        a new bake starts (the scheduler knows it is there)."""
        super()._halt()
        self.heater_on = False
        self.oven_workpiece = None

    # --- physics and observation ----------------------------------------------------------

    def _physics(self, dt: float) -> None:
        super()._physics(dt)
        c = self.config
        belt = self.parts.axes['belt']
        moved = (belt.position_mm - self._roller_mm) * (1.0 - self.slip)
        self._roller_mm = belt.position_mm
        self.belt_mm += moved
        self.belt_speed_mm_s = belt.velocity_mm_s * (1.0 - self.slip)
        if self.workpiece is not None:
            self.workpiece_mm = min(c.belt_length_mm, max(0.0, self.workpiece_mm + moved))
        if self.heater_on:
            self.oven_c = min(c.oven_setpoint_c, self.oven_c + c.oven_heat_rate_c_s * dt)
        else:
            decay = math.exp(-dt / c.oven_cool_tau_s)
            self.oven_c = c.oven_ambient_c + (self.oven_c - c.oven_ambient_c) * decay

    def _update_sensors(self, dt: float) -> None:
        c = self.config
        for sensor_id, at in self.barriers.items():
            seen = self.workpiece is not None and abs(self.workpiece_mm - at) <= c.barrier_window_mm
            light = LIGHT_BLOCKED if seen else LIGHT_CLEAR
            self.parts.sensors[sensor_id].update(seen, light, dt, self._rng)
        phase = (self.belt_mm % c.trail_pitch_mm) / c.trail_pitch_mm
        self.parts.sensors[TRAIL_ID].update(phase < 0.5, phase, dt, self._rng)

    def _poses(self) -> tuple[Pose, ...]:
        poses = [Pose('conveyor_belt', 'conveyor', self.belt_mm % self.config.trail_pitch_mm, 0, 0)]
        if self.workpiece is not None:
            poses.append(Pose('conveyor_workpiece', 'conveyor', self.workpiece_mm, 0.0, 0.0))
        return tuple(poses)

    def snapshot(self) -> ConveyorSnapshot:
        return ConveyorSnapshot(
            **self._common(),
            belt_position_mm=self.belt_mm,
            belt_speed_mm_s=self.belt_speed_mm_s,
            workpiece=self.workpiece,
            workpiece_position_mm=self.workpiece_mm,
            oven_busy=self.oven_workpiece is not None,
            oven_temperature_c=self.oven_c,
            oven_workpiece=self.oven_workpiece,
        )
