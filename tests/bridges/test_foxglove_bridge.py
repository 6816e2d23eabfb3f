"""The foxglove_bridge node against a real factory, through a real Foxglove protocol client.

The client (`foxglove_client.py`) follows the ws-protocol spec and decodes with the schemas the
server advertised; the factory and the bridge are real processes on a real Zenoh router.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from stf_nodes import exit_codes, interfaces, runtime
from tests.bridges.conftest import MAX_MESSAGE_BYTES, Bridge, bridge_command
from tests.bridges.foxglove_client import FoxgloveClient, ServiceCallFailedError
from tests.conftest import stf, wait_until

String = interfaces.get_message_class('std_msgs/msg/String')
StationTask = interfaces.get_service('stf_msgs/srv/StationTask')
Trigger = interfaces.get_service('std_srvs/srv/Trigger')


def test_topics_are_channels_with_ros2msg_schemas_and_cdr(bridge: Bridge) -> None:
    with bridge.client() as client:
        info = client.wait_for(lambda: client.server_info)
        assert set(info['capabilities']) >= {
            'clientPublish',
            'connectionGraph',
            'parameters',
            'services',
            'time',  # the bridge runs on sim time
        }
        assert info['supportedEncodings'] == ['cdr', 'json']
        channel = client.channel('/stf/hbw/state')
        assert (channel['encoding'], channel['schemaEncoding']) == ('cdr', 'ros2msg')
        assert channel['schemaName'] == 'stf_msgs/msg/HbwState'
        assert channel['schema'] == interfaces.message_definition_text('stf_msgs/msg/HbwState')
        assert {
            '/tf',
            '/rosout',
            '/diagnostics',
            '/stf/conveyor/state',
            '/clock',
        } <= client.topics()

        assert bridge.bridge_subscriptions('/stf/hbw/state') == 0, 'subscribed without a client'
        subscription = client.subscribe('/stf/hbw/state')
        state = client.wait_decoded(subscription, lambda m: True)
        assert state.__msgtype__ == 'stf_msgs/msg/HbwState'
        assert [s.slot for s in state.slots][:3] == ['A1', 'A2', 'A3']
        assert {m.motor_id for m in state.motors} == {'HBW_M1_X', 'HBW_M2_Y', 'HBW_M3_Z'}
        wait_until(lambda: bridge.bridge_subscriptions('/stf/hbw/state') == 1)
        client.unsubscribe(subscription)
        wait_until(lambda: bridge.bridge_subscriptions('/stf/hbw/state') == 0)


def test_server_time_follows_clock_and_stamps_messages(bridge: Bridge) -> None:
    with bridge.client() as client:
        subscription = client.subscribe('/clock')
        client.wait_for(lambda: len(client.times) >= 10 and client.messages(subscription))
        times = list(client.times)
        assert times == sorted(times)
        clock = client.decoded(subscription)[-1].clock
        clock_ns = clock.sec * 10**9 + clock.nanosec
        # Server time, /clock and the receive stamps of messages are one time base: sim time
        # (4x here, so it runs away from the wall clock).
        assert abs(clock_ns - times[-1]) < 2 * 10**9
        stamp, _ = client.messages(subscription)[-1]
        assert abs(stamp - clock_ns) < 2 * 10**9
        client.wait_for(lambda: client.times[-1] > time.time_ns() + 10**9, timeout=20)


def test_rosout_is_also_a_foxglove_log(bridge: Bridge, tmp_path: Path) -> None:
    with bridge.client() as client:
        logs = client.subscribe('/foxglove/rosout')
        # The transient-local /rosout subscription brings the stations' start-up lines.
        ready = client.wait_decoded(logs, lambda m: m['message'].startswith('hbw ready'))
        assert ready['level'] == 'INFO' and ready['name'] == 'hbw'
        assert client.channel('/foxglove/rosout')['schemaName'] == 'foxglove.Log'
        stf('param', 'set', '/hbw', 'publish_rate', '0.0', check=False)  # refused: a warning?
        stf('service', 'call', '/stf/vgr/emergency_stop', 'std_srvs/srv/Trigger', '{}')
        stopped = client.wait_decoded(logs, lambda m: m['message'] == 'emergency stop')
        assert stopped['level'] == 'WARNING' and stopped['name'] == 'vgr'
        stf('service', 'call', '/stf/vgr/reset', 'std_srvs/srv/Trigger', '{}')


def test_service_calls_and_bad_requests(bridge: Bridge) -> None:
    with bridge.client() as client:
        service = client.service('/stf/hbw/reset')
        assert service['type'] == 'std_srvs/srv/Trigger'
        assert service['request']['schemaEncoding'] == 'ros2msg'
        assert service['response']['schema'] == 'bool success\nstring message\n'
        reply = client.call_service('/stf/hbw/reset', interfaces.serialize(Trigger.Request()))
        assert interfaces.deserialize(reply, 'std_srvs/srv/Trigger_Response').success
        # Foxglove's CDR writer may send an empty request as the bare encapsulation header.
        reply = client.call_service('/stf/hbw/reset', b'\x00\x01\x00\x00')
        assert interfaces.deserialize(reply, 'std_srvs/srv/Trigger_Response').success

        # Services declare CDR requests (as Foxglove Studio sends them); anything else is
        # refused by the server before it reaches the graph.
        move = json.dumps({'task': 'move', 'target': 'home'}).encode()
        with pytest.raises(ServiceCallFailedError, match='Unsupported encoding'):
            client.call_service_raw(client.service('/stf/vgr/task')['id'], move, 'json')

        with pytest.raises(ServiceCallFailedError, match='not a valid CDR'):
            client.call_service('/stf/hbw/task', b'\x00\x01\x00\x00\xff\xff\xff\x7f')
        with pytest.raises(ServiceCallFailedError, match='exceed the limit'):
            client.call_service('/stf/hbw/task', b'\x00\x01\x00\x00' + b'\x00' * MAX_MESSAGE_BYTES)
        with pytest.raises(ServiceCallFailedError, match=r'[Uu]nknown service'):
            client.call_service_raw(987654, b'')
        refused = client.call_service(
            '/stf/hbw/task', interfaces.serialize(StationTask.Request(task='fly', target='moon'))
        )
        answer = interfaces.deserialize(refused, 'stf_msgs/srv/StationTask_Response')
        assert not answer.accepted and answer.message
        # Still serving after all that.
        reply = client.call_service('/stf/hbw/reset', interfaces.serialize(Trigger.Request()))
        assert interfaces.deserialize(reply, 'std_srvs/srv/Trigger_Response').success


def test_parameters_of_every_node_listed_and_settable(bridge: Bridge) -> None:
    with bridge.client() as client:
        everything = client.get_parameters([])
        nodes = {name.split('.')[0] for name in everything}
        assert {'/hbw', '/vgr', '/conveyor', '/clock', '/foxglove_bridge'} <= nodes
        assert everything['/hbw.publish_rate'] == {
            'name': '/hbw.publish_rate',
            'type': 'float64',
            'value': 10.0,
        }
        assert everything['/hbw.stock']['value'][0] == 'A1:CHOCO'
        assert everything['/vgr.use_sim_time']['value'] is True

        client.subscribe_parameter_updates(['/conveyor.publish_rate'])
        result = client.set_parameters(
            [{'name': '/conveyor.publish_rate', 'value': 5, 'type': 'float64'}]
        )
        assert result['/conveyor.publish_rate']['value'] == 5.0
        assert stf('param', 'get', '/conveyor', 'publish_rate', '--json').stdout.strip() == '5.0'
        stf('param', 'set', '/conveyor', 'publish_rate', '8.0')  # changed behind its back
        client.wait_for(
            lambda: any(
                p['name'] == '/conveyor.publish_rate' and p['value'] == 8.0
                for p in client.parameter_updates
            )
        )
        stf('param', 'set', '/conveyor', 'publish_rate', '10.0')

        refused = client.set_parameters([{'name': '/hbw.motor.voltage_v', 'value': 12.0}])
        assert refused['/hbw.motor.voltage_v']['value'] == 24.0  # unchanged
        client.wait_for(lambda: any('read-only' in s['message'] for s in client.statuses))
        client.set_parameters([{'name': 'no-node-here', 'value': 1}])
        client.wait_for(lambda: any('/node.parameter' in s['message'] for s in client.statuses))


def test_connection_graph(bridge: Bridge) -> None:
    with bridge.client() as client:
        client.subscribe_connection_graph()
        graph: dict[str, dict[str, list[str]]] = {'pub': {}, 'sub': {}, 'srv': {}}

        def merged() -> dict[str, dict[str, list[str]]]:
            for update in client.graph_updates:  # each replaces what it names
                for key, field, ids in (
                    ('pub', 'publishedTopics', 'publisherIds'),
                    ('sub', 'subscribedTopics', 'subscriberIds'),
                    ('srv', 'advertisedServices', 'providerIds'),
                ):
                    graph[key].update({t['name']: t[ids] for t in update.get(field, [])})
            client.graph_updates.clear()
            return graph

        client.wait_for(lambda: '/stf/hbw/state' in merged()['pub'])
        assert graph['pub']['/stf/hbw/state'] == ['/hbw']
        assert set(graph['pub']['/tf']) == {'/hbw', '/vgr', '/conveyor'}
        assert '/hbw' in graph['sub']['/clock']
        assert graph['srv']['/stf/conveyor/task'] == ['/conveyor']


def test_client_publishes_into_the_graph(bridge: Bridge) -> None:
    received: list[Any] = []
    bridge.node.create_subscription(String, '/bridge_test/chatter', received.append, 100)
    with bridge.client() as client:
        client.advertise(1, '/bridge_test/chatter', 'std_msgs/msg/String')
        client.advertise(2, '/bridge_test/chatter', 'std_msgs/msg/String', encoding='json')
        wait_until(lambda: bridge.node.context.graph.count('/bridge_test/chatter', 'MP') == 1)
        client.publish(1, interfaces.serialize(String(data='hello from foxglove')))
        client.publish(2, json.dumps({'data': 'hello in json'}).encode())
        wait_until(lambda: len(received) >= 2)
        assert [m.data for m in received] == ['hello from foxglove', 'hello in json']

        client.publish(1, b'\x00\x01\x00\x00\xff\xff\xff\xff garbage')
        client.wait_for(lambda: any('dropped' in s['message'] for s in client.statuses))
        client.publish(2, b'{"data": 5}')
        client.wait_for(lambda: any('expected string' in s['message'] for s in client.statuses))
        client.publish(77, b'never advertised')
        client.advertise(3, '/bridge_test/other', 'no_pkg/msg/Nothing')
        client.wait_for(lambda: any('unknown interface' in s['message'] for s in client.statuses))
        client.advertise(4, 'not a topic!', 'std_msgs/msg/String')
        client.wait_for(lambda: any('invalid topic' in s['message'] for s in client.statuses))
        client.advertise(5, '/stf/hbw/state', 'std_msgs/msg/String')
        client.wait_for(lambda: any('it carries' in s['message'] for s in client.statuses))
        client.publish(1, interfaces.serialize(String(data='still publishing')))
        wait_until(lambda: received[-1].data == 'still publishing')
        assert len(received) == 3
    # The client left: its channels are unadvertised and the graph publisher is gone.
    wait_until(lambda: bridge.node.context.graph.count('/bridge_test/chatter', 'MP') == 0)


def test_scene_follows_a_cookie_out_of_the_rack(bridge: Bridge) -> None:
    with bridge.client() as client:
        assert client.channel('/foxglove/scene')['schemaName'] == 'foxglove.SceneUpdate'
        scene = client.subscribe('/foxglove/scene')
        frames = client.subscribe('/foxglove/tf')
        entities: dict[str, Any] = {}

        def update() -> dict[str, Any]:
            for message in client.take_decoded(scene):
                for deletion in message.get('deletions', []):
                    entities.pop(deletion['id'], None)
                for entity in message.get('entities', []):
                    entities[entity['id']] = entity
            return entities

        wait_until(lambda: {'hbw/slot/A3', 'vgr/gripper', 'conveyor/oven'} <= set(update()))
        slot = entities['hbw/slot/A3']
        assert slot['frame_id'] == 'hbw' and slot['frame_locked']
        metadata = {kv['key']: kv['value'] for kv in slot['metadata']}
        assert metadata['workpiece_id'] == 'WP003' and metadata['flavor'] == 'STRAWBERRY'
        assert metadata['status'] == 'RAW_DOUGH'
        cookie = slot['cylinders'][0]
        assert cookie['pose']['position']['x'] == pytest.approx(0.3)  # column 3
        assert cookie['pose']['position']['y'] == pytest.approx(0.1 + 0.0075)  # row A
        motor = entities['hbw/motor/HBW_M1_X']
        assert {kv['key'] for kv in motor['metadata']} >= {'component_id', 'current_a', 'health'}
        fork = client.wait_decoded(
            frames,
            lambda m: any(t['child_frame_id'] == 'hbw_fork' for t in m.get('transforms', [])),
        )
        assert {t['parent_frame_id'] for t in fork['transforms']} == {'world', 'hbw', 'hbw_crane'}

        task = client.call_service(
            '/stf/hbw/task',
            interfaces.serialize(StationTask.Request(task='retrieve', target='A3')),
        )
        assert interfaces.deserialize(task, 'stf_msgs/srv/StationTask_Response').accepted
        wait_until(lambda: 'hbw/workpiece' in update(), timeout=60)
        held = {kv['key']: kv['value'] for kv in entities['hbw/workpiece']['metadata']}
        assert (held['workpiece_id'], entities['hbw/workpiece']['frame_id']) == (
            'WP003',
            'hbw_fork',
        )
        assert 'cylinders' not in entities['hbw/slot/A3']  # the carrier stays, the cookie left
        wait_until(lambda: 'hbw/workpiece' not in update(), timeout=60)  # set down at the hand-off
        # Put it back for the other tests.
        store = StationTask.Request(task='store', target='A3')
        store.workpiece.id, store.workpiece.flavor, store.workpiece.status = (
            'WP003',
            'STRAWBERRY',
            1,
        )
        client.call_service('/stf/hbw/task', interfaces.serialize(store))
        wait_until(lambda: 'cylinders' in update().get('hbw/slot/A3', {}), timeout=60)


def test_latecomer_gets_the_whole_scene_and_latched_state(bridge: Bridge) -> None:
    with bridge.client() as first, bridge.client() as second:
        first.subscribe('/foxglove/scene')
        time.sleep(1.0)
        scene = second.subscribe('/foxglove/scene')
        snapshot = second.wait_decoded(scene, lambda m: len(m.get('entities', [])) > 20)
        assert 'hbw/rack' in {e['id'] for e in snapshot['entities']}


def test_vanished_channel_and_unknown_channel(bridge: Bridge) -> None:
    publisher = bridge.node.create_publisher(String, '/bridge_test/vanishing', 10)
    with bridge.client() as client:
        channel = client.channel('/bridge_test/vanishing')
        subscription = client.subscribe_channel(channel['id'])
        wait_until(lambda: bridge.bridge_subscriptions('/bridge_test/vanishing') == 1)
        bridge.node.destroy_publisher(publisher)
        client.wait_for(lambda: channel['id'] not in client.channels)
        wait_until(lambda: bridge.bridge_subscriptions('/bridge_test/vanishing') == 0)
        client.unsubscribe(subscription)
        client.subscribe_channel(channel['id'])  # the client had not seen the unadvertise yet
        client.wait_for(lambda: any('Unknown channel' in s['message'] for s in client.statuses))
        # It comes back under a new channel id, and the old one stays dead.
        publisher = bridge.node.create_publisher(String, '/bridge_test/vanishing', 10)
        again = client.channel('/bridge_test/vanishing')
        assert again['id'] != channel['id']
        fresh = client.subscribe_channel(again['id'])
        publisher.wait_for_subscribers(10)
        publisher.publish(String(data='back'))
        assert client.wait_decoded(fresh, lambda m: True).data == 'back'
    bridge.node.destroy_publisher(publisher)


def test_slow_client_loses_its_oldest_messages_others_unaffected(bridge: Bridge) -> None:
    count, size = 3000, 10_000
    publisher = bridge.node.create_publisher(String, '/bridge_test/flood', 1000)
    received: list[Any] = []
    bridge.node.create_subscription(String, '/bridge_test/flood', received.append, 5000)
    with bridge.client() as fast, bridge.client(read=False, max_queue=4) as slow:
        slow.start_reading()  # take the advertisements in, then stop reading
        slow_subscription = slow.subscribe('/bridge_test/flood')
        fast_subscription = fast.subscribe('/bridge_test/flood')
        wait_until(lambda: bridge.bridge_subscriptions('/bridge_test/flood') == 1)
        time.sleep(0.5)
        publisher.wait_for_subscribers(10)
        with _Paused(slow):
            for index in range(count):
                publisher.publish(String(data=f'{index:06d}' + 'x' * size))
                if index % 200 == 199:
                    time.sleep(0.05)  # a steady stream, not one burst
            fast.wait_for(lambda: fast.counts[fast_subscription] >= count, timeout=60)
        last = f'{count - 1:06d}'
        slow.wait_for(
            lambda: any(p[8:14] == last.encode() for _, p in slow.messages(slow_subscription)),
            timeout=30,
        )
        slow_count = slow.counts[slow_subscription]
        assert fast.counts[fast_subscription] == count  # the other client lost nothing
        assert slow_count < count, 'the slow client should have lost messages'
        wait_until(lambda: len(received) == count)  # nor did the graph
        numbers = [int(p[8:14]) for _, p in slow.messages(slow_subscription)]
        assert numbers == sorted(numbers), 'what the slow client got arrived in order'
    bridge.node.destroy_publisher(publisher)


class _Paused:
    """Stop the client's reader from taking messages off the socket while inside."""

    def __init__(self, client: FoxgloveClient) -> None:
        self.client = client

    def __enter__(self) -> None:
        self._lock = self.client._cond
        self._lock.acquire()  # the reader blocks on the condition with a message in hand

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def _resources(pid: int) -> tuple[int, int, int]:
    """(open file descriptors, threads, resident kB) of a process."""
    fds = len(list(Path(f'/proc/{pid}/fd').iterdir()))
    status = dict(
        line.split(':', 1) for line in Path(f'/proc/{pid}/status').read_text().splitlines()
    )
    return fds, int(status['Threads']), int(status['VmRSS'].split()[0])


