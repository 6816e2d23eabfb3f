"""Playback timing (pure): bag time from wall time with rate, pause and seek."""

from __future__ import annotations

import math

from stf_nodes.bag.playback import MAX_RATE, MIN_RATE, PlaybackClock, clamp_rate


class FakeWall:
    def __init__(self) -> None:
        self.now = 5_000_000_000

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * 1e9)


def test_bag_time_runs_at_the_rate() -> None:
    wall = FakeWall()
    clock = PlaybackClock(1_000, rate=2.0, wall_ns=wall)
    wall.advance(1.5)
    assert clock.bag_ns() == 1_000 + 3_000_000_000
    assert clock.delay_s(1_000 + 4_000_000_000) == 0.5  # one more bag second at 2x
    assert clock.delay_s(0) == 0.0


def test_rate_change_does_not_jump() -> None:
    wall = FakeWall()
    clock = PlaybackClock(0, rate=1.0, wall_ns=wall)
    wall.advance(2.0)
    clock.set_rate(10.0)
    assert clock.bag_ns() == 2_000_000_000
    wall.advance(0.1)
    assert clock.bag_ns() == 3_000_000_000


def test_pause_stops_time_and_resume_continues_where_it_stood() -> None:
    wall = FakeWall()
    clock = PlaybackClock(0, wall_ns=wall)
    wall.advance(1.0)
    clock.pause()
    wall.advance(100.0)
    assert clock.bag_ns() == 1_000_000_000
    assert math.isinf(clock.delay_s(2_000_000_000))
    clock.resume()
    wall.advance(0.25)
    assert clock.bag_ns() == 1_250_000_000


def test_seek_moves_time_playing_or_paused() -> None:
    wall = FakeWall()
    clock = PlaybackClock(0, paused=True, wall_ns=wall)
    clock.seek(7_000)
    wall.advance(3.0)
    assert clock.bag_ns() == 7_000
    clock.resume()
    wall.advance(1.0)
    assert clock.bag_ns() == 1_000_007_000


def test_rates_are_clamped() -> None:
    assert clamp_rate(0.0) == MIN_RATE
    assert clamp_rate(float('nan')) == MIN_RATE
    assert clamp_rate(float('inf')) == MAX_RATE
    assert clamp_rate(3.0) == 3.0
