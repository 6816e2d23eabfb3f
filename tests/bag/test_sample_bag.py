"""The sample bag that ships in bags/sample (recorded by scripts/record_sample_bag.py): one full
process order with an injected conveyor motor fault, readable by every reader and playable."""

from __future__ import annotations

from pathlib import Path

from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rosbags.highlevel import AnyReader

from stf_nodes import interfaces
from stf_nodes.bag.reader import BagReader
from stf_nodes.bridges.foxglove.derived import SCENE, DerivedChannel, derived_channels
from tests.conftest import REPO_ROOT

SAMPLE = REPO_ROOT / 'bags' / 'sample'
CommandStatus = interfaces.get_message_class('stf_msgs/msg/CommandStatus')


def test_the_sample_is_small_and_complete() -> None:
    size = sum(f.stat().st_size for f in SAMPLE.iterdir())
    assert size < 5 * 1024 * 1024
    with BagReader(SAMPLE) as reader:
        assert reader.problems == []
        assert {
            '/stf/hbw/state',
            '/stf/vgr/state',
            '/stf/conveyor/state',
            '/stf/commands',
            '/stf/alerts',
            '/stf/inventory',
            '/tf',
            '/rosout',
        } <= set(reader.topics)
        commands = [
            interfaces.deserialize(m.data, 'stf_msgs/msg/CommandStatus')
            for m in reader.messages(['/stf/commands'])
        ]
        statuses = [c.status for c in commands]
        assert statuses[0] == CommandStatus.PENDING and statuses[-1] == CommandStatus.COMPLETED
        assert commands[-1].kind == CommandStatus.PROCESS
        assert commands[-1].step_index == commands[-1].step_count > 0
        alerts = [
            interfaces.deserialize(m.data, 'stf_msgs/msg/Alert')
            for m in reader.messages(['/stf/alerts'])
        ]
        assert any(a.component_id == 'CONV_M1' and a.code == 'OVERCURRENT' for a in alerts)
        assert reader.topics['/stf/inventory'].latched


def test_independent_readers_decode_every_message() -> None:
    with AnyReader([SAMPLE]) as reader:
        count = sum(1 for c, _, raw in reader.messages() if reader.deserialize(raw, c.msgtype))
        assert count == reader.message_count
    decoded = 0
    for file in SAMPLE.glob('*.mcap'):
        with Path(file).open('rb') as stream:
            mcap = make_reader(stream, decoder_factories=[DecoderFactory()])
            decoded += sum(1 for _ in mcap.iter_decoded_messages())
    assert decoded == count


def test_the_scene_follows_the_cookie_through_the_order() -> None:
    """The 3D scene is derived from the recorded states by the live bridge's code."""
    with BagReader(SAMPLE) as reader:
        (spec,) = [s for s in derived_channels(reader.topics).values() if s.kind == SCENE]
        scene = DerivedChannel('/foxglove/scene', spec)
        seen: set[str] = set()
        for message in reader.messages(spec.sources):
            scene.convert(message.topic, message.data)
            seen.update(i for i in scene.builder.entity_ids() if 'workpiece' in i)
    # The cookie was on the fork, the belt, the gripper and in the oven, in this one order.
    assert seen == {
        'hbw/workpiece',
        'conveyor/workpiece',
        'vgr/workpiece',
        'conveyor/oven_workpiece',
    }
