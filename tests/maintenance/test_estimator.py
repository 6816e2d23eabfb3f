"""The pure estimator on synthetic signals: friction trend and RUL, alerts raised and cleared
once, repairs, bad readings, unknown motors, ghost readings, stuck barriers and belt slip."""

from __future__ import annotations

import math
import random

import pytest

from stf_nodes.maintenance.estimator import (
    AlertEvent,
    Estimate,
    Estimator,
    EstimatorConfig,
    Level,
    MotorEstimator,
    MotorSample,
    SensorEdge,
    current_levels,
    inrush_overcurrent_as,
)

HOUR = 3600.0
# (current, weight, share of the friction excess it takes): cruise and accelerating, as CONV_M1
LEVELS = ((1.21, 1.0, 1.0), (1.35, 1.0, 1.0))
# HBW_M1_X: levels closer together than the excess; transients take only part of it
CLOSE_LEVELS = ((1.20, 0.6, 1.0), (1.28, 0.15, 0.7), (1.50, 0.25, 0.75))


class Motor:
    """A motor that runs every ``step_h`` (20 one-second samples, one start) with a friction
    excess of ``excess(t)``."""

    def __init__(
        self,
        estimator: Estimator,
        motor_id: str = 'CONV_M1',
        levels: tuple[tuple[float, float, float], ...] = LEVELS,
    ) -> None:
        self.estimator = estimator
        self.motor_id = motor_id
        self.levels = levels
        self.rng = random.Random(1)
        self.starts = 0
        self.events: list[AlertEvent] = []

    def run_hours(self, start_h: float, hours: float, excess: object, step_h: float = 0.25) -> None:
        t = start_h
        while t < start_h + hours:
            for k in range(20):
                now = t * HOUR + k * 30.0
                self.starts += k == 0  # one start per run of 20 samples
                extra = excess(now / HOUR)  # type: ignore[operator]
                level, _, share = self.rng.choices(self.levels, [w for _, w, _ in self.levels])[0]
                current = level + share * extra + self.rng.gauss(0.0, 0.005)
                self.estimator.on_motor(
                    MotorSample(now, self.motor_id, True, current, 30.0, 0, self.starts)
                )
                self.estimator.on_motor(
                    MotorSample(now + 1.0, self.motor_id, False, 0.05, 30.0, 0, self.starts)
                )
            t += step_h
            now = t * HOUR
            forecasts = self.estimator.forecasts(now)
            self.events += self.estimator.check(now, forecasts)


def test_current_levels_are_the_clusters_of_the_baseline() -> None:
    values = [1.21] * 50 + [1.35] * 40 + [2.2]  # one inrush sample: below the share
    assert current_levels(values, 0.03, 0.05) == [1.21, 1.35]


def test_growing_friction_gives_a_converging_rul_and_one_warning_before_the_threshold() -> None:
    # The friction alone (no wear of use): health is 1 - bearing_health_per_a x excess.
    config = EstimatorConfig(wear_per_running_h=0, wear_per_start=0, wear_per_overcurrent_ah=0)
    estimator = Estimator(config)
    motor = Motor(estimator)
    failure_h = 96.0  # the friction takes the health to 0.5 here
    failure_excess_a = 0.5 / config.bearing_health_per_a
    motor.run_hours(0.0, 24.0, lambda h: 0.0)  # healthy day: baseline learnt

    def excess(h: float) -> float:
        return failure_excess_a * max(0.0, h - 24.0) / (failure_h - 24.0)

    motor.run_hours(24.0, 66.0, excess)
    forecast = estimator.forecasts(90.0 * HOUR)[0]
    assert forecast.method == 'friction-trend'
    assert forecast.rul_h == pytest.approx(failure_h - 90.0, rel=0.2)
    assert forecast.rul_lower_h <= forecast.rul_h <= forecast.rul_upper_h
    warnings = [e for e in motor.events if e.severity == Level.WARNING and not e.cleared]
    assert len(warnings) == 1, motor.events
    assert warnings[0].code == 'MAINTENANCE_DUE'
    assert warnings[0].time_s <= (failure_h - 24.0) * HOUR
    # The friction threshold plans maintenance; it never stops the line by itself.
    assert not [e for e in motor.events if e.severity == Level.CRITICAL]


