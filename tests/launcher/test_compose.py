"""Composition planning: the same ROS args as separate processes, and the NODE_CLASS check."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

from stf_nodes.hbw_node import HbwNode
from stf_nodes.launcher import commands, compose
from stf_nodes.launcher.commands import node_command, resolve_executable
from stf_nodes.launcher.model import LaunchError, NodeSpec
from stf_nodes.launcher.parser import load_launch

REPO_ROOT = Path(__file__).resolve().parents[2]


def spec(executable: str = 'hbw_node', **fields: object) -> NodeSpec:
    return NodeSpec(
        package='stf_digital_twin',
        executable=executable,
        name='hbw',
        namespace='/factory_2',
        source='test.launch.xml:3',
        **fields,  # type: ignore[arg-type]
    )


def test_nodes_get_the_ros_args_of_their_own_process(tmp_path: Path) -> None:
    description = load_launch(
        REPO_ROOT / 'launch' / 'fleet.launch.xml',
        {'count': '2', 'enable_scheduler': 'false', 'use_sim_time': 'true'},
    )
    plan = compose.plan_composition(description.nodes, params_dir=tmp_path)
    assert [entry.label for entry in plan] == [node.label for node in description.nodes]
    for node, entry in zip(description.nodes, plan, strict=True):
        separate = node_command(node, resolver=resolve_executable, params_dir=tmp_path)
        ros_args = separate[separate.index('--ros-args') + 1 :]
        # Inline parameters go to a fresh temporary file each time: compare the contents.
        assert [Path(a).read_text() if a.startswith(str(tmp_path)) else a for a in ros_args] == [
            Path(a).read_text() if a.startswith(str(tmp_path)) else a for a in entry.cli_args
        ]
        assert entry.executable == node.executable
    assert plan[0].cli_args[:4] == ('-r', '__node:=clock', '-r', '__ns:=/factory_1')


def test_plan_round_trips_through_the_container_file(tmp_path: Path) -> None:
    plan = compose.plan_composition(
        [spec(remaps=(('stf/hbw/state', 'state'),), parameters=({'publish_rate': 5.0},))],
        params_dir=tmp_path,
    )
    process = compose.container_process(plan, params_dir=tmp_path)
    assert process.label == 'container'
    assert not process.respawn
    assert process.argv[1:3] == ('-m', 'stf_nodes.launcher.compose')
    assert compose.load_plan(Path(process.argv[3])) == plan
    assert plan[0].cli_args[-2:] == ('-r', 'stf/hbw/state:=state')


def test_node_class_convention() -> None:
    assert compose.node_class('hbw_node') is HbwNode


def test_executable_without_node_class_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    scripts = {
        'plain_node': metadata.EntryPoint(
            name='plain_node', value='stf_nodes.process:station_node', group='console_scripts'
        )
    }
    monkeypatch.setattr(commands, 'console_scripts', lambda: scripts)
    with pytest.raises(
        LaunchError,
        match=r"test.launch.xml:3: executable 'plain_node' cannot be "
        r'composed: module stf_nodes.station_node has no NODE_CLASS',
    ):
        compose.plan_composition([spec('plain_node')], params_dir=tmp_path)


@pytest.mark.parametrize(
    ('fields', 'message'),
    [
        ({'executable': 'no_such_node'}, "executable 'no_such_node' not found"),
        ({'args': ('x=1',)}, 'cannot pass node args'),
        ({'env': {'A': '1'}}, 'cannot set a per-node <env>'),
        ({'package': 'other_pkg'}, "package 'other_pkg' is not available"),
    ],
)
def test_what_cannot_be_composed(fields: dict[str, object], message: str, tmp_path: Path) -> None:
    node = NodeSpec(
        **{  # type: ignore[arg-type]
            'package': 'stf_digital_twin',
            'executable': 'hbw_node',
            'name': 'hbw',
            'namespace': '/',
            **fields,
        }
    )
    with pytest.raises(LaunchError, match=message):
        compose.plan_composition([node], params_dir=tmp_path)
