"""Alerts from snapshots: raised once, re-armed past the clear limit."""

from __future__ import annotations

from stf_nodes.sim import Alert, AlertMonitor, AlertSeverity, Conveyor, Flavor, Hbw, Workpiece

from .harness import DT


def watch(station: Conveyor | Hbw, monitor: AlertMonitor, seconds: float) -> list[Alert]:
    alerts = []
    for _ in range(round(seconds / DT)):
        station.step(DT)
        alerts += monitor.update(station.snapshot())
    return alerts


def test_normal_operation_with_inrush_raises_nothing() -> None:
    hbw, monitor = Hbw(), AlertMonitor()
    hbw.start_task('retrieve', target='A1')
    assert watch(hbw, monitor, 10.0) == []


def test_sustained_overcurrent_raised_once_and_rearmed_after_clear() -> None:
    conveyor, monitor = Conveyor(), AlertMonitor()
    conveyor.inject_fault('CONV_M1', 'STALL')  # 2.5 A while powered
    conveyor.start_task('load', workpiece=Workpiece('W', Flavor.CHOCO))
    watch(conveyor, monitor, 0.1)
    conveyor.start_task('transport', target='exit')
    alerts = watch(conveyor, monitor, 2.0)
    assert [(a.component_id, a.code, a.severity) for a in alerts] == [
        ('CONV_M1', 'OVERCURRENT', AlertSeverity.ERROR)
    ]
    assert alerts[0].value == 2.5 and alerts[0].threshold == 1.5
    assert alerts[0].time_s >= 0.1 + 0.5  # sustained for 0.5 s
    assert watch(conveyor, monitor, 0.5) == []  # still stalled: no repeat
    assert ('CONV_M1', 'OVERCURRENT') in monitor.active
    watch(conveyor, monitor, 2.0)  # the move times out (3.1 s), motor off: re-armed
    assert ('CONV_M1', 'OVERCURRENT') not in monitor.active


def test_over_temperature_and_low_health_from_motor_failure() -> None:
    conveyor, monitor = Conveyor(), AlertMonitor()
    conveyor.start_task('load', workpiece=Workpiece('W', Flavor.CHOCO))
    watch(conveyor, monitor, 0.1)
    conveyor.start_task('transport', target='exit')
    conveyor.inject_fault('CONV_M1', 'MOTOR_FAILURE', 4.5)
    codes = [a.code for a in watch(conveyor, monitor, 60.0)]
    assert codes.count('OVERCURRENT') == 1
    assert codes.count('LOW_HEALTH') == 1


def test_sensor_fault_alert_once() -> None:
    conveyor, monitor = Conveyor(), AlertMonitor()
    conveyor.inject_fault('CONV_L2_PROCESS', 'GHOST_READINGS', 5.0)
    alerts = watch(conveyor, monitor, 5.0)
    assert [(a.component_id, a.code) for a in alerts] == [('CONV_L2_PROCESS', 'SENSOR_FAULT')]
