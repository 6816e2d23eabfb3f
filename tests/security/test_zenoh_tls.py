"""Routers linked over TLS, and mutual TLS, with certificates made at test time.

Router A listens on loopback TCP for its own nodes and on ``tls/localhost`` for other routers,
requiring a client certificate of its CA (mutual TLS). Router B links to it over TLS with such a
certificate. A sample published by a client of A reaches a client of B, so the TLS link
carries the graph. On A's TLS port, a session that presents no certificate, or one from
another CA, or that trusts another CA than A's, gets no link.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import zenoh

from stf_nodes.runtime.router import free_port
from tests.conftest import wait_until
from tests.security.certs import Authority, Pair


def tls_settings(ca: Path, pair: Pair | None, side: str) -> dict[str, Any]:
    """TLS keys of a Zenoh config; ``side`` is listen or connect."""
    settings: dict[str, Any] = {'transport/link/tls/root_ca_certificate': str(ca)}
    if pair is not None:
        settings[f'transport/link/tls/{side}_certificate'] = str(pair.cert)
        settings[f'transport/link/tls/{side}_private_key'] = str(pair.key)
        # A connecting side sends its certificate only with enable_mtls (Zenoh 1.6).
        settings['transport/link/tls/enable_mtls'] = True
    return settings


def override(settings: dict[str, Any]) -> str:
    return ';'.join(f'{key}={json.dumps(value)}' for key, value in settings.items())


def client(endpoint: str, extra: dict[str, Any] | None = None) -> zenoh.Session:
    config = zenoh.Config()
    settings = {
        'mode': 'client',
        'connect/endpoints': [endpoint],
        'scouting/multicast/enabled': False,
        **(extra or {}),
    }
    for key, value in settings.items():
        config.insert_json5(key, json.dumps(value))
    return zenoh.open(config)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Any]:
    ours = Authority(tmp_path / 'ours')
    other = Authority(tmp_path / 'other', 'other-ca')
    return {
        'ca': ours.ca.cert,
        'a': ours.issue('stf-router-a'),
        'b': ours.issue('stf-router-b'),
        'other_ca': other.ca.cert,
        'stranger': other.issue('stranger'),
    }


def start_router(processes: Any, settings: dict[str, Any]) -> str:
    env = {**os.environ, 'ZENOH_CONFIG_OVERRIDE': override(settings)}
    env.pop('ZENOH_ROUTER_CONFIG_URI', None)
    router = processes.start(sys.executable, '-m', 'stf_nodes.cli', 'router', env=env)
    said = router.stdout.readline()
    assert 'listening on' in said, said
    return str(said)


def test_routers_linked_by_mutual_tls(processes: Any, pki: dict[str, Any]) -> None:
    tcp_a, tcp_b = f'tcp/127.0.0.1:{free_port()}', f'tcp/127.0.0.1:{free_port()}'
    tls_a = f'tls/localhost:{free_port()}'
    said = start_router(
        processes,
        {
            'listen/endpoints': [tcp_a, tls_a],
            **tls_settings(pki['ca'], pki['a'], 'listen'),
        },
    )
    assert tls_a in said
    said = start_router(
        processes,
        {
            'listen/endpoints': [tcp_b],
            'connect/endpoints': [tls_a],
            **tls_settings(pki['ca'], pki['b'], 'connect'),
        },
    )
    assert f'connects to {tls_a}' in said

    publisher, subscriber = client(tcp_a), client(tcp_b)
    try:
        heard: list[bytes] = []
        subscriber.declare_subscriber('stf/tls/**', lambda s: heard.append(s.payload.to_bytes()))

        def arrived() -> bool:
            publisher.put('stf/tls/probe', b'over tls')
            return bool(heard)

        wait_until(arrived, timeout=30, interval=0.2)
        assert heard[0] == b'over tls'
    finally:
        publisher.close()
        subscriber.close()

    def linked(settings: dict[str, Any]) -> bool:
        try:
            session = client(tls_a, {'connect/timeout_ms': 3000, **settings})
        except zenoh.ZError:
            return False
        try:
            return bool(list(session.info.routers_zid()))
        finally:
            session.close()

    assert linked(tls_settings(pki['ca'], pki['b'], 'connect'))  # the control
    assert not linked(tls_settings(pki['ca'], None, 'connect'))  # no client certificate
    assert not linked(tls_settings(pki['ca'], pki['stranger'], 'connect'))  # another CA's
    assert not linked(tls_settings(pki['other_ca'], pki['b'], 'connect'))  # A not trusted
