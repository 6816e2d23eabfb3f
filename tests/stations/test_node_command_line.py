"""Node executables on the command line: `--help` starts nothing, unknown arguments are
refused, a wrong configuration exits with its own status (78) that `stf launch` does not
respawn, and `stf run` starts a node as `ros2 run` does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from stf_nodes import exit_codes
from stf_nodes.runtime.router import free_port
from tests.conftest import Processes, stf, wait_until
from tests.stations.probe import FACTORY_YAML

BIN = Path(sys.executable).parent


def test_help_prints_usage_and_starts_no_node(router: str) -> None:
    result = subprocess.run(
        [str(BIN / 'hbw_node'), '--help'], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0
    assert result.stdout.startswith('usage: hbw_node [-h] [--ros-args')
    assert '`hbw` node: the high-bay warehouse station' in result.stdout
    assert '--params-file FILE' in result.stdout
    assert result.stderr == ''  # no node started: nothing logged
    refused = subprocess.run(
        [str(BIN / 'vgr_node'), '-p', 'x:=1'], capture_output=True, text=True, timeout=30
    )
    assert refused.returncode == exit_codes.USAGE
    assert 'vgr_node: unrecognized arguments: -p x:=1' in refused.stderr
    assert 'vgr_node --ros-args -p NAME:=VALUE' in refused.stderr


def test_configuration_errors_exit_78(router: str, tmp_path: Path) -> None:
    broken = tmp_path / 'broken.yaml'
    broken.write_text('hbw:\n  ros__parameters:\n    publish_rate: [unclosed\n')
    wrong_type = tmp_path / 'wrong_type.yaml'
    wrong_type.write_text('hbw:\n  ros__parameters:\n    publish_rate: fast\n')
    for path, reason in ((broken, 'cannot read parameter file'), (wrong_type, "'publish_rate'")):
        result = subprocess.run(
            [str(BIN / 'hbw_node'), '--ros-args', '--params-file', str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == exit_codes.CONFIG, result.stderr
        assert '[FATAL] configuration error: ' in result.stderr
        assert reason in result.stderr
        assert 'Traceback' not in result.stderr


def test_launch_stops_on_a_configuration_error_instead_of_respawning(tmp_path: Path) -> None:
    broken = tmp_path / 'broken.yaml'
    broken.write_text('/**:\n  ros__parameters:\n    publish_rate: [unclosed\n')
    env = {
        **os.environ,
        'ZENOH_ROUTER': f'tcp/127.0.0.1:{free_port()}',
        'MQTT_PORT': str(free_port()),
    }
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            '-m',
            'stf_nodes.cli',
            'launch',
            f'params_file:={broken}',
            'enable_scheduler:=false',
            'enable_mqtt:=false',
            'enable_foxglove:=false',
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stdout
    lines = result.stdout.splitlines()
    stops = [line for line in lines if 'stopped on a configuration error' in line]
    assert len(stops) == 1, result.stdout
    assert stops[0].startswith('[launch] ')
    for station in ('hbw', 'vgr', 'conveyor'):
        assert sum(f'[launch] {station} started with pid' in line for line in lines) <= 1
    assert not any('respawning in' in line for line in lines)
    assert time.monotonic() - started < 60


def test_stf_run_starts_a_node_like_ros2_run(router: str, processes: Processes) -> None:
    node = processes.start(
        sys.executable,
        '-m',
        'stf_nodes.cli',
        'run',
        'stf_digital_twin',
        'conveyor_node',
        '--ros-args',
        '-r',
        '__ns:=/run_test',
        '--params-file',
        str(FACTORY_YAML),
    )
    wait_until(lambda: '/run_test/conveyor' in stf('node', 'list').stdout.split(), timeout=30)
    node.send_signal(signal.SIGINT)  # the node itself: stf run became it
    assert node.wait(timeout=15) == 0
    unknown = stf('run', 'stf_digital_twin', 'no_such_node', check=False)
    assert unknown.returncode == 1
    assert "executable 'no_such_node' not found in package 'stf_digital_twin'" in unknown.stderr
    assert 'hbw_node' in stf('run', 'stf_digital_twin').stdout.split()
