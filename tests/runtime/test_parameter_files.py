"""Parameter files by rcl's rules (the rcl YAML parser's documentation and rclcpp's matching):
node names are fully qualified, `/*` is one namespace token, `/**` any number of them,
mappings above `ros__parameters` are namespaces, and later sections override earlier ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from stf_nodes.runtime.parameters import (
    ParameterError,
    load_parameter_file,
    node_name_matches,
)


@pytest.mark.parametrize(
    ('pattern', 'node', 'matches'),
    [
        ('/hbw', '/hbw', True),
        ('/hbw', '/factory_1/hbw', False),  # a bare name is the root namespace only
        ('/**', '/hbw', True),
        ('/**', '/factory_1/cell_2/hbw', True),
        ('/**/hbw', '/hbw', True),
        ('/**/hbw', '/factory_1/hbw', True),
        ('/**/hbw', '/factory_1/vgr', False),
        ('/**/hbw', '/factory_1/hbw_2', False),
        ('/*', '/hbw', True),
        ('/*', '/factory_1/hbw', False),
        ('/*/hbw', '/factory_1/hbw', True),
        ('/*/hbw', '/hbw', False),
        ('/*/hbw', '/a/b/hbw', False),
        ('/factory_1/*', '/factory_1/vgr', True),
        ('/factory_1/**', '/factory_1/x/y', True),
        ('/factory.1/hbw', '/factory_1/hbw', False),  # names are literal, not regular expressions
    ],
)
def test_node_names_match_as_rclcpp_matches_them(pattern: str, node: str, matches: bool) -> None:
    assert node_name_matches(pattern, node) is matches


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / 'params.yaml'
    path.write_text(text)
    return path


def test_sections_apply_in_file_order_with_namespaces_and_nesting(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '/**:\n  ros__parameters: {rate: 1.0, motor: {voltage_v: 24.0}, seed: 0}\n'
        'hbw:\n  ros__parameters: {seed: 1}\n'
        '/**/hbw:\n  ros__parameters: {rate: 2.0}\n'
        'factory_1:\n  hbw:\n    ros__parameters: {motor: {voltage_v: 12.0}}\n'
        '/factory_1/vgr:\n  ros__parameters: {rate: 9.0}\n',
    )
    assert load_parameter_file(path, '/hbw') == {
        'rate': 2.0,
        'motor.voltage_v': 24.0,
        'seed': 1,
    }
    assert load_parameter_file(path, '/factory_1/hbw') == {
        'rate': 2.0,
        'motor.voltage_v': 12.0,
        'seed': 0,  # `hbw:` is /hbw, not /factory_1/hbw
    }
    assert load_parameter_file(path, '/factory_1/vgr') == {
        'rate': 9.0,
        'motor.voltage_v': 24.0,
        'seed': 0,
    }
    # Without wildcards (`param load` without --use-wildcard) only exact names count.
    assert load_parameter_file(path, '/factory_1/hbw', wildcards=False) == {'motor.voltage_v': 12.0}


@pytest.mark.parametrize(
    ('text', 'message'),
    [
        ('ros__parameters: {a: 1}\n', 'must sit under a node name'),
        ('/hbw:\n  ros__parameters: [1, 2]\n', 'must be a mapping'),
        ('/hbw: 3\n', "'hbw' is neither a namespace nor a node"),
        ('/ns:\n  hbw: [1]\n', "'ns/hbw' is neither a namespace nor a node"),
        ('- a\n', 'expected a mapping'),
        ('/hbw: {ros__parameters: {a: [unclosed}\n', 'cannot read parameter file'),
    ],
)
def test_malformed_files_are_refused_with_the_place(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ParameterError, match=message):
        load_parameter_file(write(tmp_path, text), '/hbw')


def test_an_empty_section_and_an_empty_file_give_nothing(tmp_path: Path) -> None:
    assert load_parameter_file(write(tmp_path, '/hbw:\n  ros__parameters:\n'), '/hbw') == {}
    assert load_parameter_file(write(tmp_path, ''), '/hbw') == {}
