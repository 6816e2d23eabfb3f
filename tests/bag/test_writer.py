"""The bag writer on its own, checked by two independent readers: rosbags' AnyReader and the
`mcap` library with `mcap-ros2-support` (which decodes with the embedded definitions only)."""

from __future__ import annotations

import errno
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rosbags.highlevel import AnyReader

from stf_nodes import interfaces
from stf_nodes.bag import writer as writer_module
from stf_nodes.bag.reader import BagReader
from stf_nodes.bag.writer import (
    BagWriteError,
    DiskFullError,
    StorageOptions,
    open_bag,
)
from stf_nodes.runtime.qos import QoSProfile
from tests.bag.conftest import T0, motor, write_sample_bag

CUSTOM_DEFINITION = 'string name\nfloat64[] values\n'


def read_with_rosbags(path: Path) -> list[tuple[str, str, int, Any]]:
    with AnyReader([path]) as reader:
        return [
            (c.topic, c.msgtype, stamp, reader.deserialize(raw, c.msgtype))
            for c, stamp, raw in reader.messages()
        ]


def read_with_mcap(path: Path) -> list[tuple[str, int, Any, Any, Any]]:
    """(topic, log time, decoded, schema, channel) from every .mcap file, decoded by
    mcap-ros2-support from the schemas in the files alone."""
    found = []
    for file in sorted(path.glob('*.mcap')):
        with file.open('rb') as stream:
            reader = make_reader(stream, decoder_factories=[DecoderFactory()])
            assert reader.get_header().profile == 'ros2'
            for schema, channel, message, decoded in reader.iter_decoded_messages():
                found.append((channel.topic, message.log_time, decoded, schema, channel))
    return found


@pytest.mark.parametrize('compression', ['none', 'zstd', 'lz4'])
def test_two_independent_readers_read_everything_back(tmp_path: Path, compression: str) -> None:
    bag = tmp_path / 'bag'
    written = write_sample_bag(bag, 300, StorageOptions(compression=compression, chunk_size=4096))

    by_rosbags = read_with_rosbags(bag)
    assert [(t, s) for t, _, s, _ in by_rosbags] == [(t, s) for t, s, _ in written]
    first = next(m for t, _, _, m in by_rosbags if t == '/stf/motor')
    assert (first.motor_id, first.running) == ('M0', True)

    by_mcap = read_with_mcap(bag)
    assert [(t, s) for t, s, *_ in by_mcap] == [(t, s) for t, s, _ in written]
    _, _, decoded, schema, channel = next(m for m in by_mcap if m[0] == '/stf/inventory')
    assert decoded.slots[0].carrier_id == 'C0'
    # The custom type's definition is embedded in full, nested stf_msgs types included.
    assert schema.name == 'stf_msgs/msg/Inventory' and schema.encoding == 'ros2msg'
    assert schema.data.decode() == interfaces.message_definition_text('stf_msgs/msg/Inventory')
    assert 'MSG: stf_msgs/InventorySlot' in schema.data.decode()
    assert channel.message_encoding == 'cdr'
    assert channel.metadata['topic_type_hash'] == interfaces.type_hash('stf_msgs/msg/Inventory')
    offered = yaml.safe_load(channel.metadata['offered_qos_profiles'])
    assert offered[0]['durability'] == 'transient_local' and offered[0]['depth'] == 1


def test_rosbags_sees_hashes_qos_and_metadata(tmp_path: Path) -> None:
    bag = tmp_path / 'bag'
    write_sample_bag(bag, 50)
    with AnyReader([bag]) as reader:
        connections = {c.topic: c for c in reader.connections}
        assert connections['/stf/motor'].digest == interfaces.type_hash('stf_msgs/msg/MotorState')
        assert connections['/stf/motor'].ext.offered_qos_profiles[0].depth == 7
        assert reader.message_count == 55
        assert reader.duration == 49 * 10_000_000 + 1
    info = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert info['version'] == 9 and info['storage_identifier'] == 'mcap'
    assert info['relative_file_paths'] == ['bag_0.mcap']
    assert info['files'][0]['message_count'] == 55
    assert info['starting_time']['nanoseconds_since_epoch'] == T0


