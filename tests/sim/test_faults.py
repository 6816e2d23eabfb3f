"""Fault injection changes the physics and is refused cleanly when it makes no sense."""

from __future__ import annotations

import pytest

from stf_nodes.sim import (
    Conveyor,
    FaultRefused,
    Flavor,
    Hbw,
    MotorSnapshot,
    Station,
    StationState,
    TaskStatus,
    Vgr,
    Workpiece,
)
from stf_nodes.sim.motor import MotorConfig

from .harness import DT, finish, run

COOKIE = Workpiece('WP100', Flavor.CHOCO)


def motor(station: Station, motor_id: str) -> MotorSnapshot:
    return next(m for m in station.snapshot().motors if m.motor_id == motor_id)


def sensor_ticks(station: Station, sensor_id: str, seconds: float) -> int:
    """Number of ticks the sensor reads triggered."""
    count = 0
    for _ in range(round(seconds / DT)):
        station.step(DT)
        count += next(s for s in station.snapshot().sensors if s.sensor_id == sensor_id).triggered
    return count


def conveyor_with_cookie() -> Conveyor:
    conveyor = Conveyor(seed=1)
    conveyor.start_task('load', workpiece=COOKIE)
    finish(conveyor)
    return conveyor


def transport(conveyor: Conveyor, fault: tuple[str, float] | None, seconds: float = 0.8) -> None:
    """Start a transport to the exit, inject ``fault`` on CONV_M1 and run ``seconds``."""
    conveyor.start_task('transport', target='exit')
    if fault:
        conveyor.inject_fault('CONV_M1', fault[0], fault[1])
    run(conveyor, seconds)


@pytest.mark.parametrize(
    ('kind', 'magnitude', 'current_a'),
    [('OVERCURRENT', 0.0, 3.0), ('MOTOR_FAILURE', 4.5, 4.5), ('BEARING_WEAR', 1.0, 1.5)],
)
def test_motor_faults_raise_running_current_and_heat(
    kind: str, magnitude: float, current_a: float
) -> None:
    healthy, faulty = conveyor_with_cookie(), conveyor_with_cookie()
    transport(healthy, None)
    transport(faulty, (kind, magnitude))
    good, bad = motor(healthy, 'CONV_M1'), motor(faulty, 'CONV_M1')
    assert good.current_a == pytest.approx(1.2, abs=0.02)
    assert bad.current_a == pytest.approx(current_a, abs=0.02)
    assert bad.fault == kind
    assert bad.temperature_c > good.temperature_c
    assert bad.health < good.health


def test_vibration_ripples_the_running_current_and_wears_faster() -> None:
    healthy, faulty = conveyor_with_cookie(), conveyor_with_cookie()
    transport(healthy, None)
    faulty.inject_fault('CONV_M1', 'VIBRATION', 2.0)
    currents = []
    faulty.start_task('transport', target='exit')
    while faulty.task is not None and faulty.task.status is TaskStatus.RUNNING:
        faulty.step(0.02)
        if motor(faulty, 'CONV_M1').running:
            currents.append(motor(faulty, 'CONV_M1').current_a)
    assert faulty.task.status is TaskStatus.SUCCEEDED  # vibration does not stop the axis
    ripple = 2.0 * MotorConfig().vibration_ripple_a
    assert max(currents) > 1.2 + 0.8 * ripple and min(currents) < 1.2 - 0.8 * ripple
    assert motor(faulty, 'CONV_M1').fault == 'VIBRATION'
    assert motor(faulty, 'CONV_M1').health < motor(healthy, 'CONV_M1').health


def test_motor_failure_collapses_health_and_blocks_station() -> None:
    conveyor = conveyor_with_cookie()
    transport(conveyor, ('MOTOR_FAILURE', 4.5), seconds=100.0)
    snap = conveyor.snapshot()
    assert snap.state is StationState.ERROR
    assert motor(conveyor, 'CONV_M1').health == pytest.approx(0.4, abs=0.01)
    conveyor.clear_fault('CONV_M1')
    assert conveyor.state is StationState.READY
    assert motor(conveyor, 'CONV_M1').health < 0.41


def test_stall_keeps_motor_powered_without_motion_and_times_out() -> None:
    hbw = Hbw()
    hbw.inject_fault('HBW_M1_X', 'STALL')
    hbw.start_task('move', target='A1')
    run(hbw, 2.0)
    x = motor(hbw, 'HBW_M1_X')
    assert x.running and x.current_a == pytest.approx(2.5)
    assert hbw.snapshot().position[0] == 400.0
    report = finish(hbw)
    # planned 3.2 s (300 mm) → budget 2 · 3.2 + 1 s
    assert report.status is TaskStatus.FAILED and 'timed out' in report.message
    assert 'HBW_M1_X' in report.message
    assert not motor(hbw, 'HBW_M1_X').running
    assert hbw.time_s == pytest.approx(0.1 + 2 * 3.2 + 1.0, abs=0.2)


def test_stalled_compressor_fails_pick_for_lack_of_vacuum() -> None:
    vgr = Vgr()
    vgr.inject_fault('VGR_M2_GRIP', 'STALL')
    vgr.start_task('pick', target='conveyor', workpiece=COOKIE)
    report = finish(vgr)
    assert report.status is TaskStatus.FAILED and 'no vacuum' in report.message
    assert vgr.snapshot().pressure_bar == 0.0 and not vgr.snapshot().holding


