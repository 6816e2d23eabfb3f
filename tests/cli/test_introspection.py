"""The introspection verbs against a live graph, compared with the shapes ros2 prints
(ros2cli's node info, rclpy's TopicEndpointInfo, ros2topic bw/delay, ros2interface)."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
import yaml

from stf_nodes.cli.main import main
from tests.conftest import stf


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`stf ARGS` in this process, for verbs that need no graph (fast on a loaded machine)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def section(text: str, title: str) -> list[str]:
    """The entry lines under `  Title:` of `node info` output."""
    lines = text.splitlines()
    start = lines.index(f'  {title}:') + 1
    entries = []
    for line in lines[start:]:
        if not line.startswith('    '):
            break
        entries.append(line.strip())
    return entries


def test_node_info_lists_endpoints_with_types_like_ros2(graph: Any) -> None:
    out = stf('node', 'info', '/cli/hbw').stdout
    titles = [line for line in out.splitlines() if line.startswith('  ') and line.endswith(':')]
    assert out.splitlines()[0] == '/cli/hbw'
    assert titles == [
        '  Subscribers:',
        '  Publishers:',
        '  Service Servers:',
        '  Service Clients:',
        '  Action Servers:',
        '  Action Clients:',
    ]
    publishers = section(out, 'Publishers')
    assert '/cli/stf/hbw/state: stf_msgs/msg/HbwState' in publishers
    assert '/parameter_events: rcl_interfaces/msg/ParameterEvent' in publishers
    assert '/rosout: rcl_interfaces/msg/Log' in publishers
    assert publishers == sorted(publishers)
    servers = section(out, 'Service Servers')
    assert '/cli/hbw/get_parameters: rcl_interfaces/srv/GetParameters' in servers
    assert '/cli/stf/hbw/task: stf_msgs/srv/StationTask' in servers
    assert section(out, 'Subscribers') == []  # an empty section is an empty line, as in ros2
    assert stf('node', 'info', 'cli/demo').stdout.startswith('/cli/demo\n')
    missing = stf('node', 'info', '/cli/nobody', check=False)
    assert missing.returncode == 1
    assert "Unable to find node '/cli/nobody'" in missing.stderr


def test_topic_info_counts_and_verbose_endpoints(graph: Any) -> None:
    out = stf('topic', 'info', '/cli/stf/hbw/state').stdout
    assert out.splitlines()[:2] == ['Type: stf_msgs/msg/HbwState', 'Publisher count: 1']
    assert re.fullmatch(r'Subscription count: \d+', out.splitlines()[2])
    verbose = stf('topic', 'info', '/cli/stf/hbw/state', '-v').stdout
    expected = [
        'Type: stf_msgs/msg/HbwState',
        '',
        'Publisher count: 1',
        '',
        'Node name: hbw',
        'Node namespace: /cli',
        'Topic type: stf_msgs/msg/HbwState',
    ]
    assert verbose.splitlines()[:7] == expected
    block = verbose.split('Node name: hbw\n', 1)[1].split('\n\n', 1)[0].splitlines()
    assert re.fullmatch(r'Topic type hash: RIHS01_[0-9a-f]{64}', block[2])
    assert block[3] == 'Endpoint type: PUBLISHER'
    assert re.fullmatch(r'GID: ([0-9a-f]{2}\.){15}[0-9a-f]{2}', block[4])
    assert block[5:] == [
        'QoS profile:',
        '  Reliability: RELIABLE',
        '  History (Depth): KEEP_LAST (10)',
        '  Durability: VOLATILE',
        '  Lifespan: Infinite',
        '  Deadline: Infinite',
        '  Liveliness: AUTOMATIC',
        '  Liveliness lease duration: Infinite',
    ]
    latched = stf('topic', 'info', '-v', '/cli/latched').stdout
    assert '  Durability: TRANSIENT_LOCAL' in latched
    unknown = stf('topic', 'info', '/cli/nothing', check=False)
    assert unknown.returncode == 1
    assert "Unknown topic '/cli/nothing'" in unknown.stderr


def test_topic_and_service_type_and_find(graph: Any) -> None:
    assert stf('topic', 'type', '/cli/stf/hbw/state').stdout == 'stf_msgs/msg/HbwState\n'
    found = stf('topic', 'find', 'stf_msgs/msg/HbwState').stdout.split()
    assert '/cli/stf/hbw/state' in found
    assert '/cli/motor' not in found
    assert '/cli/motor' in stf('topic', 'find', 'stf_msgs/MotorState').stdout.split()
    assert int(stf('topic', 'find', '-c', 'stf_msgs/msg/HbwState').stdout) >= 1
    assert stf('service', 'type', '/cli/add_two_ints').stdout == (
        'example_interfaces/srv/AddTwoInts\n'
    )
    assert '/cli/stf/hbw/reset' in stf('service', 'find', 'std_srvs/srv/Trigger').stdout.split()
    assert stf('service', 'type', '/cli/none', check=False).returncode == 1


def test_topic_list_verbose_like_ros2(graph: Any) -> None:
    out = stf('topic', 'list', '-v').stdout
    published, subscribed = out.split('\n\n')[:2]
    assert published.splitlines()[0] == 'Published topics:'
    assert ' * /cli/stf/hbw/state [stf_msgs/msg/HbwState] 1 publisher' in published.splitlines()
    assert subscribed.splitlines()[0] == 'Subscribed topics:'
    assert ' * /cli/echo_in [std_msgs/msg/String] 1 subscriber' in subscribed.splitlines()


def test_topic_bw_and_delay_print_every_second(graph: Any) -> None:
    bw = stf('topic', 'bw', '/cli/stf/hbw/state', '--duration', '2.5').stdout.splitlines()
    assert bw[0] == 'Subscribed to [/cli/stf/hbw/state]'
    assert re.fullmatch(r'\d+(\.\d\d)? (B|KB|MB)/s from \d+ messages', bw[1])
    size = r'\d+(\.\d\d)? (B|KB|MB)'
    assert re.fullmatch(rf'\tMessage size mean: {size} min: {size} max: {size}', bw[2])
    delay = stf('topic', 'delay', '/cli/stf/hbw/state', '--duration', '2.5').stdout.splitlines()
    assert re.fullmatch(r'average delay: -?\d+\.\d{3}', delay[0])
    assert re.fullmatch(
        r'\tmin: -?\d+\.\d{3}s max: -?\d+\.\d{3}s std dev: \d+\.\d{5}s window: \d+', delay[1]
    )
    headless = stf('topic', 'delay', '/cli/motor', '--duration', '1', check=False)
    assert headless.returncode == 1
    assert 'stf_msgs/msg/MotorState has no header' in headless.stderr


def test_echo_names_constants_and_rejects_a_wrong_type(graph: Any) -> None:
    out = stf('topic', 'echo', '/cli/stf/hbw/state', '--once', '--timeout', '10').stdout
    assert re.search(r'^state: \d+  # STATE_[A-Z_]+$', out, re.MULTILINE)
    assert re.search(r'^slots:\n- slot: A1\n  carrier_id: ', out, re.MULTILINE)  # as PyYAML (ros2)
    parsed = yaml.safe_load(out.split('---')[0])  # the comments keep it valid YAML
    assert isinstance(parsed['state'], int)
    plain = stf('topic', 'echo', '/cli/stf/hbw/state', '--once', '--no-enum-names').stdout
    assert '#' not in plain
    started = time.monotonic()
    wrong = stf('topic', 'echo', '/cli/stf/hbw/state', 'std_msgs/msg/String', check=False)
    assert wrong.returncode == 1
    assert (
        'topic /cli/stf/hbw/state has type stf_msgs/msg/HbwState, not std_msgs/msg/String'
        in wrong.stderr
    )
    assert time.monotonic() - started < 8  # an error at once, not a wait for messages


def test_echo_of_an_unpublished_topic_warns_and_waits(graph: Any) -> None:
    waited = stf(
        'topic', 'echo', '/cli/nobody', 'std_msgs/msg/String', '--timeout', '1.5', check=False
    )
    assert waited.returncode == 1
    assert 'WARNING: topic [/cli/nobody] does not appear to be published yet' in waited.stderr
    assert 'no message on /cli/nobody within 1.5 s' in waited.stderr


def test_service_call_of_the_wrong_type_fails_naming_both_types(graph: Any) -> None:
    wrong = stf('service', 'call', '/cli/add_two_ints', 'std_srvs/srv/Trigger', check=False)
    assert wrong.returncode == 1
    assert (
        'service /cli/add_two_ints has type example_interfaces/srv/AddTwoInts, not '
        'std_srvs/srv/Trigger' in wrong.stderr
    )
    right = stf(
        'service', 'call', '/cli/add_two_ints', 'example_interfaces/srv/AddTwoInts', '{a: 2, b: 3}'
    )
    assert right.stdout.splitlines()[-2:] == ['sum: 5', '---']


def test_interface_show_expands_nested_types_like_ros2(capsys: pytest.CaptureFixture[str]) -> None:
    lines = cli(capsys, 'interface', 'show', 'stf_msgs/msg/HbwState')[1].splitlines()
    assert lines[0].startswith('#')  # top-level comments are kept
    header = lines.index('std_msgs/Header header')
    assert lines[header + 1 : header + 5] == [
        '\tbuiltin_interfaces/Time stamp',
        '\t\tint32 sec',
        '\t\tuint32 nanosec',
        '\tstring frame_id',
    ]
    slots = next(i for i, line in enumerate(lines) if line.startswith('InventorySlot[] slots'))
    assert lines[slots + 1 : slots + 4] == [
        '\tstring slot',
        '\tstring carrier_id',
        '\tWorkpiece workpiece',
    ]
    assert '\t\tuint8 RAW_DOUGH=1' in lines  # nested constants, two levels down
    assert not any(line.startswith('\t') and '#' in line for line in lines)  # nested: none
    bare = cli(capsys, 'interface', 'show', '--no-comments', 'stf_msgs/msg/HbwState')[1]
    assert '#' not in bare and '\n\n' not in bare
    every = cli(capsys, 'interface', 'show', '--all-comments', 'stf_msgs/msg/HbwState')[1]
    assert any(line.startswith('\t') and '#' in line for line in every.splitlines())
    service = cli(capsys, 'interface', 'show', 'stf_msgs/srv/ListCommands')[1].splitlines()
    assert '---' in service
    assert '\tuint8 PROCESS=1' in service  # CommandStatus[] commands, expanded


def test_interface_proto_packages_and_package(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, 'interface', 'proto', 'std_msgs/msg/Header')[1] == (
        '"stamp:\n  sec: 0\n  nanosec: 0\nframe_id: \'\'\n"\n'
    )
    assert cli(capsys, 'interface', 'proto', '--no-quotes', 'std_msgs/msg/String')[1] == (
        "data: ''\n\n"
    )
    assert cli(capsys, 'interface', 'proto', 'std_srvs/srv/SetBool')[1] == '"data: false\n"\n'
    packages = cli(capsys, 'interface', 'packages')[1].split()
    assert {'stf_msgs', 'std_msgs', 'std_srvs'} <= set(packages)
    assert packages == sorted(packages)
    assert 'std_srvs' not in cli(capsys, 'interface', 'packages', '-m')[1].split()
    members = cli(capsys, 'interface', 'package', 'stf_msgs')[1].split()
    assert 'stf_msgs/msg/HbwState' in members and 'stf_msgs/srv/ProcessOrder' in members
    assert all(
        '/msg/' in m for m in cli(capsys, 'interface', 'package', '-m', 'stf_msgs')[1].split()
    )
    code, _, err = cli(capsys, 'interface', 'package', 'nope_msgs')
    assert code == 1 and "Unknown package 'nope_msgs'" in err


def test_every_subcommand_has_help_and_unknown_options_show_its_usage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    top = cli(capsys, '--help')[1]
    verbs = ['run', 'node', 'topic', 'service', 'param', 'interface', 'command', 'doctor']
    for name in verbs:
        assert re.search(rf'^    {name} +\S', top, re.MULTILINE), name
    for group, actions in {
        'node': ['list', 'info'],
        'topic': ['list', 'echo', 'pub', 'hz', 'info', 'type', 'find', 'bw', 'delay'],
        'service': ['list', 'call', 'type', 'find'],
        'param': ['list', 'get', 'set', 'describe', 'dump', 'load', 'delete'],
        'interface': ['list', 'show', 'proto', 'packages', 'package'],
        'command': ['watch'],
    }.items():
        listing = cli(capsys, group, '--help')[1]
        for action in actions:
            assert re.search(rf'^    {action} +\S', listing, re.MULTILINE), f'{group} {action}'
    code, _, err = cli(capsys, 'topic', 'list', '-x')
    assert code == 2
    assert err.startswith('usage: stf topic list')
    assert 'unrecognized arguments: -x' in err
    assert re.fullmatch(r'stf \d+\.\d+\.\d+\n', cli(capsys, '--version')[1])
