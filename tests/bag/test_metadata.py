"""metadata.yaml (version 9), QoS profiles as rosbag2 records them, `ros2 bag info` text."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import yaml

from stf_nodes.bag.metadata import (
    BagError,
    BagMetadata,
    FileMetadata,
    TopicMetadata,
    format_info,
    format_size,
    from_bag_qos,
    qos_from_yaml,
    qos_to_yaml,
    replay_qos,
    to_bag_qos,
)
from stf_nodes.runtime.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)

RELIABLE = QoSProfile(depth=10)
LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
SENSOR = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)


@pytest.mark.parametrize(
    'profile',
    [RELIABLE, LATCHED, SENSOR, QoSProfile(depth=3, history=HistoryPolicy.KEEP_ALL)],
)
def test_qos_survives_the_bag(profile: QoSProfile) -> None:
    dumped = qos_to_yaml([to_bag_qos(profile)])
    (parsed,) = qos_from_yaml(dumped, 'test')
    assert from_bag_qos(parsed) == profile
    entry = yaml.safe_load(dumped)[0]
    # rosbag2 version 9 spells policies as lower-case names and infinite durations as rmw's.
    assert entry['durability'] in ('volatile', 'transient_local')
    assert entry['deadline'] == {'sec': 9223372036, 'nsec': 854775807}


def test_older_bags_write_qos_as_a_yaml_string_of_numbers() -> None:
    text = (
        '- history: 1\n  depth: 1\n  reliability: 1\n  durability: 1\n'
        '  deadline: {sec: 0, nsec: 0}\n  lifespan: {sec: 0, nsec: 0}\n  liveliness: 1\n'
        '  liveliness_lease_duration: {sec: 0, nsec: 0}\n'
        '  avoid_ros_namespace_conventions: false\n'
    )
    (parsed,) = qos_from_yaml(text, 'test')
    assert from_bag_qos(parsed) == LATCHED


def test_malformed_qos_is_a_bag_error_naming_the_place() -> None:
    with pytest.raises(BagError, match='topic /x: malformed offered_qos_profiles'):
        qos_from_yaml([{'history': 'keep_last'}], 'topic /x')


def test_replay_qos_keeps_what_publishers_agree_on_and_latches_if_any_did() -> None:
    assert replay_qos([to_bag_qos(LATCHED)]) == LATCHED
    assert replay_qos([to_bag_qos(SENSOR)]) == SENSOR
    mixed = replay_qos([to_bag_qos(SENSOR), to_bag_qos(LATCHED), to_bag_qos(RELIABLE)])
    assert mixed.reliability == ReliabilityPolicy.RELIABLE
    assert mixed.durability == DurabilityPolicy.TRANSIENT_LOCAL
    assert mixed.depth == 10
    assert replay_qos([]) == QoSProfile(depth=10)


def metadata() -> BagMetadata:
    return BagMetadata(
        starting_time_ns=1_700_000_000_123_456_789,
        duration_ns=61_500_000_000,
        message_count=12,
        topics=(
            TopicMetadata(
                name='/stf/inventory',
                type='stf_msgs/msg/Inventory',
                offered_qos_profiles=(to_bag_qos(LATCHED),),
                type_description_hash='RIHS01_' + 'a' * 64,
                message_count=2,
            ),
            TopicMetadata(
                name='/chatter',
                type='std_msgs/msg/String',
                offered_qos_profiles=(to_bag_qos(RELIABLE), to_bag_qos(SENSOR)),
                type_description_hash='RIHS01_' + 'b' * 64,
                message_count=8,
            ),
            TopicMetadata(
                name='/add/_service_event',
                type='example_interfaces/srv/AddTwoInts_Event',
                message_count=2,
            ),
        ),
        files=(
            FileMetadata(path='b_0.mcap', starting_time_ns=1, duration_ns=2, message_count=7),
            FileMetadata(path='b_1.mcap', starting_time_ns=3, duration_ns=4, message_count=5),
        ),
        custom_data={'site': 'lab'},
        ros_distro='kilted',
    )


def test_metadata_round_trip_in_rosbag2_layout() -> None:
    original = metadata()
    text = original.to_yaml()
    assert BagMetadata.from_yaml(text, 'x') == original
    info = yaml.safe_load(text)['rosbag2_bagfile_information']
    assert list(info) == [
        'version',
        'storage_identifier',
        'duration',
        'starting_time',
        'message_count',
        'topics_with_message_count',
        'compression_format',
        'compression_mode',
        'relative_file_paths',
        'files',
        'custom_data',
        'ros_distro',
    ]
    assert info['version'] == 9
    assert info['storage_identifier'] == 'mcap'
    assert info['relative_file_paths'] == ['b_0.mcap', 'b_1.mcap']
    topic = info['topics_with_message_count'][0]['topic_metadata']
    assert topic['type_description_hash'] == 'RIHS01_' + 'a' * 64
    assert topic['offered_qos_profiles'][0]['durability'] == 'transient_local'


@pytest.mark.parametrize(
    ('text', 'problem'),
    [
        ('{', 'not valid YAML'),
        ('[1, 2]', 'no rosbag2_bagfile_information'),
        ('rosbag2_bagfile_information: {version: 9}', "missing field 'topics_with_message_count'"),
        (
            metadata().to_yaml().replace('message_count: 12', "message_count: 'many'"),
            "field 'message_count' has the wrong type",
        ),
        (
            metadata().to_yaml().replace('name: /chatter', 'name: [1]'),
            r"topics_with_message_count\[1\]: field 'name' has the wrong type",
        ),
    ],
)
def test_malformed_metadata_is_named(text: str, problem: str) -> None:
    with pytest.raises(BagError, match=f'meta.yaml: .*{problem}'):
        BagMetadata.from_yaml(text, 'meta.yaml')


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv('TZ', 'UTC')
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_info_text_is_what_ros2_bag_info_prints(utc: None) -> None:
    assert format_info(metadata(), 1_234_567) == (
        '\n'
        'Files:             b_0.mcap\n'
        '                   b_1.mcap\n'
        'Bag size:          1.2 MiB\n'
        'Storage id:        mcap\n'
        'ROS Distro:        kilted\n'
        'Duration:          61.500000000s\n'
        'Start:             Nov 14 2023 22:13:20.123456789 (1700000000.123456789)\n'
        'End:               Nov 14 2023 22:14:21.623456789 (1700000061.623456789)\n'
        'Messages:          10\n'
        'Topic information: Topic: /chatter | Type: std_msgs/msg/String | Count: 8 | '
        'Serialization Format: cdr\n'
        '                   Topic: /stf/inventory | Type: stf_msgs/msg/Inventory | Count: 2 | '
        'Serialization Format: cdr\n'
        'Service:           1\n'
        'Service information: Service: /add | Type: example_interfaces/srv/AddTwoInts | '
        'Event Count: 2 | Serialization Format: cdr\n'
    )


def test_sizes_as_ros2_prints_them() -> None:
    assert format_size(999) == '999 B'
    assert format_size(2048) == '2.0 KiB'
    assert format_size(5 * 1024**3) == '5.0 GiB'
