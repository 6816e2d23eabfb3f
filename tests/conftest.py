"""Shared fixtures: the shared oracle data beside the checkout, a real Zenoh router, child
processes that are always cleaned up, and the `stf` command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
import zenoh

from stf_nodes.runtime.router import spawn_router

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_TESTDATA = REPO_ROOT.parent / 'shared' / 'testdata'


def unavailable(reason: str) -> NoReturn:
    """A service a test needs is missing: skipped with the reason locally, a failure in CI
    (``CI=true``), so CI never goes green with a backend untested."""
    if os.environ.get('CI') == 'true':
        pytest.fail(f'{reason} (CI=true: a missing service is a failure)')
    pytest.skip(reason)


# Markers whose tests run only when ``-m`` names them, which keeps ``make test`` within its
# time budget: marker -> (the word ``-m`` must contain, the reason they are skipped otherwise).
OPT_IN = {
    # kill -9 of every node under a stream of orders, every fault at once, a DDS storm
    'faults_long': ('faults', 'a long fault run: select it with -m faults'),
    # several hosts in network namespaces: root and minutes
    'multihost': ('multihost', 'several hosts in network namespaces: select with -m multihost'),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    selected = config.option.markexpr or ''
    for marker, (word, reason) in OPT_IN.items():
        if word in selected:
            continue
        skip = pytest.mark.skip(reason=reason)
        for item in items:
            if item.get_closest_marker(marker):
                item.add_marker(skip)


@pytest.fixture(scope='session')
def shared_testdata() -> Path:
    if not SHARED_TESTDATA.is_dir():
        pytest.fail(f'shared test data not found at {SHARED_TESTDATA}')
    return SHARED_TESTDATA


@pytest.fixture(scope='session')
def router() -> Iterator[str]:
    """A real `stf router` on a free loopback port; ZENOH_ROUTER points every node at it."""
    try:
        endpoint, process = spawn_router()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    os.environ['ZENOH_ROUTER'] = endpoint  # for this process and the nodes tests start
    yield endpoint
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()


def foreign_peer_config(router: str) -> Any:
    """The Zenoh config of a peer written from WIRE.md alone (no code of this project): what a
    foreign node on the graph would use."""
    config = zenoh.Config()
    for key, value in {
        'mode': 'peer',
        'connect/endpoints': [router],
        'listen/endpoints': ['tcp/127.0.0.1:0'],
        'scouting/multicast/enabled': False,
        'timestamping/enabled': True,
    }.items():
        config.insert_json5(key, json.dumps(value))
    return config


class Processes:
    """Child processes started by a test; all are stopped (SIGINT, then SIGKILL) at its end."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def start(self, *argv: str, **kwargs: Any) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs
        )
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.started:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def processes() -> Iterator[Processes]:
    spawned = Processes()
    yield spawned
    spawned.stop_all()


def stf(*args: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the `stf` command line as a user would."""
    result = subprocess.run(
        [sys.executable, '-m', 'stf_nodes.cli', *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f'stf {" ".join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}'
        )
    return result


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('condition not met in time')
        time.sleep(interval)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How many cases each fuzz target ran (tests/fuzz/common.py counts them)."""
    from tests.fuzz.common import CASES, EXAMPLES

    if not CASES:
        return
    terminalreporter.section(f'fuzz cases (STF_FUZZ_EXAMPLES={EXAMPLES} per test)')
    for target, count in sorted(CASES.items()):
        terminalreporter.write_line(f'{target:<40} {count:>8}')
    terminalreporter.write_line(f'{"total":<40} {sum(CASES.values()):>8}')
