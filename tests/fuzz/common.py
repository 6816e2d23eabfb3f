"""What every fuzz test shares: the hypothesis settings, the case counter and the strategies
that build valid messages of any project type.

The default run is small (``make test``); ``STF_FUZZ_EXAMPLES=N`` raises the number of cases
per test for a long run (``STF_FUZZ_EXAMPLES=2000 pytest -m fuzz tests/fuzz``). The count
of cases each target ran is printed at the end of the session.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from rosbags.typesys.base import Nodetype

from stf_nodes import interfaces

EXAMPLES = int(os.environ.get('STF_FUZZ_EXAMPLES', '10'))

#: Applied to every fuzz test; a long run (more examples) explores at random, the default
#: run is derandomized so that ``make test`` cannot flake on a case it never met before.
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize='STF_FUZZ_EXAMPLES' not in os.environ,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Cases run per target (printed by the conftest at the end of the session).
CASES: Counter[str] = Counter()

#: Strings hostile to SQL, shells, paths, terminals and decoders.
HOSTILE_TEXT = [
    "'; DROP TABLE commands;--",
    '" OR 1=1 --',
    '$(touch /tmp/stf-pwned) `id` ; rm -rf / | cat &',
    '../../etc/passwd',
    '/etc/passwd',
    'a\x00b',
    '\x1b[2J\x1b[31mred',
    '\ud800',
    '{{ }} %s %n {0}',
    'x' * 100_000,
    '',
    ' ',
    '\u202e\u0000\ufeff',
]
hostile_text = st.sampled_from(HOSTILE_TEXT) | st.text(max_size=300)
hostile_float = st.sampled_from([float('nan'), float('inf'), -float('inf'), -1e308, -1.0, 0.0])
hostile_float |= st.floats()
hostile_int = st.sampled_from([-1, 0, -(2**31), 2**31 - 1, 2**63 - 1, -(2**63)]) | st.integers()

#: Standard types the project publishes or serves besides its own and the services in
#: the store (every nested type is reached through them).
STANDARD_TOPIC_TYPES = [
    'rcl_interfaces/msg/Log',
    'rcl_interfaces/msg/ParameterEvent',
    'rosgraph_msgs/msg/Clock',
    'diagnostic_msgs/msg/DiagnosticArray',
    'tf2_msgs/msg/TFMessage',
]


def project_types() -> list[str]:
    """Every message type on the project's wire: its own messages, the standard topics it
    uses, and the request, response and event message of every service it serves."""
    own = [name for name in interfaces.list_interfaces() if name.startswith('stf_msgs/msg/')]
    services = [
        f'{name}_{part}'
        for name in sorted(interfaces._service_names())
        for part in ('Request', 'Response', 'Event')
    ]
    return own + STANDARD_TOPIC_TYPES + services


_BASE_FLOATS = {'float32': 32, 'float64': 64}


def _field_data(desc: Any) -> st.SearchStrategy[Any]:
    kind, rest = desc
    if kind == Nodetype.NAME:
        return message_data(rest)
    if kind == Nodetype.BASE:
        base, bound = rest
        if base == 'string':
            # ROS strings are NUL-terminated UTF-8: no NUL, no lone surrogate.
            alphabet = st.characters(blacklist_categories=('Cs',), blacklist_characters='\x00')
            return st.text(alphabet, max_size=bound or 12)
        if base == 'bool':
            return st.booleans()
        if base in _BASE_FLOATS:
            return st.floats(width=_BASE_FLOATS[base])
        low, high = interfaces._INT_RANGES[base]
        return st.integers(low, high)
    sub, length = rest
    items = _field_data(sub)
    if kind == Nodetype.ARRAY:
        return st.lists(items, min_size=length, max_size=length)
    return st.lists(items, max_size=min(length, 3) if length else 3)


def message_data(name: str) -> st.SearchStrategy[dict[str, Any]]:
    """Plain data (as `interfaces.from_data` takes it) of a valid message of type ``name``."""
    _, fields = interfaces._store().fielddefs[name]
    return st.fixed_dictionaries(
        {field: st.deferred(lambda d=desc: _field_data(d)) for field, desc in fields}
    )
