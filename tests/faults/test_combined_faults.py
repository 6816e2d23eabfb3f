"""Every fault in one run, under a steady stream of orders (issue 17, item 3).

``stf launch factory.launch.xml use_sim_time:=true time_scale:=20 scheduler_replicas:=2`` with
the scheduler's queue on a PostgreSQL database of the test's own reached through a relay the
test can cut (tests/recorder: ``CuttableProxy``; the shared server keeps running), the
recorder's history in SQLite on a small tmpfs, and the MQTT bridge on a private Mosquitto with
persistence. Orders come through the scheduler's services and, in the fischertechnik dialect,
on ``f/o/order`` (QoS 1, a persistent session); a test publisher sends numbered samples on a
topic the recorder records. Meanwhile, one after the other:

- ``kill -9`` of every node of the launch in turn (the launch respawns it);
- ``kill -9`` of the Zenoh router (the launch restarts it);
- a restart of the MQTT broker right after an order was sent on ``f/o/order``;
- the PostgreSQL relay cut for ``OUTAGE_S``;
- the recorder's disk filled up (a ballast file takes every free byte of the tmpfs) until the
  recorder drops samples, then freed.

Afterwards (tests/faults/factory.py ``Report.check``): every acknowledged command, through the
service or on ``f/i/order``, is in the scheduler's database and COMPLETED (or its cookie was
lost, and the message says so), no request made two commands, no step ran twice (journal and
the stations' task keys), cookies are conserved; the recorder's gaps (``recorder_gaps``) explain
every sample the test sent that is not in its history; and after the last fault a new order
completes within ``RECOVERY_TARGET_S``. Recovery times (fault, or the end of an outage, to the
next step ended), counts and the wall time are printed (``pytest -m faults -s``).
"""

from __future__ import annotations

import errno
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from stf_nodes import runtime
from stf_nodes.bridges.fischertechnik import Dialect
from stf_nodes.scheduler import CommandKind, CommandQueue, CommandStatus
from stf_nodes.storage import make_engine, normalize_url
from stf_nodes.storage.models import CommandRow
from tests.bridges.mqtt_helpers import Mosquitto, MqttProbe, unique
from tests.conftest import REPO_ROOT, wait_until
from tests.faults.factory import (
    DRAIN_TIMEOUT_S,
    FINAL,
    LEADING,
    PROGRESS_TIMEOUT_S,
    STATIONS,
    Chaos,
    Launch,
    Operator,
    Orders,
    Report,
    StoreWorkpiece,
    settled,
    start_factory,
    steps_ended,
)
from tests.recorder.conftest import CuttableProxy, MotorState, Peer, publish_motors, query
from tests.recorder.conftest import small_disk as mount_small_disk
from tests.storage.conftest import SERVERS, own_database

pytestmark = [pytest.mark.faults, pytest.mark.faults_long]

#: The cut of the database relay, wall s.
OUTAGE_S = 10.0
#: After the last fault a new order completes within this (it may wait behind the queue), wall s.
RECOVERY_TARGET_S = 60.0
SAMPLES = '/faults/motors'
SAMPLE_MOTOR = 'FAULT_M1'
#: Small enough that a full disk overflows it within seconds at 20x.
RECORDER_BUFFER = 5000
VICTIMS = (
    *STATIONS,
    'clock',
    'scheduler',
    'scheduler_2',
    'mqtt_bridge',
    'recorder',
    'maintenance',
    'foxglove_bridge',
)


class MqttOrders:
    """A fischertechnik client: orders on ``f/o/order``, their answers from ``f/i/order``."""

    def __init__(self, port: int) -> None:
        self.probe = MqttProbe(port, ['f/i/order'], client_id=unique('orders'), persistent=True)
        self.sent = 0
        self._dialect = Dialect()

    def order(self, flavor: str) -> None:
        ts = datetime.now(timezone.utc).isoformat(timespec='milliseconds').replace('+00:00', 'Z')
        colour = self._dialect.colour_of(flavor)
        self.probe.publish('f/o/order', json.dumps({'ts': ts, 'type': colour}))
        self.sent += 1

    def acknowledged(self) -> set[int]:
        return {o['commandId'] for o in self.probe.received('f/i/order') if o.get('commandId')}

    def without_command(self, state: str) -> int:
        """Orders answered ``state`` without a command: REFUSED (none was made), FAILED (the
        scheduler did not confirm: one may have been made)."""
        received = self.probe.received('f/i/order')
        return sum(1 for o in received if o['state'] == state and not o.get('commandId'))

    def answered(self) -> int:
        return len(self.acknowledged()) + sum(map(self.without_command, ('REFUSED', 'FAILED')))


