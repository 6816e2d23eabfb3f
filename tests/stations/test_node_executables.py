"""Smoke test of every node executable (console script): it starts, shows up in the graph and
stops cleanly on Ctrl-C, like zenoh-python's examples_check."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from tests.conftest import Processes, stf, wait_until
from tests.stations.probe import FACTORY_YAML

BIN = Path(sys.executable).parent


@pytest.mark.parametrize('name', ['hbw', 'vgr', 'conveyor', 'clock'])
def test_node_executable_starts_is_listed_and_stops_on_sigint(
    router: str, processes: Processes, name: str
) -> None:
    namespace = f'/smoke_{name}'
    node = processes.start(
        str(BIN / f'{name}_node'),
        '--ros-args',
        '-r',
        f'__ns:={namespace}',
        '--params-file',
        str(FACTORY_YAML),
    )
    wait_until(
        lambda: f'{namespace}/{name}' in stf('node', 'list').stdout.split() or node.poll(),
        timeout=20,
    )
    assert node.poll() is None, node.stdout.read()

    node.send_signal(signal.SIGINT)

    assert node.wait(timeout=10) == 0
    output = node.stdout.read()
    assert 'Traceback' not in output
    assert f'[{namespace[1:]}.{name}]: ' in output  # its ready message in the log
