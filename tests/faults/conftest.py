"""Fixtures of the fault suites: the launches and operators a test made, always cleaned up."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stf_nodes.runtime.router import free_port
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
