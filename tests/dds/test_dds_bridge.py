"""The dds_bridge node with a real ROS 2 client: plain rclpy on FastDDS, our types built by rosidl.

The client (`rclpy_client.py`, nothing of this project imported) orders a cookie through the
bridge and watches it bake; publishes std_msgs/String that `stf topic echo` receives; lists and
reads /hbw parameters; and its CDR and ours decode each other. Bad input: garbage from a DDS
peer on a bridged topic, the bridge killed while a DDS client calls services.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from stf_nodes import interfaces, runtime
from tests.conftest import wait_until
from tests.dds.conftest import BIN, DdsFactory

pytestmark = pytest.mark.dds

CommandStatus = interfaces.get_message_class('stf_msgs/msg/CommandStatus')


def by_step(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {line['step']: line for line in lines if 'step' in line}


def test_rclpy_client_orders_a_cookie_and_reads_it_baked(dds_factory: DdsFactory) -> None:
    steps = by_step(dds_factory.client('order', timeout=40))
    assert steps['state']['frame_id'] == 'hbw'
    assert steps['order']['accepted'], steps['order']
    assert steps['order']['command_id'] > 0
    assert steps['command']['status'] == CommandStatus.COMPLETED, steps['command']
    assert CommandStatus.IN_PROGRESS in steps['command']['statuses']
    # The cookie the order took is back in the rack, baked; the inventory came latched.
    assert steps['inventory']['baked'], steps['inventory']


def test_rclpy_parameter_client_lists_and_reads_hbw_parameters(dds_factory: DdsFactory) -> None:
    lines = dds_factory.client('params')
    names = lines[0]['names']
    assert 'publish_rate' in names and 'use_sim_time' in names
    assert lines[1] == {'step': 'get', 'value': 10.0}


def test_rclpy_parameter_client_sets_an_hbw_parameter(dds_factory: DdsFactory) -> None:
    lines = dds_factory.client('set_param')
    assert lines[0] == {'step': 'set', 'results': [[True, '']]}
    assert lines[1] == {'step': 'get', 'value': 7.5}
    # The graph's own view agrees: the parameter was set in the node, not in the bridge.
    result = dds_factory.stf('param', 'get', '/hbw', 'publish_rate')
    assert '7.5' in result.stdout


def test_rclpy_string_reaches_stf_topic_echo_without_echo_loops(
    dds_factory: DdsFactory,
) -> None:
    chatter = dds_factory.start_client('chatter', timeout=60)
    try:
        echoed = []
        for _ in range(10):
            result = dds_factory.stf(
                'topic', 'echo', '/chatter', '--once', '--json', '--timeout', '20'
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            echoed.append(json.loads(result.stdout.splitlines()[0])['data'])
            if len(set(echoed)) >= 2:
                break
        assert all(text.startswith('rclpy ') for text in echoed)
        # Now a publisher on the Zenoh side too: the topic is bridged both ways at once. The
        # rclpy client hears each of its samples once, never its own back.
        published = dds_factory.stf(
            'topic', 'pub', '/chatter', 'std_msgs/msg/String', "{data: 'zenoh'}",
            '--rate', '20', '--times', '40',
        )  # fmt: skip
        assert published.returncode == 0, published.stderr
    finally:
        chatter.send_signal(signal.SIGINT)
        output, _ = chatter.communicate(timeout=15)
    heard = [json.loads(line)['heard'] for line in output.splitlines() if '"heard"' in line]
    assert heard, f'nothing from the Zenoh side reached rclpy:\n{output}'
    assert set(heard) == {'zenoh'}
    assert len(heard) <= 40  # at most once each (a loop would repeat them without end)
    ends = [json.loads(line) for line in output.splitlines() if '"own_heard"' in line]
    assert ends and ends[0]['own_heard'] > 0
    assert ends[0]['own_most'] == 1  # its own samples never came back through the bridge


def test_a_service_of_an_rclpy_node_is_called_from_the_graph(dds_factory: DdsFactory) -> None:
    server = dds_factory.start_client('serve', timeout=60)
    try:

        def call() -> str:
            result = dds_factory.stf(
                'service', 'call', '/rclpy/trigger', 'std_srvs/srv/Trigger', '{}', '--timeout', '5'
            )
            return result.stdout if result.returncode == 0 else ''

        answer = wait_until(call, timeout=60, interval=0.5)
        assert 'served by rclpy' in answer
        assert 'success: true' in answer
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=15)
    assert 'service /rclpy/trigger (std_srvs/srv/Trigger): DDS → graph' in (
        dds_factory.bridge_output()
    )


def test_cdr_of_rclpy_and_ours_decode_each_other(dds_factory: DdsFactory) -> None:
    lines = dds_factory.client('cdr')
    sample = lines[0]
    theirs = bytes.fromhex(sample['theirs'])  # our HBW node's CDR, forwarded untouched
    mine = bytes.fromhex(sample['mine'])  # rclpy's serialization of what it decoded
    ours = interfaces.deserialize(theirs, 'stf_msgs/msg/HbwState')
    assert [m.motor_id for m in ours.motors] == sample['motors']
    # rclpy leaves padding bytes uninitialised and does not pad the end to 4 bytes as we do:
    # compare what the bytes decode to.
    assert 0 <= len(theirs) - len(mine) < 4
    assert interfaces.to_data(interfaces.deserialize(mine, 'stf_msgs/msg/HbwState')) == (
        interfaces.to_data(ours)
    )
    status = interfaces.deserialize(
        bytes.fromhex(lines[1]['command_status']), 'stf_msgs/msg/CommandStatus'
    )
    assert (status.command_id, status.kind, status.status) == (42, 1, CommandStatus.COMPLETED)
    assert (status.source_slot, status.message) == ('A2', 'baked by rclpy')
    request_type = interfaces.get_service('stf_msgs/srv/ProcessOrder').Request
    request = interfaces.deserialize(
        bytes.fromhex(lines[2]['process_order_request']), request_type.__msgtype__
    )
    assert (request.source_slot, request.flavor) == ('B3', 'CHOCOLATE')


def test_garbage_from_a_dds_peer_leaves_the_graph_working(dds_factory: DdsFactory) -> None:
    garbage = dds_factory.start_client('garbage', timeout=60)
    try:
        # The bridge forwards the bytes untouched; subscribers in the graph drop them (one log
        # line each) and keep receiving the HBW's real states.
        for _ in range(3):
            result = dds_factory.stf('topic', 'echo', '/stf/hbw/state', '--once', '--json')
            assert result.returncode == 0, result.stderr
            assert json.loads(result.stdout.splitlines()[0])['header']['frame_id'] == 'hbw'
        listed = dds_factory.stf(
            'service', 'call', '/stf/command/list', 'stf_msgs/srv/ListCommands', '{}'
        )
        assert listed.returncode == 0, listed.stderr
        assert dds_factory.bridge.poll() is None, dds_factory.bridge_output()
    finally:
        garbage.send_signal(signal.SIGINT)
        garbage.communicate(timeout=15)


@pytest.mark.faults_long
def test_participant_storm_leaves_the_bridge_and_graph_working(dds_factory: DdsFactory) -> None:
    assert dds_factory.client('storm', timeout=60)[0]['participants'] == 100

    def storm_topics() -> list[str]:
        listed = dds_factory.stf('topic', 'list')
        assert listed.returncode == 0, listed.stderr
        return [t for t in listed.stdout.split() if t.startswith('/storm/')]

    # Their mirrors leave the graph with them (DDS forgets a participant within its lease).
    wait_until(lambda: not storm_topics(), timeout=60, interval=1.0)
    assert dds_factory.bridge.poll() is None, dds_factory.bridge_output()
    assert 'publish_rate' in by_step(dds_factory.client('params'))['list']['names']
    assert 'topic /storm/topic_0 (std_msgs/msg/String): DDS → graph' in dds_factory.bridge_output()


def test_bridge_killed_during_service_calls(dds_factory: DdsFactory, tmp_path: Path) -> None:
    """A second bridge is killed (SIGKILL) while an rclpy client calls a service through both:
    the graph does not notice, the first bridge goes on serving DDS clients. (A call in flight
    at that moment may go unanswered: DDS keeps the dead participant until its lease ends.)"""
    log = tmp_path / 'second_bridge.log'
    with log.open('w') as out:
        second = subprocess.Popen(
            [str(BIN / 'dds_bridge_node')],
            env=dds_factory.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    caller = None
    try:
        wait_until(lambda: '/hbw/list_parameters' in log.read_text(), timeout=60, interval=0.2)
        caller = dds_factory.start_client('list_loop', timeout=10)
        assert caller.stdout is not None
        first = caller.stdout.readline()  # one call answered: the next are under way
        assert '"step": "list"' in first, first + caller.stdout.read()
        second.send_signal(signal.SIGKILL)
        second.wait(timeout=10)
    finally:
        if second.poll() is None:
            second.kill()
        if caller is not None and caller.poll() is None:
            caller.send_signal(signal.SIGINT)
            caller.communicate(timeout=30)
    listed = dds_factory.stf(
        'service', 'call', '/stf/command/list', 'stf_msgs/srv/ListCommands', '{}'
    )
    assert listed.returncode == 0, listed.stderr
    assert 'publish_rate' in by_step(dds_factory.client('params'))['list']['names']
    assert dds_factory.bridge.poll() is None, dds_factory.bridge_output()


def test_bridge_stops_cleanly_while_forwarding(dds_factory: DdsFactory, tmp_path: Path) -> None:
    """SIGINT while samples flow both ways: exit status 0, nothing aborted."""
    log = tmp_path / 'bridge.log'
    with log.open('w') as out:
        bridge = subprocess.Popen(
            [str(BIN / 'dds_bridge_node')],
            env=dds_factory.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: 'topic /stf/hbw/state' in log.read_text(), timeout=60, interval=0.2)
        bridge.send_signal(signal.SIGINT)
        assert bridge.wait(timeout=30) == 0, log.read_text()
    finally:
        if bridge.poll() is None:
            bridge.kill()
    assert 'FATAL' not in log.read_text()


def test_type_name_collision_is_skipped_with_one_log_line(
    dds_factory: DdsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A graph publisher announcing std_msgs/msg/String with another definition (hash) is not
    mirrored: DDS peers would decode its bytes as the wrong type."""
    monkeypatch.setenv('ROS_DOMAIN_ID', dds_factory.env['ROS_DOMAIN_ID'])
    context = runtime.Context([])
    try:
        node = runtime.Node('collider', context=context)
        node.create_serialized_publisher(
            'std_msgs/msg/String', '/collide', 10, type_hash='RIHS01_' + '0' * 64
        )
        wait_until(lambda: '/collide: not mirrored' in dds_factory.bridge_output(), timeout=30)
    finally:
        context.shutdown()
    log = dds_factory.bridge_output()
    assert log.count('/collide: not mirrored') == 1
    assert 'RIHS01_' + '0' * 64 in log
    assert 'topic /collide' not in log
    assert dds_factory.bridge.poll() is None
