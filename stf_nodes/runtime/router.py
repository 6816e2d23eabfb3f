"""`stf router`: a Zenoh router for the graph, configured like rmw_zenoh's `rmw_zenohd`.

It listens on `ZENOH_ROUTER` (default `tcp/127.0.0.1:7447`), with multicast scouting off,
gossip on and `peers_failover_brokering` off (peers connect to each other directly), and runs
until SIGINT or SIGTERM.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading

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
