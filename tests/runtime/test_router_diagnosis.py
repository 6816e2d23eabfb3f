"""A port held by something that is not a Zenoh router: every command says so, in the same
words (`stf node list`, `stf router`, `stf doctor`; `stf launch` in test_launch_e2e). Nodes
open their context as `stf node list` does and print the same line as `[FATAL] ...`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from stf_nodes.runtime.router import free_port, is_listening, spawn_router


@pytest.fixture
def foreign_endpoint() -> Iterator[str]:
    """A TCP server that accepts connections and answers garbage: not a Zenoh router."""
    server = socket.socket()
    server.bind(('127.0.0.1', free_port()))
    server.listen()
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        held = []
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            connection.sendall(b'HTTP/1.0 400 Bad Request\r\n\r\n')
            held.append(connection)
        for connection in held:
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f'tcp/127.0.0.1:{server.getsockname()[1]}'
    stop.set()
    thread.join(timeout=2)
    server.close()


def run(endpoint: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, 'ZENOH_ROUTER': endpoint, 'ZENOH_ROUTER_CHECK_ATTEMPTS': '1'}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)


def test_one_diagnosis_everywhere(foreign_endpoint: str) -> None:
    expected = (
        f'{foreign_endpoint} is in use, but not by a Zenoh router (no handshake); '
        'stop what listens there or set ZENOH_ROUTER to another port'
    )
    stf = [sys.executable, '-m', 'stf_nodes.cli']
    listing = run(foreign_endpoint, *stf, 'node', 'list')
    assert listing.returncode == 1
    assert listing.stderr == f'stf: {expected}\n'
    router = run(foreign_endpoint, *stf, 'router')
    assert router.returncode == 1
    assert router.stderr == f'stf router: {expected}\n'
    doctor = run(foreign_endpoint, *stf, 'doctor')
    assert doctor.returncode == 1
    assert f'[FAIL] router: {expected}' in doctor.stdout.splitlines()


def test_spawn_router_leaves_the_environment_alone() -> None:
    before = os.environ.get('ZENOH_ROUTER')
    endpoint, process = spawn_router()
    try:
        assert os.environ.get('ZENOH_ROUTER') == before
        assert is_listening(endpoint)
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
