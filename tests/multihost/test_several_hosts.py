"""Factories on several hosts (marker ``multihost``; run with ``pytest -m multihost``).

Each host is a network namespace (see netns.py) with its own ``stf router`` — on its loopback
for its nodes and on its network address for the other routers, linked to the routers of the
hosts before it (``ZENOH_CONFIG_OVERRIDE``) — and its own factory (``stf launch --no-router``
under the namespace ``host_a``, ``host_b``). The schedulers and recorders share one PostgreSQL
server, each factory in its own database (one queue and one rack per factory), reached at the
bridge address through a relay to the root namespace's server. Shown: an order placed on host A
completes on host B's factory, the graph listed from any host holds both factories, and a router
killed with SIGKILL takes its factory off the other host's graph while the other factory carries
on; restarted, its factory is back and takes orders again. One Foxglove bridge (on host A,
listening on its network address) shows the topics of both factories. The times of each phase
are printed (``-s``). The ``secure`` variant runs it all on config/zenoh/secure.json5
(passwords, access control) with the routers linked by mutual TLS.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

from tests.conftest import unavailable, wait_until
from tests.multihost.netns import BRIDGE_ADDRESS, TcpForwarder, TestNetwork, netns_problem
from tests.security.certs import Authority

pytestmark = [pytest.mark.multihost, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
FACTORY = REPO / 'launch' / 'factory.launch.xml'
POSTGRES = ('127.0.0.1', 5432)
FACTORIES = ('host_a', 'host_b')
NODES = ('clock', 'hbw', 'vgr', 'conveyor', 'scheduler', 'recorder')
UP_TIMEOUT_S = 240.0
SUBPROTOCOLS = ['foxglove.sdk.v1', 'foxglove.websocket.v1']
COMPLETED = 2  # CommandStatus.COMPLETED in command_transitions
#: Every host runs its router on the default port of its own loopback, like a real machine.
HOST_ENV = {'ZENOH_ROUTER': 'tcp/127.0.0.1:7447', 'ZENOH_CONFIG_OVERRIDE': ''}


def override(settings: dict[str, Any]) -> str:
    """``ZENOH_CONFIG_OVERRIDE`` for ``settings``."""
    return ';'.join(f'{key}={json.dumps(value)}' for key, value in settings.items())


class Hosts:
    """The test network and the processes started on its hosts (killed at the end)."""

    def __init__(self, network: TestNetwork, logs: Path, databases: list[str]) -> None:
        self.network = network
        self.logs = logs
        self.databases = databases
        self.env = dict(HOST_ENV)  # of every process on every host
        self.link = 'tcp'  # how routers link: tcp, or tls (see secure())
        self.router_settings: dict[int, dict[str, Any]] = {0: {}, 1: {}}
        self.shared: dict[str, Any] = {}  # Zenoh settings of the routers and the nodes
        self.routers: dict[int, subprocess.Popen[bytes]] = {}
        self.started: list[subprocess.Popen[bytes]] = []

    def start(
        self, host: int, name: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = (self.logs / f'{name}.log').open('ab')
        process = subprocess.Popen(
            [*self.network.run_in(host), sys.executable, '-m', 'stf_nodes.cli', *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env, **(env or {})},
            start_new_session=True,
        )
        log.close()
        self.started.append(process)
        return process

    def start_router(self, host: int) -> None:
        """`stf router` on the host's loopback and address, linked to the hosts before it."""
        own = self.network.addresses[host]
        others = self.network.addresses[:host]  # one link per pair: to the hosts before it
        settings = {
            **self.shared,
            'listen/endpoints': ['tcp/127.0.0.1:7447', f'{self.link}/{own}:7447'],
            'connect/endpoints': [f'{self.link}/{address}:7447' for address in others],
            **self.router_settings[host],
        }
        self.routers[host] = self.start(
            host, f'router_{host}', 'router', env={'ZENOH_CONFIG_OVERRIDE': override(settings)}
        )
        log = self.logs / f'router_{host}.log'
        wait_until(lambda: 'listening on' in log.read_text(), timeout=60, interval=0.2)

    def secure(self) -> None:
        """Every process on config/zenoh/secure.json5 (passwords, access control), the routers
        linked by mutual TLS with certificates of a CA made here."""
        dictionary = self.logs / 'zenoh_users.txt'
        password = secrets.token_hex(8)
        dictionary.write_text(f'stf:{password}\n')
        dictionary.chmod(0o600)
        self.shared = {
            'transport/auth/usrpwd/dictionary_file': str(dictionary),
            'transport/auth/usrpwd/password': password,
        }
        config = str(REPO / 'config' / 'zenoh' / 'secure.json5')
        self.env = {
            **HOST_ENV,
            'ZENOH_ROUTER_CONFIG_URI': config,
            'ZENOH_SESSION_CONFIG_URI': config,
            'ZENOH_CONFIG_OVERRIDE': ';'.join(
                f'{k}={json.dumps(v)}' for k, v in self.shared.items()
            ),
        }
        self.link = 'tls'
        authority = Authority(self.logs / 'pki')
        for host, address in enumerate(self.network.addresses):
            pair = authority.issue(f'stf-router-{host}', address)
            self.router_settings[host] = {
                f'transport/link/tls/{key}': value
                for key, value in {
                    'root_ca_certificate': str(authority.ca.cert),
                    'enable_mtls': True,
                    'listen_certificate': str(pair.cert),
                    'listen_private_key': str(pair.key),
                    'connect_certificate': str(pair.cert),
                    'connect_private_key': str(pair.key),
                }.items()
            }

    def start_factory(self, host: int) -> None:
        url = f'postgresql+psycopg://postgres@{BRIDGE_ADDRESS}:5432/{self.databases[host]}'
        self.start(
            host, f'factory_{host}', 'launch', '--no-router', str(FACTORY),
            f'namespace:={FACTORIES[host]}', f'db_url:={url}', 'use_sim_time:=true',
            'time_scale:=20', 'enable_mqtt:=false', 'enable_foxglove:=false',
        )  # fmt: skip

    def stf(self, host: int, *args: str, timeout: float = 60) -> str:
        result = subprocess.run(
            [*self.network.run_in(host), sys.executable, '-m', 'stf_nodes.cli', *args],
            capture_output=True, text=True, timeout=timeout, env={**os.environ, **self.env},
        )  # fmt: skip
        return result.stdout + result.stderr

    def nodes_seen(self, host: int) -> set[str]:
        return set(self.stf(host, 'node', 'list').split())

    def stop(self) -> None:
        for process in self.started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGINT)
        for process in self.started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def factory_nodes(host: int) -> set[str]:
    return {f'/{FACTORIES[host]}/{node}' for node in NODES}


