"""Trapezoidal axis: travel times, encoder counts, reference switch, limits."""

from __future__ import annotations

import math

import pytest

from stf_nodes.sim import TaskRefused
from stf_nodes.sim.axis import Axis, AxisConfig, travel_time
from stf_nodes.sim.faults import MOTOR_FAULTS, Fault, FaultKind
from stf_nodes.sim.motor import Motor, MotorConfig


def make_axis(position_mm: float = 0.0) -> Axis:
    motor = Motor(motor_id='M', config=MotorConfig(), fault_kinds=MOTOR_FAULTS)
    return Axis(
        name='X', motor=motor, config=AxisConfig(), min_mm=0, max_mm=400, position_mm=position_mm
    )


def run_to_target(axis: Axis, target: float, dt: float) -> float:
    axis.move_to(target)
    t = 0.0
    while not axis.idle:
        axis.step(dt)
        t += dt
        assert t < 60
    return t


@pytest.mark.parametrize(
    ('distance', 'speed', 'accel', 'expected'),
    [
        (300.0, 100.0, 500.0, 3.2),  # 0.2 s up, 280 mm at 100 mm/s, 0.2 s down
        (20.0, 100.0, 500.0, 0.4),  # exactly v²/a: reaches 100 mm/s and brakes at once
        (10.0, 100.0, 500.0, 2 * math.sqrt(10 / 500)),  # triangle
        (100.0, 50.0, 250.0, 2.2),  # 100/50 + 50/250
        (-300.0, 100.0, 500.0, 3.2),  # direction does not matter
    ],
)
def test_travel_time_by_hand(distance: float, speed: float, accel: float, expected: float) -> None:
    assert travel_time(distance, speed, accel) == pytest.approx(expected)


@pytest.mark.parametrize('dt', [0.1, 0.01, 0.001])
def test_simulated_move_takes_planned_time(dt: float) -> None:
    axis = make_axis()
    t = run_to_target(axis, 300.0, dt)
    assert t == pytest.approx(3.2, abs=dt + 1e-9)
    assert axis.position_mm == 300.0
    assert axis.velocity_mm_s == 0.0
    assert not axis.motor.running


def test_profile_positions_are_exact() -> None:
    axis = make_axis()
    axis.move_to(300.0)
    for _ in range(10):  # 0.1 s: accelerating, s = a t² / 2
        axis.step(0.01)
    assert axis.position_mm == pytest.approx(0.5 * 500 * 0.1**2)
    assert axis.velocity_mm_s == pytest.approx(50.0)
    for _ in range(100):  # 1.1 s: cruising, s = 10 + 100 · 0.9
        axis.step(0.01)
    assert axis.position_mm == pytest.approx(100.0)
    assert axis.velocity_mm_s == pytest.approx(100.0)


@pytest.mark.parametrize(
    ('position', 'pulses'), [(0.0, 0), (100.0, 1875), (4.0, 75), (300.0, 5625)]
)
def test_encoder_counts(position: float, pulses: int) -> None:
    axis = make_axis(position_mm=400.0)
    run_to_target(axis, position, 0.01)
    assert axis.encoder_pulses == pulses  # 18.75 pulses/mm: 75 pulses per 4 mm revolution


def test_reference_switch_only_at_home() -> None:
    axis = make_axis(position_mm=200.0)
    assert not axis.at_reference
    run_to_target(axis, 0.0, 0.01)
    assert axis.at_reference


def test_motor_runs_while_moving_with_direction_and_accel_load() -> None:
    axis = make_axis(position_mm=300.0)
    axis.move_to(0.0)
    axis.step(0.01)
    assert axis.motor.running and axis.motor.direction == -1
    assert axis.motor.load == 1.5  # accelerating
    for _ in range(100):
        axis.step(0.01)
    assert axis.motor.load == 1.0  # cruising
    assert axis.motor.current_a == pytest.approx(1.2 + 1.3 * math.exp(-1.01 / 0.15))
    assert axis.motor.start_count == 1


@pytest.mark.parametrize('target', [-1.0, 400.1])
def test_targets_beyond_limits_refused(target: float) -> None:
    axis = make_axis()
    with pytest.raises(TaskRefused, match='outside'):
        axis.move_to(target)
    assert axis.idle


def test_stalled_axis_does_not_move_and_draws_stall_current() -> None:
    axis = make_axis()
    axis.motor.set_fault(Fault(FaultKind.STALL, 2.5, None))
    axis.move_to(100.0)
    for _ in range(100):
        axis.step(0.01)
    assert axis.position_mm == 0.0
    assert axis.motor.running
    assert axis.motor.current_a == pytest.approx(2.5)
