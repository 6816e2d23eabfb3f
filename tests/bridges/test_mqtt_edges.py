"""The bridge's edges with a stand-in scheduler (which counts the orders it is asked for):
floods, retained orders, kill -9 with an order in flight, refused credentials, TLS, mirror
mode from recorded fischertechnik payloads, and generic routes."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stf_nodes import interfaces
from tests.bridges.mqtt_helpers import (
    FakeScheduler,
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

FIXTURE = Path(__file__).parent / 'data' / 'fischertechnik_session.jsonl'


@pytest.fixture
def graph(router: str, request: pytest.FixtureRequest) -> Iterator[GraphProbe]:
    probe = GraphProbe(f'/{request.node.name[:40]}')
    yield probe
    probe.close()


def test_flood_is_rate_limited_and_a_retained_order_is_refused(
    private_broker: Callable[..., Mosquitto],  # noqa: F811 - fixture
    graph: GraphProbe,
    group: ProcessGroup,  # noqa: F811 - fixture
    tmp_path: Path,
) -> None:
    broker = private_broker()
    prefix = unique('flood')
    scheduler = FakeScheduler(graph)
    alerts = graph.subscribe('stf_msgs/msg/Alert', 'stf/alerts')
    probe = MqttProbe(broker.port, [f'{prefix}/f/i/order'])
    # Left retained before the bridge subscribes: it arrives flagged retained.
    probe.publish(f'{prefix}/f/o/order', '{"type":"BLUE"}', retain=True)
    bridge = group.start(
        bridge_argv(
            graph.namespace,
            f'broker_port:={broker.port}',
            f'topic_prefix:={prefix}',
            f'client_id:={prefix}',
            'order_rate:=0.5',
            'order_burst:=3',
        )
    )
    bridge.wait_for('connected to')
    wait_until(lambda: 'MQTT_RETAINED_ORDER' in {alert.code for alert in alerts})
    for index in range(30):
        probe.publish(f'{prefix}/f/o/order', json.dumps({'type': 'RED', 'n': index}))
    orders = f'{prefix}/f/i/order'

    def answers() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        received = probe.received(orders)
        refused = [o for o in received if 'rate limit' in o.get('message', '')]
        return [o for o in received if o['state'] == 'ORDERED'], refused

    # Every order is answered once, ORDERED or refused; later state updates also arrive here.
    wait_until(lambda: sum(map(len, answers())) >= 30, timeout=15)
    ordered, refused = answers()
    assert len(ordered) + len(refused) == 30
    assert 3 <= len(ordered) <= 4  # the burst, and a token that may have come back meanwhile
    assert len(scheduler.requests) == len(ordered)
    assert all(request.flavor == 'STRAWBERRY' for request in scheduler.requests)
    assert [a.code for a in alerts].count('MQTT_RATE_LIMITED') == 1
    assert probe.received(orders)[0]['state'] == 'REFUSED'  # the retained order
    probe.close()


def test_kill_9_with_an_unanswered_order_then_a_broker_restart_orders_it_once(
    private_broker: Callable[..., Mosquitto],  # noqa: F811 - fixture
    graph: GraphProbe,
    group: ProcessGroup,  # noqa: F811 - fixture
    tmp_path: Path,
) -> None:
    broker = private_broker(persistence=True)
    prefix = unique('k9')
    argv = bridge_argv(
        graph.namespace,
        f'broker_port:={broker.port}',
        f'topic_prefix:={prefix}',
        f'client_id:={prefix}',
        'order_timeout_s:=120.0',
    )
    first = group.start(argv)
    first.wait_for('connected to')
    probe = MqttProbe(broker.port, [f'{prefix}/f/i/order'])
    probe.publish(f'{prefix}/f/o/order', '{"type":"WHITE"}')  # no scheduler yet: not acked
    first.wait_for('waits for the scheduler')
    first.stop(signal.SIGKILL)
    second = group.start(argv)
    second.wait_for('connected to mqtt')  # the broker sends the unacknowledged order again
    broker.restart()  # ... and again (dup, same packet id) once the bridge is back
    second.wait_for('reconnected to', timeout=30)
    scheduler = FakeScheduler(graph)
    probe.wait_for(f'{prefix}/f/i/order', lambda o: o['state'] == 'SHIPPED', timeout=30)
    assert len(scheduler.requests) == 1 and scheduler.requests[0].flavor == 'VANILLA'
    states = [o['state'] for o in probe.received(f'{prefix}/f/i/order')]
    assert states.count('ORDERED') == 1
    probe.close()


def test_refused_credentials_are_alerted_and_tls_with_a_password_connects(
    private_broker: Callable[..., Mosquitto],  # noqa: F811 - fixture
    graph: GraphProbe,
    group: ProcessGroup,  # noqa: F811 - fixture
    tmp_path: Path,
) -> None:
    broker = private_broker(passwords={'factory': 's3cret'}, tls=True)
    alerts = graph.subscribe('stf_msgs/msg/Alert', 'stf/alerts')
    prefix = unique('tls')
    tls = ['tls.enabled:=true', f'tls.ca_file:={broker.ca_file}']
    common = [f'broker_port:={broker.port}', f'topic_prefix:={prefix}', 'username:=factory']
    wrong = group.start(
        bridge_argv(graph.namespace, *common, *tls, 'password:=guess', f'client_id:={prefix}-1')
    )
    wait_until(lambda: 'MQTT_CONNECTION_REFUSED' in {alert.code for alert in alerts})
    refusal = next(a for a in alerts if a.code == 'MQTT_CONNECTION_REFUSED')
    assert 'mqtts://127.0.0.1' in refusal.message and refusal.severity == 1
    no_ca = group.start(
        bridge_argv(
            graph.namespace.replace('/', '/x'),
            *common,
            'tls.enabled:=true',
            'password:=s3cret',
            f'client_id:={prefix}-2',
        )
    )
    right = group.start(
        bridge_argv(
            graph.namespace.replace('/', '/y'),
            *common,
            *tls,
            'password:=s3cret',
            f'client_id:={prefix}-3',
        )
    )
    right.wait_for('connected to mqtts://127.0.0.1')
    probe = MqttProbe(
        broker.port,
        [f'{prefix}/f/i/state/twin'],
        ca_file=broker.ca_file,
        username='factory',
        password='s3cret',
    )
    probe.wait_for(f'{prefix}/f/i/state/twin', lambda s: s['description'].startswith('online'))
    assert wrong.process.poll() is None and no_ca.process.poll() is None  # retrying, alive
    assert not any('connected to' in line for line in no_ca.lines)  # self-signed: not trusted
    for bridge in (wrong, no_ca, right):  # secrets are never logged
        assert not any('s3cret' in line or 'guess' in line for line in bridge.lines)
    probe.close()


def test_mirror_turns_recorded_factory_payloads_into_graph_state(
    graph: GraphProbe,
    group: ProcessGroup,  # noqa: F811 - fixture
) -> None:
    require_shared_broker()
    prefix = unique('mirror')
    received = {
        name: graph.subscribe(f'stf_msgs/msg/{kind}', f'stf/{name}', qos)
        for name, kind, qos in (
            ('hbw/state', 'HbwState', 10),
            ('vgr/state', 'VgrState', 10),
            ('conveyor/state', 'ConveyorState', 10),
            ('commands', 'CommandStatus', 100),
            ('alerts', 'Alert', 100),
        )
    }
    inventory = graph.subscribe('stf_msgs/msg/Inventory', 'stf/inventory', _latched())
    bridge = group.start(
        bridge_argv(
            graph.namespace, 'mode:=mirror', f'topic_prefix:={prefix}', f'client_id:={prefix}'
        )
    )
    bridge.wait_for('connected to')
    probe = MqttProbe(1883, [])
    for line in FIXTURE.read_text().splitlines():
        record = json.loads(line)
        probe.publish(
            f'{prefix}/{record["topic"]}', json.dumps(record['payload']), qos=record['qos']
        )
    wait_until(lambda: any(c.status == 2 for c in received['commands']), timeout=15)

    commands = received['commands']
    assert [c.status for c in commands] == [0, 1, 2]  # PENDING, IN_PROGRESS, COMPLETED
    assert {c.command_id for c in commands} == {1656673185758}  # the ORDERED ts in ms
    assert all(c.kind == 1 and c.flavor == 'STRAWBERRY' for c in commands)
    assert commands[-1].finished.sec == 1656673262  # 2022-07-01T11:01:02.401Z
    hbw = received['hbw/state']
    assert [m.state for m in hbw] == [1, 2, 1]
    assert hbw[0].header.stamp.sec == 1656673180 and hbw[0].header.stamp.nanosec == 102_000_000
    assert [s.slot for s in hbw[-1].slots][:2] == ['A1', 'A2'] and not hbw[-1].slots[0].workpiece.id
    assert [m.state for m in received['vgr/state']] == [1, 2, 1]
    conveyor = received['conveyor/state']
    assert [(m.state, m.oven_busy) for m in conveyor][-4:] == [
        (2, True),
        (1, False),
        (2, False),
        (4, False),
    ]
    alert = next(a for a in received['alerts'] if a.code == 'STATION_ERROR')
    assert alert.severity == 2 and alert.component_id == 'sld' and 'color sensor' in alert.message
    wait_until(lambda: len(inventory) == 2)
    slots = {entry.slot: entry.workpiece for entry in inventory[-1].slots}
    assert len(slots) == 9 and not slots['A1'].id and not slots['B2'].id
    assert (slots['A3'].id, slots['A3'].flavor, slots['A3'].status) == (
        '04e71c52a55c80',
        'CHOCO',
        2,
    )
    assert (slots['B3'].flavor, slots['B3'].status) == ('STRAWBERRY', 1)
    assert not [a for a in received['alerts'] if a.code.startswith('MQTT_')]  # all understood
    probe.close()
    for topic in {json.loads(line)['topic'] for line in FIXTURE.read_text().splitlines()}:
        MqttProbe(1883, []).publish(f'{prefix}/{topic}', b'', retain=True)


def _latched() -> Any:
    from stf_nodes import runtime

    return runtime.qos_profile_latched


def test_generic_routes_both_ways(
    graph: GraphProbe,
    group: ProcessGroup,  # noqa: F811 - fixture
    tmp_path: Path,
) -> None:
    require_shared_broker()
    prefix = unique('routes')
    mapping = tmp_path / 'routes.yaml'
    mapping.write_text(
        'routes:\n'
        '  - {graph: chatter, type: std_msgs/msg/String, mqtt: out/chatter, qos: 1}\n'
        '  - {mqtt: in/chatter, graph: heard, type: std_msgs/msg/String, direction: in}\n'
        '  - {mqtt: in/reset, service: stf/reset, type: std_srvs/srv/Trigger, direction: in,\n'
        '     reply: out/reset}\n'
    )
    string = interfaces.get_message_class('std_msgs/msg/String')
    trigger = interfaces.get_service('std_srvs/srv/Trigger')
    heard = graph.subscribe('std_msgs/msg/String', 'heard')

    def reset(request: Any, response: Any) -> Any:
        response.success, response.message = True, 'reset by route'
        return response

    graph.node.create_service(trigger, f'{graph.namespace}/stf/reset', reset)
    chatter = graph.node.create_publisher(string, f'{graph.namespace}/chatter', 10)
    bridge = group.start(
        bridge_argv(
            graph.namespace,
            f'topic_prefix:={prefix}',
            f'client_id:={prefix}',
            f'mapping_file:={mapping}',
        )
    )
    bridge.wait_for('connected to')
    probe = MqttProbe(1883, [f'{prefix}/out/#'])
    assert chatter.wait_for_subscribers(10)
    chatter.publish(string(data='hello mqtt'))
    assert probe.wait_for(f'{prefix}/out/chatter', lambda m: True) == {'data': 'hello mqtt'}
    probe.publish(f'{prefix}/in/chatter', '{"data": "hello graph"}')
    probe.publish(f'{prefix}/in/chatter', '{"data": 5}')  # wrong type: refused, counted
    probe.publish(f'{prefix}/in/reset', '{}')
    wait_until(lambda: [m.data for m in heard] == ['hello graph'])
    reply = probe.wait_for(f'{prefix}/out/reset', lambda m: True)
    assert reply == {'success': True, 'message': 'reset by route'}
    assert bridge.wait_for('INVALID_FIELD') >= 0
    probe.close()
