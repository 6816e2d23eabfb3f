"""`stf bag record` and `stf bag play` as users run them, against a real router and real
subscribers and publishers: byte-for-byte round trips, latched topics, /clock, foreign types,
Ctrl-C, kill -9, a full disk, and the bag_recorder node executable.

Timing tolerance of a replay (stated in the README): every message's offset from the first,
as a subscriber receives it, is within 300 ms of its recorded offset, and the median error is
at most 20 ms (on a loaded 2-core machine; typical values are ~1 ms)."""

from __future__ import annotations

import json
import signal
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import zenoh
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from stf_nodes import interfaces, runtime
from stf_nodes.bag.reader import BagReader
from stf_nodes.bag.writer import open_bag
from stf_nodes.runtime import names
from stf_nodes.runtime.qos import DurabilityPolicy, HistoryPolicy, QoSProfile
from tests.bag.conftest import (
    LATCHED,
    T0,
    Arrivals,
    Inventory,
    MotorState,
    inventory,
    motor,
)
from tests.conftest import Processes, foreign_peer_config, stf, wait_until

STF = [sys.executable, '-m', 'stf_nodes.cli']
KEEP_ALL = QoSProfile(depth=1000, history=HistoryPolicy.KEEP_ALL)
KEEP_ALL_LATCHED = QoSProfile(
    depth=10, history=HistoryPolicy.KEEP_ALL, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


def unique_prefix() -> str:
    return f'/bagtest_{uuid.uuid4().hex[:8]}'


def recorder_subscribed(node: runtime.Node, topics: list[str], name: str = 'bag_recorder') -> bool:
    graph = node.context.graph
    return all(
        any(t.node_name == name for t in graph.endpoints(topic, names.SUBSCRIPTION))
        for topic in topics
    )


def stop(process: Any, sig: int = signal.SIGINT, timeout: float = 30) -> tuple[int, str]:
    process.send_signal(sig)
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def test_record_and_replay_byte_for_byte(
    graph_node: runtime.Node, processes: Processes, tmp_path: Path
) -> None:
    prefix = unique_prefix()
    motor_topic, inventory_topic = f'{prefix}/motor', f'{prefix}/inventory'
    motor_pub = graph_node.create_publisher(MotorState, motor_topic, QoSProfile(depth=10))
    inventory_pub = graph_node.create_publisher(Inventory, inventory_topic, LATCHED)
    inventory_pub.publish_serialized(inventory(0))  # before the recorder: latched, still recorded
    bag = tmp_path / 'run'
    recorder = processes.start(*STF, 'bag', 'record', motor_topic, inventory_topic, '-o', str(bag))
    wait_until(lambda: recorder_subscribed(graph_node, [motor_topic, inventory_topic]), 30)
    assert motor_pub.wait_for_subscribers(10)
    published = []
    next_at = time.monotonic()
    for index in range(300):
        motor_pub.publish_serialized(motor(index))
        published.append(motor(index))
        if index == 150:
            inventory_pub.publish_serialized(inventory(150))
        next_at += 0.01
        time.sleep(max(next_at - time.monotonic(), 0))
    time.sleep(0.5)
    code, output = stop(recorder)
    assert code == 0, output
    assert f'recorded 302 messages on 2 topics to {bag}' in output
    assert (bag / 'metadata.yaml').is_file()

    with BagReader(bag) as reader:
        assert reader.problems == []
        recorded = list(reader.messages())
        assert [m.data for m in recorded if m.topic == motor_topic] == published
        assert [m.data for m in recorded if m.topic == inventory_topic] == [
            inventory(0),
            inventory(150),
        ]
        assert reader.topics[inventory_topic].qos == LATCHED
        assert reader.topics[motor_topic].qos == QoSProfile(depth=10)
    with AnyReader([bag]) as anyreader:  # an independent reader, definitions and all
        assert anyreader.message_count == 302
    info = stf('bag', 'info', str(bag)).stdout
    assert f'Topic: {motor_topic} | Type: stf_msgs/msg/MotorState | Count: 300 |' in info
    assert 'Messages:          302' in info

    # Replay into the graph: the recorded publishers are gone, the player takes their place.
    graph_node.destroy_publisher(motor_pub)
    graph_node.destroy_publisher(inventory_pub)
    motors, inventories = Arrivals(), Arrivals()
    graph_node.create_subscription(MotorState, motor_topic, motors, KEEP_ALL, raw=True)
    graph_node.create_subscription(
        Inventory, inventory_topic, inventories, KEEP_ALL_LATCHED, raw=True
    )
    player = processes.start(*STF, 'bag', 'play', str(bag), '--wait', '10')
    output, _ = player.communicate(timeout=60)
    assert player.returncode == 0, output
    assert 'played 302 messages' in output
    wait_until(lambda: len(motors) == 300 and len(inventories) == 2, 10)
    assert motors.payloads == published  # byte for byte, in order
    assert inventories.payloads == [inventory(0), inventory(150)]
    stamps = [m.timestamp_ns for m in recorded if m.topic == motor_topic]
    errors = [
        abs((arrived - motors.items[0][0]) - (stamp - stamps[0])) / 1e6
        for (arrived, _), stamp in zip(motors.items, stamps, strict=True)
    ]
    assert statistics.median(errors) <= 20, errors
    assert max(errors) <= 300, errors


def synthetic_bag(path: Path, prefix: str) -> list[tuple[str, int, bytes]]:
    """4 s of motor states at 50 Hz, an inventory latched at 0.5 s and changed at 3.5 s."""
    messages = [(f'{prefix}/motor', T0 + i * 20_000_000, motor(i)) for i in range(200)]
    messages += [
        (f'{prefix}/inventory', T0 + 500_000_000, inventory(1)),
        (f'{prefix}/inventory', T0 + 3_500_000_000, inventory(2)),
        (f'{prefix}/other', T0, motor(0)),
    ]
    messages.sort(key=lambda m: m[1])
    with open_bag(path) as bag:
        bag.add_topic(f'{prefix}/motor', 'stf_msgs/msg/MotorState', qos=QoSProfile(depth=10))
        bag.add_topic(f'{prefix}/inventory', 'stf_msgs/msg/Inventory', qos=LATCHED)
        bag.add_topic(f'{prefix}/other', 'stf_msgs/msg/MotorState')
        for topic, stamp, data in messages:
            bag.write(topic, data, stamp)
    return messages


def test_offset_latched_state_clock_and_topic_filter(
    graph_node: runtime.Node, processes: Processes, tmp_path: Path
) -> None:
    prefix = unique_prefix()
    bag = tmp_path / 'synthetic'
    synthetic_bag(bag, prefix)
    motors, others = Arrivals(), Arrivals()
    graph_node.create_subscription(MotorState, f'{prefix}/motor', motors, KEEP_ALL, raw=True)
    graph_node.create_subscription(MotorState, f'{prefix}/other', others, KEEP_ALL, raw=True)
    sim_context = runtime.Context([])
    sim_node = runtime.Node(
        'sim_follower',
        context=sim_context,
        parameter_overrides=[runtime.Parameter('use_sim_time', True)],
    )
    executor = runtime.SingleThreadedExecutor(context=sim_context)
    executor.add_node(sim_node)
    sim_clock: list[int] = []
    sim_node.create_timer(0.1, lambda: sim_clock.append(sim_node.get_clock().now().nanoseconds))
    try:
        threading.Thread(target=executor.spin, daemon=True).start()
        player = processes.start(
            *STF,
            'bag',
            'play',
            str(bag),
            '--start-offset',
            '2',
            '--rate',
            '2',
            '--clock',
            '50',
            '--topics',
            f'{prefix}/motor',
            f'{prefix}/inventory',
        )
        wait_until(lambda: len(motors) > 0, 30)
        # A late subscriber gets the latched state of the offset moment from the publisher.
        latched = Arrivals()
        graph_node.create_subscription(
            Inventory, f'{prefix}/inventory', latched, KEEP_ALL_LATCHED, raw=True
        )
        wait_until(lambda: inventory(1) in latched.payloads, 10)
        output, _ = player.communicate(timeout=60)
        assert player.returncode == 0, output
        wait_until(lambda: len(motors) == 100, 10)
        assert motors.payloads == [motor(i) for i in range(100, 200)]
        assert len(others) == 0  # not among --topics
        wait_until(lambda: inventory(2) in latched.payloads, 10)
        assert sim_clock, 'the sim-time node never saw /clock'
        assert all(T0 + 2_000_000_000 <= t <= T0 + 4_000_000_000 for t in sim_clock)
        assert sim_clock == sorted(sim_clock) and sim_clock[-1] > T0 + 3_000_000_000
    finally:
        executor.shutdown()
        sim_node.destroy_node()
        sim_context.shutdown()


def test_a_type_unknown_here_is_replayed_as_raw_cdr(
    router: str, graph_node: runtime.Node, processes: Processes, tmp_path: Path
) -> None:
    definition = 'string name\nfloat64 value\n'
    store = get_typestore(Stores.EMPTY)
    store.register(get_types_from_msg(definition, 'lab_msgs/msg/Probe'))
    type_hash = store.hash_rihs01('lab_msgs/msg/Probe')
    payloads = [
        store.serialize_cdr(
            store.types['lab_msgs/msg/Probe'](name=f'p{i}', value=i), 'lab_msgs/msg/Probe'
        )
        for i in range(20)
    ]
    topic = f'{unique_prefix()}/probe'
    bag = tmp_path / 'foreign'
    with open_bag(bag) as writer:
        writer.add_topic(topic, 'lab_msgs/msg/Probe', type_hash=type_hash, definition=definition)
        for index, data in enumerate(payloads):
            writer.write(topic, data, T0 + index * 10_000_000)
    # A foreign peer that knows the type subscribes on its rmw_zenoh key, hash included.
    received: list[bytes] = []
    session = zenoh.open(foreign_peer_config(router))
    key = f'0/{topic.lstrip("/")}/lab_msgs::msg::dds_::Probe_/{type_hash}'
    subscriber = session.declare_subscriber(key, lambda s: received.append(s.payload.to_bytes()))
    mangled = topic.replace('/', '%')
    infinite = '9223372036,854775807'
    token = session.liveliness().declare_token(
        f'@ros2_lv/0/{session.zid()}/0/1/MS/%/%/foreign/{mangled}/lab_msgs::msg::dds_::Probe_/'
        f'{type_hash}/1:2:1,100:{infinite}:{infinite}:1,{infinite}'
    )
    try:
        player = processes.start(*STF, 'bag', 'play', str(bag), '--wait', '10')
        output, _ = player.communicate(timeout=60)
        assert player.returncode == 0, output
        assert 'lab_msgs/msg/Probe is not known here; replayed as raw CDR' in output
        wait_until(lambda: len(received) == 20, 10)
        assert received == payloads
    finally:
        token.undeclare()
        subscriber.undeclare()
        session.close()


def test_ctrl_c_sigterm_and_kill_9_while_recording(
    graph_node: runtime.Node, processes: Processes, tmp_path: Path
) -> None:
    prefix = unique_prefix()
    topic = f'{prefix}/motor'
    publisher = graph_node.create_publisher(MotorState, topic, QoSProfile(depth=10))
    bags = {how: tmp_path / how for how in ('sigterm', 'kill')}
    recorders = {
        how: processes.start(*STF, 'bag', 'record', topic, '-o', str(path), '--compression', 'zstd')
        for how, path in bags.items()
    }
    wait_until(lambda: graph_node.context.graph.count(topic, names.SUBSCRIPTION) == 2, 30)
    assert publisher.wait_for_subscribers(10)
    for index in range(200):
        publisher.publish_serialized(motor(index))
        time.sleep(0.005)
    time.sleep(1.6)  # longer than the flush interval: everything is in the files
    code, output = stop(recorders['sigterm'], signal.SIGTERM)
    assert code == 0 and 'recorded 200 messages' in output, output
    with BagReader(bags['sigterm']) as reader:
        assert reader.problems == [] and reader.message_count == 200
    recorders['kill'].kill()
    recorders['kill'].wait(10)
    assert not (bags['kill'] / 'metadata.yaml').exists()
    with BagReader(bags['kill']) as reader:
        assert [m.data for m in reader.messages()] == [motor(i) for i in range(200)]
        assert any('metadata.yaml is missing' in p for p in reader.problems)
    info = stf('bag', 'info', str(bags['kill']))
    assert 'warning: metadata.yaml is missing' in info.stderr and 'Count: 200' in info.stdout
    fixed = tmp_path / 'fixed'
    result = stf('bag', 'recover', str(bags['kill']), '-o', str(fixed))
    assert 'recovered 200 messages' in result.stdout
    with AnyReader([fixed]) as anyreader:
        assert anyreader.message_count == 200


def test_recording_onto_a_full_disk_stops_with_a_closed_bag(
    graph_node: runtime.Node, processes: Processes, tiny_disk: Path
) -> None:
    topic = f'{unique_prefix()}/big'
    publisher = graph_node.create_publisher(MotorState, topic, QoSProfile(depth=10))
    bag = tiny_disk / 'bag'
    recorder = processes.start(
        *STF, 'bag', 'record', topic, '-o', str(bag), '--chunk-size', '65536'
    )
    wait_until(lambda: recorder_subscribed(graph_node, [topic]), 30)
    assert publisher.wait_for_subscribers(10)
    big = MotorState(motor_id='x' * 2000)
    for index in range(3000):
        big.current_a = float(index)
        publisher.publish(big)
        if recorder.poll() is not None:
            break
        time.sleep(0.001)
    output, _ = recorder.communicate(timeout=30)
    assert recorder.returncode == 1, output
    assert 'disk full' in output
    with BagReader(bag) as reader:
        assert reader.problems == []
        currents = [
            interfaces.deserialize(m.data, 'stf_msgs/msg/MotorState').current_a
            for m in reader.messages()
        ]
    assert len(currents) > 200 and currents == [float(i) for i in range(len(currents))]


def test_bag_recorder_node_executable_records_then_ends(
    graph_node: runtime.Node, processes: Processes, tmp_path: Path
) -> None:
    topic = f'{unique_prefix()}/motor'
    publisher = graph_node.create_publisher(MotorState, topic, QoSProfile(depth=10))
    bag = tmp_path / 'node_bag'
    node = processes.start(
        str(Path(sys.executable).parent / 'bag_recorder_node'),
        '--ros-args',
        '-p',
        f'topics:={json.dumps([topic])}',
        '-p',
        f'output:={bag}',
        '-p',
        'duration_s:=3.0',
        '-p',
        'compression:=lz4',
    )
    wait_until(lambda: recorder_subscribed(graph_node, [topic]), 30)
    assert publisher.wait_for_subscribers(10)
    for index in range(20):
        publisher.publish_serialized(motor(index))
    output, _ = node.communicate(timeout=30)  # it ends by itself after duration_s
    assert node.returncode == 0, output
    with BagReader(bag) as reader:
        assert [m.data for m in reader.messages()] == [motor(i) for i in range(20)]


def test_cli_errors_are_one_line_and_exit_1(tmp_path: Path) -> None:
    (tmp_path / 'notes').mkdir()
    result = stf('bag', 'info', str(tmp_path / 'notes'), check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f'stf: {tmp_path / "notes"} is not a rosbag2 bag: it has no metadata.yaml and no .mcap file'
    )
    result = stf('bag', 'record', check=False)
    assert result.returncode == 1 and 'nothing to record' in result.stderr
    bag = tmp_path / 'b'
    with open_bag(bag) as writer:
        writer.add_topic('/x', 'stf_msgs/msg/MotorState')
    result = stf('bag', 'play', str(bag), '--topics', '/nope', check=False)
    assert result.returncode == 1 and 'no topic /nope in the bag' in result.stderr
    result = stf('bag', 'play', str(bag), '--rate', '0', check=False)
    assert result.returncode == 1 and 'rate must be a positive number' in result.stderr


def test_loop_replays_until_stopped(
    graph_node: runtime.Node, processes: Processes, tmp_path: Path
) -> None:
    topic = f'{unique_prefix()}/motor'
    bag = tmp_path / 'short'
    with open_bag(bag) as writer:
        writer.add_topic(topic, 'stf_msgs/msg/MotorState')
        for index in range(5):
            writer.write(topic, motor(index), T0 + index * 100_000_000)
    motors = Arrivals()
    graph_node.create_subscription(MotorState, topic, motors, KEEP_ALL, raw=True)
    player = processes.start(*STF, 'bag', 'play', str(bag), '--loop', '--rate', '2')
    wait_until(lambda: len(motors) >= 12, 30)
    code, output = stop(player)
    assert code == 130, output  # stopped by Ctrl-C, as any stf command
    assert motors.payloads[:10] == [motor(i) for i in range(5)] * 2
