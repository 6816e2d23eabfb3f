"""Time, Duration and the node clock with ROS time (`use_sim_time` and `/clock`).

A node's clock is ROS time: system time normally; with `use_sim_time` true it is the latest
`rosgraph_msgs/Clock` received on `/clock` (zero until the first one). Timers measure their
period on their node's clock, so under sim time they follow the `/clock` source, whatever its
rate (e.g. 20x real time).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stf_nodes.interfaces import get_message_class

_NS = 1_000_000_000


@dataclass(frozen=True, order=True)
class Duration:
    nanoseconds: int = 0

    @classmethod
    def from_seconds(cls, seconds: float) -> Duration:
        return cls(round(seconds * _NS))

    def seconds(self) -> float:
        return self.nanoseconds / _NS


@dataclass(frozen=True, order=True)
class Time:
    nanoseconds: int = 0

    @classmethod
    def from_msg(cls, msg: Any) -> Time:
        return cls(msg.sec * _NS + msg.nanosec)

    def to_msg(self) -> Any:
        sec, nanosec = divmod(self.nanoseconds, _NS)
        return get_message_class('builtin_interfaces/msg/Time')(sec=sec, nanosec=nanosec)

    def seconds(self) -> float:
        return self.nanoseconds / _NS

    def __add__(self, other: Duration) -> Time:
        return Time(self.nanoseconds + other.nanoseconds)

    def __sub__(self, other: Time) -> Duration:
        return Duration(self.nanoseconds - other.nanoseconds)


class Clock:
    """ROS time of one node: system time, or sim time fed from `/clock`."""

    def __init__(self) -> None:
        self._sim_ns: int | None = None
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    @property
    def ros_time_is_active(self) -> bool:
        return self._sim_ns is not None

    def set_sim_time(self, active: bool) -> None:
        with self._lock:
            self._sim_ns = (self._sim_ns or 0) if active else None
        self._notify()

    def set_sim_now(self, nanoseconds: int) -> None:
        """Advance sim time (from a `/clock` message); ignored when sim time is off."""
        with self._lock:
            if self._sim_ns is None:
                return
            self._sim_ns = nanoseconds
        self._notify()

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener` whenever the time source changes or sim time advances."""
        self._listeners.append(listener)

    def _notify(self) -> None:
        for listener in self._listeners:
            listener()

    def now(self) -> Time:
        sim = self._sim_ns
        return Time(time.time_ns() if sim is None else sim)

    def sleep_for(self, duration: Duration | float) -> None:
        """Sleep on this clock (sim time included); returns early only on shutdown."""
        seconds = duration.seconds() if isinstance(duration, Duration) else duration
        deadline = self.now().nanoseconds + round(seconds * _NS)
        while self.now().nanoseconds < deadline:
            remaining = (deadline - self.now().nanoseconds) / _NS
            time.sleep(min(remaining, 0.01) if not self.ros_time_is_active else 0.001)


class SteadyClock(Clock):
    """Monotonic time (rclpy's STEADY_TIME): neither `/clock` nor changes of the system time
    move it. For what must be real time whatever the simulation does, such as the scheduler's
    lease: under a 20x sim clock a lease on ROS time would last a twentieth of a second."""

    def set_sim_time(self, active: bool) -> None:
        return

    def set_sim_now(self, nanoseconds: int) -> None:
        return

    def now(self) -> Time:
        return Time(time.monotonic_ns())
