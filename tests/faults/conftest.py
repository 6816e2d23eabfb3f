"""Fixtures of the fault suites: the launches and operators a test made, always cleaned up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stf_nodes.runtime.router import free_port
from tests.bridges.mqtt_helpers import Mosquitto
from tests.faults.factory import Launch, Operator


@pytest.fixture
def router_port(monkeypatch: pytest.MonkeyPatch) -> int:
    """A free port for the router the launch starts; the test's own node connects to it."""
    port = free_port()
    monkeypatch.setenv('ZENOH_ROUTER', f'tcp/127.0.0.1:{port}')
    return port


@pytest.fixture
def launches() -> Iterator[list[Launch]]:
    started: list[Launch] = []
    yield started
    for launch in started:
        launch.cleanup()


@pytest.fixture
def operators(router_port: int) -> Iterator[list[Operator]]:
    """Operators are made once the router is up (a node needs one to start)."""
    made: list[Operator] = []
    yield made
    for user in made:
        user.close()


@pytest.fixture
def broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mosquitto]:
    """A Mosquitto of the test's own with persistence; MQTT_BROKER/MQTT_PORT point the
    launch's mqtt_bridge at it."""
    directory = tmp_path / 'mosquitto'
    directory.mkdir()
    made = Mosquitto(directory, persistence=True)
    monkeypatch.setenv('MQTT_BROKER', '127.0.0.1')
    monkeypatch.setenv('MQTT_PORT', str(made.port))
    yield made
    made.stop()
