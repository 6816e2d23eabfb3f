"""Node command lines as ros2 launch builds them, and executable resolution."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stf_nodes.launcher.commands import (
    build_processes,
    console_scripts,
    node_command,
    node_executables,
    resolve_executable,
)
from stf_nodes.launcher.model import LaunchError, NodeSpec


def fake_resolver(package: str, executable: str) -> list[str]:
    return [f'/opt/{package}/{executable}']


def test_command_line_layout(tmp_path: Path) -> None:
    params = tmp_path / 'p.yaml'
    node = NodeSpec(
        package='stf_digital_twin',
        executable='hbw_node',
        name='hbw',
        namespace='/factory_1',
        parameters=(params, {'use_sim_time': True, 'rate': 10.5}, tmp_path / 'q.yaml'),
        remaps=(('state', '/stf/hbw/state'),),
        args=('--flag',),
    )
    command = node_command(node, resolver=fake_resolver, params_dir=tmp_path)
    inline = command[command.index(str(params)) + 2]
    assert command == [
        '/opt/stf_digital_twin/hbw_node',
        '--flag',
        '--ros-args',
        '-r',
        '__node:=hbw',
        '-r',
        '__ns:=/factory_1',
        '--params-file',
        str(params),
        '--params-file',
        inline,
        '--params-file',
        str(tmp_path / 'q.yaml'),
        '-r',
        'state:=/stf/hbw/state',
    ]
    assert Path(inline).parent == tmp_path
    assert yaml.safe_load(Path(inline).read_text()) == {
        '/factory_1/hbw': {'ros__parameters': {'use_sim_time': True, 'rate': 10.5}}
    }


def test_unnamed_node_in_root_namespace(tmp_path: Path) -> None:
    node = NodeSpec(package='p', executable='e', name=None, namespace='/', parameters=({'a': 'x'},))
    command = node_command(node, resolver=fake_resolver, params_dir=tmp_path)
    assert command[:4] == ['/opt/p/e', '--ros-args', '-r', '__ns:=/']
    assert yaml.safe_load(Path(command[-1]).read_text()) == {'/**': {'ros__parameters': {'a': 'x'}}}


def test_build_processes(tmp_path: Path) -> None:
    node = NodeSpec(
        package='p',
        executable='e',
        name='n',
        namespace='/f',
        env={'A': '1'},
        respawn=True,
        respawn_delay=2.0,
    )
    (process,) = build_processes([node], resolver=fake_resolver, params_dir=tmp_path)
    assert process.label == 'f/n'
    assert process.env == {'A': '1'}
    assert (process.respawn, process.respawn_delay) == (True, 2.0)
    assert process.argv[0] == '/opt/p/e'


def test_unknown_executable_lists_node_executables(tmp_path: Path) -> None:
    node = NodeSpec(
        package='stf_digital_twin',
        executable='no_such_node',
        name='n',
        namespace='/',
        source='x.launch.xml:3',
    )
    with pytest.raises(LaunchError) as error:
        node_command(node, resolver=resolve_executable, params_dir=tmp_path)
    message = str(error.value)
    assert message.startswith("x.launch.xml:3: executable 'no_such_node' not found")
    assert 'node executables:' in message
    for name in node_executables():
        assert name in message


def test_other_packages_are_rejected() -> None:
    with pytest.raises(LaunchError, match="package 'demo_nodes_py' is not available"):
        resolve_executable('demo_nodes_py', 'talker')


def test_real_entry_points_resolve() -> None:
    scripts = console_scripts()
    assert 'stf' in scripts, 'the project is not installed (pip install -e .)'
    command = resolve_executable('stf_digital_twin', 'stf')
    assert command[:2] == [sys.executable, '-c']
    assert 'from stf_nodes.process import stf' in command[2]


@pytest.mark.parametrize('name', node_executables())
def test_real_node_executables_are_importable(name: str) -> None:
    code = resolve_executable('stf_digital_twin', name)[2].split('; sys.exit')[0]
    subprocess.run([sys.executable, '-c', code], check=True, timeout=60)
