"""The launch XML interpreter: every supported tag, scoping, conditions and error messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stf_nodes.launcher.model import LaunchError, NodeSpec
from stf_nodes.launcher.parser import declared_arguments, format_arguments, load_launch


def write(directory: Path, name: str, body: str) -> Path:
    """Write ``<launch>body</launch>`` to ``directory/name``."""
    path = directory / name
    path.write_text(f'<?xml version="1.0"?>\n<launch>\n{body}\n</launch>\n')
    return path


def nodes(path: Path, **arguments: str) -> dict[str, NodeSpec]:
    """Nodes of a launch file by label."""
    return {node.label: node for node in load_launch(path, arguments).nodes}


def test_node_attributes_and_children(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'p.yaml').write_text('/**: {ros__parameters: {a: 1}}\n')
    path = write(
        tmp_path,
        'a.launch.xml',
        """
        <node pkg="stf_digital_twin" exec="hbw_node" name="hbw" namespace="line"
              output="both" respawn="True" respawn_delay="1.5" args="--verbose 'two words'">
          <param name="rate" value="10"/>
          <param name="ratio" value="0.5"/>
          <param from="p.yaml"/>
          <param name="label" value="station one"/>
          <param name="enabled" value="true"/>
          <param name="ids" value="[1, 2]"/>
          <remap from="state" to="/stf/hbw/state"/>
          <env name="LEVEL" value="debug"/>
        </node>
        """,
    )
    (node,) = load_launch(path).nodes
    assert node == NodeSpec(
        package='stf_digital_twin',
        executable='hbw_node',
        name='hbw',
        namespace='/line',
        parameters=(
            {'rate': 10, 'ratio': 0.5},
            tmp_path / 'p.yaml',
            {'label': 'station one', 'enabled': True, 'ids': [1, 2]},
        ),
        remaps=(('state', '/stf/hbw/state'),),
        env={'LEVEL': 'debug'},
        respawn=True,
        respawn_delay=1.5,
        output='both',
        args=('--verbose', 'two words'),
        source=f'{path}:4',
    )
    assert node.full_name == '/line/hbw'
    assert node.label == 'line/hbw'


def test_args_defaults_command_line_and_let(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'a.launch.xml',
        """
        <arg name="ns" default="plant" description="namespace"/>
        <arg name="required_rate"/>
        <let name="node_name" value="hbw_$(var required_rate)"/>
        <node pkg="p" exec="e" name="$(var node_name)" namespace="$(var ns)">
          <param name="rate" value="$(var required_rate)"/>
        </node>
        """,
    )
    node = nodes(path, required_rate='20')['plant/hbw_20']
    assert node.parameters == ({'rate': 20},)
    assert nodes(path, required_rate='5', ns='/abs')['abs/hbw_5'].namespace == '/abs'


def test_missing_required_argument_lists_declared_arguments(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'a.launch.xml',
        """
        <arg name="ns" default="plant" description="The namespace"/>
        <group><arg name="count" description="How many"/></group>
        """,
    )
    with pytest.raises(LaunchError) as error:
        load_launch(path)
    message = str(error.value)
    assert f"{path}:5: launch argument 'count' is required" in message
    assert "'ns':\n        The namespace\n        (default: 'plant')" in message
    assert "'count':\n        How many\n        (argument must be set)" in message


def test_unknown_command_line_argument_lists_declared_arguments(tmp_path: Path) -> None:
    path = write(tmp_path, 'a.launch.xml', '<arg name="ns" default="" description="The ns"/>')
    with pytest.raises(LaunchError, match=r"unknown launch argument\(s\) bogus(.|\n)*'ns'"):
        load_launch(path, {'bogus': '1'})


def test_arg_choices(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'a.launch.xml',
        '<arg name="mode" default="a"><choice value="a"/><choice value="b"/></arg>',
    )
    load_launch(path, {'mode': 'b'})
    with pytest.raises(LaunchError, match="'mode' is 'c', expected one of a, b"):
        load_launch(path, {'mode': 'c'})
    assert declared_arguments(path)[0].choices == ('a', 'b')


def test_group_scoping_and_namespaces(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'a.launch.xml',
        """
        <let name="x" value="outer"/>
        <push_ros_namespace namespace="plant"/>
        <group>
          <let name="x" value="inner"/>
          <push-ros-namespace namespace="line_1"/>
          <set_env name="STF_MODE" value="$(var x)"/>
          <node pkg="p" exec="e" name="scoped_$(var x)"/>
          <node pkg="p" exec="e" name="absolute" namespace="/other"/>
          <node pkg="p" exec="e" name="relative" namespace="sub"/>
        </group>
        <node pkg="p" exec="e" name="after_$(var x)"/>
        <group scoped="false">
          <let name="x" value="leaked"/>
          <push_ros_namespace namespace="/root_ns"/>
          <set_env name="STF_MODE" value="leaky"/>
        </group>
        <node pkg="p" exec="e" name="last_$(var x)"/>
        <node pkg="p" exec="e"/>
        """,
    )
    found = nodes(path)
    assert found['plant/line_1/scoped_inner'].env == {'STF_MODE': 'inner'}
    assert found['other/absolute'].namespace == '/other'
    assert found['plant/line_1/sub/relative'].namespace == '/plant/line_1/sub'
    assert found['plant/after_outer'].env == {}
    assert found['root_ns/last_leaked'].env == {'STF_MODE': 'leaky'}
    unnamed = found['root_ns/e']
    assert unnamed.name is None
    assert unnamed.full_name is None


def test_set_env_is_visible_to_env_substitution(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'a.launch.xml',
        '<set_env name="STF_TEST_X" value="42"/>'
        '<node pkg="p" exec="e" name="n_$(env STF_TEST_X)"/>',
    )
    assert 'n_42' in nodes(path)


@pytest.mark.parametrize(
    ('condition', 'started'),
    [
        ('if="true"', True),
        ('if="1"', True),
        ('if="TRUE"', True),
        ('if="false"', False),
        ('if="0"', False),
        ('unless="true"', False),
        ('unless="false"', True),
        ("""if="$(eval '$(var n) > 2')\"""", True),
        ("""if="$(eval '$(var n) > 3')\"""", False),
    ],
)
def test_if_unless(tmp_path: Path, condition: str, started: bool) -> None:
    path = write(
        tmp_path,
        'a.launch.xml',
        f'<arg name="n" default="3"/><node pkg="p" exec="e" name="n" {condition}/>',
    )
    assert bool(nodes(path)) is started


