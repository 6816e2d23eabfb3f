"""How a benchmark hands its numbers to `python -m bench`: one line per metric.

Each benchmark prints its own table for a reader and, for every number a target applies to,
calls :func:`report`, which prints ``BENCH {json}`` on stdout. The runner (``bench/__main__``)
collects those lines from every benchmark it starts and prints one table: metric, value,
target, the baseline measured in the same run, their ratio and whether the target is met.
"""

from __future__ import annotations

import json
import math

PREFIX = 'BENCH '


def report(
    metric: str,
    value: float,
    unit: str,
    *,
    target: str = '',
    met: bool | None = None,
    baseline: float | None = None,
    baseline_name: str = '',
) -> None:
    """Print one result: ``metric`` = ``value`` ``unit``; ``target`` in words (``≥ 20,000``)
    with ``met`` judged by the benchmark; ``baseline`` measured in the same run (same unit)."""
    row = {
        'metric': metric,
        'value': value if math.isfinite(value) else None,
        'unit': unit,
        'target': target,
        'met': met,
        'baseline': baseline,
        'baseline_name': baseline_name,
    }
    print(PREFIX + json.dumps(row), flush=True)