class Samples:
    """Numbered MotorState samples on ``SAMPLES`` at 50 Hz from a node of the test, the whole
    run (tests/recorder: sample n carries current 1 + n µA)."""

    def __init__(self, peer: Peer) -> None:
        self.publisher = peer.node.create_publisher(MotorState, SAMPLES, 100)
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name='samples')

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            publish_motors(self.publisher, 25, rate_hz=50, first=self.sent, motor_id=SAMPLE_MOTOR)
            self.sent += 25

    def stop(self) -> int:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        return self.sent


@pytest.fixture
def postgresql(tmp_path: Path) -> Iterator[tuple[str, CuttableProxy]]:
    """A database of the test's own on the shared PostgreSQL, and a relay to it."""
    with own_database('postgresql', tmp_path) as url:
        assert not isinstance(url, str)
        server = normalize_url(SERVERS['postgresql'])
        proxy = CuttableProxy((server.host or '127.0.0.1', server.port or 5432))
        try:
            yield url.render_as_string(hide_password=False), proxy
        finally:
            proxy.close()


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with mount_small_disk(tmp_path / 'disk', '128m') as mount:
        yield mount


def fill(disk: Path) -> Path:
    """A ballast file that takes every free byte of ``disk``."""
    ballast = disk / 'ballast'
    with ballast.open('wb') as file:
        chunk = b'\0' * (1 << 20)
        try:
            while True:
                file.write(chunk)
                file.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return ballast


