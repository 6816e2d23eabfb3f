"""A factory with its scheduler and the dds_bridge node as processes, and a ROS 2 user's rclpy
client (`rclpy_client.py`) run under `.venv-dds/bin/python`.

Everything runs on a ROS domain of its own (`ROS_DOMAIN_ID`, on the Zenoh side too), so other
DDS participants on the machine neither see nor disturb these tests. Without `.venv-dds`
(`make dds`) the tests skip, and fail under CI=true.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stf_nodes.bridges.dds.environment import default_venv, read_stamp, venv_python, wanted_stamp
from tests.conftest import REPO_ROOT, Processes, unavailable

CLIENT = Path(__file__).with_name('rclpy_client.py')
BIN = Path(sys.executable).parent
#: A domain of this test run's own (0..101 are valid with FastDDS's default ports).
DOMAIN = str(10 + os.getpid() % 90)


@dataclass
class DdsFactory:
    python: Path
    env: dict[str, str]
    bridge: subprocess.Popen[str]
    bridge_log: Path
    processes: Processes

    def client(self, mode: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Run the rclpy client to its end; its JSON lines."""
        result = subprocess.run(
            [str(self.python), str(CLIENT), mode, '--timeout', str(timeout)],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=8 * timeout,
        )
        if result.returncode != 0:
            raise AssertionError(
                f'rclpy client {mode} failed ({result.returncode}):\n{result.stdout}\n'
                f'{result.stderr}\nbridge:\n{self.bridge_output()}'
            )
        return [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{')]

    def start_client(self, mode: str, timeout: float = 60.0) -> subprocess.Popen[str]:
        """Start the rclpy client in the background (stopped at the end of the test)."""
        return self.processes.start(
            str(self.python), str(CLIENT), mode, '--timeout', str(timeout), env=self.env
        )

    def stf(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, '-m', 'stf_nodes.cli', *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
        )

    def bridge_output(self) -> str:
        return self.bridge_log.read_text()


@pytest.fixture(scope='session')
def dds_python() -> Path:
    python = venv_python(default_venv())
    if not python.exists():
        unavailable(f'{python} not found: create it with `make dds` (real rclpy, ROS 2 Kilted)')
    if read_stamp(default_venv()) != wanted_stamp():
        unavailable(f'{default_venv()} was built from other inputs: run `make dds` again')
    return python


def node_argv(module: str, *ros_args: str) -> list[str]:
    return [sys.executable, '-m', f'stf_nodes.{module}', '--ros-args', *ros_args]


@pytest.fixture(scope='module')
def dds_factory(router: str, dds_python: Path, tmp_path_factory: Any) -> Iterator[DdsFactory]:
    """Stations on a 20x sim clock, the scheduler on a fresh SQLite database, the bridge."""
    env = {**os.environ, 'ROS_DOMAIN_ID': DOMAIN}
    params = ('--params-file', str(REPO_ROOT / 'config' / 'factory.yaml'))
    sim = ('-p', 'use_sim_time:=true')
    scratch = tmp_path_factory.mktemp('dds')
    database = scratch / 'factory.db'
    bridge_log = scratch / 'dds_bridge.log'
    processes = Processes()
    try:
        for station in ('hbw', 'vgr', 'conveyor'):
            processes.start(*node_argv(f'{station}_node', *params, *sim), env=env, cwd=REPO_ROOT)
        processes.start(*node_argv('clock_node', '-p', 'time_scale:=20.0'), env=env)
        processes.start(
            *node_argv(
                'scheduler_node',
                '--params-file',
                str(REPO_ROOT / 'config' / 'scheduler.yaml'),
                *sim,
                '-p',
                f'db_url:=sqlite:///{database}',
            ),
            env=env,
        )
        with bridge_log.open('w') as log:  # read by failing tests
            bridge = subprocess.Popen(
                [str(BIN / 'dds_bridge_node')], stdout=log, stderr=subprocess.STDOUT, env=env
            )
        processes.started.append(bridge)
        yield DdsFactory(
            python=dds_python,
            env=env,
            bridge=bridge,
            bridge_log=bridge_log,
            processes=processes,
        )
    finally:
        processes.stop_all()
