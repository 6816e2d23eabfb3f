"""`stf router`: a Zenoh router for the graph, configured like rmw_zenoh's `rmw_zenohd`.

It listens on `ZENOH_ROUTER` (default `tcp/127.0.0.1:7447`), with multicast scouting off,
gossip on and `peers_failover_brokering` off (peers connect to each other directly), and runs
until SIGINT or SIGTERM.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
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


def spawn_router(*, timeout_s: float = 10.0) -> tuple[str, subprocess.Popen[bytes]]:
    """Start `stf router` on a free loopback port for tests and benchmarks.

    Points `ZENOH_ROUTER` of this process (and so of its children) at it and returns the
    endpoint and the process once it accepts connections; raises RuntimeError otherwise.
    Stop it with SIGINT.
    """
    endpoint = f'tcp/127.0.0.1:{free_port()}'
    os.environ['ZENOH_ROUTER'] = endpoint
    process = subprocess.Popen(
        [sys.executable, '-m', 'stf_nodes.cli', 'router'],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + timeout_s
    while not is_listening(endpoint):
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            output = process.communicate()[0].decode(errors='replace')
            raise RuntimeError(f'stf router did not start on {endpoint}: {output}')
        time.sleep(0.05)
    return endpoint, process


def run_router() -> int:
    endpoint = router_endpoint()
    if is_listening(endpoint):
        print(f'stf router: {endpoint} is already in use (is a router running?)', file=sys.stderr)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        session = zenoh.open(session_config(mode='router', listen=[endpoint], connect=[]))
    except zenoh.ZError as exc:
        print(f'stf router: cannot listen on {endpoint}: {exc}', file=sys.stderr)
        return 1
    print(f'stf router: listening on {endpoint} (zid {session.zid()})', flush=True)
    stop.wait()
    session.close()
    return 0
