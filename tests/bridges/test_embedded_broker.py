"""`stf launch` with an MQTT bridge: the embedded broker when nothing listens, else the broker
that is there."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stf_nodes.launcher.brokers import embedded_brokers
from stf_nodes.launcher.model import NodeSpec
from stf_nodes.launcher.supervisor import port_open
from stf_nodes.runtime.router import free_port
from tests.bridges.mqtt_helpers import (  # noqa: F401 - fixture
    Mosquitto,
    MqttProbe,
    private_broker,
)
from tests.launcher.conftest import LaunchRun

MIRROR = Path(__file__).resolve().parents[2] / 'launch' / 'mirror.launch.xml'


@pytest.fixture
def launches(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[LaunchRun]]:
    monkeypatch.setenv('ZENOH_ROUTER', f'tcp/127.0.0.1:{free_port()}')
    runs: list[LaunchRun] = []
    yield runs
    for run in runs:
        if run.process.poll() is None:
            run.process.send_signal(signal.SIGINT)
            try:
                run.finish(timeout=15)
            finally:
                run.kill()


def launch(runs: list[LaunchRun], mqtt_port: int, tmp_path: Path) -> LaunchRun:
    env = {**os.environ, 'MQTT_PORT': str(mqtt_port)}
    run = LaunchRun([sys.executable, '-m', 'stf_nodes.cli', 'launch', str(MIRROR)], env, tmp_path)
    runs.append(run)
    return run


def test_embedded_broker_when_nothing_listens(launches: list[LaunchRun], tmp_path: Path) -> None:
    port = free_port()
    run = launch(launches, port, tmp_path)
    run.wait_for(rf'^\[mqtt_broker\] stf mqtt broker: listening on 127\.0\.0\.1:{port}', 30)
    run.wait_for(rf'connected to mqtt://127\.0\.0\.1:{port}', 60)
    probe = MqttProbe(port, ['f/i/state/twin'])
    probe.wait_for('f/i/state/twin', lambda s: s['description'] == 'online (mirror)')

    run.process.send_signal(signal.SIGINT)
    code, stderr = run.finish(timeout=20)
    assert code == 0, stderr
    # The broker outlived the bridge: the bridge's goodbye reached the probe through it.
    probe.wait_for('f/i/state/twin', lambda s: s['description'] == 'offline')
    assert not port_open('127.0.0.1', port)
    assert not any('Traceback' in line for line in run.lines)
    probe.close()


def test_a_listening_broker_is_used(
    private_broker: Callable[..., Mosquitto],  # noqa: F811 - fixture
    launches: list[LaunchRun],
    tmp_path: Path,
) -> None:
    broker = private_broker()
    run = launch(launches, broker.port, tmp_path)
    run.wait_for(rf'^\[launch\] using the MQTT broker on tcp/127\.0\.0\.1:{broker.port}', 30)
    run.wait_for(rf'connected to mqtt://127\.0\.0\.1:{broker.port}', 60)
    assert not any(line.startswith('[mqtt_broker]') for line in run.lines)


def test_which_brokers_a_launch_embeds(tmp_path: Path) -> None:
    params = tmp_path / 'params.yaml'
    params.write_text('/**:\n  ros__parameters:\n    broker_port: 18900\n')

    def bridge(namespace: str, *parameters: object, env: dict[str, str] | None = None) -> NodeSpec:
        return NodeSpec(
            package='stf_digital_twin',
            executable='mqtt_bridge_node',
            name='mqtt_bridge',
            namespace=namespace,
            parameters=tuple(parameters),  # type: ignore[arg-type]
            env=env,
        )

    nodes = [
        bridge('/a'),  # the environment's broker
        bridge('/b', params),  # from the parameter file
        bridge('/c', params, {'broker_port': 18901}),  # inline after the file wins
        bridge('/d', {'broker_host': '192.168.0.10'}),  # a real factory: not embedded
        bridge('/e', {'tls.enabled': True}),  # TLS: amqtt is not set up for it
        bridge('/f', env={'MQTT_PORT': '18902'}),
        bridge('/g'),  # the same as /a: one broker
    ]
    specs = embedded_brokers(nodes, {'MQTT_PORT': '18899'})
    assert [spec.endpoint for spec in specs] == [
        'tcp/127.0.0.1:18899',
        'tcp/127.0.0.1:18900',
        'tcp/127.0.0.1:18901',
        'tcp/127.0.0.1:18902',
    ]
    assert specs[0].argv[-4:] == ('--host', '127.0.0.1', '--port', '18899')
    assert specs[0].label == 'mqtt_broker'
