"""Text from users and the network into the project's parsers: YAML messages on the CLI,
MQTT payloads into the bridge, launch files, scenario files. Each either succeeds or raises
its documented error (CliError, BadInputError, LaunchError, ScenarioError): no other
exception, no hang."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from stf_nodes.bridges import fischertechnik as ft
from stf_nodes.cli.common import CliError, build_message
from stf_nodes.history.scenario import ScenarioError, parse_scenario
from stf_nodes.history.simulation import FactorySettings, SimFactory
from stf_nodes.launcher.model import LaunchError
from stf_nodes.launcher.parser import load_launch
from tests.conftest import REPO_ROOT, stf
from tests.fuzz.common import CASES, FUZZ, HOSTILE_TEXT, hostile_text

pytestmark = pytest.mark.fuzz

#: YAML that has broken parsers: deep nesting, tags that build objects, alias bombs,
#: non-UTF-8-ish characters, huge numbers.
#: Nested deeper than Python's recursion limit (slow to parse: tested once, not fuzzed).
DEEP_YAML = ['[' * 1100 + ']' * 1100]

HOSTILE_YAML = [
    '!!python/object/apply:os.system ["touch /tmp/stf-pwned"]',
    'a: &a [1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b]',
    'motor_id: *undefined',
    '\x00\x01\x02',
    'current_a: 1e999999',
    'current_a: .nan',
    'direction: 99999999999999999999999999',
    '? [a, b]\n: c',
    '--- a\n--- b',
    '%YAML 9.9\n---\na',
    *HOSTILE_TEXT[:9],
]

#: Hostile strings, at most a kilobyte (the YAML emitter and parser are pure Python).
short_text = hostile_text.map(lambda text: text[:1000])
#: Plain data shapes YAML can produce.
yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | short_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(short_text, inner, max_size=4),
    max_leaves=12,
)

MESSAGE_TYPES = [
    'stf_msgs/msg/MotorState',
    'stf_msgs/msg/Inventory',
    'stf_msgs/srv/ProcessOrder_Request',
    'rcl_interfaces/srv/SetParameters_Request',
]


def build(type_name: str, text: str) -> None:
    try:
        build_message(type_name, text, 'message')
    except CliError as exc:
        assert str(exc).startswith('message ')


@FUZZ
@given(
    type_name=st.sampled_from(MESSAGE_TYPES),
    text=st.sampled_from(HOSTILE_YAML) | st.text(max_size=200),
)
def test_cli_yaml_text(type_name: str, text: str) -> None:
    build(type_name, text)
    CASES['cli yaml: text'] += 1


@FUZZ
@given(
    type_name=st.sampled_from(MESSAGE_TYPES),
    data=st.dictionaries(
        st.sampled_from(
            ['motor_id', 'current_a', 'direction', 'slots', 'flavor', 'priority', 'parameters', 'x']
        ),
        yaml_values,
        max_size=4,
    ),
)
def test_cli_yaml_structures(type_name: str, data: dict[str, Any]) -> None:
    build(type_name, yaml.safe_dump(data, allow_unicode=True))
    CASES['cli yaml: structures'] += 1


def test_cli_pub_and_call_refuse_hostile_yaml_without_traceback() -> None:
    """As a user meets it: `stf topic pub` / `stf service call` exit 1 with one line."""
    for verb, name, type_name, text in (
        ('topic', 'pub', 'stf_msgs/msg/MotorState', DEEP_YAML[0]),
        ('service', 'call', 'stf_msgs/srv/ProcessOrder', HOSTILE_YAML[0]),
    ):
        result = stf(verb, name, '/stf/x', type_name, text, check=False)
        assert result.returncode == 1, result
        assert 'Traceback' not in result.stderr + result.stdout
        assert result.stderr.startswith('stf: message ' if verb == 'topic' else 'stf: request ')
        CASES['cli yaml: subprocess'] += 1


def test_every_hostile_yaml_is_a_clear_error() -> None:
    for text in DEEP_YAML + HOSTILE_YAML:
        build('stf_msgs/msg/MotorState', text)
        scenario(text)
        CASES['cli yaml: text'] += 1
        CASES['scenario files'] += 1


# -- MQTT ------------------------------------------------------------------------------------

DIALECT = ft.Dialect()
PARSERS = {
    'order': DIALECT.parse_order,
    'ack': DIALECT.parse_ack,
    'state': lambda payload: DIALECT.parse_state('hbw', payload),
    'stock': DIALECT.parse_stock,
    'order_update': DIALECT.parse_order_update,
}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | hostile_text,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
#: Objects shaped like the factory's messages, with hostile values in their fields.
shaped = st.fixed_dictionaries(
    {},
    optional={
        'ts': json_values | st.sampled_from(['2024-01-01T00:00:00.000Z', '9999-99-99T99:99:99Z']),
        'type': json_values | st.sampled_from(['RED', 'WHITE', 'BLUE', 'red']),
        'state': json_values | st.sampled_from(['ORDERED', 'IN_PROCESS', 'SHIPPED']),
        'active': json_values,
        'code': json_values,
        'station': json_values,
        'description': json_values,
        'target': json_values,
        'stockItems': st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    'location': json_values,
                    'workpiece': json_values
                    | st.fixed_dictionaries(
                        {}, optional={'id': json_values, 'type': json_values, 'state': json_values}
                    ),
                },
            )
            | json_values,
            max_size=4,
        ),
    },
)


def _payload(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


mqtt_payloads = (
    st.binary(max_size=200)
    | shaped.map(_payload)
    | json_values.map(_payload)
    | st.sampled_from([b'[' * 100_000, b'{"a":' * 50_000, b'\xff\xfe', b'{"ts": NaN}', b''])
)


@pytest.mark.parametrize('kind', sorted(PARSERS))
@FUZZ
@given(payload=mqtt_payloads)
def test_mqtt_payloads(kind: str, payload: bytes) -> None:
    try:
        PARSERS[kind](payload)
    except ft.BadInputError as exc:
        assert exc.kind and len(str(exc)) < 300
    CASES['mqtt: ' + kind] += 1


# -- launch files ----------------------------------------------------------------------------

LAUNCH_TAGS = [
    'launch',
    'node',
    'group',
    'arg',
    'let',
    'param',
    'remap',
    'include',
    'env',
    'set_env',
    'push-ros-namespace',
    'executable',
    'choice',
    'x',
]
LAUNCH_ATTRS = [
    'name',
    'pkg',
    'exec',
    'namespace',
    'value',
    'default',
    'file',
    'if',
    'unless',
    'from',
    'to',
    'respawn',
    'cmd',
    'args',
    'output',
]
attribute_text = st.sampled_from(
    [
        '$(var x)',
        '$(env HOME)',
        '$(find-pkg-share stf_digital_twin)',
        '$(eval 1/0)',
        '$(command id)',
        '$(var',
        'true',
        '../../etc/passwd',
        '$(dirname)',
    ]
) | hostile_text.map(lambda s: s[:200])


def _element(depth: int) -> st.SearchStrategy[str]:
    leaf = st.builds(
        lambda tag, attrs: f'<{tag}{attrs}/>',
        st.sampled_from(LAUNCH_TAGS),
        st.dictionaries(st.sampled_from(LAUNCH_ATTRS), attribute_text, max_size=3).map(_attributes),
    )
    if depth == 0:
        return leaf
    return leaf | st.builds(
        lambda tag, attrs, children: f'<{tag}{attrs}>{"".join(children)}</{tag}>',
        st.sampled_from(LAUNCH_TAGS),
        st.dictionaries(st.sampled_from(LAUNCH_ATTRS), attribute_text, max_size=3).map(_attributes),
        st.lists(_element(depth - 1), max_size=3),
    )


def _attributes(attrs: dict[str, str]) -> str:
    from xml.sax.saxutils import quoteattr

    return ''.join(f' {name}={quoteattr(_xml_safe(value))}' for name, value in attrs.items())


def _xml_safe(text: str) -> str:
    return ''.join(
        c for c in text if c in '\t\n\r' or ' ' <= c <= '\ud7ff' or '\ue000' <= c <= '\ufffd'
    )


HOSTILE_LAUNCH = [
    b'',
    b'<launch>',
    b'<launch>' + b'<group>' * 5000 + b'</group>' * 5000 + b'</launch>',
    b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;'
    b'&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    b'<launch><arg name="&c;"/></launch>',
    b'<!DOCTYPE l [<!ENTITY e SYSTEM "file:///etc/passwd">]><launch><arg name="&e;"/></launch>',
    b'<launch><include file="/etc/passwd"/></launch>',
    b'<launch><include file="$(dirname)/x.launch.xml"/></launch>',  # includes itself
    b'\xff\xfe<\x00l\x00',
]


def test_hostile_launch_files(tmp_path: Path) -> None:
    for data in HOSTILE_LAUNCH:
        load(tmp_path, data)
        CASES['launch files'] += 1


def load(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / 'x.launch.xml'
    path.write_bytes(data)
    try:
        load_launch(path, {})
    except LaunchError as exc:
        assert str(exc)


@FUZZ
@given(
    data=st.sampled_from(HOSTILE_LAUNCH)
    | _element(3).map(lambda s: f'<launch>{s}</launch>'.encode())
    | _element(2).map(str.encode)
)
def test_launch_files(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    load(tmp_path_factory.mktemp('launch'), data)
    CASES['launch files'] += 1


@FUZZ
@given(
    cut=st.integers(0, 10_000),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), max_size=4),
)
def test_shipped_launch_files_cut_and_corrupted(
    tmp_path_factory: pytest.TempPathFactory, cut: int, flips: list[tuple[int, int]]
) -> None:
    for shipped in sorted((REPO_ROOT / 'launch').glob('*.launch.xml')):
        data = bytearray(shipped.read_bytes())
        for index, mask in flips:
            data[index % len(data)] ^= mask
        load(tmp_path_factory.mktemp('launch'), bytes(data[: cut % (len(data) + 1)]))
        CASES['launch files: shipped, corrupted'] += 1


# -- scenario files --------------------------------------------------------------------------

COMPONENTS = SimFactory(FactorySettings(), seed=0).components
SCENARIO = (REPO_ROOT / 'config' / 'scenarios' / 'default.yaml').read_text()
component_ids = st.sampled_from(sorted(COMPONENTS)) | short_text
scenario_data = st.fixed_dictionaries(
    {
        'name': hostile_text | yaml_values,
        'events': st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    'day': yaml_values | st.integers(-5, 400) | st.floats(),
                    'at': yaml_values | st.sampled_from(['08:00', '25:61', '-1:00']),
                    'component': component_ids | yaml_values,
                    'fault': yaml_values | st.sampled_from(['wear', 'jam', 'overheat', 'x']),
                    'magnitude': yaml_values | st.floats(),
                    'duration_h': yaml_values | st.floats(),
                },
            )
            | yaml_values,
            max_size=4,
        ),
    },
    optional={'description': yaml_values, 'maintenance': yaml_values},
)


def scenario(text: str) -> None:
    try:
        parse_scenario(text, 'x.yaml', COMPONENTS)
    except ScenarioError as exc:
        assert str(exc).startswith('x.yaml:')


@FUZZ
@given(
    text=st.sampled_from(HOSTILE_YAML)
    | st.text(max_size=300)
    | scenario_data.map(lambda d: yaml.safe_dump(d, allow_unicode=True))
)
def test_scenario_files(text: str) -> None:
    scenario(text)
    CASES['scenario files'] += 1


@FUZZ
@given(
    cut=st.integers(0, len(SCENARIO)),
    flips=st.lists(
        st.tuples(st.integers(0, len(SCENARIO) - 1), st.characters(max_codepoint=0x7F)), max_size=4
    ),
)
def test_shipped_scenario_cut_and_corrupted(cut: int, flips: list[tuple[int, str]]) -> None:
    text = list(SCENARIO)
    for index, char in flips:
        text[index] = char
    scenario(''.join(text)[:cut])
    CASES['scenario files: shipped, corrupted'] += 1


assert sys.getrecursionlimit() < 5000  # the deep-nesting inputs above exceed it
