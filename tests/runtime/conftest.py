"""Fixtures of the runtime tests: the demo node in its own process and an in-test node."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

from stf_nodes import runtime
from tests.conftest import Processes, stf, wait_until

DEMO = [sys.executable, '-m', 'tests.runtime.demo_node']


@pytest.fixture
def demo(router: str, processes: Processes, tmp_path: Any) -> Iterator[Any]:
    """The demo node in its own process, namespaced, with a parameter file and an override."""
    params = tmp_path / 'params.yaml'
    params.write_text(
        '/**:\n  ros__parameters:\n    label: from-file\n'
        '/t1/demo:\n  ros__parameters:\n    rate: 50.0\n'
    )
    process = processes.start(
        *DEMO, '--ros-args', '-r', '__ns:=/t1', '--params-file', str(params), '-p', 'limits:=[4, 5]'
    )
    wait_until(lambda: '/t1/demo' in stf('node', 'list').stdout, timeout=15)
    yield process


@pytest.fixture
def node(router: str) -> Iterator[runtime.Node]:
    context = runtime.Context([])
    test_node = runtime.Node('tester', context=context)
    executor = runtime.SingleThreadedExecutor(context=context)
    executor.add_node(test_node)
    test_node.executor = executor
    yield test_node
    test_node.destroy_node()
    context.shutdown()
