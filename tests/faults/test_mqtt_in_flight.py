"""An MQTT order the scheduler took while the bridge died before it could acknowledge it.

The broker sends the order again to the respawned bridge (QoS 1, persistent session): it must
not become a second command. The scheduler is frozen (SIGSTOP) while it holds the bridge's
request, the bridge is killed, the scheduler thawed: it queues the command and answers a bridge
that is gone.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from stf_nodes import interfaces
from stf_nodes.scheduler import CommandKind
from stf_nodes.storage import make_engine
from stf_nodes.storage.models import CommandRow
from stf_nodes.workpieces import WorkpieceStatus
from tests.bridges.mqtt_helpers import Mosquitto, MqttProbe, unique
from tests.conftest import wait_until
from tests.faults.factory import LEADING, GetInventory, Launch, Operator, start_factory

pytestmark = [pytest.mark.faults, pytest.mark.faults_long]

DiagnosticArray = interfaces.get_message_class('diagnostic_msgs/msg/DiagnosticArray')


@pytest.mark.timeout(300)
def test_an_order_the_scheduler_took_is_not_made_again_after_the_bridge_died(
    broker: Mosquitto, launches: list[Launch], operators: list[Operator], tmp_path: Path
) -> None:
    db_url = f'sqlite:///{tmp_path / "stf.db"}'
    args = ['use_sim_time:=true', 'time_scale:=20', f'db_url:={db_url}', 'enable_foxglove:=false',
            'enable_recorder:=false', 'enable_maintenance:=false']  # fmt: skip
    launch = start_factory(launches, tmp_path, args)
    launch.wait_for(LEADING, since=0, timeout=90)
    launch.wait_for(r'^\[mqtt_bridge\] .*\]: connected to', since=0, timeout=60)
    operator = Operator(seed=0)
    operators.append(operator)
    admitted: list[int] = []

    def on_diagnostics(array: Any) -> None:
        for status in array.status:
            if status.name == 'mqtt_bridge: broker':
                values = {kv.key: kv.value for kv in status.values}
                admitted.append(int(values.get('orders_admitted', 0)))

    operator.node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 100)
    inventory = wait_until(lambda: operator.call(GetInventory, 'stf/inventory/get'), timeout=30)
    raw = next(
        s for s in inventory.inventory.slots if s.workpiece.status == WorkpieceStatus.RAW_DOUGH
    )
    colour = {'STRAWBERRY': 'RED', 'VANILLA': 'WHITE', 'CHOCO': 'BLUE'}[raw.workpiece.flavor]
    probe = MqttProbe(broker.port, ['f/i/order'], client_id=unique('orders'), persistent=True)
    scheduler, bridge = launch.pid('scheduler'), launch.pid('mqtt_bridge')
    mark = launch.mark()
    os.kill(scheduler, signal.SIGSTOP)
    try:
        probe.publish('f/o/order', json.dumps({'ts': '2026-01-01T00:00:00.000Z', 'type': colour}))
        wait_until(lambda: admitted and admitted[-1] >= 1, timeout=10)  # the call is out
        os.kill(bridge, signal.SIGKILL)
    finally:
        os.kill(scheduler, signal.SIGCONT)
    launch.wait_for(rf'^\[launch\] mqtt_bridge started with pid (?!{bridge}\b)\d+', since=mark,
                    timeout=60)  # fmt: skip
    launch.wait_for(r'^\[mqtt_bridge\] .*\]: connected to', since=mark, timeout=60)
    answer = probe.wait_for('f/i/order', lambda o: o['state'] in ('ORDERED', 'REFUSED', 'FAILED'),
                            timeout=60)  # fmt: skip
    engine = make_engine(db_url)
    with engine.connect() as connection:
        commands = connection.execute(select(CommandRow.id, CommandRow.kind)).all()
    probe.close()
    assert [kind for _, kind in commands] == [CommandKind.PROCESS], (answer, commands)
    assert answer['state'] == 'ORDERED' and answer['commandId'] == commands[0][0], answer
