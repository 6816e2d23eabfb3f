"""The recorder node as users start it: real router, real processes, real databases.

Zero loss is checked against what the test published (sequence numbers and counts), bad input
comes from a raw Zenoh peer, the database outage is a TCP proxy the test cuts (the shared
PostgreSQL server keeps running), and kill -9 under load happens inside `stf launch`, which
respawns the recorder.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import zenoh

from stf_nodes import exit_codes, interfaces
from stf_nodes.runtime import names
from stf_nodes.runtime.context import session_config
from stf_nodes.runtime.entities import make_attachment
from stf_nodes.storage import normalize_url
from tests.conftest import Processes, wait_until
from tests.launcher.conftest import LaunchRun, pid_alive
from tests.storage.conftest import SERVERS

from .conftest import (
    BACKENDS,
    CuttableProxy,
    MotorState,
    Peer,
    own_database,
    publish_motors,
    query,
    start_recorder,
    stop,
    wait_recording,
)

TOPIC = '/rectest/motors'


@pytest.mark.parametrize('backend', BACKENDS)
def test_records_every_message_on_each_backend(
    backend: str, tmp_path: Path, peer: Peer, processes: Processes
) -> None:
    with own_database(backend, tmp_path) as url:
        recorder = start_recorder(processes, url, f'topics:=["{TOPIC}"]')
        lines: list[str] = []
        wait_recording(recorder, lines)
        publisher = peer.node.create_publisher(MotorState, TOPIC, 100)
        assert publisher.wait_for_subscribers(20)
        publish_motors(publisher, 3000, rate_hz=2000)
        wait_until(lambda: peer.recorder_status().get('recorded') == '3000', timeout=30)
        stop(recorder)
        rows = query(url, 'SELECT COUNT(*), MIN(current_a), MAX(motor_id) FROM motor_samples')
        assert rows[0][0] == 3000 and rows[0][1] == pytest.approx(1.0)
        streams = query(url, 'SELECT topic, last_sequence, received FROM recorder_streams')
        assert streams == [(TOPIC, 3000, 3000)]
        assert query(url, 'SELECT COUNT(*) FROM recorder_gaps') == [(0,)]


def test_smoke_station_topics_and_fleet(tmp_path: Path, peer: Peer, processes: Processes) -> None:
    """The default topics of two namespaced conveyors, recorded by one fleet recorder."""
    url = f'sqlite:///{tmp_path / "fleet.db"}'
    recorder = start_recorder(processes, url, "factories:=['factory_*']")
    lines: list[str] = []
    wait_recording(recorder, lines)
    for k in (1, 2):
        processes.start(str(Path(os.sys.executable).parent / 'conveyor_node'), '--ros-args', '-r',
                        f'__ns:=/factory_{k}')  # fmt: skip

    def recorded() -> bool:  # fmt: skip
        factories = query(url, 'SELECT DISTINCT factory FROM motor_samples ORDER BY factory')
        return factories == [('factory_1',), ('factory_2',)]

    wait_until(recorded, timeout=40, interval=0.5)
    stop(recorder)
    edges = query(
        url,
        "SELECT DISTINCT factory, sensor_id FROM sensor_edges WHERE sensor_id = 'CONV_L1_ENTRY'",
    )
    assert sorted(edges) == [('factory_1', 'CONV_L1_ENTRY'), ('factory_2', 'CONV_L1_ENTRY')]
    states = query(url, 'SELECT DISTINCT factory, station, state FROM station_states')
    assert ('factory_1', 'conveyor', 1) in states
    logs = query(url, "SELECT factory FROM logs WHERE message LIKE 'conveyor ready%'")
    assert sorted(logs) == [('factory_1',), ('factory_2',)]


def test_malformed_samples_and_nan_from_a_foreign_peer(
    tmp_path: Path, peer: Peer, processes: Processes, router: str
) -> None:
    url = f'sqlite:///{tmp_path / "bad.db"}'
    recorder = start_recorder(processes, url, f'topics:=["{TOPIC}"]')
    lines: list[str] = []
    wait_recording(recorder, lines)
    publisher = peer.node.create_publisher(MotorState, TOPIC, 100)
    assert publisher.wait_for_subscribers(20)
    type_name = 'stf_msgs/msg/MotorState'
    key = names.data_keyexpr(0, TOPIC, interfaces.dds_type_name(type_name),
                             interfaces.type_hash(type_name))  # fmt: skip
    session = zenoh.open(session_config(mode='peer', listen=['tcp/127.0.0.1:0'], connect=[router]))
    try:
        gid = os.urandom(16)
        time.sleep(1.0)  # the foreign peer's routes
        for n, payload in enumerate([b'\x00\x01\x00\x00\xff', b'garbage', b''], 1):
            session.put(key, payload, attachment=make_attachment(n, gid))
        session.put(key, b'\x00\x01')  # no attachment at all
        good = interfaces.serialize(MotorState(motor_id='CONV_M1', current_a=float('nan')))
        session.put(key, good, attachment=make_attachment(4, gid))
        unknown = interfaces.serialize(MotorState(motor_id='ALIEN_M7', current_a=1.0))
        session.put(key, unknown, attachment=make_attachment(5, gid))
        publish_motors(publisher, 10, rate_hz=100)
        wait_until(lambda: peer.recorder_status().get('recorded') == '12', timeout=20)
    finally:
        session.close()
    status = peer.recorder_status()
    assert status['malformed'] == '4' and status['non_finite'] == '1'
    assert status['unknown_ids'] == '1'
    assert recorder.poll() is None
    stop(recorder)
    output = ''.join(lines)
    assert output.count('dropped a malformed') == 1, output  # logged once
    assert "recording motor 'ALIEN_M7'" in output
    rows = query(url, "SELECT motor_id, current_a FROM motor_samples WHERE motor_id != 'CONV_M1' "
                      "OR current_a IS NULL")  # fmt: skip
    assert sorted(rows, key=str) == [('ALIEN_M7', 1.0), ('CONV_M1', None)]


def test_postgresql_unreachable_for_ten_seconds(
    tmp_path: Path, peer: Peer, processes: Processes
) -> None:
    with own_database('postgresql', tmp_path) as url:
        server = normalize_url(SERVERS['postgresql'])
        proxy = CuttableProxy((server.host or '127.0.0.1', server.port or 5432))
        try:
            proxied = url.set(host='127.0.0.1', port=proxy.port)
            recorder = start_recorder(processes, proxied, f'topics:=["{TOPIC}"]',
                                      'buffer_messages:=200', 'retry_max_s:=1.0')  # fmt: skip
            lines: list[str] = []
            wait_recording(recorder, lines)
            publisher = peer.node.create_publisher(MotorState, TOPIC, 100)
            assert publisher.wait_for_subscribers(20)
            publish_motors(publisher, 200, rate_hz=100)
            wait_until(lambda: peer.recorder_status().get('recorded') == '200', timeout=20)
            proxy.cut()
            publish_motors(publisher, 1000, rate_hz=100, first=200)  # 10 s without it
            status = peer.recorder_status()
            assert status['level'] == '2' and 'database unavailable' in peer.diagnostics[-1].message
            assert {'DATABASE_UNAVAILABLE', 'RECORDER_DROPPED'} <= set(peer.codes())
            warnings = [a for a in peer.alerts if a.code == 'RECORDER_DROPPED']
            assert warnings[0].severity == 1  # WARNING
            proxy.restore()
            publish_motors(publisher, 300, rate_hz=100, first=1200)
            wait_until(lambda: 'DATABASE_RECOVERED' in peer.codes(), timeout=30)
            wait_until(lambda: peer.recorder_status().get('buffered') == '0' and
                       peer.recorder_status().get('level') == '0', timeout=30)  # fmt: skip
            assert recorder.poll() is None
            stop(recorder)
        finally:
            proxy.close()
        recorded = query(url, 'SELECT COUNT(*) FROM motor_samples')[0][0]
        lost = query(url, "SELECT COALESCE(SUM(count), 0) FROM recorder_gaps "
                          "WHERE reason = 'buffer_overflow'")[0][0]  # fmt: skip
        assert lost > 0 and recorded + lost == 1500
        assert query(
            url, f"SELECT last_sequence FROM recorder_streams WHERE topic = '{TOPIC}'"
        ) == [(1500,)]


LAUNCH = """<launch>
  <node pkg="stf_digital_twin" exec="recorder_node" name="recorder" output="screen"
        respawn="true" respawn_delay="0.5">
    <param name="db_url" value="{url}"/>
    <param name="topics" value="['{topic}']"/>
  </node>
