"""ROS names and their rmw_zenoh spellings: key expressions, liveliness tokens, GIDs.

Formats (rmw_zenoh `liveliness_utils.cpp`, `docs/design.md`):
- data key: `<domain>/<name without leading slash>/<dds type>/<RIHS01 hash>`
- node token: `@ros2_lv/<domain>/<zid>/<nid>/<nid>/NN/<enclave>/<namespace>/<node>`
- endpoint token: `@ros2_lv/<domain>/<zid>/<nid>/<eid>/<MP|MS|SS|SC>/<enclave>/<namespace>/`
  `<node>/<name>/<dds type>/<hash>/<qos>`
- names inside tokens are mangled: every `/` becomes `%`; an empty value becomes `%`.
- an entity GID is the XXH3-128 of its liveliness key (low 64 bits, then high 64 bits).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import xxhash

from stf_nodes.runtime.qos import QoSProfile

LIVELINESS_PREFIX = '@ros2_lv'
NODE = 'NN'
PUBLISHER = 'MP'
SUBSCRIPTION = 'MS'
SERVICE = 'SS'
CLIENT = 'SC'

_NAME_TOKEN = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')


class InvalidNameError(ValueError):
    """An invalid node, namespace, topic or service name."""


def validate_node_name(name: str) -> str:
    if not _NAME_TOKEN.match(name):
        raise InvalidNameError(
            f'invalid node name {name!r}: use letters, digits and underscores, '
            'not starting with a digit'
        )
    return name


def normalize_namespace(namespace: str) -> str:
    """'' → '/', 'a/b' → '/a/b', '/a/' → '/a'; validates every token."""
    stripped = namespace.strip('/')
    if not stripped:
        return '/'
    for token in stripped.split('/'):
        if not _NAME_TOKEN.match(token):
            raise InvalidNameError(f'invalid namespace {namespace!r}: bad token {token!r}')
    return '/' + stripped


def resolve_name(name: str, *, namespace: str, node_name: str) -> str:
    """Expand a topic or service name to a fully qualified name, as rcl does.

    `/x` is absolute, `~/x` is private to the node, `x` is relative to the namespace.
    """
    if not name:
        raise InvalidNameError('empty topic or service name')
    if name.startswith('~'):
        base = namespace.rstrip('/') + '/' + node_name
        full = base + name[1:]
    elif name.startswith('/'):
        full = name
    else:
        full = namespace.rstrip('/') + '/' + name
    tokens = full.strip('/').split('/')
    if full.endswith('/') or not all(_NAME_TOKEN.match(t) for t in tokens):
        raise InvalidNameError(
            f'invalid topic or service name {name!r}: tokens must be letters, digits and '
            'underscores, not starting with a digit, separated by single slashes'
        )
    return '/' + '/'.join(tokens)


def mangle(name: str) -> str:
    return name.replace('/', '%') if name else '%'


def unmangle(token: str) -> str:
    return token.replace('%', '/')


def data_keyexpr(domain_id: int, name: str, dds_type: str, type_hash: str) -> str:
    return f'{domain_id}/{name.strip("/")}/{dds_type}/{type_hash}'


def node_token(
    *, domain_id: int, zid: str, node_id: int, enclave: str, namespace: str, node_name: str
) -> str:
    return (
        f'{LIVELINESS_PREFIX}/{domain_id}/{zid}/{node_id}/{node_id}/{NODE}/{mangle(enclave)}/'
        f'{mangle(namespace if namespace != "/" else "")}/{node_name}'
    )


def endpoint_token(
    *,
    domain_id: int,
    zid: str,
    node_id: int,
    entity_id: int,
    kind: str,
    enclave: str,
    namespace: str,
    node_name: str,
    name: str,
    dds_type: str,
    type_hash: str,
    qos: QoSProfile,
) -> str:
    return (
        f'{LIVELINESS_PREFIX}/{domain_id}/{zid}/{node_id}/{entity_id}/{kind}/{mangle(enclave)}/'
        f'{mangle(namespace if namespace != "/" else "")}/{node_name}/{mangle(name)}/'
        f'{dds_type}/{type_hash}/{qos.to_keyexpr()}'
    )


def gid_of(token: str) -> bytes:
    """The 16-byte GID rmw_zenoh derives from a liveliness key."""
    digest = xxhash.xxh3_128_intdigest(token.encode())
    return (digest & (2**64 - 1)).to_bytes(8, 'little') + (digest >> 64).to_bytes(8, 'little')


@dataclass(frozen=True)
class Token:
    """A parsed liveliness token: one node or one endpoint of the graph."""

    zid: str
    node_id: int
    entity_id: int
    kind: str
    enclave: str
    namespace: str
    node_name: str
    name: str = ''
    dds_type: str = ''
    type_hash: str = ''
    qos: str = ''
    key: str = field(default='', compare=False)  # the liveliness key itself (GIDs derive from it)

    @property
    def node_fqn(self) -> str:
        return self.namespace.rstrip('/') + '/' + self.node_name

    @property
    def type_name(self) -> str:
        """`pkg::msg::dds_::Name_` → `pkg/msg/Name`."""
        pkg, kind, _, short = self.dds_type.split('::')
        return f'{pkg}/{kind}/{short[:-1]}'


def parse_token(key: str) -> Token | None:
    """Parse a liveliness key; None for keys that are not rmw_zenoh graph tokens."""
    parts = key.split('/')
    if len(parts) < 9 or parts[0] != LIVELINESS_PREFIX:
        return None
    try:
        node_id, entity_id = int(parts[3]), int(parts[4])
    except ValueError:
        return None
    kind = parts[5]
    namespace = unmangle(parts[7]) if parts[7] != '%' else '/'
    common: dict[str, Any] = {
        'key': key,
        'zid': parts[2],
        'node_id': node_id,
        'entity_id': entity_id,
        'kind': kind,
        'enclave': unmangle(parts[6]) if parts[6] != '%' else '',
        'namespace': namespace,
        'node_name': parts[8],
    }
    if kind == NODE and len(parts) == 9:
        return Token(**common)
    if kind in (PUBLISHER, SUBSCRIPTION, SERVICE, CLIENT) and len(parts) == 13:
        return Token(
            **common,
            name=unmangle(parts[9]),
            dds_type=parts[10],
            type_hash=parts[11],
            qos=parts[12],
        )
    return None
