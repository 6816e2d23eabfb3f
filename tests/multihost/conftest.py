"""The several-hosts tests (marker ``multihost``) run only when ``-m multihost`` selects them:
they need root and take minutes."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if 'multihost' in (config.option.markexpr or ''):
        return
    skip = pytest.mark.skip(reason='several hosts in network namespaces: select with -m multihost')
    for item in items:
        if item.get_closest_marker('multihost'):
            item.add_marker(skip)