def test_conditions_on_every_element(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'a.launch.xml',
        """
        <arg name="skipped_required" if="false"/>
        <let name="x" value="1"/>
        <let name="x" value="2" unless="true"/>
        <push_ros_namespace namespace="ns" if="false"/>
        <set_env name="E" value="v" if="false"/>
        <group if="false"><node pkg="p" exec="e" name="hidden"/></group>
        <node pkg="p" exec="e" name="n_$(var x)">
          <param name="a" value="1" if="false"/>
          <remap from="a" to="b" unless="true"/>
          <env name="E" value="v" if="0"/>
        </node>
        """,
    )
    (node,) = load_launch(path).nodes
    assert node.full_name == '/n_1'
    assert (node.parameters, node.remaps, node.env) == ((), (), {})


def test_invalid_condition_value(tmp_path: Path) -> None:
    path = write(tmp_path, 'a.launch.xml', '<node pkg="p" exec="e" name="n" if="yes please"/>')
    with pytest.raises(LaunchError, match=f'{re.escape(str(path))}:3: .*expected true/false'):
        load_launch(path)


def test_include_with_arguments_is_scoped(tmp_path: Path) -> None:
    write(
        tmp_path,
        'inner.launch.xml',
        """
        <arg name="ns"/>
        <arg name="rate" default="10"/>
        <let name="leak" value="yes"/>
        <push_ros_namespace namespace="$(var ns)"/>
        <node pkg="p" exec="e" name="n"><param name="rate" value="$(var rate)"/></node>
        """,
    )
    path = write(
        tmp_path,
        'outer.launch.xml',
        """
        <arg name="count" default="2"/>
        <include file="$(dirname)/inner.launch.xml">
          <arg name="ns" value="f_1"/>
        </include>
        <include file="$(dirname)/inner.launch.xml" if="$(eval '$(var count) >= 2')">
          <arg name="ns" value="f_2"/>
          <arg name="rate" value="$(eval '$(var count) * 4')"/>
        </include>
        <node pkg="p" exec="e" name="top"
              if="$(eval '&quot;$(env STF_NOPE &quot;&quot;)&quot; == &quot;&quot;')"/>
        """,
    )
    found = nodes(path)
    assert found['f_1/n'].parameters == ({'rate': 10},)
    assert found['f_2/n'].parameters == ({'rate': 8},)
    assert found['top'].namespace == '/'
    # Arguments of included files are valid on the command line and reach the includes.
    assert nodes(path, rate='7')['f_1/n'].parameters == ({'rate': 7},)
    assert set(nodes(path, count='1')) == {'f_1/n', 'top'}