def test_hundreds_of_connects_and_disconnects_leak_nothing(bridge: Bridge) -> None:
    pid = bridge.process.pid  # type: ignore[attr-defined]
    with bridge.client() as warm:
        warm.subscribe('/stf/vgr/state')
    wait_until(lambda: bridge.bridge_subscriptions('/stf/vgr/state') == 0)
    before = _resources(pid)
    port = int(bridge.url.rsplit(':', 1)[1])
    for cycle in range(300):
        if cycle % 10 == 9:  # a half-open connection that never completes the handshake
            with socket.create_connection(('127.0.0.1', port)) as raw:
                raw.sendall(b'GET / HTTP/1.1\r\nHost: x\r\n')
            continue
        client = bridge.client()
        client.subscribe('/stf/vgr/state')
        if cycle % 3 == 1:
            client.subscribe('/foxglove/scene')
        if cycle % 3 == 2:  # vanish without a close handshake
            client.ws.socket.shutdown(socket.SHUT_RDWR)
        client.close()
    wait_until(lambda: bridge.bridge_subscriptions('/stf/vgr/state') == 0, timeout=20)
    wait_until(lambda: bridge.bridge_subscriptions('/stf/hbw/state') == 0, timeout=20)
    fds, threads, rss = _resources(pid)
    assert fds <= before[0] + 5, (before, (fds, threads, rss))
    assert threads <= before[1] + 3, (before, (fds, threads, rss))
    assert rss < before[2] + 30_000, (before, (fds, threads, rss))  # kB
    assert bridge.process.poll() is None  # type: ignore[attr-defined]


def test_port_in_use_fails_clearly(router: str) -> None:
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(bridge_command(port), capture_output=True, text=True, timeout=30)
    # A configuration error (the port parameter): `stf launch` stops instead of respawning.
    assert result.returncode == exit_codes.CONFIG
    assert f'cannot listen on 127.0.0.1:{port}' in result.stderr


def test_runtime_context_is_idle(bridge: Bridge) -> None:
    """Nothing the tests did is still subscribed by the bridge."""
    wait_until(
        lambda: (
            not [
                t
                for t in bridge.node.context.graph.tokens()
                if t.node_name == 'foxglove_bridge' and t.kind == 'MS' and t.name != '/clock'
            ]
        ),
        timeout=20,
    )
    assert runtime.ok(context=bridge.node.context)
