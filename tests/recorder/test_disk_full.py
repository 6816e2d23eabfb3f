"""The recorder's database on a disk that fills up (a small tmpfs): the recorder keeps running,
drops the oldest buffered samples and says so (alert, diagnostics), and once there is room
again it records on; afterwards the drop counter explains every missing sample."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Processes, wait_until

from .conftest import (
    MotorState,
    Peer,
    publish_motors,
    query,
    small_disk,
    start_recorder,
    stop,
    wait_recording,
)

TOPIC = '/diskfull/motors'


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with small_disk(tmp_path / 'disk', '1m') as mount:
        yield mount


def test_a_full_disk_drops_and_counts_then_recording_resumes(
    disk: Path, peer: Peer, processes: Processes
) -> None:
    url = f'sqlite:///{disk / "history.db"}'
    recorder = start_recorder(processes, url, f'topics:=["{TOPIC}"]', 'buffer_messages:=500',
                              'retry_max_s:=0.5')  # fmt: skip
    lines: list[str] = []
    wait_recording(recorder, lines)
    publisher = peer.node.create_publisher(MotorState, TOPIC, 100)
    assert publisher.wait_for_subscribers(20)
    sent = 0
    while 'RECORDER_DROPPED' not in peer.codes():  # until the disk is full and the buffer too
        publish_motors(publisher, 1000, rate_hz=2000, first=sent)
        sent += 1000
        assert sent <= 60_000, 'a 1 MiB disk should have filled up by now'
        assert recorder.poll() is None, ''.join(lines)
    assert 'DATABASE_UNAVAILABLE' in peer.codes()
    assert 'full' in peer.diagnostics[-1].message
    subprocess.run(['mount', '-o', 'remount,size=64m', str(disk)], check=True)
    publish_motors(publisher, 300, rate_hz=1000, first=sent)
    sent += 300
    wait_until(lambda: 'DATABASE_RECOVERED' in peer.codes(), timeout=30)
    wait_until(lambda: query(url, 'SELECT MAX(last_sequence) FROM recorder_streams') == [(sent,)],
               timeout=30)  # fmt: skip
    assert recorder.poll() is None
    stop(recorder)
    assert query(url, 'PRAGMA integrity_check') == [('ok',)]
    recorded = query(url, 'SELECT COUNT(*) FROM motor_samples')[0][0]
    lost = query(url, 'SELECT COALESCE(SUM(count), 0) FROM recorder_gaps')[0][0]
    assert lost > 0 and recorded + lost == sent, (recorded, lost, sent)
