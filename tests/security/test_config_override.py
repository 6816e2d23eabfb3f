"""``ZENOH_CONFIG_OVERRIDE``: applied to node and router configs, bad entries are clear errors
that never quote a secret."""

from __future__ import annotations

import json

import pytest

from stf_nodes.runtime.context import session_config


def test_overrides_apply_to_nodes_and_routers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv('ZENOH_SESSION_CONFIG_URI', raising=False)
    monkeypatch.delenv('ZENOH_ROUTER_CONFIG_URI', raising=False)
    links = ['tcp/198.51.100.2:7447', 'tcp/198.51.100.3:7447']
    monkeypatch.setenv(
        'ZENOH_CONFIG_OVERRIDE',
        f' connect/endpoints={json.dumps(links)} ; ;transport/auth/usrpwd/user="stf"',
    )
    for mode in ('peer', 'router'):
        config = session_config(mode=mode)
        assert json.loads(config.get_json('connect/endpoints')) == links
        assert json.loads(config.get_json('transport/auth/usrpwd/user')) == 'stf'
        assert json.loads(config.get_json('listen/endpoints'))[0].startswith('tcp/127.0.0.1:')


@pytest.mark.parametrize(
    ('override', 'message', 'secret'),
    [
        ('connect/endpoints', 'expected key=value', None),
        ('=1', 'expected key=value', None),
        ('mode=7', r'mode takes a json5 value of its type \(.*integer', None),
        ('transport/auth/usrpwd/password=hunter2', r'password .*\(value not shown\)', 'hunter2'),
        ('transport/link/tls/listen_private_key=12', r'\(value not shown\)', '12'),
    ],
)
def test_bad_overrides_are_clear_and_quote_no_secret(
    monkeypatch: pytest.MonkeyPatch, override: str, message: str, secret: str | None
) -> None:
    monkeypatch.setenv('ZENOH_CONFIG_OVERRIDE', override)
    with pytest.raises(ValueError, match=message) as error:
        session_config()
    if secret is not None:
        assert secret not in str(error.value)