def completed_commands(database: str) -> int:
    with psycopg.connect(f'host={POSTGRES[0]} user=postgres dbname={database}') as connection:
        row = connection.execute(
            'SELECT count(*) FROM command_transitions WHERE status = %s', (COMPLETED,)
        ).fetchone()
        return int(row[0]) if row else 0


@contextlib.contextmanager
def databases(count: int) -> Iterator[list[str]]:
    """``count`` fresh databases on the shared PostgreSQL server, dropped afterwards."""
    names = [f'stf_multihost_{uuid.uuid4().hex[:8]}' for _ in range(count)]
    admin = f'host={POSTGRES[0]} user=postgres dbname=test'
    try:
        with psycopg.connect(admin, autocommit=True) as connection:
            for name in names:
                connection.execute(f'CREATE DATABASE {name}')
    except psycopg.OperationalError as exc:
        unavailable(f'PostgreSQL at {POSTGRES[0]}:{POSTGRES[1]}: {exc}')
    try:
        yield names
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            for name in names:
                connection.execute(f'DROP DATABASE IF EXISTS {name} WITH (FORCE)')


@pytest.fixture(params=['plain', 'secure'])
def hosts(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Hosts]:
    problem = netns_problem()
    if problem:
        unavailable(problem)
    started = time.monotonic()
    with databases(2) as names, TestNetwork(2) as network:
        relay = TcpForwarder((BRIDGE_ADDRESS, POSTGRES[1]), POSTGRES)
        print(f'\nnetwork and databases: {time.monotonic() - started:.2f} s')
        spawned = Hosts(network, tmp_path, names)
        if request.param == 'secure':
            spawned.secure()
        try:
            yield spawned
        finally:
            spawned.stop()
            relay.close()


