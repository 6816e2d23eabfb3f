"""Every server binds to loopback by default and says where it listens; Foxglove over TLS.

The servers: `stf router`, the Foxglove bridge node (its WebSocket server and its Zenoh
session) and the embedded MQTT broker. Each is started with its defaults (only a free port
given, as a shared machine needs), its start-up output must name the address, and every TCP
socket the process listens on (``ss``) must be on 127.0.0.1 or ::1.
"""

from __future__ import annotations

import json
import re
import shutil
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

from stf_nodes.runtime.router import free_port
from tests.conftest import unavailable, wait_until
from tests.security.certs import Authority

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SUBPROTOCOLS = ['foxglove.sdk.v1', 'foxglove.websocket.v1']


def listening_addresses(pid: int) -> list[str]:
    """The local addresses of the TCP sockets ``pid`` listens on."""
    if shutil.which('ss') is None:
        unavailable('the ss command (iproute2) is not installed')
    out = subprocess.run(['ss', '-Hltnp'], capture_output=True, text=True, timeout=10).stdout
    return [line.split()[3] for line in out.splitlines() if f'pid={pid},' in line]


def read_until(process: Any, pattern: str, timeout: float = 60) -> str:
    """Lines of the process's output up to the first that matches ``pattern``."""
    said: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        said.append(line)
        if re.search(pattern, line):
            return ''.join(said)
    raise AssertionError(f'no line matching {pattern!r} in:\n{"".join(said)}')


def bridge(port: int, *ros_args: str) -> list[str]:
    return [str(BIN / 'foxglove_bridge_node'), '--ros-args', '-p', f'port:={port}', *ros_args]


@pytest.mark.parametrize('server', ['router', 'foxglove', 'mqtt broker'])
def test_server_listens_on_loopback_and_says_where(
    server: str, router: str, processes: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    if server == 'router':
        monkeypatch.setenv('ZENOH_ROUTER', f'tcp/127.0.0.1:{port}')  # the default but the port
        process = processes.start(sys.executable, '-m', 'stf_nodes.cli', 'router')
    elif server == 'foxglove':
        process = processes.start(*bridge(port))
    else:
        module = 'stf_nodes.bridges.embedded_broker'
        process = processes.start(sys.executable, '-m', module, '--port', str(port))
    said = read_until(process, rf'listening on \S*127\.0\.0\.1:{port}')
    addresses = wait_until(lambda: listening_addresses(process.pid), timeout=20)
    assert any(address.endswith(f':{port}') for address in addresses), addresses
    for address in addresses:
        assert re.fullmatch(r'(127\.0\.0\.1|\[::1\]):\d+', address), (address, said)


@pytest.fixture(scope='module')
def pki(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return Authority(tmp_path_factory.mktemp('pki'))


def test_foxglove_serves_wss_only_with_tls(router: str, processes: Any, pki: Authority) -> None:
    pair = pki.issue('localhost')
    port = free_port()
    process = processes.start(
        *bridge(port, '-p', f'tls.cert_file:={pair.cert}', '-p', f'tls.key_file:={pair.key}')
    )
    read_until(process, rf'listening on wss://127\.0\.0\.1:{port}')
    context = ssl.create_default_context(cafile=str(pki.ca.cert))
    with connect(
        f'wss://localhost:{port}', ssl=context, subprotocols=SUBPROTOCOLS, open_timeout=20
    ) as ws:
        info = json.loads(ws.recv(timeout=20))
    assert info['op'] == 'serverInfo' and info['name'] == 'stf_digital_twin'
    with pytest.raises((WebSocketException, OSError)):  # plain ws:// gets no session
        connect(f'ws://localhost:{port}', subprotocols=SUBPROTOCOLS, open_timeout=5).recv(5)
    untrusted = ssl.create_default_context()  # the system CAs do not know this server
    with pytest.raises(ssl.SSLCertVerificationError):
        connect(f'wss://localhost:{port}', ssl=untrusted, open_timeout=20)


@pytest.mark.parametrize(
    ('settings', 'message'),
    [
        (['tls.cert_file:={cert}'], 'tls.cert_file and tls.key_file go together'),
        (['tls.cert_file:={cert}', 'tls.key_file:=/nonexistent/key.pem'], 'cannot read'),
        (['tls.cert_file:={key}', 'tls.key_file:={key}'], r'TLS.*check the tls\.\* parameters'),
    ],
)
def test_foxglove_tls_misconfigured_is_a_clear_error(
    router: str, pki: Authority, settings: list[str], message: str
) -> None:
    pair = pki.issue('localhost')
    ros_args = []
    for setting in settings:
        ros_args += ['-p', setting.format(cert=pair.cert, key=pair.key)]
    result = subprocess.run(
        bridge(free_port(), *ros_args), capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert re.search(message, result.stdout + result.stderr), result.stdout + result.stderr
    assert 'PRIVATE KEY' not in result.stdout + result.stderr  # the key is never printed
