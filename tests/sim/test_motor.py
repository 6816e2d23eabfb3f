"""Motor physics against hand-computed numbers."""

from __future__ import annotations

import itertools
import math

import pytest

from stf_nodes.sim.faults import MOTOR_FAULTS, Fault, FaultKind
from stf_nodes.sim.motor import Motor, MotorConfig

CONFIG = MotorConfig()


def make_motor() -> Motor:
    return Motor(motor_id='M', config=CONFIG, fault_kinds=MOTOR_FAULTS)


def run(motor: Motor, seconds: float, dt: float) -> None:
    for _ in range(round(seconds / dt)):
        motor.step(dt)


def test_idle_current_when_stopped() -> None:
    motor = make_motor()
    run(motor, 1.0, 0.1)
    assert motor.current_a == pytest.approx(0.05)
    assert motor.energy_wh == pytest.approx(24 * 0.05 * 1.0 / 3600)


def test_inrush_decays_to_steady_running_current() -> None:
    motor = make_motor()
    motor.command(1)
    assert motor.current_a == pytest.approx(2.5)  # i(0) = inrush
    motor.step(0.15)  # one time constant: 1.2 + 1.3/e
    assert motor.current_a == pytest.approx(1.2 + 1.3 * math.exp(-1))
    run(motor, 2.0, 0.01)
    assert motor.current_a == pytest.approx(1.2, abs=1e-6)  # 0.9 A + 1.0 · 0.3 A
    motor.command(1, load=2.0)
    motor.step(0.01)
    assert motor.current_a == pytest.approx(1.5)  # same direction: no new start, more load
    assert motor.start_count == 1


@pytest.mark.parametrize('dt', [0.5, 0.1, 0.01, 0.001])
def test_energy_is_exact_integral_of_v_i(dt: float) -> None:
    motor = make_motor()
    motor.command(1)
    run(motor, 2.0, dt)
    tau, i_ss, i_in = 0.15, 1.2, 2.5
    charge = i_ss * 2.0 + (i_in - i_ss) * tau * (1 - math.exp(-2.0 / tau))
    assert motor.energy_wh == pytest.approx(24 * charge / 3600, rel=1e-12)


def test_power_is_voltage_times_current() -> None:
    motor = make_motor()
    motor.command(-1)
    motor.step(0.05)
    snap = motor.snapshot()
    assert snap.power_w == pytest.approx(24.0 * snap.current_a)
    assert (snap.direction, snap.running, snap.start_count) == (-1, True, 1)


def test_temperature_approaches_steady_state_of_thermal_model() -> None:
    motor = make_motor()
    motor.command(1)
    run(motor, 3000.0, 1.0)  # 10 thermal time constants (5 K/W · 60 J/K = 300 s)
    # steady: T = 25 + R·I²·R_th = 25 + 1.5 · 1.2² · 5
    assert motor.temperature_c == pytest.approx(25 + 1.5 * 1.44 * 5, abs=0.01)
    motor.command(0)
    run(motor, 3000.0, 1.0)
    assert motor.temperature_c == pytest.approx(25 + 1.5 * 0.05**2 * 5, abs=0.001)  # idle


def test_temperature_rises_faster_under_overcurrent() -> None:
    normal, faulty = make_motor(), make_motor()
    faulty.set_fault(Fault(FaultKind.OVERCURRENT, 4.5, None))
    for motor in (normal, faulty):
        motor.command(1)
        run(motor, 60.0, 0.1)
    assert faulty.current_a == pytest.approx(4.5, abs=1e-6)
    # initial slope R·I²/C = 1.5 · 20.25 / 60 ≈ 0.5 K/s vs 0.036 K/s
    assert faulty.temperature_c > normal.temperature_c + 20
    assert faulty.health < normal.health


def test_health_only_decreases_until_maintenance() -> None:
    motor = make_motor()
    history = [motor.health]
    for cycle in range(50):
        motor.command(1 if cycle % 2 else -1)
        run(motor, 1.0, 0.1)
        motor.command(0)
        run(motor, 0.5, 0.1)
        history.append(motor.health)
    assert all(b <= a for a, b in itertools.pairwise(history))
    assert history[-1] < 1.0
    assert motor.start_count == 50
    motor.maintain()
    assert motor.health == 1.0