def foxglove_topics(hosts: Hosts, host: int) -> set[str]:
    """The topics a Foxglove bridge on ``host`` (on its network address) advertises."""
    address, port = hosts.network.addresses[host], 8765
    hosts.start(
        host, 'foxglove', 'run', 'stf_digital_twin', 'foxglove_bridge_node', '--ros-args',
        '-p', f'address:={address}', '-p', f'port:={port}',
    )  # fmt: skip
    topics: set[str] = set()
    wanted = {f'/{factory}/stf/hbw/state' for factory in FACTORIES}

    def advertised() -> bool:
        with connect(f'ws://{address}:{port}', subprotocols=SUBPROTOCOLS, open_timeout=10) as ws:
            deadline = time.monotonic() + 10
            while not wanted <= topics and time.monotonic() < deadline:
                message = ws.recv(timeout=max(deadline - time.monotonic(), 0.1))
                if isinstance(message, str) and json.loads(message)['op'] == 'advertise':
                    topics.update(channel['topic'] for channel in json.loads(message)['channels'])
        return wanted <= topics

    def ready() -> bool:
        try:
            return advertised()
        except (OSError, TimeoutError, WebSocketException):
            return False

    wait_until(ready, timeout=UP_TIMEOUT_S, interval=1.0)
    return topics


def place_order(hosts: Hosts, on: int, factory: int) -> None:
    """ProcessOrder from host ``on`` to the factory of host ``factory``, until accepted."""
    service = f'/{FACTORIES[factory]}/stf/order/process'
    wait_until(
        lambda: 'accepted: true'
        in hosts.stf(on, 'service', 'call', service, 'stf_msgs/srv/ProcessOrder', '{}'),
        timeout=UP_TIMEOUT_S, interval=1.0,
    )  # fmt: skip


def test_factories_on_two_hosts(hosts: Hosts) -> None:
    clock = time.monotonic()

    def lap(what: str) -> None:
        nonlocal clock
        print(f'{what}: {time.monotonic() - clock:.1f} s')
        clock = time.monotonic()

    for host in (0, 1):
        hosts.start_router(host)
    lap('two routers up')
    for host in (0, 1):
        hosts.start_factory(host)
    everything = factory_nodes(0) | factory_nodes(1)
    for host in (0, 1):  # the graph is the same from either host
        wait_until(lambda h=host: everything <= hosts.nodes_seen(h), timeout=UP_TIMEOUT_S)
    lap('both factories on the graph of both hosts')
    assert {f'/{f}/stf/hbw/state' for f in FACTORIES} <= foxglove_topics(hosts, host=0)
    lap("one Foxglove bridge on host A shows both factories' topics")

    place_order(hosts, on=0, factory=1)  # placed on host A, run by host B's factory
    wait_until(lambda: completed_commands(hosts.databases[1]) == 1, timeout=UP_TIMEOUT_S)
    assert completed_commands(hosts.databases[0]) == 0
    lap('order from host A completed on host B')

    hosts.routers[1].send_signal(signal.SIGKILL)
    hosts.routers[1].wait()
    wait_until(lambda: not (factory_nodes(1) & hosts.nodes_seen(0)), timeout=60)
    lap("host B's router killed: its factory left host A's graph")
    assert factory_nodes(0) <= hosts.nodes_seen(0)
    place_order(hosts, on=0, factory=0)  # host A carries on
    wait_until(lambda: completed_commands(hosts.databases[0]) == 1, timeout=UP_TIMEOUT_S)
    lap('meanwhile an order completed on host A')

    hosts.start_router(1)
    wait_until(lambda: everything <= hosts.nodes_seen(0), timeout=UP_TIMEOUT_S)
    lap("host B's router restarted: its factory back on host A's graph")
    place_order(hosts, on=0, factory=1)
    wait_until(lambda: completed_commands(hosts.databases[1]) == 2, timeout=UP_TIMEOUT_S)
    lap('a second order from host A completed on host B')