def test_each_file_carries_rosbag2_metadata_for_reindexing(tmp_path: Path) -> None:
    bag = tmp_path / 'bag'
    write_sample_bag(bag, 20)
    with (bag / 'bag_0.mcap').open('rb') as stream:
        (record,) = list(make_reader(stream).iter_metadata())
    assert record.name == 'rosbag2'
    serialized = yaml.safe_load(record.metadata['serialized_metadata'])
    assert serialized['rosbag2_bagfile_information']['message_count'] == 22


def test_split_by_size_keeps_every_file_self_contained(tmp_path: Path) -> None:
    bag = tmp_path / 'bag'
    written = write_sample_bag(bag, 2000, StorageOptions(max_bag_size=30_000, chunk_size=8192))
    files = sorted(p.name for p in bag.glob('*.mcap'))
    assert len(files) > 3 and files[:2] == ['bag_0.mcap', 'bag_1.mcap']
    for file in bag.glob('*.mcap'):
        assert file.stat().st_size < 30_000 + 8192 + 16_384  # limit + one chunk + summary
    info = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert sorted(info['relative_file_paths']) == files
    assert sum(f['message_count'] for f in info['files']) == len(written)
    assert [(t, s) for t, _, s, _ in read_with_rosbags(bag)] == [(t, s) for t, s, _ in written]
    assert len(read_with_mcap(bag)) == len(written)  # each file has its schemas and channels


def test_split_by_duration(tmp_path: Path) -> None:
    bag = tmp_path / 'bag'
    write_sample_bag(bag, 100, StorageOptions(max_bag_duration_ns=250_000_000))
    info = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert [f['duration']['nanoseconds'] for f in info['files']] == [240_000_000] * 4
    assert [f['message_count'] for f in info['files']] == [28, 27, 28, 27]