def test_levels_closer_than_the_excess_are_not_taken_for_one_another() -> None:
    """HBW_M1_X's levels sit 0.08 and 0.3 A apart, less than the 0.45 A excess at failure, and
    the friction grows in steps of 0.045 A (as a generated onset does): a step is not taken for
    the next level (the level tracking before read 0.27 A here, and a RUL of 50 h)."""
    # The friction alone (no wear of use): health is 1 - bearing_health_per_a x excess.
    config = EstimatorConfig(wear_per_running_h=0, wear_per_start=0, wear_per_overcurrent_ah=0)
    estimator = Estimator(config)
    motor = Motor(estimator, 'HBW_M1_X', CLOSE_LEVELS)
    motor.run_hours(0.0, 24.0, lambda h: 0.0)
    motor.run_hours(24.0, 100.0, lambda h: 0.045 * (max(0.0, h - 24.0) // 12))
    forecast = estimator.forecasts(124.0 * HOUR)[0]
    assert forecast.estimate.excess_current_a == pytest.approx(0.36, abs=0.02)
    # The health passes 0.5 at 0.5 / 1.1 = 0.4545 A, between the steps at 144 h (0.45 A) and
    # 156 h (0.495 A). A line through the steps lags them by half a step (6 h); the RUL is
    # planned on the upper edge of the steps' scatter, which does not: it rises through
    # 0.4545 A at about 145 h, the safe side of the step at 156 h.
    assert forecast.rul_h == pytest.approx(21.0, rel=0.1)


def test_a_repair_resets_the_estimate_and_clears_the_alert_once() -> None:
    estimator = Estimator()
    motor = Motor(estimator)
    motor.run_hours(0.0, 24.0, lambda h: 0.0)
    motor.run_hours(24.0, 48.0, lambda h: 0.45 * (h - 24.0) / 60.0)
    assert estimator.latches['CONV_M1', 'motor'].level is Level.WARNING
    motor.run_hours(72.0, 30.0, lambda h: 0.0)  # a new bearing
    assert estimator.motors['CONV_M1'].repairs == 1
    cleared = [e for e in motor.events if e.cleared]
    assert [e.code for e in cleared] == ['MAINTENANCE_DUE_CLEARED']
    forecast = estimator.forecasts(102.0 * HOUR)[0]
    assert forecast.level is Level.NONE
    assert forecast.health > 0.99


def test_a_steady_healthy_motor_raises_nothing() -> None:
    estimator = Estimator()
    motor = Motor(estimator)
    motor.run_hours(0.0, 96.0, lambda h: 0.0)
    assert motor.events == []
    assert estimator.forecasts(96.0 * HOUR)[0].rul_h > 1000


@pytest.mark.parametrize('current', [math.nan, math.inf, -1.0, 1e6])
def test_absurd_readings_are_dropped_and_counted(current: float) -> None:
    estimator = Estimator()
    motor = Motor(estimator)
    motor.run_hours(0.0, 24.0, lambda h: 0.0)
    for k in range(500):
        estimator.on_motor(MotorSample(24 * HOUR + k, 'CONV_M1', True, current, math.nan, 0, 1))
    forecast = estimator.forecasts(25 * HOUR)[0]
    assert estimator.motors['CONV_M1'].rejected == 500
    assert forecast.level is Level.NONE
    assert estimator.check(25 * HOUR, [forecast]) == []


def test_unknown_motor_gets_its_own_estimator_and_is_reported_once() -> None:
    estimator = Estimator()
    for k in range(3):
        estimator.on_motor(MotorSample(float(k), 'MQTT_FLEET_M9', True, 1.2, 30.0, 0, k))
    assert estimator.new_motors == ['MQTT_FLEET_M9']
    assert estimator.forecasts(3.0)[0].component_id == 'MQTT_FLEET_M9'


def test_gaps_and_counter_resets_add_no_damage() -> None:
    estimator = Estimator()
    estimator.on_motor(MotorSample(0.0, 'M', True, 5.0, 150.0, 0, 1000))
    # The node restarted: a day without data, its start counter back at 1.
    estimator.on_motor(MotorSample(86_400.0, 'M', True, 1.2, 30.0, 0, 1))
    motor = estimator.motors['M']
    assert motor.gaps == 1
    assert motor.damage == 0.0


def test_config_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match='bearing_health_per_a'):
        EstimatorConfig(bearing_health_per_a=0.0)
    with pytest.raises(ValueError, match='clear_factor'):
        EstimatorConfig(clear_factor=0.5)


class Belt:
    """The belt motor and its barriers as edges and samples."""

    def __init__(self, estimator: Estimator) -> None:
        self.estimator = estimator
        self.encoder = 0
        self.t = 0.0

    def idle(self, seconds: float) -> None:
        end = self.t + seconds
        while self.t < end:
            self.t += 1.0
            self.estimator.on_motor(
                MotorSample(self.t, 'CONV_M1', False, 0.05, 30.0, self.encoder, 0)
            )

    def move(self, roller_mm: float, belt_mm: float) -> None:
        """Run the belt; the trail sensor sees ``belt_mm`` of it; L2 sees a workpiece pass."""
        self.estimator.on_edge(SensorEdge(self.t + 0.2, 'CONV_L2_PROCESS', True))
        self.estimator.on_edge(SensorEdge(self.t + 0.6, 'CONV_L2_PROCESS', False))
        for k in range(int(belt_mm / 10.0)):
            self.estimator.on_edge(SensorEdge(self.t + 0.01 * k, 'CONV_T1_TRAIL', True))
            self.estimator.on_edge(SensorEdge(self.t + 0.01 * k + 0.005, 'CONV_T1_TRAIL', False))
        self.t += 1.0
        self.encoder += round(roller_mm * 18.75)
        self.estimator.on_motor(MotorSample(self.t, 'CONV_M1', True, 1.2, 30.0, self.encoder, 0))

    def ghost(self, sensor_id: str) -> None:
        self.estimator.on_edge(SensorEdge(self.t + 0.3, sensor_id, True))
        self.estimator.on_edge(SensorEdge(self.t + 0.35, sensor_id, False))

    def alerts(self) -> list[AlertEvent]:
        return self.estimator.check(self.t, [])


def test_ghost_readings_on_a_still_belt_are_flagged_on_that_sensor_only() -> None:
    estimator = Estimator()
    belt = Belt(estimator)
    for _ in range(20):  # normal passages: never ghosts
        belt.move(100.0, 100.0)
        belt.idle(30)
    assert belt.alerts() == []
    onset = belt.t
    raised: list[AlertEvent] = []
    for _ in range(5):
        belt.ghost('CONV_L3_EXIT')
        belt.idle(60)
        raised += belt.alerts()
    assert [(a.component_id, a.code) for a in raised] == [('CONV_L3_EXIT', 'GHOST_READINGS')]
    assert raised[0].time_s - onset <= 3600.0
    belt.idle(3700)
    assert [a.code for a in belt.alerts()] == ['GHOST_READINGS_CLEARED']


def test_a_stuck_barrier_and_belt_slip_are_flagged() -> None:
    estimator = Estimator()
    belt = Belt(estimator)
    for _ in range(60):
        belt.move(100.0, 100.0)
    assert estimator.sensors.slip == pytest.approx(0.0, abs=0.03)
    assert belt.alerts() == []
    estimator.on_edge(SensorEdge(belt.t, 'CONV_L1_ENTRY', True))
    for _ in range(20):
        belt.move(100.0, 100.0)
    assert [(a.component_id, a.code) for a in belt.alerts()] == [('CONV_L1_ENTRY', 'SENSOR_STUCK')]
    estimator.on_edge(SensorEdge(belt.t, 'CONV_L1_ENTRY', False))
    for _ in range(120):
        belt.move(100.0, 70.0)
    assert estimator.sensors.slip == pytest.approx(0.3, abs=0.03)
    codes = [a.code for a in belt.alerts()]
    assert codes == ['SENSOR_STUCK_CLEARED', 'BELT_SLIP']


def test_a_barrier_left_triggered_while_the_belt_starts_slipping_is_not_stuck() -> None:
    """The slip since the barrier rose tells a workpiece left short by a slipping belt from a
    stuck sensor before the slip_window_mm measurement catches up (issue 10, vgr_arm)."""
    estimator = Estimator()
    belt = Belt(estimator)
    for _ in range(60):
        belt.move(100.0, 100.0)
    estimator.on_edge(SensorEdge(belt.t, 'CONV_L3_EXIT', True))
    for _ in range(20):  # 1600 mm of belt under the barrier, the slip window not yet full
        belt.move(100.0, 80.0)
    assert estimator.sensors.stuck['CONV_L3_EXIT']
    assert belt.alerts() == []
    for _ in range(40):
        belt.move(100.0, 80.0)
    assert [(a.component_id, a.code) for a in belt.alerts()] == [('CONV_M1', 'BELT_SLIP')]


def test_a_warning_needs_a_confident_rul_and_is_held_by_the_rul_alone() -> None:
    motor = MotorEstimator('HBW_M2_Y', EstimatorConfig())

    def estimate(confidence: float) -> Estimate:
        return Estimate(0.99, 20.0, confidence, math.inf, 1.0, 0.05)

    assert motor.level(estimate(0.2), relax=1.0) is Level.NONE  # a trend of a few scattered bins
    assert motor.level(estimate(0.8), relax=1.0) is Level.WARNING
    assert motor.level(estimate(0.2), relax=1.5) is Level.WARNING  # raised: held


@pytest.mark.parametrize('steady', [1.2, 1.45, 1.8])
def test_the_inrush_overcurrent_of_a_start_is_the_integral_of_the_transient(
    steady: float,
) -> None:
    """Closed form against a midpoint sum of (i - limit)+ over i = steady + (2.5 - steady)·
    exp(-t / 0.15) (above the limit only the transient counts: the steady part is the running
    samples' overcurrent)."""
    dt = 1e-5
    floor = max(1.5, steady)
    numeric = sum(
        max(0.0, steady + (2.5 - steady) * math.exp(-(k + 0.5) * dt / 0.15) - floor) * dt
        for k in range(300_000)
    )
    assert inrush_overcurrent_as(steady, 2.5, 1.5, 0.15) == pytest.approx(numeric, rel=1e-3)
    assert inrush_overcurrent_as(math.nan, 2.5, 1.5, 0.15) == 0.0  # levels not learnt yet
