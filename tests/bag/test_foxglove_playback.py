"""`stf bag play DIR --foxglove` with a Foxglove WebSocket client written from the protocol:
channels and schemas from the bag, the derived 3D scene, the timeline, play, pause, seek and
speed, what a client sees right after a seek, the end of the bag, and bad requests."""

from __future__ import annotations

import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from stf_nodes import interfaces
from stf_nodes.bag.writer import open_bag
from stf_nodes.runtime.qos import QoSProfile
from stf_nodes.runtime.router import free_port
from tests.bag.conftest import LATCHED, T0, inventory
from tests.bridges.foxglove_client import FoxgloveClient
from tests.conftest import Processes

ConveyorState = interfaces.get_message_class('stf_msgs/msg/ConveyorState')
HbwState = interfaces.get_message_class('stf_msgs/msg/HbwState')
Workpiece = interfaces.get_message_class('stf_msgs/msg/Workpiece')
TFMessage = interfaces.get_message_class('tf2_msgs/msg/TFMessage')
TransformStamped = interfaces.get_message_class('geometry_msgs/msg/TransformStamped')
Log = interfaces.get_message_class('rcl_interfaces/msg/Log')
Time = interfaces.get_message_class('builtin_interfaces/msg/Time')
SECOND = 1_000_000_000
DURATION_S = 10
PROBE = 'string name\nint32 index\n'
GARBAGE = b'\x00\x01\x00\x00\xff\xff\xff\x7fgarbage'


