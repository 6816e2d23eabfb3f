"""The live `maintenance` node on the real station nodes (Zenoh router, sim clock at 20x): a
growing BEARING_WEAR on the belt motor while the belt runs, and the WARNING must come while
the motor's true health is still above the 0.5 threshold. Bins and windows are shortened by
parameters so that sim minutes play the part of hours."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from stf_nodes import interfaces, runtime
from tests.stations.probe import (
    REPO_ROOT,
    FactoryProbe,
    node_command,
    start_factory,
    stop_all,
    wait_for,
    workpiece,
)

TIME_SCALE = 20.0
pytestmark = pytest.mark.timeout(600)  # slow to start on a loaded machine
HealthForecast = interfaces.get_message_class('stf_msgs/msg/HealthForecast')
DiagnosticArray = interfaces.get_message_class('diagnostic_msgs/msg/DiagnosticArray')


@pytest.fixture
def live(router: str) -> Iterator[tuple[FactoryProbe, subprocess.Popen[str]]]:
    nodes = start_factory(TIME_SCALE)
    maintenance = subprocess.Popen(
        node_command(
            'maintenance_node',
            '-p',
            'use_sim_time:=true',
            '-p',
            'bin_s:=20.0',
            '-p',
            'trend_window_h:=0.1',
            '-p',
            'baseline_samples:=30',
            '-p',
            'min_bin_samples:=2',
            '-p',
            'warning_rul_h:=0.3',
            '-p',
            'critical_rul_h:=0.02',
            '-p',
            'forecast_period_s:=0.5',
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO_ROOT,
    )
    nodes.append(maintenance)
    probe = FactoryProbe('maintenance_probe')
    try:
        probe.wait_ready(timeout=120.0)
        yield probe, maintenance
    finally:
        probe.close()
        stop_all(nodes)


def belt_health(probe: FactoryProbe) -> float:
    state = probe.fresh_state('conveyor')
    return next(m.health for m in state.motors if m.motor_id == 'CONV_M1')


def test_growing_bearing_wear_is_warned_before_the_true_health_crosses_the_threshold(
    live: tuple[FactoryProbe, subprocess.Popen[str]],
) -> None:
    probe, maintenance = live
    forecasts: list[Any] = []
    probe.node.create_subscription(
        HealthForecast,
        '/stf/maintenance/forecast',
        forecasts.append,
        runtime.QoSProfile(depth=1000),
    )
    probe.do('conveyor', 'load', 'entry', workpiece('W1'))
    targets = ('exit', 'entry')
    warned_at_health = None
    magnitude = 0.0
    for cycle in range(400):
        if cycle >= 10 and cycle % 2 == 0:  # healthy first (the baseline), then ever more wear
            magnitude += 0.1  # 0.03 A more friction: 0.033 less health
            assert probe.inject('conveyor', 'CONV_M1', 'BEARING_WEAR', magnitude).accepted
        probe.do('conveyor', 'transport', targets[cycle % 2])
        warnings = [a for a in probe.alerts_for('CONV_M1', 'MAINTENANCE_DUE') if a.severity == 1]
        if warnings:
            warned_at_health = belt_health(probe)
            break
        assert maintenance.poll() is None, maintenance.stdout.read()  # type: ignore[union-attr]
        if belt_health(probe) < 0.5:
            break
    assert warned_at_health is not None, 'no WARNING before the true health fell below 0.5'
    assert warned_at_health >= 0.5
    ours = [f for f in forecasts if f.component_id == 'CONV_M1']
    assert ours and ours[-1].method in ('friction-trend', 'damage-rate')
    assert ours[-1].rul_lower_h <= ours[-1].remaining_useful_life_h
    # Raised once: the alert is not repeated on every tick.
    wait_for(lambda: len(forecasts) > len(ours) + 10, timeout=30, what='more forecasts')
    assert len(probe.alerts_for('CONV_M1', 'MAINTENANCE_DUE')) == 1
