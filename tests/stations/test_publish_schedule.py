"""The station's state and diagnostics outputs keep their average rate whatever the physics
ticks are (`stf_nodes.station_node._due`)."""

from __future__ import annotations

import random

import pytest

from stf_nodes.station_node import _due


def publishes(ticks: list[float], period_s: float) -> int:
    carried, count = 0.0, 0
    for tick in ticks:
        due, carried = _due(carried + tick, period_s)
        count += due
    return count


@pytest.mark.parametrize(
    ('tick_s', 'period_s', 'tolerance'),
    [
        (0.02, 0.1, 1.0),  # 50 Hz physics, 10 Hz state: exact
        (0.03, 0.1, 1.0),  # ticks that do not divide the period
        # At the tick rate itself at most one output per tick: a short tick's output moves to
        # the next one, a run of short ticks loses a little (a period rounded up lost half).
        (0.02, 0.02, 0.015 * 20_000),
    ],
)
def test_the_average_rate_holds_with_jittered_ticks(
    tick_s: float, period_s: float, tolerance: float
) -> None:
    rng = random.Random(7)
    ticks = [tick_s * rng.uniform(0.8, 1.2) for _ in range(20_000)]
    expected = sum(ticks) / period_s
    assert abs(publishes(ticks, period_s) - expected) <= tolerance


def test_after_a_stall_one_output_now_and_at_most_one_more_next_tick() -> None:
    due, carried = _due(0.35, 0.1)  # three periods late
    assert due and carried == pytest.approx(0.1)
    due, carried = _due(carried + 0.02, 0.1)
    assert due and carried == pytest.approx(0.02)
    assert _due(carried + 0.02, 0.1) == (False, pytest.approx(0.04))
