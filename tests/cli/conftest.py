"""A live graph for the CLI tests: a real station (`hbw_node`, with headers, enums, read-only
and writable parameters) and the runtime's demo node, each in its own process under /cli."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Processes, stf, wait_until
from tests.runtime.conftest import DEMO
from tests.stations.probe import FACTORY_YAML

BIN = Path(sys.executable).parent


def start_demo(processes: Processes, *ros_args: str) -> subprocess.Popen[str]:
    process = processes.start(*DEMO, '--ros-args', '-r', '__ns:=/cli', *ros_args)
    wait_until(lambda: '/cli/demo' in stf('node', 'list').stdout.split(), timeout=20)
    return process


@pytest.fixture(scope='module')
def graph(router: str) -> Iterator[dict[str, Any]]:
    processes = Processes()
    hbw = processes.start(
        str(BIN / 'hbw_node'), '--ros-args', '-r', '__ns:=/cli', '--params-file', str(FACTORY_YAML)
    )
    demo = start_demo(processes)
    wait_until(lambda: '/cli/hbw' in stf('node', 'list').stdout.split(), timeout=20)
    yield {'hbw': hbw, 'demo': demo, 'processes': processes}
    processes.stop_all()
