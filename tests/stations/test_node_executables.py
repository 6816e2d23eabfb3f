"""Smoke test of every node executable (console script): it starts, shows up in the graph and
stops cleanly on Ctrl-C, like zenoh-python's examples_check."""

from __future__ import annotations

import signal
import sys
import threading
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
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(node.stdout), daemon=True)
    reader.start()
    # Listed as soon as its node token exists; ready once its constructor logged.
    wait_until(
        lambda: (
            any(f'[{namespace[1:]}.{name}]: ' in line for line in lines) or node.poll() is not None
        ),
        timeout=20,
    )
    assert node.poll() is None, ''.join(lines)
    assert f'{namespace}/{name}' in stf('node', 'list').stdout.split()

    node.send_signal(signal.SIGINT)

    assert node.wait(timeout=10) == 0
    reader.join(timeout=5)
    assert 'Traceback' not in ''.join(lines)
