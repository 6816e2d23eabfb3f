"""Conveyor belt, light barriers and oven against hand-computed numbers."""

from __future__ import annotations

import pytest

from stf_nodes.sim import Conveyor, Flavor, TaskStatus, Workpiece, WorkpieceStatus

from .harness import finish, run

COOKIE = Workpiece('WP100', Flavor.STRAWBERRY)


def loaded(target: str = 'entry') -> Conveyor:
    conveyor = Conveyor(seed=2)
    conveyor.start_task('load', target=target, workpiece=COOKIE)
    finish(conveyor)
    return conveyor


@pytest.mark.parametrize(('sensor_index', 'at_mm'), [(0, 10.0), (1, 60.0), (2, 95.0), (3, 115.0)])
def test_light_barriers_trigger_within_10_mm(sensor_index: int, at_mm: float) -> None:
    conveyor = loaded()
    conveyor.start_task('transport', target='overflow')
    samples = []
    while conveyor.task is not None and conveyor.task.status is TaskStatus.RUNNING:
        conveyor.step(0.005)
        snap = conveyor.snapshot()
        samples.append((snap.workpiece_position_mm, snap.sensors[sensor_index].triggered))
    assert conveyor.task.status is TaskStatus.SUCCEEDED
    assert all(triggered == (abs(pos - at_mm) <= 10.0) for pos, triggered in samples)
    assert any(triggered for _, triggered in samples)


def test_transport_moves_workpiece_with_belt_and_counts_encoder() -> None:
    conveyor = loaded()
    conveyor.start_task('transport', target='exit')
    report = finish(conveyor, dt=0.01)
    assert report.status is TaskStatus.SUCCEEDED and report.workpiece == COOKIE
    snap = conveyor.snapshot()
    assert snap.workpiece_position_mm == pytest.approx(95.0)
    assert snap.belt_position_mm == pytest.approx(85.0)
    assert snap.motors[0].encoder_pulses == round(85 * 18.75)
    # 85 mm at 100 mm/s, 500 mm/s²: 0.85 + 0.2 s, plus one tick to start and one to notice
    assert conveyor.time_s == pytest.approx(0.01 + 1.05 + 0.01, abs=0.011)
    conveyor.start_task('unload')
    assert finish(conveyor).workpiece == COOKIE
    assert conveyor.snapshot().workpiece is None


def test_belt_speed_follows_motor_profile() -> None:
    conveyor = loaded()
    conveyor.start_task('transport', target='exit')
    run(conveyor, 0.5)
    assert conveyor.snapshot().belt_speed_mm_s == pytest.approx(100.0)


def test_bake_heats_oven_then_bakes_for_value_seconds() -> None:
    conveyor = Conveyor()
    conveyor.start_task('bake', workpiece=COOKIE, value=3.0)
    run(conveyor, 5.0)
    snap = conveyor.snapshot()
    assert snap.oven_busy and snap.oven_workpiece == COOKIE
    assert snap.oven_temperature_c == pytest.approx(25 + 10 * 5.0, abs=0.2)  # 10 K/s ramp
    report = finish(conveyor)
    # (170 - 25) / 10 = 14.5 s to heat, then 3 s baking
    assert conveyor.time_s == pytest.approx(14.5 + 3.0, abs=0.1)
    assert report.workpiece == Workpiece('WP100', Flavor.STRAWBERRY, WorkpieceStatus.BAKED)
    snap = conveyor.snapshot()
    assert not snap.oven_busy and snap.oven_workpiece is None
    run(conveyor, 120.0)  # one cooling time constant
    cooled = conveyor.snapshot().oven_temperature_c
    assert cooled == pytest.approx(25 + (snap.oven_temperature_c - 25) / 2.718281828, abs=0.5)
