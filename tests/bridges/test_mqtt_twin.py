"""The bridge in twin mode with the real factory (stations, 20x sim clock, scheduler) as
processes in `/mq`, a real router and the machine's Mosquitto under a unique topic prefix;
the broker-restart test runs a Mosquitto of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.bridges.mqtt_helpers import (
    FACTORY_YAML,
    GraphProbe,
    Mosquitto,
    MqttProbe,
    ProcessGroup,
    bridge_argv,
    group,  # noqa: F401 - fixture
    private_broker,  # noqa: F401 - fixture
    require_shared_broker,
    unique,
)
from tests.conftest import wait_until

NS = '/mq'
SIM = ['-p', 'use_sim_time:=true', '-r', f'__ns:={NS}']
STATES = ('hbw', 'vgr', 'mpo', 'sld')
PROCESS = 1
COMPLETED = 2


def node_argv(name: str, *extra: str) -> list[str]:
    return [sys.executable, '-m', f'stf_nodes.{name}_node', '--ros-args',
            '--params-file', str(FACTORY_YAML), *extra]  # fmt: skip


class Factory:
    """The running factory and its twin-mode bridge on the shared broker."""

    def __init__(self, processes: ProcessGroup, db: Path, prefix: str) -> None:
        self.prefix = prefix
        self.graph = GraphProbe(NS)
        self.alerts = self.graph.subscribe('stf_msgs/msg/Alert', 'stf/alerts')
        self.diagnostics = self.graph.subscribe(
            'diagnostic_msgs/msg/DiagnosticArray', 'diagnostics', 10
        )
        for name in ('hbw', 'vgr', 'conveyor'):
            processes.start(node_argv(name, *SIM))
        processes.start(node_argv('clock', '-r', f'__ns:={NS}', '-p', 'time_scale:=20.0'))
        self.scheduler = processes.start(
            node_argv('scheduler', *SIM, '-p', f'db_url:=sqlite:///{db}')
        )
        self.bridge = processes.start(
            bridge_argv(
                NS,
                'use_sim_time:=true',
                f'topic_prefix:={self.prefix}',
                f'client_id:={self.prefix}',
                'alert_interval_s:=3600.0',
            )
        )
        self.bridge.wait_for('connected to mqtt://127.0.0.1:1883')
        self.scheduler.wait_for('scheduler ready', timeout=30)

    def topic(self, name: str) -> str:
        return f'{self.prefix}/{name}'

    def commands(self) -> dict[int, Any]:
        reply = self.graph.call('stf_msgs/srv/ListCommands', 'stf/command/list')
        return {command.command_id: command for command in reply.commands}

    def slots(self) -> dict[str, Any]:
        inventory = self.graph.call('stf_msgs/srv/GetInventory', 'stf/inventory/get').inventory
        return {entry.slot: entry.workpiece for entry in inventory.slots}

    def wait_completed(self, command_id: int, timeout: float = 40.0) -> Any:
        def finished() -> Any:
            command = self.commands().get(command_id)
            return command if command is not None and command.status >= COMPLETED else None

        return wait_until(finished, timeout=timeout, interval=0.2)


@pytest.fixture(scope='module')
def factory(router: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Factory]:
    require_shared_broker()
    processes = ProcessGroup()
    prefix = unique('stf-test')
    try:
        started = Factory(processes, tmp_path_factory.mktemp('mq') / 'stf.db', prefix)
        yield started
        started.graph.close()
    finally:
        processes.stop_all()
        clear_retained(prefix, *[f'f/i/state/{s}' for s in (*STATES, 'twin')], 'f/i/stock')


def clear_retained(prefix: str, *topics: str, port: int = 1883) -> None:
    """Leave no retained message of a test prefix on the shared broker."""
    for topic in topics:
        subprocess.run(['mosquitto_pub', '-p', str(port), '-t', f'{prefix}/{topic}', '-r', '-n'],
                       check=False)  # fmt: skip


def sub_lines(process: Any, topic: str) -> list[dict[str, Any]]:
    """Payloads of `mosquitto_sub -v` lines for ``topic``."""
    found = []
    for line in list(process.lines):
        name, _, payload = line.partition(' ')
        if name == topic:
            found.append(json.loads(payload))
    return found


def test_mosquitto_sees_state_stock_and_an_order_that_bakes_a_cookie(
    factory: Factory,
    group: ProcessGroup,  # noqa: F811 - fixture
) -> None:
    sub = group.start(['mosquitto_sub', '-h', '127.0.0.1', '-q', '1', '-v',
                       '-t', factory.topic('f/i/#')])  # fmt: skip
    for station in STATES:
        sub.wait_for(factory.topic(f'f/i/state/{station}'))
    sub.wait_for(factory.topic('f/i/stock'))
    for station in STATES:
        state = sub_lines(sub, factory.topic(f'f/i/state/{station}'))[0]
        assert list(state) == ['ts', 'station', 'code', 'description', 'active', 'target']
        assert state['station'] == station and state['code'] in (1, 2)
        assert state['ts'].endswith('Z') and len(state['ts']) == len('2022-07-01T10:59:45.758Z')
    stock = sub_lines(sub, factory.topic('f/i/stock'))[-1]['stockItems']
    assert [item['location'] for item in stock] == [
        f'{row}{column}' for row in 'ABC' for column in (1, 2, 3)
    ]
    red = [item for item in stock if item['workpiece'] and item['workpiece']['type'] == 'RED']
    assert red and all(item['workpiece']['state'] in ('RAW', 'PROCESSED') for item in red)
    assert any(item['workpiece'] is None for item in stock)
    twin = sub_lines(sub, factory.topic('f/i/state/twin'))
    assert twin and twin[-1]['code'] == 1

    before = set(factory.commands())
    subprocess.run(['mosquitto_pub', '-h', '127.0.0.1', '-q', '1', '-t', factory.topic('f/o/order'),
                    '-m', '{"type":"RED"}'], check=True)  # fmt: skip
    sub.wait_for('"state":"SHIPPED"', timeout=60)
    orders = sub_lines(sub, factory.topic('f/i/order'))
    assert [o['state'] for o in orders] == ['ORDERED', 'IN_PROCESS', 'SHIPPED', 'WAITING_FOR_ORDER']
    assert all(o['type'] == 'RED' for o in orders[:3])
    command_id = orders[0]['commandId']
    assert set(factory.commands()) - before == {command_id}
    command = factory.wait_completed(command_id)
    assert (command.kind, command.status, command.flavor) == (PROCESS, COMPLETED, 'STRAWBERRY')
    assert factory.slots()[command.source_slot].status == 2  # BAKED, back in the rack
    sub.wait_for('"state":"PROCESSED"')  # the stock shows it as the fischertechnik state


def test_bad_input_is_counted_and_alerted_and_never_ordered(factory: Factory) -> None:
    probe = MqttProbe(1883, [factory.topic('f/i/order')])
    before = set(factory.commands())
    order = factory.topic('f/o/order')
    garbage: list[tuple[str, bytes]] = [
        (order, b'not json'),
        (order, b'{"type":"RED"'),
        (order, b'\xff\xfe\x00'),
        (order, b'[1, 2]'),
        (order, b'{"type": 7}'),
        (order, b'{"type": "RED", "ts": 12}'),
        (order, b'{"type": "PURPLE"}'),
        (order, b'{"type": "STRAWBERRY"}'),
        (order, b'{"type":"RED","pad":"' + b'x' * 70_000 + b'"}'),
        (factory.topic('f/o/nfc/ds'), b'{"ts":"2022-07-01T10:59:45.758Z","cmd":"delete"}'),
        (factory.topic('f/o/state/ack'), b'"ack"'),
    ]
    for _ in range(3):
        for topic, payload in garbage:
            probe.publish(topic, payload)
    expected = {
        'MQTT_MALFORMED_JSON', 'MQTT_INVALID_FIELD', 'MQTT_UNKNOWN_COLOUR', 'MQTT_OVERSIZED',
        'MQTT_UNEXPECTED_TOPIC',
    }  # fmt: skip

    def alerted() -> bool:
        return expected <= {alert.code for alert in factory.alerts}

    wait_until(alerted, timeout=15)
    for code in expected:  # once per kind, however often it came
        alerts = [alert for alert in factory.alerts if alert.code == code]
        assert len(alerts) == 1 and alerts[0].severity == 1  # WARNING
        assert alerts[0].component_id == 'mqtt_bridge' and alerts[0].message
    refused = probe.wait_for(factory.topic('f/i/order'), lambda o: 'PURPLE' in o.get('message', ''))
    assert refused['state'] == 'REFUSED'

    totals = {
        'bad_input_malformed_json': 9,
        'bad_input_invalid_field': 12,
        'bad_input_unknown_colour': 6,
        'bad_input_oversized': 3,
        'bad_input_unexpected_topic': 3,
    }

    def counted() -> dict[str, int]:
        # The newest of the bridge's own: the stations publish on `diagnostics` too.
        ours = [d.status[0] for d in list(factory.diagnostics) if d.status]
        ours = [status for status in ours if status.name == 'mqtt_bridge: broker']
        if not ours:
            return {}
        values = {kv.key: kv.value for kv in ours[-1].values}
        return {key: int(values.get(key, 0)) for key in totals}

    wait_until(lambda: counted() == totals, timeout=10)
    # Each of the 27 bad orders was answered on f/i/order.
    wait_until(lambda: len(probe.received(factory.topic('f/i/order'))) == 27, timeout=10)
    assert factory.bridge.process.poll() is None
    assert sum('MALFORMED_JSON' in line for line in factory.bridge.lines) == 1  # logged once
    assert set(factory.commands()) == before
    probe.close()


def test_repeated_order_with_the_same_ts_is_ordered_once(factory: Factory) -> None:
    probe = MqttProbe(1883, [factory.topic('f/i/order')])
    before = set(factory.commands())
    order = b'{"ts":"2024-05-04T10:00:00.000Z","type":"WHITE"}'
    for _ in range(3):
        probe.publish(factory.topic('f/o/order'), order)
    shipped = probe.wait_for(factory.topic('f/i/order'), lambda o: o['state'] == 'SHIPPED', 60)
    probe.publish(factory.topic('f/o/order'), order)  # a late repeat: still the same order
    assert set(factory.commands()) - before == {shipped['commandId']}
    ordered = [o for o in probe.received(factory.topic('f/i/order')) if o['state'] == 'ORDERED']
    assert len(ordered) == 1
    assert factory.wait_completed(shipped['commandId']).flavor == 'VANILLA'
    probe.close()


def test_broker_restart_loses_no_acknowledged_order(
    private_broker: Callable[..., Mosquitto],  # noqa: F811 - fixture
    factory: Factory,
    group: ProcessGroup,  # noqa: F811 - fixture
    tmp_path: Path,
) -> None:
    broker = private_broker(persistence=True)
    prefix = unique('restart')
    bridge = group.start(
        bridge_argv(
            NS,
            'use_sim_time:=true',
            f'broker_port:={broker.port}',
            f'topic_prefix:={prefix}',
            f'client_id:={prefix}',
        )
    )
    bridge.wait_for('connected to')
    # A dashboard with a persistent session: it misses nothing while the broker is away.
    probe = MqttProbe(
        broker.port, [f'{prefix}/f/i/order'], client_id=f'{prefix}-dashboard', persistent=True
    )
    before = set(factory.commands())
    probe.publish(f'{prefix}/f/o/order', '{"ts":"2024-05-04T11:00:00.000Z","type":"BLUE"}')
    first = probe.wait_for(f'{prefix}/f/i/order', lambda o: o['state'] == 'ORDERED')

    broker.restart()  # while the command runs; its later states are queued by the bridge
    mark = bridge.wait_for('reconnected to', timeout=30)
    probe.publish(f'{prefix}/f/o/order', '{"ts":"2024-05-04T11:00:05.000Z","type":"RED"}')
    probe.publish(
        f'{prefix}/f/o/order', '{"ts":"2024-05-04T11:00:00.000Z","type":"BLUE"}'
    )  # repeat

    def shipped() -> set[int]:
        return {
            o['commandId'] for o in probe.received(f'{prefix}/f/i/order') if o['state'] == 'SHIPPED'
        }

    wait_until(lambda: len(shipped()) == 2, timeout=60, interval=0.2)
    assert first['commandId'] in shipped()
    assert set(factory.commands()) - before == shipped()
    for command_id in shipped():
        assert factory.wait_completed(command_id).status == COMPLETED
    assert 'reconnected to' in bridge.lines[mark]
    # The restarted broker has the retained state: the bridge published it again.
    late = MqttProbe(broker.port, [f'{prefix}/f/i/stock', f'{prefix}/f/i/state/hbw'])
    late.wait_for(f'{prefix}/f/i/stock', lambda s: len(s['stockItems']) == 9)
    late.wait_for(f'{prefix}/f/i/state/hbw', lambda s: s['station'] == 'hbw')
    late.close()
    probe.close()


def test_executable_stops_cleanly_and_says_offline(
    factory: Factory,
    group: ProcessGroup,  # noqa: F811 - fixture
) -> None:
    prefix = unique('smoke')
    bridge = group.start(
        bridge_argv('/smoke_mqtt', f'topic_prefix:={prefix}', f'client_id:={prefix}')
    )
    bridge.wait_for('connected to')
    probe = MqttProbe(1883, [f'{prefix}/f/i/state/twin'])
    probe.wait_for(f'{prefix}/f/i/state/twin', lambda s: s['description'].startswith('online'))
    assert bridge.stop() == 0
    probe.wait_for(f'{prefix}/f/i/state/twin', lambda s: s['description'] == 'offline')
    assert 'Traceback' not in bridge.output
    probe.close()
    clear_retained(prefix, 'f/i/state/twin')
