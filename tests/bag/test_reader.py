"""Reading bags: order, seeking, bags from another writer, and damaged bags (what is readable
stays readable, every problem is named)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode
from rosbags.typesys import Stores, get_typestore

from stf_nodes import interfaces
from stf_nodes.bag.metadata import BagError
from stf_nodes.bag.reader import BagReader
from stf_nodes.bag.writer import StorageOptions
from tests.bag.conftest import T0, write_sample_bag


def all_messages(path: Path) -> tuple[list[tuple[str, int, bytes]], list[str]]:
    with BagReader(path) as reader:
        return [(m.topic, m.timestamp_ns, m.data) for m in reader.messages()], reader.problems


def test_messages_come_in_time_order_across_split_files(tmp_path: Path) -> None:
    written = write_sample_bag(tmp_path / 'bag', 1500, StorageOptions(max_bag_size=20_000))
    read, problems = all_messages(tmp_path / 'bag')
    assert problems == []
    assert read == written
    with BagReader(tmp_path / 'bag') as reader:
        assert len(reader.files) > 2
        motor = reader.topics['/stf/motor']
        assert motor.type == 'stf_msgs/msg/MotorState' and motor.message_count == 1500
        assert motor.type_hash == interfaces.type_hash('stf_msgs/msg/MotorState')
        assert motor.definition == interfaces.message_definition_text('stf_msgs/msg/MotorState')
        assert reader.topics['/stf/inventory'].latched and not motor.latched
        assert (reader.start_ns, reader.end_ns) == (T0, T0 + 1499 * 10_000_000)


def test_seek_and_latest_state_read_only_what_they_need(tmp_path: Path) -> None:
    written = write_sample_bag(tmp_path / 'bag', 1000, StorageOptions(chunk_size=2048))
    middle = T0 + 555 * 10_000_000
    with BagReader(tmp_path / 'bag') as reader:
        after = [(m.topic, m.timestamp_ns, m.data) for m in reader.messages(start_ns=middle)]
        assert after == [m for m in written if m[1] >= middle]
        window = list(reader.messages(['/stf/inventory'], start_ns=middle, end_ns=middle + 10**8))
        assert [m.timestamp_ns for m in window] == [T0 + 560 * 10**7]
        latest = reader.last_messages(['/stf/motor', '/stf/inventory', '/nope'], middle)
        assert latest['/stf/motor'].timestamp_ns == middle
        assert latest['/stf/inventory'].timestamp_ns == T0 + 550 * 10_000_000
        assert set(latest) == {'/stf/motor', '/stf/inventory'}
        assert reader.last_messages(['/stf/motor'], T0 - 1) == {}


def test_bag_written_by_rosbags_is_read(tmp_path: Path) -> None:
    store = get_typestore(Stores.ROS2_KILTED)
    String = store.types['std_msgs/msg/String']  # noqa: N806
    path = tmp_path / 'other'
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection('/chatter', 'std_msgs/msg/String', typestore=store)
        for index in range(5):
            data = store.serialize_cdr(String(data=f'hello {index}'), 'std_msgs/msg/String')
            writer.write(connection, T0 + index, data)
    with BagReader(path) as reader:
        assert reader.problems == []
        topic = reader.topics['/chatter']
        assert topic.type_hash == interfaces.type_hash('std_msgs/msg/String')
        texts = [
            interfaces.deserialize(m.data, 'std_msgs/msg/String').data for m in reader.messages()
        ]
    assert texts == [f'hello {i}' for i in range(5)]


@pytest.mark.parametrize('mode', [CompressionMode.FILE, CompressionMode.MESSAGE])
def test_rosbag2_file_and_message_compression(tmp_path: Path, mode: CompressionMode) -> None:
    store = get_typestore(Stores.ROS2_KILTED)
    String = store.types['std_msgs/msg/String']  # noqa: N806
    path = tmp_path / 'compressed'
    writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.set_compression(mode, CompressionFormat.ZSTD)
    with writer:
        connection = writer.add_connection('/chatter', 'std_msgs/msg/String', typestore=store)
        for index in range(3):
            data = store.serialize_cdr(String(data=f'z {index}'), 'std_msgs/msg/String')
            writer.write(connection, T0 + index, data)
    read, problems = all_messages(path)
    assert problems == []
    assert [interfaces.deserialize(d, 'std_msgs/msg/String').data for _, _, d in read] == [
        'z 0',
        'z 1',
        'z 2',
    ]


def test_truncated_file_yields_everything_before_the_cut(tmp_path: Path) -> None:
    bag = tmp_path / 'bag'
    written = write_sample_bag(bag, 3000, StorageOptions(chunk_size=8192))
    file = bag / 'bag_0.mcap'
    size = file.stat().st_size
    with file.open('r+b') as stream:
        stream.truncate(size * 2 // 3)
    read, problems = all_messages(bag)
    assert 0 < len(read) < len(written)
    assert read == written[: len(read)]  # a prefix, in order, nothing invented
    assert len(read) > len(written) // 2
    assert any(
        p.startswith('bag_0.mcap: no summary') and 'at byte ' in p and 'readable' in p
        for p in problems
    ), problems


def test_corrupt_chunk_is_skipped_and_named(tmp_path: Path) -> None:
    bag = tmp_path / 'bag'
    written = write_sample_bag(bag, 3000, StorageOptions(chunk_size=8192))
    file = bag / 'bag_0.mcap'
    data = bytearray(file.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)  # zeros in the middle of some chunk
    file.write_bytes(bytes(data))
    read, problems = all_messages(bag)
    assert 0 < len(written) - len(read) < 600  # about one chunk lost, not more
    assert set(read) <= set(written)
    assert any('chunk at byte' in p and 'skipped' in p for p in problems), problems


def test_garbage_and_foreign_files(tmp_path: Path) -> None:
    not_a_bag = tmp_path / 'photos'
    not_a_bag.mkdir()
    (not_a_bag / 'cat.jpg').write_bytes(b'\xff\xd8\xff')
    with pytest.raises(BagError, match=r'photos is not a rosbag2 bag: it has no metadata\.yaml'):
        BagReader(not_a_bag)
    with pytest.raises(BagError, match='no such file'):
        BagReader(tmp_path / 'missing')
    fake = tmp_path / 'fake.mcap'
    fake.write_bytes(b'not mcap at all')
    with pytest.raises(BagError, match=r'fake\.mcap: not an MCAP file'):
        BagReader(fake)
    broken = tmp_path / 'broken'
    write_sample_bag(broken, 10)
    (broken / 'metadata.yaml').write_text('rosbag2_bagfile_information: [')
    with pytest.raises(BagError, match=r'metadata\.yaml: not valid YAML'):
        BagReader(broken)
    sqlite = tmp_path / 'sqlite'
    write_sample_bag(sqlite, 10)
    text = (
        (sqlite / 'metadata.yaml')
        .read_text()
        .replace('storage_identifier: mcap', 'storage_identifier: sqlite3')
    )
    (sqlite / 'metadata.yaml').write_text(text)
    with pytest.raises(BagError, match="storage 'sqlite3' is not supported"):
        BagReader(sqlite)


def test_missing_and_unlisted_files_are_reported(tmp_path: Path) -> None:
    bag = tmp_path / 'bag'
    written = write_sample_bag(bag, 1500, StorageOptions(max_bag_size=20_000))
    with BagReader(bag) as reader:
        lost = reader.metadata.files[1].message_count if reader.metadata else 0
    (bag / 'bag_1.mcap').unlink()
    extra = tmp_path / 'extra'
    late = write_sample_bag(extra, 5, start_ns=T0 + 10**12)
    shutil.copy(extra / 'extra_0.mcap', bag / 'late_0.mcap')
    read, problems = all_messages(bag)
    assert 'bag_1.mcap: listed in metadata.yaml but missing' in problems
    assert any(p.startswith('late_0.mcap: not listed in metadata.yaml') for p in problems)
    assert len(read) == len(written) - lost + len(late)
    assert read[-len(late) :] == late  # the unlisted file's messages are there too


def test_a_single_mcap_file_opens_as_a_bag(tmp_path: Path) -> None:
    written = write_sample_bag(tmp_path / 'bag', 50)
    read, problems = all_messages(tmp_path / 'bag' / 'bag_0.mcap')
    assert read == written and problems == []
