"""The supervisor and ``stf launch`` end to end, with fake node executables and routers."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from stf_nodes.launcher import LaunchError, ProcessSpec, Supervisor, launch_main
from stf_nodes.launcher.supervisor import parse_endpoint, port_open
from stf_nodes.runtime.router import free_port
from tests.launcher.conftest import Launcher, pid_alive

NO_ROUTER = '--no-router'


def node(name: str, args: str = '', extra: str = '') -> str:
    return f'<node pkg="stf_digital_twin" exec="fake_node" name="{name}" args="{args}" {extra}/>'


def pids(run_lines: list[str], pattern: str = 'pid=') -> set[int]:
    said = (re.search(r'pid=(\d+)$', line) for line in run_lines if pattern in line)
    return {int(match[1]) for match in said if match}


def test_output_is_prefixed_per_line_with_stderr_merged() -> None:
    output = io.StringIO()
    code = 'import sys; print("one"); print("two", file=sys.stderr, flush=True); print("three")'
    specs = [
        ProcessSpec(label='a', argv=(sys.executable, '-c', code)),
        ProcessSpec(label='ns/b', argv=(sys.executable, '-c', 'print("b")'), env={'X': '1'}),
    ]
    assert Supervisor(output=output, color=False).run(specs) == 0
    lines = output.getvalue().splitlines()
    assert [line for line in lines if line.startswith('[a] ')] == [
        '[a] one',
        '[a] two',
        '[a] three',
    ]
    assert '[ns/b] b' in lines
    assert '[launch] a finished cleanly' in lines


def test_color_prefix() -> None:
    output = io.StringIO()
    spec = ProcessSpec(label='a', argv=(sys.executable, '-c', 'print("x")'))
    assert Supervisor(output=output, color=True).run([spec]) == 0
    assert '\x1b[' in output.getvalue()
    assert Supervisor(output=io.StringIO()).run([spec]) == 0  # not a tty: no color by default


def test_child_environment() -> None:
    output = io.StringIO()
    code = 'import os; print(os.environ["STF_X"], os.environ["PYTHONUNBUFFERED"], os.getpgid(0))'
    spec = ProcessSpec(label='a', argv=(sys.executable, '-c', code), env={'STF_X': 'hello'})
    Supervisor(output=output, color=False).run([spec])
    line = next(line for line in output.getvalue().splitlines() if line.startswith('[a] '))
    _, value, unbuffered, pgid = line.split()
    assert (value, unbuffered) == ('hello', '1')
    assert int(pgid) not in (0, os.getpgid(0))  # its own process group


def test_failing_node_stops_the_launch_with_nonzero_status(launcher: Launcher) -> None:
    path = launcher.write(
        node('steady') + node('broken', 'exit_after=0.5 code=3') + node('good', 'exit_after=0.1')
    )
    run = launcher.start(NO_ROUTER, str(path))
    code, _ = run.finish()
    assert code == 1
    assert '[launch] good finished cleanly' in run.lines
    assert '[launch] broken failed with code 3, shutting down' in run.lines
    assert '[steady] steady interrupted' in run.lines
    assert not any(pid_alive(pid) for pid in pids(run.lines))


def test_all_nodes_ending_cleanly_ends_the_launch(launcher: Launcher) -> None:
    run = launcher.start(NO_ROUTER, str(launcher.write(node('a', 'exit_after=0.1'))))
    assert run.finish()[0] == 0


def test_respawn_restarts_with_a_new_pid(launcher: Launcher) -> None:
    flaky = node('flaky', 'exit_after=0.3 code=1', 'respawn="true" respawn_delay="0.2"')
    run = launcher.start(NO_ROUTER, str(launcher.write(flaky + node('steady'))))
    first = int(run.wait_for(r'^\[flaky\] flaky up pid=(\d+)').group(1))
    run.wait_for(r'^\[launch\] flaky exited with code 1, respawning in 0.2 s')
    second = int(run.wait_for(rf'^\[flaky\] flaky up pid=(?!{first}\b)(\d+)').group(1))
    third = int(run.wait_for(rf'^\[flaky\] flaky up pid=(?!({first}|{second})\b)(\d+)').group(2))
    assert len({first, second, third}) == 3
    assert not pid_alive(first)
    run.process.send_signal(signal.SIGINT)
    assert run.finish()[0] == 0
    assert not any(pid_alive(pid) for pid in pids(run.lines))


def test_ctrl_c_stops_everything_within_10_s(launcher: Launcher) -> None:
    body = ''.join(node(f'n{index}') for index in range(4))
    run = launcher.start(NO_ROUTER, str(launcher.write(body)))
    for index in range(4):
        run.wait_for(rf'^\[n{index}\] n{index} up')
    started = time.monotonic()
    run.process.send_signal(signal.SIGINT)
    code, _ = run.finish(timeout=10)
    assert time.monotonic() - started < 10
    assert code == 0
    assert '[launch] shutdown requested' in run.lines
    assert not any(pid_alive(pid) for pid in pids(run.lines))
    assert len(pids(run.lines)) == 4


def test_stubborn_nodes_and_grandchildren_get_sigterm_and_sigkill(launcher: Launcher) -> None:
    body = node('stubborn', 'ignore_sigint=1') + node('forker', 'fork=1') + node('plain')
    run = launcher.start(
        NO_ROUTER, '--sigint-timeout', '1', '--sigterm-timeout', '1', str(launcher.write(body))
    )
    grandchild = int(run.wait_for(r'^\[forker\] grandchild pid=(\d+)').group(1))
    run.wait_for(r'^\[stubborn\] stubborn up')
    run.wait_for(r'^\[plain\] plain up')
    assert pid_alive(grandchild)
    started = time.monotonic()
    run.process.send_signal(signal.SIGTERM)  # SIGTERM to stf launch behaves like Ctrl-C
    code, _ = run.finish(timeout=10)
    assert time.monotonic() - started < 10
    assert code == 0
    assert '[launch] sending SIGTERM to stubborn, forker' in run.lines
    assert '[launch] sending SIGKILL to forker' in run.lines
    assert '[plain] plain interrupted' in run.lines
    all_pids = pids(run.lines)
    assert grandchild in all_pids
    assert not any(pid_alive(pid) for pid in all_pids)


def test_unknown_executable_starts_nothing(launcher: Launcher) -> None:
    body = node('fine') + '<node pkg="stf_digital_twin" exec="ghost_node" name="ghost"/>'
    run = launcher.start(NO_ROUTER, str(launcher.write(body)))
    code, stderr = run.finish()
    assert code == 2
    assert "test.launch.xml:2: executable 'ghost_node' not found" in stderr
    assert 'node executables: fake_node' in stderr
    assert run.lines == []


def test_router_is_started_first_and_stopped_last(launcher: Launcher) -> None:
    port = free_port()
    run = launcher.start(
        str(launcher.write(node('a'))), env={'ZENOH_ROUTER': f'tcp/127.0.0.1:{port}'}
    )
    run.wait_for(rf'^\[router\] router listening on {port}')
    run.wait_for(r'^\[a\] a up')
    assert port_open('127.0.0.1', port)
    run.process.send_signal(signal.SIGINT)
    assert run.finish()[0] == 0
    assert run.lines.index('[a] a interrupted') < run.lines.index('[router] router stopped')
    assert not port_open('127.0.0.1', port)
    assert not any(pid_alive(pid) for pid in pids(run.lines))


def test_a_router_that_dies_is_started_again_and_the_nodes_go_on(launcher: Launcher) -> None:
    port = free_port()
    run = launcher.start(
        str(launcher.write(node('a'))), env={'ZENOH_ROUTER': f'tcp/127.0.0.1:{port}'}
    )
    first = int(run.wait_for(rf'^\[router\] router listening on {port} pid=(\d+)')[1])
    run.wait_for(r'^\[a\] a up')
    os.kill(first, signal.SIGKILL)
    run.wait_for(r'^\[launch\] router exited with code -9, starting it again')
    second = int(run.wait_for(rf'^\[router\] router listening on {port} pid=(?!{first}\b)(\d+)')[1])
    assert second != first and port_open('127.0.0.1', port)
    assert not any(' a exited' in line or 'shutting down' in line for line in run.lines)
    run.process.send_signal(signal.SIGINT)
    assert run.finish()[0] == 0
    assert not any(pid_alive(pid) for pid in pids(run.lines))


def test_running_router_is_reused(launcher: Launcher) -> None:
    with socket.create_server(('127.0.0.1', 0)) as server:
        port = server.getsockname()[1]
        run = launcher.start(
            str(launcher.write(node('a', 'exit_after=0.1'))),
            env={'ZENOH_ROUTER': f'tcp/127.0.0.1:{port}'},
        )
        assert run.finish()[0] == 0
    assert f'[launch] using the Zenoh router on tcp/127.0.0.1:{port}' in run.lines
    assert not any(line.startswith('[router]') for line in run.lines)


def test_router_that_fails_to_start_is_reported(launcher: Launcher) -> None:
    launcher.router = [sys.executable, '-c', 'raise SystemExit(3)']
    run = launcher.start(
        str(launcher.write(node('a'))), env={'ZENOH_ROUTER': f'tcp/127.0.0.1:{free_port()}'}
    )
    assert run.finish()[0] == 1
    assert any('router exited with code 3 before listening' in line for line in run.lines)
    assert not any(line.startswith('[a]') for line in run.lines)


@pytest.mark.parametrize('endpoint', ['udp/127.0.0.1:7447', 'tcp/localhost', 'nonsense'])
def test_bad_router_endpoint(endpoint: str) -> None:
    with pytest.raises(LaunchError, match='router endpoint must look like'):
        parse_endpoint(endpoint)


def test_router_endpoint_forms() -> None:
    assert parse_endpoint('tcp/127.0.0.1:7448') == ('127.0.0.1', 7448)
    assert parse_endpoint('tcp/[::1]:7447') == ('::1', 7447)


def test_print_show_args_and_compose(
    launcher: Launcher, capsys: pytest.CaptureFixture[str]
) -> None:
    path = launcher.write(
        '<arg name="ns" default="f" description="Where"/>'
        '<group><push_ros_namespace namespace="$(var ns)"/>'
        + node('a', 'x=1', 'respawn="true"')
        + '</group>'
    )
    output = io.StringIO()

    def resolver(package: str, executable: str) -> list[str]:
        return ['/bin/fake']

    assert launch_main(['--print', str(path), 'ns:=g'], resolver=resolver, output=output) == 0
    assert output.getvalue() == '/bin/fake x=1 --ros-args -r __node:=a -r __ns:=/g\n'
    output = io.StringIO()
    assert launch_main(['--show-args', str(path)], output=output) == 0
    assert "    'ns':\n        Where\n        (default: 'f')" in output.getvalue()
    assert launch_main(['--compose', str(path)]) == 2
    assert "--compose cannot pass node args ['x=1']" in capsys.readouterr().err


def test_bad_input_exits_2(launcher: Launcher, capsys: pytest.CaptureFixture[str]) -> None:
    path = launcher.write('<arg name="count" description="How many"/>')
    assert launch_main(['--print', str(path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f'stf launch: error: {path}:2: launch argument')
    assert "'count':\n        How many\n        (argument must be set)" in error
    assert launch_main(['--print', str(path), 'count:=1', 'bogus:=2']) == 2
    assert 'unknown launch argument(s) bogus' in capsys.readouterr().err
    assert launch_main(['a', 'b', 'c']) == 2
    assert launch_main(['--no-such-option']) == 2


def test_default_and_bare_file_names_are_found_in_the_package(
    capsys: pytest.CaptureFixture[str],
) -> None:
    output = io.StringIO()
    assert launch_main(['--show-args'], output=output) == 0
    assert "'params_file'" in output.getvalue()
    output = io.StringIO()
    assert launch_main(['--show-args', 'stf_digital_twin', 'fleet.launch.xml'], output=output) == 0
    assert "'count'" in output.getvalue()
    output = io.StringIO()
    assert launch_main(['-s', 'fleet.launch.xml'], output=output) == 0
    assert "'count'" in output.getvalue()


def test_real_stf_router_is_started(launcher: Launcher) -> None:
    launcher.router = None  # the default: python -m stf_nodes.cli router
    port = free_port()
    run = launcher.start(
        str(launcher.write(node('a', 'exit_after=0.5'))),
        env={'ZENOH_ROUTER': f'tcp/127.0.0.1:{port}'},
    )
    assert run.finish(timeout=30)[0] == 0
    assert any(line.startswith('[router] ') for line in run.lines)
    assert '[a] a up pid=' in '\n'.join(run.lines)
    assert not port_open('127.0.0.1', port)


def test_stf_launch_command_smoke() -> None:
    # Options after FILE: the stf dispatcher's argparse REMAINDER does not pass a leading option.
    result = subprocess.run(
        [sys.executable, '-m', 'stf_nodes.cli', 'launch', 'fleet.launch.xml', '--show-args'],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "'count'" in result.stdout


def test_second_ctrl_c_escalates_at_once(launcher: Launcher) -> None:
    body = node('stubborn', 'ignore_sigint=1')
    run = launcher.start(NO_ROUTER, '--sigint-timeout', '60', str(launcher.write(body)))
    run.wait_for(r'^\[stubborn\] stubborn up')
    started = time.monotonic()
    run.process.send_signal(signal.SIGINT)
    run.wait_for(r'^\[launch\] shutdown requested')
    time.sleep(0.3)
    run.process.send_signal(signal.SIGINT)
    assert run.finish(timeout=10)[0] == 0
    assert time.monotonic() - started < 10
    assert '[launch] sending SIGTERM to stubborn' in run.lines


def test_print_leaves_no_temporary_directories(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`-p` keeps the files its commands name in one reused cache directory, not in a new
    /tmp/stf_launch_* directory per print."""
    temporary, cache = tmp_path / 'tmp', tmp_path / 'cache'
    temporary.mkdir()
    monkeypatch.setenv('TMPDIR', str(temporary))
    monkeypatch.setenv('XDG_CACHE_HOME', str(cache))
    monkeypatch.setattr(tempfile, 'tempdir', None)  # re-read TMPDIR
    printed = []
    for _ in range(2):
        output = io.StringIO()
        assert launch_main(['--print', 'fleet.launch.xml', 'count:=2'], output=output) == 0
        printed.append(output.getvalue())
    assert list(temporary.iterdir()) == []
    named = {Path(a) for line in printed[1].splitlines() for a in line.split() if 'params_' in a}
    assert named and all(path.is_file() and cache in path.parents for path in named)
    # The second print emptied and reused the first one's directory: only its files remain.
    assert {path for path in cache.rglob('*.yaml')} == named
    assert len(list((cache / 'stf_digital_twin' / 'launch_print').iterdir())) == 1
