"""The generator runs the live physics: one PROCESS command generated, and the same command
run live (`stf launch` of the whole factory on simulated time at 20x, recorded by the recorder
into SQLite), agree per motor.

Compared over the command (from its IN_PROGRESS to its COMPLETED transition), from the motor
samples around it: the starts (equal), and within 5 %: the mean current while running (the
energy drawn while running, i.e. the total minus the idle current's share, over the voltage
and the running time), and, for every motor whose running is set by motion (all but the
vacuum compressor), the running time, that energy and the health lost. Live commands take
longer between steps (station services answer over the network, more so on a loaded machine),
which the idle share of the energy absorbs; the compressor runs while the gripper holds a
cookie, through those gaps too, so its running time is not comparable.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from stf_nodes.history.generator import HistoryOptions
from stf_nodes.history.run import generate_history
from stf_nodes.history.scenario import parse_scenario
from stf_nodes.history.simulation import FactorySettings, SimFactory
from stf_nodes.storage import make_engine
from tests.conftest import stf, wait_until
from tests.launcher.conftest import LaunchRun

REPO = Path(__file__).resolve().parents[2]
SETTINGS = FactorySettings.from_parameter_file(REPO / 'config' / 'factory.yaml')
MOTORS = ('HBW_M1_X', 'HBW_M2_Y', 'HBW_M3_Z', 'VGR_M1_ARM', 'VGR_M2_GRIP', 'VGR_M3_Z', 'CONV_M1')


def command_window(db: Path) -> tuple[str, str, str]:
    """(source slot, IN_PROGRESS time, COMPLETED time) of the first PROCESS command."""
    with sqlite3.connect(db) as connection:
        command_id, slot = connection.execute(
            'SELECT command_id, source_slot FROM command_transitions WHERE kind = 1 '
            'ORDER BY time LIMIT 1'
        ).fetchone()
        times = dict(
            connection.execute(
                'SELECT status, MIN(time) FROM command_transitions WHERE command_id = ? '
                'GROUP BY status',
                (command_id,),
            ).fetchall()
        )
    return slot, times[1], times[2]


def metrics(db: Path, start: str, end: str) -> dict[str, dict[str, float]]:
    out = {}
    with sqlite3.connect(db) as connection:
        for motor in MOTORS:

            def at(sql: str, when: str, motor: str = motor) -> Any:
                return connection.execute(sql, (motor, when)).fetchone()

            columns = 'time, energy_wh, runtime_h, start_count, health, voltage_v'
            before = at(f'SELECT {columns} FROM motor_samples WHERE motor_id = ? AND time <= ? '
                        'ORDER BY time DESC LIMIT 1', start)  # fmt: skip
            after = at(f'SELECT {columns} FROM motor_samples WHERE motor_id = ? AND time >= ? '
                       'ORDER BY time LIMIT 1', end)  # fmt: skip
            elapsed_s = _seconds(after[0]) - _seconds(before[0])
            runtime_s = (after[2] - before[2]) * 3600
            idle_wh = after[5] * SETTINGS.hbw.motor.idle_current_a * (elapsed_s - runtime_s) / 3600
            out[motor] = {
                'runtime_s': runtime_s,
                'starts': after[3] - before[3],
                'active_wh': after[1] - before[1] - idle_wh,
                'health_loss': before[4] - after[4],
                'running_current_a': (after[1] - before[1] - idle_wh)
                * 3600
                / (after[5] * runtime_s)
                if runtime_s
                else 0.0,
            }
    return out


def _seconds(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def test_one_process_command_live_and_generated_agree(tmp_path: Path, router: str) -> None:
    generated = tmp_path / 'generated.db'
    scenario = parse_scenario(
        'name: healthy\nevents: []\n', 'inline', SimFactory(SETTINGS, seed=0).components
    )
    options = HistoryOptions(
        days=1, orders_per_day=1, start=datetime(2024, 5, 1, tzinfo=timezone.utc), seed=7
    )
    generate_history(make_engine(f'sqlite:///{generated}'), settings=SETTINGS, scenario=scenario,
                     options=options)  # fmt: skip
    slot, start, end = command_window(generated)

    live = tmp_path / 'live.db'
    run = LaunchRun(
        [sys.executable, '-m', 'stf_nodes.cli', 'launch',
         str(REPO / 'launch' / 'factory.launch.xml'),
         'use_sim_time:=true', 'time_scale:=20', f'db_url:=sqlite:///{live}'],
        dict(os.environ), cwd=tmp_path,
    )  # fmt: skip
    try:
        run.wait_for(r'\[scheduler\].*', timeout=60)
        wait_until(
            lambda: 'accepted: true' in stf('service', 'call', '/stf/order/process',
                                            'stf_msgs/srv/ProcessOrder', f'{{source_slot: {slot}}}',
                                            check=False).stdout,
            timeout=60, interval=1.0,
        )  # fmt: skip

        def completed() -> bool:
            try:
                with sqlite3.connect(live) as connection:
                    done = 'SELECT 1 FROM command_transitions WHERE status = 2'
                    return bool(connection.execute(done).fetchone())
            except sqlite3.Error:
                return False

        wait_until(completed, timeout=120, interval=0.5)
        wait_until(lambda: _samples_after(live), timeout=30, interval=0.5)
    finally:
        run.process.send_signal(signal.SIGINT)
        run.process.wait(timeout=60)
    live_slot, live_start, live_end = command_window(live)
    assert live_slot == slot
    ours, theirs = metrics(generated, start, end), metrics(live, live_start, live_end)
    for motor in MOTORS:
        g, lv = ours[motor], theirs[motor]
        assert lv['starts'] == g['starts'], (motor, g, lv)
        assert lv['running_current_a'] == pytest.approx(g['running_current_a'], rel=0.05), motor
        if motor == 'VGR_M2_GRIP':
            continue  # runs while a cookie is held: between steps too, which take longer live
        for name, floor in (('runtime_s', 0.1), ('active_wh', 1e-4), ('health_loss', 2e-7)):
            assert lv[name] == pytest.approx(g[name], rel=0.05, abs=floor), (motor, name, g, lv)


def _samples_after(live: Path) -> bool:
    """The recorder has samples of every motor after the command completed."""
    with sqlite3.connect(live) as connection:
        end = connection.execute(
            'SELECT MIN(time) FROM command_transitions WHERE status = 2').fetchone()[0]  # fmt: skip
        rows = connection.execute(
            'SELECT COUNT(DISTINCT motor_id) FROM motor_samples WHERE time >= ?', (end,)
        ).fetchone()
    return rows[0] == len(MOTORS)
