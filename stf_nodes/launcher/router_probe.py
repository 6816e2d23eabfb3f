"""Whether a TCP listener is a Zenoh router: a short client-mode Zenoh handshake.

``stf launch`` reuses whatever listens on the router endpoint; without this check a foreign
service on that port (or a half-dead router) would only show up as every node failing, and
respawning, after its own router wait.
"""

from __future__ import annotations

import json

import zenoh


def zenoh_router_answers(endpoint: str, timeout: float = 2.0) -> bool:
    """True when a Zenoh router completes a client handshake on ``endpoint`` within ``timeout``."""
    config = zenoh.Config()
    settings = {
        'mode': 'client',
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
