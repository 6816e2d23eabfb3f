"""Linear axis with a trapezoidal motion profile, encoder and reference switch.

A move of distance d from rest to rest with speed limit v and acceleration a takes

    t = d / v + v / a            if d >= v² / a   (trapezoid: accelerate, cruise, brake)
    t = 2 · sqrt(d / a)          otherwise        (triangle: peak speed sqrt(d·a) < v)

e.g. 300 mm at 100 mm/s and 500 mm/s² takes 3.0 + 0.2 = 3.2 s. Position is evaluated in closed
form from the time since the move began, so it does not depend on the step size.

The axis powers its motor while moving (direction from the sign of the move, load 1 cruising
and ``1 + accel_load`` while accelerating or braking). A stalled motor (fault STALL) stays
powered but the profile clock stops, so the axis does not advance and the move times out.
The encoder counts ``pulses_per_mm`` (75 pulses/rev over a 4 mm spindle pitch = 18.75) from the
reference switch at position 0, which triggers within ``reference_window_mm`` of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

from stf_nodes.sim.model import TaskRefused
from stf_nodes.sim.motor import Motor
from stf_nodes.sim.params import Doc, ParameterConfig


@dataclass(frozen=True, kw_only=True)
class AxisConfig(ParameterConfig):
    """Motion parameters shared by the axes of one station."""

    max_speed_mm_s: Annotated[float, Doc('axis speed limit', unit='mm/s', low=0.0)] = 100.0
    accel_mm_s2: Annotated[float, Doc('axis acceleration and braking', unit='mm/s²', low=0.0)] = (
        500.0
    )
    pulses_per_mm: Annotated[
        float, Doc('encoder pulses per mm (75 pulses/rev over a 4 mm pitch)', unit='1/mm', low=0.0)
    ] = 18.75
    accel_load: Annotated[float, Doc('extra motor load while accelerating or braking', low=0.0)] = (
        0.5
    )
    reference_window_mm: Annotated[
        float,
        Doc('the reference switch triggers within this distance of position 0', unit='mm', low=0.0),
    ] = 0.5
    timeout_factor: Annotated[
        float,
        Doc('a move fails after timeout_factor x its planned time plus timeout_margin_s', low=1.0),
    ] = 2.0
    timeout_margin_s: Annotated[
        float, Doc('added to timeout_factor x the planned time of a move', unit='s', low=0.0)
    ] = 1.0


def travel_time(distance_mm: float, max_speed_mm_s: float, accel_mm_s2: float) -> float:
    """Duration of a rest-to-rest move of ``distance_mm`` (see the module docstring)."""
    d, v, a = abs(distance_mm), max_speed_mm_s, accel_mm_s2
    if d >= v * v / a:
        return d / v + v / a
    return 2.0 * math.sqrt(d / a)


@dataclass(frozen=True)
class _Move:
    start_mm: float
    target_mm: float
    peak_speed_mm_s: float
    accel_time_s: float
    duration_s: float


class Axis:
    """One linear axis between ``min_mm`` and ``max_mm`` driven by ``motor``."""

    def __init__(
        self,
        *,
        name: str,
        motor: Motor,
        config: AxisConfig,
        min_mm: float,
        max_mm: float,
        position_mm: float = 0.0,
    ) -> None:
        self.name = name
        self.motor = motor
        self.config = config
        self.min_mm = min_mm
        self.max_mm = max_mm
        self.position_mm = position_mm
        self.velocity_mm_s = 0.0
        self._move: _Move | None = None
        self._elapsed_s = 0.0

    @property
    def idle(self) -> bool:
        return self._move is None

    @property
    def encoder_pulses(self) -> int:
        return round(self.position_mm * self.config.pulses_per_mm)

    @property
    def at_reference(self) -> bool:
        return abs(self.position_mm) <= self.config.reference_window_mm

    def check(self, target_mm: float) -> None:
        """Raise ``TaskRefused`` if ``target_mm`` lies outside the axis limits."""
        if not self.min_mm <= target_mm <= self.max_mm:
            raise TaskRefused(
                f'{self.name} target {target_mm:g} mm outside [{self.min_mm:g}, {self.max_mm:g}]'
            )

    def travel_time(self, target_mm: float) -> float:
        return travel_time(
            target_mm - self.position_mm, self.config.max_speed_mm_s, self.config.accel_mm_s2
        )

    def move_to(self, target_mm: float) -> None:
        """Start a rest-to-rest move; the motor starts on the next ``step``."""
        self.check(target_mm)
        distance = target_mm - self.position_mm
        if distance == 0:
            return
        a = self.config.accel_mm_s2
        peak = min(self.config.max_speed_mm_s, math.sqrt(abs(distance) * a))
        self._move = _Move(self.position_mm, target_mm, peak, peak / a, self.travel_time(target_mm))
        self._elapsed_s = 0.0

    def halt(self) -> None:
        """Stop at once (emergency stop, task failure): no profile, motor off."""
        self._move = None
        self.velocity_mm_s = 0.0
        self.motor.command(0)

    def step(self, dt: float) -> None:
        """Advance the profile by ``dt`` and integrate the motor over the same step."""
        move = self._move
        if move is None:
            self.motor.step(dt)
            return
        sign = 1 if move.target_mm > move.start_mm else -1
        braking_from = move.duration_s - move.accel_time_s
        steady = move.accel_time_s <= self._elapsed_s < braking_from
        self.motor.command(sign, 1.0 if steady else 1.0 + self.config.accel_load)
        self.motor.step(dt)
        if self.motor.stalled:
            self.velocity_mm_s = 0.0
            return
        self._elapsed_s = min(self._elapsed_s + dt, move.duration_s)
        travelled, self.velocity_mm_s = _profile(move, self._elapsed_s)
        self.position_mm = move.start_mm + sign * travelled
        self.velocity_mm_s *= sign
        if self._elapsed_s >= move.duration_s - 1e-9:
            self.position_mm = move.target_mm
            self.halt()


def _profile(move: _Move, t: float) -> tuple[float, float]:
    """(distance travelled, speed) at time ``t`` into ``move``."""
    ta, v, total = move.accel_time_s, move.peak_speed_mm_s, move.duration_s
    a = v / ta
    if t < ta:
        return 0.5 * a * t * t, a * t
    if t <= total - ta:
        return 0.5 * v * ta + v * (t - ta), v
    rest = total - t
    return abs(move.target_mm - move.start_mm) - 0.5 * a * rest * rest, a * rest
