"""``stf launch`` end to end with the real node executables, a real router and the stf CLI.

Each test points ``ZENOH_ROUTER`` at a free port, so the launch starts (and stops) its own
router. The expected node names come from interpreting the same launch file with the same
arguments; ``scheduler_node`` is left out (``enable_scheduler:=false``) until it is installed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stf_nodes.launcher.commands import node_executables
from stf_nodes.launcher.parser import load_launch
from stf_nodes.launcher.supervisor import port_open
from stf_nodes.runtime.router import free_port
from tests.conftest import stf, wait_until
from tests.launcher.conftest import LaunchRun, descendants, pid_alive

LAUNCH_DIR = Path(__file__).resolve().parents[2] / 'launch'
FACTORY = LAUNCH_DIR / 'factory.launch.xml'
FLEET = LAUNCH_DIR / 'fleet.launch.xml'
UP_TIMEOUT_S = 60.0


@pytest.fixture
def router_port(monkeypatch: pytest.MonkeyPatch) -> int:
    """A free port for the router the launch starts; the stf CLI connects to it too.

    The MQTT bridge of the launch gets a free port as well: the launch starts its embedded
    broker there instead of publishing onto the machine's shared Mosquitto.
    """
    port = free_port()
    monkeypatch.setenv('ZENOH_ROUTER', f'tcp/127.0.0.1:{port}')
    monkeypatch.setenv('MQTT_PORT', str(free_port()))
    return port


@pytest.fixture
def runs() -> Iterator[list[LaunchRun]]:
    started: list[LaunchRun] = []
    yield started
    for run in started:
        # A failed test: let the launcher stop its process groups, then kill what is left.
        if run.process.poll() is None:
            tree = descendants(run.process.pid)
            run.process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                run.process.wait(timeout=15)
            run.kill()
            for pid in tree:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def launch_args(*args: str) -> list[str]:
    """``args``, plus a free Foxglove port (8765 may be taken on a shared machine) and
    ``enable_scheduler:=false`` while scheduler_node is not installed."""
    args = (*args, f'foxglove_port:={free_port()}')
    if 'scheduler_node' in node_executables():
        return list(args)
    return [*args, 'enable_scheduler:=false']


def expected_nodes(path: Path, args: list[str]) -> set[str]:
    arguments = dict(arg.split(':=', 1) for arg in args)
    nodes = {node.full_name for node in load_launch(path, arguments).nodes}
    assert None not in nodes
    return {name for name in nodes if name}


def start(runs: list[LaunchRun], *argv: str, cwd: Path) -> LaunchRun:
    """``stf launch`` in ``cwd``, where nodes put their relative files (databases)."""
    run = LaunchRun(
        [sys.executable, '-m', 'stf_nodes.cli', 'launch', *argv], dict(os.environ), cwd=cwd
    )
    runs.append(run)
    return run


def node_list() -> set[str]:
    return set(stf('node', 'list').stdout.split())


def wait_for_nodes(run: LaunchRun, expected: set[str]) -> None:
    def all_up() -> bool:
        result = stf('node', 'list', check=False)
        if run.process.poll() is not None:
            code, stderr = run.finish()
            pytest.fail(f'stf launch exited with {code}: {stderr}\n' + '\n'.join(run.lines))
        return result.returncode == 0 and expected <= set(result.stdout.split())

    wait_until(all_up, timeout=UP_TIMEOUT_S, interval=0.5)


def stop_with_ctrl_c(run: LaunchRun, port: int) -> None:
    """SIGINT to ``stf launch``: status 0 within 10 s, no process of the launch left."""
    tree = descendants(run.process.pid)
    assert tree
    started = time.monotonic()
    run.process.send_signal(signal.SIGINT)
    try:
        code, stderr = run.finish(timeout=10)
    except subprocess.TimeoutExpired:
        run.collect()
        pytest.fail(
            'stf launch still running 10 s after Ctrl-C; its last output:\n'
            + '\n'.join(run.lines[-40:])
        )
    assert time.monotonic() - started < 10
    assert code == 0, stderr
    assert not {pid for pid in tree if pid_alive(pid)}
    assert not port_open('127.0.0.1', port)


def test_factory_nodes_respawn_and_ctrl_c(
    runs: list[LaunchRun], router_port: int, tmp_path: Path
) -> None:
    args = launch_args()
    run = start(runs, str(FACTORY), *args, cwd=tmp_path)
    expected = expected_nodes(FACTORY, args)
    assert {'/hbw', '/vgr', '/conveyor'} <= expected
    wait_for_nodes(run, expected)
    assert run.wait_for(r'^\[router\] stf router: listening')

    old = int(run.wait_for(r'^\[launch\] hbw started with pid (\d+)').group(1))
    os.kill(old, signal.SIGKILL)
    new = int(run.wait_for(rf'^\[launch\] hbw started with pid (?!{old}\b)(\d+)', 20).group(1))
    assert pid_alive(new)
    wait_until(lambda: '/hbw' in node_list(), timeout=UP_TIMEOUT_S, interval=0.5)
    assert new in descendants(run.process.pid)

    stop_with_ctrl_c(run, router_port)


def test_compose_runs_all_nodes_in_one_process(
    runs: list[LaunchRun], router_port: int, tmp_path: Path
) -> None:
    args = launch_args('namespace:=factory_3', 'use_sim_time:=true', 'time_scale:=5')
    run = start(runs, '--compose', str(FACTORY), *args, cwd=tmp_path)
    expected = expected_nodes(FACTORY, args)
    assert {'/factory_3/clock', '/factory_3/hbw'} <= expected
    wait_for_nodes(run, expected)
    router = int(run.wait_for(r'^\[launch\] router started with pid (\d+)').group(1))
    broker = int(run.wait_for(r'^\[launch\] mqtt_broker started with pid (\d+)').group(1))
    container = int(run.wait_for(r'^\[launch\] container started with pid (\d+)').group(1))
    assert descendants(run.process.pid) - {router, broker} == {container}
    # The inline <param> of the launch file reached the node, as with a separate process.
    result = stf('param', 'get', '/factory_3/hbw', 'use_sim_time')
    assert result.stdout.strip() == 'bool value is: True'
    stop_with_ctrl_c(run, router_port)


def test_fleet_of_three_factories_on_one_router(
    runs: list[LaunchRun], router_port: int, tmp_path: Path
) -> None:
    # Factory K's bridge would take foxglove_port + K - 1: ports this test cannot reserve.
    args = launch_args('count:=3', 'enable_foxglove:=false')
    run = start(runs, str(FLEET), *args, cwd=tmp_path)
    expected = expected_nodes(FLEET, args)
    assert {f'/factory_{k}/{s}' for k in (1, 2, 3) for s in ('hbw', 'vgr', 'conveyor')} <= expected
    wait_for_nodes(run, expected)
    topics = set(stf('topic', 'list').stdout.split())
    assert {f'/factory_{k}/stf/hbw/state' for k in (1, 2, 3)} <= topics
    assert '/stf/hbw/state' not in topics
    stop_with_ctrl_c(run, router_port)


def launch_error(*argv: str) -> str:
    """Run ``stf launch`` on bad input: exit status 2, nothing started; returns stderr."""
    result = stf('launch', *argv, check=False)
    assert result.returncode == 2, result
    assert 'started with pid' not in result.stdout
    return result.stderr


def test_invalid_xml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / 'bad.launch.xml'
    path.write_text('<launch>\n  <node pkg="stf_digital_twin" exec="hbw_node"\n</launch>\n')
    assert f'{path}:3: invalid XML' in launch_error(str(path))


def test_unknown_argument_lists_the_declared_ones() -> None:
    error = launch_error(str(FACTORY), 'bogus:=1')
    assert 'unknown launch argument(s) bogus' in error
    assert "'namespace':" in error and "'use_sim_time':" in error


def test_missing_params_file(tmp_path: Path) -> None:
    missing = tmp_path / 'missing.yaml'
    error = launch_error(str(FACTORY), f'params_file:={missing}')
    assert f'parameters file not found: {missing}' in error


@pytest.mark.parametrize('compose', [False, True], ids=['separate', 'compose'])
def test_unknown_executable(tmp_path: Path, compose: bool) -> None:
    path = tmp_path / 'nope.launch.xml'
    path.write_text(
        '<launch>\n<node pkg="stf_digital_twin" exec="nope_node" name="n"/>\n</launch>\n'
    )
    error = launch_error(*(['--compose'] if compose else []), str(path))
    assert f"{path}:2: executable 'nope_node' not found" in error
    assert 'hbw_node' in error


def test_router_port_taken_by_something_else(
    runs: list[LaunchRun], router_port: int, tmp_path: Path
) -> None:
    server = socket.create_server(('127.0.0.1', router_port))
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True).start()
    try:
        run = start(runs, str(FACTORY), *launch_args(), cwd=tmp_path)
        code, _ = run.finish(timeout=30)
    finally:
        server.close()
        for connection in accepted:
            connection.close()
    assert code == 1
    output = '\n'.join(run.lines)
    assert f'tcp/127.0.0.1:{router_port} is in use, but not by a Zenoh router' in output
    assert 'started with pid' not in output


def test_composed_scheduler_forwards_faults_at_once_and_an_order_can_be_watched(
    runs: list[LaunchRun], router_port: int, tmp_path: Path
) -> None:
    """`--compose`: the scheduler's fault facade calls the stations' services in the same
    process and answers at once (it used to time out after 10 s although the fault was
    applied); `stf command watch` follows an order step by step to its end."""
    args = launch_args(
        'use_sim_time:=true', 'time_scale:=20', 'enable_mqtt:=false', 'enable_foxglove:=false'
    )
    run = start(runs, '--compose', str(FACTORY), *args, cwd=tmp_path)
    run.wait_for(r'\[scheduler\]: scheduler ready', UP_TIMEOUT_S)
    fault = '{component_id: CONV_M1, fault: BELT_SLIP, magnitude: 0.2}'
    for service, srv, request, answer in (
        ('/stf/fault/inject', 'InjectFault', fault, 'BELT_SLIP injected into CONV_M1'),
        ('/stf/fault/clear', 'ClearFault', '{component_id: CONV_M1}', 'faults cleared on CONV_M1'),
    ):
        # A 5 s timeout: the deadlock answered only after the scheduler's own 10 s.
        result = stf('service', 'call', service, f'stf_msgs/srv/{srv}', request, '--timeout', '5')
        assert result.stdout.splitlines()[-3:] == ['accepted: true', f'message: {answer}', '---']

    # A new database: the order will be command 1. Watch it before it exists.
    watch = subprocess.Popen(
        [sys.executable, '-m', 'stf_nodes.cli', 'command', 'watch', '1', '--timeout', '150'],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watch.stderr is not None
    assert 'command 1 is not known (yet); waiting for it' in watch.stderr.readline()
    order = stf(
        'service', 'call', '/stf/order/process', 'stf_msgs/srv/ProcessOrder', '{}', '--json'
    )
    command_id = json.loads(order.stdout)['command_id']
    assert command_id == 1
    output, _ = watch.communicate(timeout=180)
    assert watch.returncode == 0, output
    lines = output.splitlines()
    assert lines[0].startswith(f'command {command_id} PROCESS ')
    steps = [line for line in lines if re.match(r'^  ✓ \[\d+/\d+\] ', line)]
    count = int(re.match(r'^  ✓ \[\d+/(\d+)\]', steps[-1]).group(1))
    assert len(steps) == count  # one line per step, none missed, none twice
    assert steps[-1].split()[2:4] == ['hbw', 'store']
    assert re.match(rf'^command {command_id} COMPLETED after \d+\.\d s; at rack ', lines[-1])
    stop_with_ctrl_c(run, router_port)
