"""`stf param describe|dump|load|delete` against live nodes, shaped like `ros2 param`; a dump
is a parameter file that `--params-file` and `param load` accept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.cli.conftest import start_demo
from tests.conftest import stf


def test_describe_like_ros2(graph: Any) -> None:
    out = stf('param', 'describe', '/cli/hbw', 'publish_rate', 'motor.voltage_v').stdout
    blocks = out.split('Parameter name: ')[1:]
    assert blocks[0].splitlines()[:2] == ['publish_rate', '  Type: double']
    assert '  Constraints:' in blocks[0].splitlines()
    assert 'Read only' not in blocks[0]
    assert blocks[1].splitlines()[:2] == ['motor.voltage_v', '  Type: double']
    assert '    Read only: true' in blocks[1].splitlines()
    labels = stf('param', 'describe', '/cli/demo', 'label', 'limits').stdout
    assert '  Type: string' in labels and '  Type: integer array' in labels
    unknown = stf('param', 'describe', '/cli/demo', 'nope', check=False)
    assert unknown.returncode == 1 and 'nope' in unknown.stderr


def test_dump_is_a_parameter_file_that_a_restart_and_load_accept(
    graph: Any, tmp_path: Path
) -> None:
    dumped = stf('param', 'dump', '/cli/hbw').stdout
    document = yaml.safe_load(dumped)
    assert list(document) == ['/cli/hbw']
    parameters = document['/cli/hbw']['ros__parameters']
    assert parameters['motor']['voltage_v'] == 24.0  # dotted names nested, as ros2 dumps
    assert parameters['use_sim_time'] is False

    # A parameter changed at run time survives a restart through the dump.
    stf('param', 'set', '/cli/demo', 'label', 'kept')
    stf('param', 'set', '/cli/demo', 'limits', '[7, 8]')
    file = tmp_path / 'demo.yaml'
    file.write_text(stf('param', 'dump', 'cli/demo').stdout)
    graph['demo'].terminate()
    graph['demo'].wait(timeout=10)
    graph['demo'] = start_demo(graph['processes'], '--params-file', str(file))
    assert stf('param', 'get', '/cli/demo', 'label', '--json').stdout.strip() == '"kept"'
    assert stf('param', 'get', '/cli/demo', 'limits', '--json').stdout.strip() == '[7, 8]'

    # `param load` sets what the file gives the node; a read-only one fails, named.
    load = tmp_path / 'load.yaml'
    load.write_text(
        '/cli/hbw:\n  ros__parameters:\n    publish_rate: 4.0\n    motor:\n      voltage_v: 12.0\n'
        '/**:\n  ros__parameters:\n    diagnostics_rate: 2.0\n'
    )
    result = stf('param', 'load', '/cli/hbw', str(load), check=False)
    assert result.returncode == 1
    assert 'Set parameter publish_rate successful' in result.stdout.splitlines()
    assert 'Set parameter motor.voltage_v failed: ' in result.stderr
    assert 'read-only' in result.stderr
    assert 'diagnostics_rate' not in result.stdout  # /** only with --use-wildcard
    assert stf('param', 'get', '/cli/hbw', 'publish_rate', '--json').stdout.strip() == '4.0'
    wildcard = tmp_path / 'wildcard.yaml'
    wildcard.write_text('/**:\n  ros__parameters:\n    publish_rate: 10.0\n')
    assert stf('param', 'load', '/cli/hbw', str(wildcard), check=False).returncode == 1
    loaded = stf('param', 'load', '--use-wildcard', '/cli/hbw', str(wildcard))
    assert loaded.stdout == 'Set parameter publish_rate successful\n'
    bad = tmp_path / 'bad.yaml'
    bad.write_text('/cli/hbw: [unclosed\n')
    broken = stf('param', 'load', '/cli/hbw', str(bad), check=False)
    assert broken.returncode == 1 and 'cannot read parameter file' in broken.stderr


def test_delete_refuses_a_statically_typed_parameter(graph: Any) -> None:
    refused = stf('param', 'delete', '/cli/demo', 'rate', check=False)
    assert refused.returncode == 1
    assert 'Deleting parameter failed: cannot undeclare a statically typed parameter' in (
        refused.stderr
    )
    assert stf('param', 'get', '/cli/demo', 'rate', '--json').stdout.strip() == '20.0'