</launch>
"""


def test_kill_9_under_load_respawns_and_accounts_for_the_gap(
    tmp_path: Path, peer: Peer, router: str
) -> None:
    db = tmp_path / 'kill.db'
    url = f'sqlite:///{db}'
    launch = tmp_path / 'recorder.launch.xml'
    launch.write_text(LAUNCH.format(url=url, topic=TOPIC))
    run = LaunchRun([os.sys.executable, '-m', 'stf_nodes.cli', 'launch', str(launch)],
                    dict(os.environ), cwd=tmp_path)  # fmt: skip
    try:
        first = int(run.wait_for(r'recorder started with pid (\d+)', timeout=30).group(1))
        publisher = peer.node.create_publisher(MotorState, TOPIC, 100)
        assert publisher.wait_for_subscribers(30)
        wait_until(lambda: peer.recorder_status(), timeout=20)
        publish_motors(publisher, 2000, rate_hz=1000)
        os.kill(first, signal.SIGKILL)
        publish_motors(publisher, 2000, rate_hz=1000, first=2000)  # dead, then respawning
        respawned = run.wait_for(rf'recorder started with pid (?!{first}\b)(\d+)', timeout=30)
        assert pid_alive(int(respawned.group(1)))
        assert publisher.wait_for_subscribers(30)
        time.sleep(1.0)  # the new subscription's route
        publish_motors(publisher, 2000, rate_hz=1000, first=4000)
        wait_until(lambda: query(url, 'SELECT MAX(last_sequence) FROM recorder_streams')
                   == [(6000,)], timeout=30)  # fmt: skip
    finally:
        run.process.send_signal(signal.SIGINT)
        run.process.wait(timeout=30)
    assert query(url, 'PRAGMA integrity_check') == [('ok',)]
    recorded = query(url, 'SELECT COUNT(*) FROM motor_samples')[0][0]
    gaps = query(url, 'SELECT reason, SUM(count) FROM recorder_gaps GROUP BY reason')
    lost = sum(count for _, count in gaps)
    assert recorded + lost == 6000, (recorded, gaps)
    assert lost > 0 and {reason for reason, _ in gaps} == {'not_received'}
    duplicates = query(url, 'SELECT COUNT(*) - COUNT(DISTINCT current_a) FROM motor_samples')
    assert duplicates == [(0,)]


def test_bad_db_url_is_a_clean_fatal_error(processes: Processes, router: str) -> None:
    recorder = start_recorder(processes, 'nosuch://x')
    output = recorder.communicate(timeout=30)[0]
    assert recorder.returncode == exit_codes.CONFIG
    assert 'db_url nosuch://x is not usable' in output