def stamp(ns: int) -> Any:
    return Time(sec=ns // SECOND, nanosec=ns % SECOND)


def conveyor(ns: int, tenth: int) -> bytes:
    """A cookie riding the belt: at 0.1 s steps it is `tenth` mm from the entry."""
    state = ConveyorState(
        state=ConveyorState.STATE_BUSY,
        has_workpiece=True,
        workpiece=Workpiece(id='WP-7', flavor='CHOCO', status=Workpiece.RAW_DOUGH),
        workpiece_position=tenth / 1000.0,
    )
    state.header.stamp = stamp(ns)
    return interfaces.serialize(state)


@pytest.fixture(scope='module')
def factory_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 s of a factory: belt states at 10 Hz, rack states, /tf, /rosout, a latched inventory
    and a type this project does not know."""
    store = get_typestore(Stores.EMPTY)
    store.register(get_types_from_msg(PROBE, 'lab_msgs/msg/Probe'))
    path = tmp_path_factory.mktemp('foxglove') / 'factory'
    with open_bag(path) as bag:
        bag.add_topic('/stf/conveyor/state', 'stf_msgs/msg/ConveyorState', qos=QoSProfile())
        bag.add_topic('/stf/hbw/state', 'stf_msgs/msg/HbwState', qos=QoSProfile())
        bag.add_topic('/tf', 'tf2_msgs/msg/TFMessage', qos=QoSProfile())
        bag.add_topic('/rosout', 'rcl_interfaces/msg/Log', qos=QoSProfile(depth=1000))
        bag.add_topic('/stf/inventory', 'stf_msgs/msg/Inventory', qos=LATCHED)
        bag.add_topic(
            '/probe',
            'lab_msgs/msg/Probe',
            type_hash=store.hash_rihs01('lab_msgs/msg/Probe'),
            definition=PROBE,
        )
        bag.write('/stf/inventory', inventory(0), T0)
        for tenth in range(DURATION_S * 10 + 1):
            ns = T0 + tenth * SECOND // 10
            bag.write('/stf/conveyor/state', conveyor(ns, tenth), ns)
            if tenth == 25:  # what a foreign peer's garbage leaves in a recording
                bag.write('/stf/conveyor/state', GARBAGE, ns + 1)
            hbw = HbwState(state=HbwState.STATE_READY)
            hbw.header.stamp = stamp(ns)
            bag.write('/stf/hbw/state', interfaces.serialize(hbw), ns)
            if tenth % 10 == 0:
                frame = TransformStamped(child_frame_id='conveyor')
                frame.header.frame_id = 'world'
                frame.header.stamp = stamp(ns)
                frame.transform.translation.x = 0.1 * tenth
                bag.write('/tf', interfaces.serialize(TFMessage(transforms=[frame])), ns)
                log = Log(stamp=stamp(ns), level=30, name='conveyor', msg=f'second {tenth // 10}')
                bag.write('/rosout', interfaces.serialize(log), ns)
                probe = store.types['lab_msgs/msg/Probe'](name=f'p{tenth // 10}', index=tenth)
                bag.write('/probe', store.serialize_cdr(probe, 'lab_msgs/msg/Probe'), ns)
    return path


@pytest.fixture
def served(factory_bag: Path, processes: Processes) -> Iterator[str]:
    port = free_port()
    process = processes.start(
        sys.executable,
        '-m',
        'stf_nodes.cli',
        'bag',
        'play',
        str(factory_bag),
        '--foxglove',
        '--port',
        str(port),
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert f'listening on ws://127.0.0.1:{port}' in line, line + process.stdout.read()
    yield f'ws://127.0.0.1:{port}'


def scene_entities(client: FoxgloveClient, subscription: int) -> list[dict[str, Any]]:
    return [e for update in client.decoded(subscription) for e in update.get('entities', [])]


def cookie_at(entity: dict[str, Any]) -> str:
    return next(kv['value'] for kv in entity['metadata'] if kv['key'] == 'at')


def test_channels_schemas_and_time_range_come_from_the_bag(served: str) -> None:
    with FoxgloveClient(served) as client:
        client.wait_for(lambda: client.server_info)
        info = client.server_info
        assert {'time', 'playbackControl'} <= set(info['capabilities'])
        assert info['dataStartTime'] == {'sec': T0 // SECOND, 'nsec': 0}
        assert info['dataEndTime'] == {'sec': T0 // SECOND + DURATION_S, 'nsec': 0}
        client.channel('/foxglove/scene')
        assert client.topics() == {
            '/stf/conveyor/state',
            '/stf/hbw/state',
            '/tf',
            '/rosout',
            '/stf/inventory',
            '/probe',
            '/foxglove/scene',
            '/foxglove/tf',
            '/foxglove/rosout',
        }
        probe = client.channel('/probe')
        assert probe['schemaName'] == 'lab_msgs/msg/Probe' and probe['encoding'] == 'cdr'
        conveyor_channel = client.channel('/stf/conveyor/state')
        assert conveyor_channel['schema'] == interfaces.message_definition_text(
            'stf_msgs/msg/ConveyorState'
        )
        probes = client.subscribe('/probe')
        first = client.wait_decoded(probes, lambda m: m.name == 'p1')  # decoded from the bag's
        assert first.index == 10  # embedded definition: the type is unknown to the server


def test_play_pause_seek_speed_and_the_scene_at_that_moment(served: str) -> None:
    with FoxgloveClient(served) as client:
        states = client.subscribe('/stf/conveyor/state')
        scene = client.subscribe('/foxglove/scene')
        tf = client.subscribe('/foxglove/tf')
        # The first subscription starts playback: states arrive in bag order and time.
        client.wait_for(lambda: client.counts[states] >= 5)
        log_times = [t for t, _ in client.messages(states)]
        assert log_times == sorted(log_times) and log_times[0] >= T0
        assert client.times and client.times[-1] >= T0

        target = T0 + 6_050_000_000
        mark = len(client.arrivals)
        state = client.playback_control('pause', seek_ns=target)
        assert (state.status, state.did_seek, state.current_time) == ('paused', True, target)

        # After the seek: its time, the belt state of that moment (the last at or before it)
        # and the scene rebuilt from it. The server's data and control messages travel apart,
        # so their order is not checked; data already on its way from before is older.
        def seeked() -> tuple[list[int], list[int], bool]:
            after = list(client.arrivals)[mark:]
            times = [a[1] for a in after if a[0] == 'time']
            primed = [i for i, a in enumerate(after) if a[0] == 'data' and a[1] == states]
            primed = [i for i in primed if after[i][2] > T0 + 5 * SECOND]
            rebuilt = bool(primed) and any(
                a[0] == 'data' and a[1] == scene for a in after[primed[0] :]
            )
            return times, [after[i][2] for i in primed], rebuilt

        client.wait_for(lambda: target in seeked()[0] and seeked()[2])
        _, primed, _ = seeked()
        assert primed == [T0 + 6 * SECOND]
        decoded = client.take_decoded(scene)[-1]
        # Entities of the moment before the seek must go: everything is deleted first.
        assert [d['type'] for d in decoded['deletions']] == ['ALL']
        cookie = next(e for e in decoded['entities'] if e['id'] == 'conveyor/workpiece')
        assert cookie_at(cookie) == 'belt 60 mm'
        assert client.wait_decoded(tf, lambda m: m.get('transforms'))

        # Paused: neither data nor time moves.
        count, times = sum(client.counts.values()), len(client.times)
        time.sleep(0.6)
        assert (sum(client.counts.values()), len(client.times)) == (count, times)

        # Play at 4x: bag time runs four times as fast as the wall clock.
        client.take_decoded(scene)
        state = client.playback_control('play', speed=4.0)
        assert (state.status, state.speed, state.did_seek) == ('playing', 4.0, False)
        started = time.monotonic()
        client.wait_for(lambda: client.times[-1] >= target + 2 * SECOND, 10)
        ratio = (client.times[-1] - target) / 1e9 / (time.monotonic() - started)
        assert 2.0 < ratio < 5.0, ratio
        positions = [
            cookie_at(e) for e in scene_entities(client, scene) if e['id'] == 'conveyor/workpiece'
        ]
        assert positions and positions[-1] != 'belt 60 mm'  # the scene follows the belt

        # Seek back while playing; playback goes on from there.
        back = T0 + 2 * SECOND
        state = client.playback_control('play', speed=4.0, seek_ns=back)
        assert state.did_seek and state.status == 'playing'
        client.wait_for(lambda: any(t < target for t, _ in client.messages(states)[-3:]))
        # Past 2.5 s: the garbage state is passed on as recorded; the scene skips it, says so.
        client.wait_for(lambda: GARBAGE in [data for _, data in client.messages(states)])
        client.wait_for(
            lambda: any('/stf/conveyor/state: skipped' in s['message'] for s in client.statuses)
        )

        # The end: playback stops and says so.
        client.playback_control('play', speed=20.0)
        ended = client.wait_for(
            lambda: next((s for s in client.playback_states if s.status == 'ended'), None), 15
        )
        assert ended.current_time == T0 + DURATION_S * SECOND
        # Play again after the end starts over from the beginning.
        again = client.playback_control('play', speed=1.0)
        assert again.status == 'playing' and again.did_seek
        assert T0 <= again.current_time < T0 + SECOND // 2


def test_a_late_client_sees_the_scene_at_once_and_garbage_is_survived(served: str) -> None:
    with FoxgloveClient(served) as first:
        first.subscribe('/stf/hbw/state')
        first.playback_control('pause', seek_ns=T0 + 3 * SECOND)
        with FoxgloveClient(served) as late:
            scene = late.subscribe('/foxglove/scene')
            inventory_sub = late.subscribe('/stf/inventory')
            update = late.wait_decoded(scene, lambda u: u.get('entities'))
            cookie = next(e for e in update['entities'] if e['id'] == 'conveyor/workpiece')
            assert cookie_at(cookie) == 'belt 30 mm'
            late.wait_for(lambda: late.messages(inventory_sub))
            assert late.messages(inventory_sub)[0] == (T0, inventory(0))  # latched state
            # Requests the protocol cannot parse: a short one, an unknown command, NaN speed.
            late.ws.send(struct.pack('<BB', 3, 0))
            late.ws.send(struct.pack('<BBfBQI', 3, 9, 1.0, 0, 0, 0))
            state = late.playback_control('play', speed=float('nan'))
            assert state.status == 'playing' and 0 < state.speed <= 1
            state = late.playback_control('pause', seek_ns=T0 + 10**15)  # far past the end
            assert state.current_time == T0 + DURATION_S * SECOND
            # One playback for the whole server: the other client is told too.
            first.wait_for(
                lambda: any(s.request_id == state.request_id for s in first.playback_states)
            )