def test_errors_in_included_files_name_that_file(tmp_path: Path) -> None:
    inner = write(tmp_path, 'inner.launch.xml', '\n<node pkg="p" exec="e" nmae="typo"/>')
    path = write(tmp_path, 'outer.launch.xml', '<include file="$(dirname)/inner.launch.xml"/>')
    with pytest.raises(LaunchError, match=f"^{re.escape(str(inner))}:4: unknown attribute 'nmae'"):
        load_launch(path)


@pytest.mark.parametrize(
    ('body', 'line', 'message'),
    [
        ('<node pkg="p" exec="e"></nod>', 3, 'invalid XML: mismatched tag'),
        ('<nodes pkg="p"/>', 3, 'unknown tag <nodes> in <launch>'),
        ('<node pkg="p" exec="e"><arg name="x"/></node>', 3, 'unknown tag <arg> in <node>'),
        ('<group>\n<executable cmd="ls"/></group>', 4, 'unknown tag <executable>'),
        ('<node pkg="p" exec="e" bogus="1"/>', 3, "unknown attribute 'bogus' on <node>"),
        ('<group forwarding="false"/>', 3, "unknown attribute 'forwarding'"),
        ('<group if="false">\n<node pkg="p" exec="e" nmae="x"/></group>', 4, "attribute 'nmae'"),
        (
            '<node pkg="p" exec="e"><param name="a" value="1"><x/></param></node>',
            3,
            '(allowed: none)',
        ),
        ('<node pkg="p"/>', 3, "<node> needs a 'exec' attribute"),
        ('<include file="nope.launch.xml"/>', 3, 'included file not found'),
        ('<node pkg="p" exec="e"><param from="nope.yaml"/></node>', 3, 'parameters file not found'),
        ('<node pkg="p" exec="e"><param name="a"/></node>', 3, 'needs from= or both'),
        ('<node pkg="p" exec="e" name="$(var x)"/>', 3, 'undefined launch configuration'),
        ('<node pkg="p" exec="e" name="bad-name"/>', 3, "invalid node name 'bad-name'"),
        ('<push_ros_namespace namespace="a b"/>', 3, "invalid namespace 'a b'"),
        ('<node pkg="p" exec="e" respawn_delay="soon"/>', 3, 'respawn_delay must be seconds'),
        ('<node pkg="p" exec="e" respawn="maybe"/>', 3, 'expected true/false'),
        ('<node pkg="p" exec="e" output="file"/>', 3, 'output must be one of'),
    ],
)
def test_errors_name_file_and_line(tmp_path: Path, body: str, line: int, message: str) -> None:
    path = write(tmp_path, 'bad.launch.xml', body)
    with pytest.raises(LaunchError) as error:
        load_launch(path)
    assert str(error.value).startswith(f'{path}:{line}: ')
    assert message in str(error.value)


def test_root_must_be_launch(tmp_path: Path) -> None:
    path = tmp_path / 'a.launch.xml'
    path.write_text('<group/>')
    with pytest.raises(LaunchError, match='root element must be <launch>'):
        load_launch(path)


def test_recursive_include_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, 'a.launch.xml', '<include file="$(filename)"/>')
    with pytest.raises(LaunchError, match='nested too deep'):
        load_launch(path)


def test_format_arguments_without_arguments() -> None:
    assert format_arguments(()) == 'No arguments.'