def test_a_type_unknown_here_is_written_with_the_given_definition(tmp_path: Path) -> None:
    """rosbags checks every embedded definition against its RIHS01 hash: this one too."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.EMPTY)
    store.register(get_types_from_msg(CUSTOM_DEFINITION, 'other_pkg/msg/Reading'))
    message = store.types['other_pkg/msg/Reading'](name='probe', values=np.array([1.5, 2.5]))
    data = store.serialize_cdr(message, 'other_pkg/msg/Reading')
    type_hash = store.hash_rihs01('other_pkg/msg/Reading')
    bag = tmp_path / 'bag'
    with open_bag(bag) as writer:
        with pytest.raises(BagWriteError, match='no definition of other_pkg/msg/Reading'):
            writer.add_topic('/reading', 'other_pkg/msg/Reading')
        writer.add_topic(
            '/reading',
            'other_pkg/msg/Reading',
            type_hash=type_hash,
            definition=CUSTOM_DEFINITION,
        )
        writer.write('/reading', data, T0)
    ((_, _, decoded, _, channel),) = read_with_mcap(bag)
    assert decoded.name == 'probe' and list(decoded.values) == [1.5, 2.5]
    assert channel.metadata['topic_type_hash'] == type_hash
    ((_, msgtype, _, by_rosbags),) = read_with_rosbags(bag)
    assert msgtype == 'other_pkg/msg/Reading' and by_rosbags.name == 'probe'


def test_misuse_is_refused_with_a_reason(tmp_path: Path) -> None:
    bag = tmp_path / 'bag'
    writer = open_bag(bag)
    writer.add_topic('/m', 'stf_msgs/msg/MotorState', qos=QoSProfile(depth=1))
    writer.add_topic('/m', 'stf_msgs/msg/MotorState')  # the same again: fine
    with pytest.raises(BagWriteError, match='already recorded as stf_msgs/msg/MotorState'):
        writer.add_topic('/m', 'stf_msgs/msg/Alert')
    with pytest.raises(BagWriteError, match='topic /other was not added'):
        writer.write('/other', motor(0), T0)
    writer.close()
    with pytest.raises(BagWriteError, match='closed'):
        writer.write('/m', motor(0), T0)
    with pytest.raises(BagWriteError, match='exists already'):
        open_bag(bag)
    with pytest.raises(writer_module.BagError, match='unknown compression'):
        StorageOptions(compression='gzip')


def test_flushed_messages_survive_a_crash(tmp_path: Path) -> None:
    """What a killed recorder leaves: files without summary, no metadata.yaml."""
    bag = tmp_path / 'bag'
    writer = open_bag(bag, StorageOptions(chunk_size=1 << 20))
    writer.add_topic('/m', 'stf_msgs/msg/MotorState')
    for index in range(100):
        writer.write('/m', motor(index), T0 + index)
    writer.flush()
    writer.write('/m', motor(100), T0 + 100)  # in memory only when the process dies
    # No close(): the process "dies" here.
    reader = BagReader(bag)
    assert [m.data for m in reader.messages()] == [motor(i) for i in range(100)]
    assert any('metadata.yaml is missing' in p for p in reader.problems)
    reader.close()


class _SmallDisk:
    """A file wrapper whose disk holds `free` bytes; the reserve file gives its size back."""

    def __init__(self, inner: io.FileIO, disk: dict[str, int]) -> None:
        self._inner = inner
        self._disk = disk

    def write(self, data: Any) -> int:
        room = self._disk['free']
        if room <= 0:
            raise OSError(errno.ENOSPC, 'No space left on device')
        chunk = bytes(data)[:room]
        self._disk['free'] -= len(chunk)
        return self._inner.write(chunk)

    def truncate(self, size: int) -> int:
        self._disk['free'] += self._inner.tell() - size
        return self._inner.truncate(size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_full_disk_simulated_keeps_every_message_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = {'free': 150_000}
    real_open = open

    def small_open(path: Any, mode: str = 'r', *args: Any, **kwargs: Any) -> Any:
        stream = real_open(path, mode, *args, **kwargs)
        return _SmallDisk(stream, disk) if str(path).endswith('.mcap') else stream

    def release(self: Any) -> bool:
        released = self.available
        if released:
            disk['free'] += self_size
        self.available = False
        return released

    options = StorageOptions(chunk_size=16_384, disk_reserve=100_000)
    self_size = options.reserve_bytes
    monkeypatch.setattr(writer_module, 'open', small_open, raising=False)
    monkeypatch.setattr(writer_module._DiskReserve, 'release', release)
    bag = tmp_path / 'bag'
    writer = open_bag(bag, options)
    writer.add_topic('/m', 'stf_msgs/msg/MotorState')
    accepted = 0
    with pytest.raises(DiskFullError, match='disk full after'):
        for index in range(100_000):
            writer.write('/m', motor(index), T0 + index)
            accepted += 1
    assert writer.disk_full
    metadata = writer.close()
    assert metadata.message_count == accepted > 1000
    assert [m.data for m in BagReader(bag).messages()] == [motor(i) for i in range(accepted)]
    assert len(read_with_rosbags(bag)) == accepted


def test_full_disk_for_real_on_a_tiny_tmpfs(tiny_disk: Path) -> None:
    bag = tiny_disk / 'bag'
    writer = open_bag(bag, StorageOptions(chunk_size=64 * 1024))
    writer.add_topic('/m', 'stf_msgs/msg/MotorState')
    accepted = 0
    with pytest.raises(DiskFullError):
        for index in range(1_000_000):
            writer.write('/m', motor(index), T0 + index)
            accepted += 1
    writer.close()
    assert sorted(p.name for p in bag.iterdir()) == ['bag_0.mcap', 'metadata.yaml']
    reader = BagReader(bag)
    assert reader.problems == []
    assert reader.message_count == accepted > 10_000
    assert [m.data for m in reader.messages()][-1] == motor(accepted - 1)
    assert len(read_with_mcap(bag)) == accepted


def test_no_room_to_start_is_a_clear_error(tiny_disk: Path) -> None:
    with pytest.raises(DiskFullError, match='no room for a bag'):
        open_bag(tiny_disk / 'bag', StorageOptions(disk_reserve=8 * 1024 * 1024))