@pytest.mark.timeout(1500)
def test_nothing_lost_when_every_fault_strikes_in_one_run(
    postgresql: tuple[str, CuttableProxy],
    disk: Path,
    broker: Mosquitto,
    launches: list[Launch],
    operators: list[Operator],
    tmp_path: Path,
) -> None:
    database, proxy = postgresql
    relayed = normalize_url(database).set(host='127.0.0.1', port=proxy.port)
    history = f'sqlite:///{disk / "history.db"}'
    params = yaml.safe_load((REPO_ROOT / 'config' / 'factory.yaml').read_text())
    recorder = params['/**/recorder']['ros__parameters']
    recorder |= {'topics': [*recorder['topics'], SAMPLES], 'buffer_messages': RECORDER_BUFFER,
                 'retry_max_s': 1.0}  # fmt: skip
    params_file = tmp_path / 'factory.yaml'
    params_file.write_text(yaml.safe_dump(params))
    args = [
        'use_sim_time:=true',
        'time_scale:=20',
        'scheduler_replicas:=2',
        f'db_url:={relayed.render_as_string(hide_password=False)}',
        f'recorder_db_url:={history}',
        f'params_file:={params_file}',
    ]
    engine = make_engine(database)  # the test reads the database directly, not through the relay
    started = time.monotonic()
    launch = start_factory(launches, tmp_path, args)
    launch.wait_for(LEADING, since=0, timeout=90)
    launch.wait_for(r'^\[mqtt_bridge\] .*\]: connected to', since=0, timeout=60)

    mqtt = MqttOrders(broker.port)
    operator = Operator(seed=17, mqtt_order=mqtt.order)
    operators.append(operator)
    peer = Peer('fault_samples')
    samples = Samples(peer)
    chaos = Chaos(operator, engine, seed=17)
    outage = Orders()
    try:
        assert samples.publisher.wait_for_subscribers(60), 'the recorder never subscribed'
        samples.start()
        operator.start_orders()
        for label in VICTIMS:
            chaos.kill_node(launch, label)
        chaos.kill_router(launch)

        # The MQTT broker restarts while an order waits for its answer.
        mark, done = launch.mark(), steps_ended(engine)
        operator.wait_step(None, timeout=20)
        mqtt.order('CHOCO')
        restarted = time.monotonic()
        broker.restart()
        chaos.attacks.kills['mqtt broker'] += 1
        launch.wait_for(r'^\[mqtt_bridge\] .*\]: reconnected to', since=mark, timeout=60)
        chaos.wait_progress(done, 'restart of the MQTT broker', restarted)

        # The database unreachable while orders keep coming (through the service and MQTT);
        # the recovery counts from its return.
        operator.wait_step(None, timeout=20)
        store = peer.node.create_client(StoreWorkpiece, 'stf/order/store')
        proxy.cut()
        cut = time.monotonic()
        while time.monotonic() - cut < OUTAGE_S:
            try:
                reply = store.call(StoreWorkpiece.Request(flavor='VANILLA'), timeout_sec=3.0)
            except (runtime.ServiceError, TimeoutError):
                reply = None
            outage.add('store', reply)
            mqtt.order('VANILLA')
            time.sleep(1.0)  # the user's pace
        done = steps_ended(engine)
        proxy.restore()
        chaos.attacks.kills['database outage'] += 1
        chaos.wait_progress(done, 'the database outage', time.monotonic())

        # The recorder's disk full until it drops samples, while the factory works on.
        alerts = len(peer.alerts)
        done = steps_ended(engine)
        ballast = fill(disk)
        chaos.attacks.kills['disk full'] += 1

        def codes() -> set[str]:
            return {a.code for a in peer.alerts[alerts:] if a.component_id == 'recorder'}

        wait_until(lambda: 'RECORDER_DROPPED' in codes(), timeout=120, interval=0.2)
        assert 'DATABASE_UNAVAILABLE' in codes(), codes()
        wait_until(lambda: steps_ended(engine) > done, timeout=PROGRESS_TIMEOUT_S)  # works on
        ballast.unlink()
        freed = time.monotonic()
        wait_until(lambda: 'DATABASE_RECOVERED' in codes(), timeout=60, interval=0.2)
        chaos.attacks.recovery_s['the full disk (the recorder)'].append(time.monotonic() - freed)

        # Back to normal: a new order, placed now, completes.
        operator.stop_orders()
        back = time.monotonic()
        reply = operator.call(StoreWorkpiece, 'stf/order/store', flavor='CHOCO', timeout=30)
        assert reply is not None and reply.accepted, reply
        operator.orders.accepted[reply.command_id] = CommandKind.STORE
        queue = CommandQueue(engine=engine)
        final = wait_until(
            lambda: (c := queue.get(reply.command_id)) is not None and c.status in FINAL and c,
            timeout=RECOVERY_TARGET_S,
            interval=0.2,
        )
        recovery_s = time.monotonic() - back
        assert final.status is CommandStatus.COMPLETED, final.message
        sent = samples.stop()

        # Drain: every command final, every MQTT order answered.
        wait_until(lambda: settled(queue), timeout=DRAIN_TIMEOUT_S, interval=0.5)
        wait_until(lambda: mqtt.answered() >= mqtt.sent, timeout=60)
        wait_until(lambda: query(history, 'SELECT MAX(last_sequence) FROM recorder_streams '
                                          f"WHERE topic = '{SAMPLES}'") == [(sent,)],
                   timeout=60)  # fmt: skip
        launch.stop()
    finally:
        samples.stop()
        peer.close()
        mqtt.probe.close()

    acknowledged = mqtt.acknowledged()
    operator.orders.merge(outage)
    operator.orders.accepted |= dict.fromkeys(acknowledged, CommandKind.PROCESS)
    operator.orders.refused['mqtt'] += mqtt.without_command('REFUSED')
    operator.orders.unanswered += mqtt.without_command('FAILED')
    lines = launch.lines
    report = Report.gather(
        engine, operator.orders, chaos.attacks, lines, time.monotonic() - started, launches=1
    )
    with engine.connect() as connection:
        statuses = connection.scalars(select(CommandRow.status)).all()
    outcomes = Counter(CommandStatus(status).name for status in statuses)
    mine = f"FROM motor_samples WHERE motor_id = '{SAMPLE_MOTOR}'"
    recorded = query(history, f'SELECT COUNT(*) {mine}')[0][0]
    gaps = dict(query(history, 'SELECT reason, SUM(count) FROM recorder_gaps '
                               f"WHERE topic = '{SAMPLES}' GROUP BY reason"))  # fmt: skip
    factory_gaps = dict(
        query(history, 'SELECT reason, SUM(count) FROM recorder_gaps GROUP BY reason')
    )
    print(
        f'\n{report.summary}\nMQTT orders sent {mqtt.sent}, acknowledged {len(acknowledged)}, '
        f'refused {mqtt.without_command("REFUSED")}, not confirmed '
        f'{mqtt.without_command("FAILED")}; during the outage through the service: '
        f'accepted {len(outage.accepted)}, refused {dict(outage.refused)}, unanswered '
        f'{outage.unanswered}; commands {dict(outcomes)}\n'
        f'samples sent {sent}, recorded {recorded}, missing {sent - recorded}, in the gaps '
        f'{gaps} (every topic: {factory_gaps})\n'
        f'a new order after the last fault completed in {recovery_s:.1f} s '
        f'(target {RECOVERY_TARGET_S:g} s)'
    )
    report.check(engine, lines)
    assert query(history, 'PRAGMA integrity_check') == [('ok',)]
    assert sum(gaps.values()) == sent - recorded, (gaps, sent, recorded)
    assert gaps.get('buffer_overflow', 0) > 0 and set(gaps) <= {'buffer_overflow', 'not_received'}
    duplicates = query(history, f'SELECT COUNT(*) - COUNT(DISTINCT current_a) {mine}')
    assert duplicates == [(0,)]
    assert acknowledged, 'no order through MQTT was acknowledged'
    assert mqtt.answered() == mqtt.sent, 'an MQTT order was answered twice'
    assert not outage.accepted, f'accepted while the database was away: {outage.accepted}'