def test_belt_slip_leaves_workpiece_short_of_target() -> None:
    conveyor = conveyor_with_cookie()
    conveyor.inject_fault('CONV_M1', 'BELT_SLIP', 0.5)
    conveyor.start_task('transport', target='exit')
    report = finish(conveyor)
    assert report.status is TaskStatus.FAILED and 'CONV_L3_EXIT' in report.message
    snap = conveyor.snapshot()
    assert snap.workpiece_position_mm == pytest.approx(10 + 85 * 0.5)
    assert snap.belt_position_mm == pytest.approx(85 * 0.5)
    assert motor(conveyor, 'CONV_M1').encoder_pulses == round(85 * 18.75)


def test_small_belt_slip_still_within_light_barrier_window() -> None:
    conveyor = conveyor_with_cookie()
    conveyor.inject_fault('CONV_M1', 'BELT_SLIP', 0.05)
    conveyor.start_task('transport', target='exit')
    assert finish(conveyor).status is TaskStatus.SUCCEEDED
    assert conveyor.snapshot().workpiece_position_mm == pytest.approx(10 + 85 * 0.95)


def test_ghost_readings_trigger_empty_light_barrier() -> None:
    clean, ghosted = Conveyor(seed=3), Conveyor(seed=3)
    ghosted.inject_fault('CONV_L2_PROCESS', 'GHOST_READINGS', 5.0)
    assert sensor_ticks(clean, 'CONV_L2_PROCESS', 20.0) == 0
    ticks = sensor_ticks(ghosted, 'CONV_L2_PROCESS', 20.0)
    # about 5 Hz · 20 s = 100 pulses of 0.05 s (2-3 ticks each)
    assert 100 < ticks < 500


@pytest.mark.parametrize(('magnitude', 'expected'), [(1.0, True), (0.0, False)])
def test_stuck_sensor_ignores_the_world(magnitude: float, expected: bool) -> None:
    conveyor = conveyor_with_cookie()
    conveyor.step(DT)
    conveyor.inject_fault('CONV_L3_EXIT', 'STUCK', magnitude)
    conveyor.start_task('transport', target='exit')
    report = finish(conveyor)
    assert sensor_ticks(conveyor, 'CONV_L3_EXIT', 0.2) == (10 if expected else 0)
    # stuck clear: the exit barrier never sees the cookie, so the transport fails
    assert report.status is (TaskStatus.SUCCEEDED if expected else TaskStatus.FAILED)


def test_fault_expires_after_duration_in_sim_time() -> None:
    hbw = Hbw()
    hbw.inject_fault('HBW_S1_REF_X', 'STUCK', 1.0, duration_s=1.0)
    assert sensor_ticks(hbw, 'HBW_S1_REF_X', 0.9) == 45
    run(hbw, 0.2)
    assert hbw.snapshot().sensors[0].fault == ''
    assert not hbw.snapshot().sensors[0].triggered


def test_clear_all_faults() -> None:
    conveyor = Conveyor()
    conveyor.inject_fault('CONV_M1', 'BELT_SLIP')
    conveyor.inject_fault('CONV_L1_ENTRY', 'GHOST_READINGS')
    conveyor.clear_fault()
    conveyor.step(DT)
    snap = conveyor.snapshot()
    assert all(not p.fault for p in (*snap.motors, *snap.sensors))


@pytest.mark.parametrize(
    ('make', 'component', 'kind', 'magnitude', 'duration', 'reason'),
    [
        (Hbw, 'HBW_M9', 'STALL', 0.0, 0.0, 'unknown component'),
        (Hbw, 'HBW_M1_X', 'MELTDOWN', 0.0, 0.0, 'unknown fault kind'),
        (Hbw, 'HBW_M1_X', 'BELT_SLIP', 0.3, 0.0, 'does not support'),
        (Hbw, 'HBW_M1_X', 'GHOST_READINGS', 1.0, 0.0, 'does not support'),
        (Conveyor, 'CONV_L1_ENTRY', 'STALL', 0.0, 0.0, 'does not support'),
        (Conveyor, 'CONV_M1', 'BELT_SLIP', 1.5, 0.0, r'\[0, 1\]'),
        (Conveyor, 'CONV_M1', 'OVERCURRENT', -1.0, 0.0, '>= 0'),
        (Vgr, 'VGR_M2_GRIP', 'STALL', 0.0, -5.0, 'duration_s'),
    ],
)
def test_bad_fault_requests_refused_with_state_untouched(
    make: type[Station], component: str, kind: str, magnitude: float, duration: float, reason: str
) -> None:
    station = make(seed=4)
    run(station, 0.2)
    before = station.snapshot()
    with pytest.raises(FaultRefused, match=reason):
        station.inject_fault(component, kind, magnitude, duration)
    assert station.snapshot() == before


def test_clear_unknown_component_refused() -> None:
    with pytest.raises(FaultRefused, match='unknown component'):
        Vgr().clear_fault('CONV_M1')
