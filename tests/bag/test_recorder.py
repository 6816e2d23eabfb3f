"""What the recorder records (pure): topic selection from graph tokens, QoS, the writer behind
the recorder, flushing, duration and failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from stf_nodes import interfaces
from stf_nodes.bag.reader import BagReader
from stf_nodes.bag.recorder import Recorder, RecordOptions, TopicOffer, select_topics
from stf_nodes.runtime import names
from stf_nodes.runtime.qos import DurabilityPolicy, HistoryPolicy, QoSProfile
from tests.bag.conftest import LATCHED, T0, motor

MOTOR = 'stf_msgs/msg/MotorState'


def publisher(
    topic: str, type_name: str = MOTOR, qos: QoSProfile | str | None = None, **kw: str
) -> names.Token:
    qos_text = qos if isinstance(qos, str) else (qos or QoSProfile()).to_keyexpr()
    return names.Token(
        zid='z',
        node_id=1,
        entity_id=2,
        kind=kw.get('kind', names.PUBLISHER),
        enclave='',
        namespace='/',
        node_name='n',
        name=topic,
        dds_type=interfaces.dds_type_name(type_name),
        type_hash=kw.get('type_hash') or _hash(type_name),
        qos=qos_text,
    )


def _hash(type_name: str) -> str:
    try:
        return interfaces.type_hash(type_name)
    except interfaces.InterfaceError:
        return 'RIHS01_' + '0' * 64


def test_all_topics_minus_hidden_excluded_and_foreign(tmp_path: Path) -> None:
    tokens = [
        publisher('/stf/hbw/state', 'stf_msgs/msg/HbwState'),
        publisher('/stf/inventory', 'stf_msgs/msg/Inventory', LATCHED),
        publisher('/_internal/x'),
        publisher('/debug/raw'),
        publisher('/foreign', 'other_pkg/msg/Thing'),
        publisher('/drifted', MOTOR, type_hash='RIHS01_' + 'f' * 64),
        publisher('/subscribed_only', kind=names.SUBSCRIPTION),
    ]
    offers, skipped = select_topics(
        tokens, RecordOptions(output=tmp_path / 'b', all_topics=True, exclude='/debug/.*')
    )
    assert sorted(offers) == ['/stf/hbw/state', '/stf/inventory']
    assert skipped['/foreign'] == 'no definition of other_pkg/msg/Thing here'
    assert 'this project' in skipped['/drifted']
    inventory = offers['/stf/inventory']
    assert inventory.offered == (LATCHED,)
    assert inventory.subscription_qos == QoSProfile(
        depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_ALL
    )
    hidden, _ = select_topics(
        tokens, RecordOptions(output=tmp_path / 'b', all_topics=True, include_hidden=True)
    )
    assert '/_internal/x' in hidden and '/debug/raw' in hidden


def test_named_topics_and_malformed_foreign_qos(tmp_path: Path) -> None:
    tokens = [
        publisher('/a'),
        publisher('/a', qos='x:y:z'),  # a foreign peer's garbage QoS field
        publisher('/b'),
    ]
    offers, skipped = select_topics(tokens, RecordOptions(output=tmp_path / 'b', topics=('/a',)))
    assert list(offers) == ['/a'] and skipped == {}
    assert offers['/a'].offered == (QoSProfile(),)


def test_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match='nothing to record'):
        RecordOptions(output=tmp_path / 'b')
    with pytest.raises(ValueError, match='regular expression'):
        RecordOptions(output=tmp_path / 'b', all_topics=True, exclude='(')


class Monotonic:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def test_recorder_flushes_stops_after_its_duration_and_refuses_late_samples(
    tmp_path: Path,
) -> None:
    clock = Monotonic()
    logged: list[str] = []
    recorder = Recorder(
        RecordOptions(output=tmp_path / 'b', topics=('/m',), duration_s=5, flush_interval_s=1),
        log=logged.append,
        monotonic=clock,
    )
    offer = TopicOffer('/m', MOTOR, interfaces.type_hash(MOTOR), (QoSProfile(depth=3),))
    assert recorder.add(offer) and not recorder.add(offer)
    for index in range(10):
        recorder.write('/m', motor(index), T0 + index)
    clock.now += 1.5
    assert recorder.tick()  # flushed: the messages are on disk
    with BagReader(tmp_path / 'b') as reader:
        assert reader.message_count == 10
    clock.now += 4.0
    assert not recorder.tick()  # duration over
    metadata = recorder.stop()
    assert metadata.message_count == 10 and recorder.stop() is metadata
    recorder.write('/m', motor(11), T0 + 11)
    assert (recorder.received, recorder.written, recorder.refused) == (11, 10, 1)
    assert recorder.failure is None
    recorder.skip('/x', 'why')
    recorder.skip('/x', 'why')
    assert logged == ['not recording /x: why']
