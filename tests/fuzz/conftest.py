"""Prints how many cases each fuzz target ran."""

from __future__ import annotations

from typing import Any

from tests.fuzz.common import CASES, EXAMPLES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not CASES:
        return
    terminalreporter.section(f'fuzz cases (STF_FUZZ_EXAMPLES={EXAMPLES} per test)')
    for target, count in sorted(CASES.items()):
        terminalreporter.write_line(f'{target:<40} {count:>8}')
    terminalreporter.write_line(f'{"total":<40} {sum(CASES.values()):>8}')
