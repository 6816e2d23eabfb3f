"""`stf router`: a Zenoh router for the graph, configured like rmw_zenoh's `rmw_zenohd`.

It listens on `ZENOH_ROUTER` (default `tcp/127.0.0.1:7447`: loopback only), with multicast
scouting off, gossip on and `peers_failover_brokering` off (peers connect to each other
directly), and runs until SIGINT or SIGTERM. `ZENOH_ROUTER_CONFIG_URI` names a json5 config to
use instead and `ZENOH_CONFIG_OVERRIDE` changes single keys (see `session_config`): that is
how a router listens on a network address, links to the routers of other hosts, uses TLS and
enforces access control. At start-up it prints where it listens, which routers it connects to
and whether access control is on; Zenoh's warnings (a refused TLS link, a wrong password) go
to stderr (`RUST_LOG` sets the level).

`router_problem` is the one diagnosis of a router endpoint that every command prints (nodes,
`stf node list`, `stf router`, `stf launch`, `stf doctor`): nothing listens there, or
something listens that is not a Zenoh router (no Zenoh handshake).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import zenoh

from stf_nodes.runtime.context import router_endpoint, session_config


def endpoint_address(endpoint: str) -> tuple[str, int]:
    """`tcp/127.0.0.1:7447` → ('127.0.0.1', 7447)."""
    _, _, address = endpoint.partition('/')
    host, _, port = address.rpartition(':')
    return host.strip('[]'), int(port)


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (for routers of tests and benchmarks)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


def is_listening(endpoint: str, timeout_s: float = 0.5) -> bool:
    """True when something accepts TCP connections on the endpoint."""
    try:
        with socket.create_connection(endpoint_address(endpoint), timeout=timeout_s):
            return True
    except OSError:
        return False


#: What to do when something else holds the router's port.
FOREIGN_LISTENER_HINT = 'stop what listens there or set ZENOH_ROUTER to another port'


def listener_conflict(endpoint: str, server: str, hint: str) -> str:
    """The message for a port held by something that is not the expected server."""
    return f'{endpoint} is in use, but not by a {server} (no handshake); {hint}'


def zenoh_router_answers(endpoint: str, timeout: float = 2.0) -> bool:
    """True when a Zenoh router completes a client handshake on ``endpoint`` within ``timeout``.

    Something that accepts TCP connections is not necessarily a router: a foreign service on
    the port, or a half-dead router, would otherwise only show up as every node failing.
    """
    config = session_config()  # the nodes' own settings: credentials, TLS (secure.json5)
    settings = {
        'mode': 'client',
        'listen/endpoints': [],
        'connect/endpoints': [endpoint],
        'connect/timeout_ms': round(timeout * 1000),
        'transport/unicast/open_timeout': round(timeout * 1000),
        'scouting/multicast/enabled': False,
    }
    for key, value in settings.items():
        config.insert_json5(key, json.dumps(value))
    try:
        session = zenoh.open(config)
    except zenoh.ZError:
        return False
    try:
        return bool(list(session.info.routers_zid()))
    finally:
        session.close()


def router_problem(endpoint: str) -> str | None:
    """None when a Zenoh router answers on ``endpoint``; otherwise what is wrong there."""
    if not is_listening(endpoint):
        return f'no Zenoh router reachable at {endpoint}'
    if zenoh_router_answers(endpoint):
        return None
    return listener_conflict(endpoint, 'Zenoh router', FOREIGN_LISTENER_HINT)


def spawn_router(*, timeout_s: float = 30.0) -> tuple[str, subprocess.Popen[bytes]]:
    """Start `stf router` on a free loopback port (for tests, benchmarks and scripts).

    Returns the endpoint and the process once it accepts connections; the caller points its
    nodes at it (``ZENOH_ROUTER``: nothing here touches the environment). The router's output
    goes to a temporary file, never to a pipe nobody reads (a full pipe would stall it), and
    is quoted in the RuntimeError raised when it does not start. Stop it with SIGINT.
    """
    endpoint = f'tcp/127.0.0.1:{free_port()}'
    with tempfile.TemporaryFile() as output:  # the process keeps its own copy open
        process = subprocess.Popen(
            [sys.executable, '-m', 'stf_nodes.cli', 'router'],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, 'ZENOH_ROUTER': endpoint},
        )
        deadline = time.monotonic() + timeout_s
        while not is_listening(endpoint):
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                process.wait()
                output.seek(0)
                said = output.read().decode(errors='replace')
                raise RuntimeError(f'stf router did not start on {endpoint}: {said}')
            time.sleep(0.05)
    return endpoint, process


def endpoints_of(config: zenoh.Config, key: str) -> list[str]:
    """The endpoints under ``key`` of a router config (a list, or a list per mode)."""
    value = json.loads(config.get_json(key))
    if isinstance(value, dict):
        value = value.get('router', [])
    return [str(endpoint) for endpoint in value or []]


def run_router() -> int:
    endpoint = router_endpoint()
    try:
        config = session_config(mode='router', listen=[endpoint], connect=[])
    except (ValueError, zenoh.ZError) as exc:
        print(f'stf router: bad configuration: {exc}', file=sys.stderr)
        return 1
    listen = endpoints_of(config, 'listen/endpoints')
    for address in listen:
        if address.startswith('tcp/') and is_listening(address):
            problem = router_problem(address)
            if problem is None:
                problem = f'a Zenoh router already runs on {address}; the graph can use it as it is'
            print(f'stf router: {problem}', file=sys.stderr)
            return 1
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    zenoh.init_log_from_env_or('warn')  # a refused link (TLS, password) says why; RUST_LOG
    try:
        session = zenoh.open(config)
    except zenoh.ZError as exc:
        print(f'stf router: cannot listen on {", ".join(listen)}: {exc}', file=sys.stderr)
        return 1
    links = endpoints_of(config, 'connect/endpoints')
    acl = json.loads(config.get_json('access_control/enabled'))
    print(
        f'stf router: listening on {", ".join(listen)} (zid {session.zid()})'
        + (f', connects to {", ".join(links)}' if links else '')
        + (', access control on' if acl else ''),
        flush=True,
    )
    stop.wait()
    session.close()
    return 0
