"""A factory (stations, sim clock) and the foxglove_bridge node as real processes, and a test
node of our own to watch the graph and publish into it."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stf_nodes import runtime
from stf_nodes.runtime.router import free_port
from tests.bridges.foxglove_client import FoxgloveClient
from tests.conftest import Processes, wait_until
from tests.stations.probe import REPO_ROOT, factory_commands

BIN = Path(sys.executable).parent
#: Small limits, so the bad-input tests hit them with little data.
MAX_MESSAGE_BYTES = 256 * 1024
BACKLOG = 256  # the control plane (advertisements) shares this size


@dataclass
class Bridge:
    url: str
    process: object
    node: runtime.Node  # a test node in its own context, spinning

    def client(self, **kwargs: object) -> FoxgloveClient:
        return FoxgloveClient(self.url, **kwargs)  # type: ignore[arg-type]

    def bridge_subscriptions(self, topic: str) -> int:
        """How many graph subscriptions the bridge holds on `topic`."""
        return sum(
            1
            for token in self.node.context.graph.endpoints(topic, 'MS')
            if token.node_name == 'foxglove_bridge'
        )


def bridge_command(port: int, *ros_args: str) -> list[str]:
    return [
        str(BIN / 'foxglove_bridge_node'),
        '--ros-args',
        '--params-file',
        str(REPO_ROOT / 'config' / 'factory.yaml'),
        '-p',
        f'port:={port}',
        *ros_args,
    ]


@pytest.fixture(scope='module')
def bridge(router: str) -> Iterator[Bridge]:
    """Stations and sim clock (4x) with the bridge on sim time, one client-ready URL."""
    processes = Processes()
    try:
        for command in factory_commands(time_scale=4.0):
            processes.start(*command, cwd=REPO_ROOT)
        port = free_port()
        process = processes.start(
            *bridge_command(
                port,
                '-p',
                'use_sim_time:=true',
                '-p',
                f'message_backlog_size:={BACKLOG}',
                '-p',
                'parameter_poll_s:=0.5',
            ),
            env={**os.environ, 'STF_MAX_MESSAGE_BYTES': str(MAX_MESSAGE_BYTES)},
        )
        context = runtime.Context([])
        node = runtime.Node('bridge_tester', context=context)
        executor = runtime.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        threading.Thread(target=executor.spin, daemon=True).start()
        url = f'ws://127.0.0.1:{port}'

        def ready() -> bool:
            try:
                with FoxgloveClient(url) as client:
                    client.channel('/foxglove/scene', timeout=2)
                    client.service('/stf/conveyor/task', timeout=2)
                    return True
            except (OSError, AssertionError):
                return False

        wait_until(ready, timeout=40, interval=0.5)
        yield Bridge(url=url, process=process, node=node)
        executor.shutdown()
        node.destroy_node()
        context.shutdown()
    finally:
        processes.stop_all()
