"""Playback timing shared by the graph player and the Foxglove player (pure: no transport).

`PlaybackClock` maps the monotonic wall clock onto bag time: bag time advances `rate` times as
fast as the wall clock, stands still while paused and jumps on a seek. A player asks how long
to wait until a message is due (`delay_s`) and what the bag time is now (`bag_ns`, for
`/clock` and the Foxglove timeline). Every change re-anchors the mapping at the current
moment, so rate changes and pauses never make time jump.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

#: Rates outside this range are clamped (a rate of 0 would never end; 1000x is a fast scan).
MIN_RATE = 0.01
MAX_RATE = 1000.0


def clamp_rate(rate: float) -> float:
    if math.isnan(rate) or rate < MIN_RATE:
        return MIN_RATE
    return min(rate, MAX_RATE)


class PlaybackClock:
    """Bag time as a function of wall time, with rate, pause and seek."""

    def __init__(
        self,
        start_ns: int,
        *,
        rate: float = 1.0,
        paused: bool = False,
        wall_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self._wall_ns = wall_ns
        self._rate = clamp_rate(rate)
        self._anchor_bag = start_ns
        self._anchor_wall = wall_ns()
        self._paused = paused

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def paused(self) -> bool:
        return self._paused

    def bag_ns(self) -> int:
        """The bag time now."""
        if self._paused:
            return self._anchor_bag
        return self._anchor_bag + round((self._wall_ns() - self._anchor_wall) * self._rate)

    def delay_s(self, bag_ns: int) -> float:
        """Wall seconds until bag time reaches `bag_ns` (0 when due; inf while paused)."""
        if self._paused:
            return math.inf
        return max(bag_ns - self.bag_ns(), 0) / self._rate / 1e9

    def _reanchor(self, bag_ns: int) -> None:
        self._anchor_bag = bag_ns
        self._anchor_wall = self._wall_ns()

    def set_rate(self, rate: float) -> None:
        self._reanchor(self.bag_ns())
        self._rate = clamp_rate(rate)

    def pause(self) -> None:
        if not self._paused:
            self._reanchor(self.bag_ns())
            self._paused = True

    def resume(self) -> None:
        if self._paused:
            self._reanchor(self._anchor_bag)
            self._paused = False

    def seek(self, bag_ns: int) -> None:
        self._reanchor(bag_ns)