def test_a_worn_bearing_takes_health_by_its_friction_once_until_maintenance() -> None:
    motor = make_motor()
    k = CONFIG.bearing_health_per_a
    motor.set_fault(Fault(FaultKind.BEARING_WEAR, 1.0, None))  # 0.3 A of friction
    assert motor.health == pytest.approx(1.0 - 0.3 * k)
    motor.set_fault(Fault(FaultKind.BEARING_WEAR, 1.0, None))  # the same bearing: nothing more
    motor.set_fault(None)  # a cleared fault leaves the damage
    assert motor.health == pytest.approx(1.0 - 0.3 * k)
    motor.set_fault(Fault(FaultKind.BEARING_WEAR, 1.5, None))  # worn further: the difference
    assert motor.health == pytest.approx(1.0 - 0.45 * k)
    assert motor.health < 0.51  # magnitude 1.5 is a worn-out bearing
    motor.command(1)
    run(motor, 10.0, 0.5)
    assert motor.current_a == pytest.approx(1.2 + 0.45)  # the friction shows in the current
    motor.maintain()
    motor.set_fault(Fault(FaultKind.BEARING_WEAR, 1.0, None))  # a new bearing wears anew
    assert motor.health == pytest.approx(1.0 - 0.3 * k)


def test_motor_failure_collapses_health_toward_failed_level() -> None:
    motor = make_motor()
    motor.set_fault(Fault(FaultKind.MOTOR_FAILURE, 4.5, None))
    motor.command(1)
    run(motor, 200.0, 0.5)  # 10 time constants of 20 s
    assert motor.current_a == pytest.approx(4.5)
    assert motor.health == pytest.approx(0.4 + 0.6 * math.exp(-10), abs=1e-6)


def test_stall_draws_locked_rotor_current() -> None:
    motor = make_motor()
    motor.set_fault(Fault(FaultKind.STALL, 2.5, None))
    motor.command(1)
    run(motor, 1.0, 0.1)
    assert motor.current_a == pytest.approx(2.5)


def test_vibration_ripple_is_integrated_exactly_and_wears_the_motor() -> None:
    """Energy and heating of a rippled current do not depend on the step size: the closed
    forms against a 1 µs brute-force integration of i(t) and i(t)² of the docstring."""
    amplitude, w = CONFIG.vibration_ripple_a * 2.0, 2 * math.pi * CONFIG.vibration_hz
    tau, i_ss, i_in = CONFIG.inrush_tau_s, 1.2, 2.5

    def current(t: float) -> float:
        return i_ss + (i_in - i_ss) * math.exp(-t / tau) + amplitude * math.sin(w * t)

    duration, fine = 1.3, 1e-6
    samples = [current((k + 0.5) * fine) for k in range(round(duration / fine))]
    charge, charge_sq = sum(samples) * fine, sum(i * i for i in samples) * fine
    results = []
    for dt in (0.65, 0.01):
        motor = make_motor()
        motor.set_fault(Fault(FaultKind.VIBRATION, 2.0, None))
        motor.command(1)
        run(motor, duration, dt)
        assert motor.energy_wh == pytest.approx(24 * charge / 3600, rel=1e-7)
        assert motor.current_a == pytest.approx(current(duration))
        results.append(motor.temperature_c)
    assert results[0] == pytest.approx(results[1], abs=2e-3)  # heating from the exact ∫i²
    heating = CONFIG.winding_resistance_ohm * charge_sq / duration
    assert results[1] == pytest.approx(
        25 + heating * 5.0 * (1 - math.exp(-duration / 300.0)), rel=1e-4
    )

    healthy, vibrating = make_motor(), make_motor()
    vibrating.set_fault(Fault(FaultKind.VIBRATION, 1.0, None))
    for motor in (healthy, vibrating):
        motor.command(1)
        run(motor, 360.0, 0.5)
    extra = (1.0 - vibrating.health) - (1.0 - healthy.health)
    # 0.1 running hours of vibration wear; the ripple also lifts the first step's mean current
    # (inrush) a little further over the limit: about 1e-6 of extra overcurrent wear.
    assert extra == pytest.approx(CONFIG.vibration_wear_per_h * 0.1, abs=2e-6)


def test_vibration_ripple_stops_with_the_motor() -> None:
    motor = make_motor()
    motor.set_fault(Fault(FaultKind.VIBRATION, 1.0, None))
    motor.command(1)
    run(motor, 1.0, 0.01)
    motor.command(0)
    motor.step(0.01)
    assert motor.current_a == pytest.approx(CONFIG.idle_current_a)
