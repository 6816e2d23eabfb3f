"""The long fault runs (marker ``faults_long``) run only when ``-m faults`` selects them."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if 'faults' in (config.option.markexpr or ''):
        return
    skip = pytest.mark.skip(reason='a long fault run: select it with -m faults')
    for item in items:
        if item.get_closest_marker('faults_long'):
            item.add_marker(skip)
