"""Quality of service, shaped like rclpy's `QoSProfile` and encoded as rmw_zenoh encodes it.

How each policy maps onto Zenoh (mirroring rmw_zenoh):
- RELIABLE uses Zenoh's reliable channel with congestion control BLOCK, so a fast publisher is
  slowed down rather than losing samples; BEST_EFFORT uses best-effort with DROP.
- TRANSIENT_LOCAL publishers are Zenoh advanced publishers caching the last `depth` samples;
  TRANSIENT_LOCAL subscriptions are advanced subscribers that query late-joining publishers'
  caches (`detect_late_publishers`), so a late subscriber gets the latched state.
- KEEP_LAST `depth` bounds each subscription's receive queue (oldest dropped when the executor
  falls behind); KEEP_ALL does not bound it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    'DurabilityPolicy',
    'HistoryPolicy',
    'QoSProfile',
    'ReliabilityPolicy',
    'qos_profile_clock',
    'qos_profile_latched',
    'qos_profile_parameter_events',
    'qos_profile_rosout',
    'qos_profile_sensor_data',
    'qos_profile_services_default',
    'qos_profile_system_default',
]

# rmw's RMW_DURATION_INFINITE as (seconds, nanoseconds), as rmw_zenoh writes it.
_INFINITE = '9223372036,854775807'


class ReliabilityPolicy(enum.IntEnum):
    """Delivery guarantee (values as in rmw_zenoh's QoS key)."""

    RELIABLE = 1  #: retransmit until delivered; the publisher blocks on congestion
    BEST_EFFORT = 2  #: may drop samples under congestion


class DurabilityPolicy(enum.IntEnum):
    """Whether late subscribers get samples published before they joined."""

    TRANSIENT_LOCAL = 1  #: the publisher keeps its last `depth` samples for late joiners
    VOLATILE = 2  #: only samples published after the subscription exists


class HistoryPolicy(enum.IntEnum):
    """How many received samples a subscription keeps while waiting for the executor."""

    KEEP_LAST = 1  #: at most `depth`; the oldest is dropped
    KEEP_ALL = 2  #: unbounded


@dataclass(frozen=True, kw_only=True)
class QoSProfile:
    """A QoS profile; `QoSProfile(depth=10)` is reliable and volatile, like rclpy's default."""

    depth: int = 10
    reliability: ReliabilityPolicy = ReliabilityPolicy.RELIABLE
    durability: DurabilityPolicy = DurabilityPolicy.VOLATILE
    history: HistoryPolicy = HistoryPolicy.KEEP_LAST

    def __post_init__(self) -> None:
        if self.depth < 0:
            raise ValueError(f'QoS depth must be >= 0, got {self.depth}')

    def to_keyexpr(self) -> str:
        """The QoS field of an rmw_zenoh liveliness token, all values explicit."""
        return (
            f'{int(self.reliability)}:{int(self.durability)}:{int(self.history)},{self.depth}'
            f':{_INFINITE}:{_INFINITE}:1,{_INFINITE}'
        )

    @classmethod
    def from_keyexpr(cls, text: str) -> QoSProfile:
        """Parse the QoS field of a liveliness token; empty fields take rmw_zenoh's defaults."""
        fields = text.split(':')
        reliability = fields[0] if fields and fields[0] else '1'
        durability = fields[1] if len(fields) > 1 and fields[1] else '2'
        history, _, depth = (fields[2] if len(fields) > 2 else ',').partition(',')
        return cls(
            reliability=ReliabilityPolicy(int(reliability)),
            durability=DurabilityPolicy(int(durability)),
            history=HistoryPolicy(int(history or '1')),
            depth=int(depth or '42'),
        )


def as_profile(qos: QoSProfile | int) -> QoSProfile:
    """rclpy accepts a bare depth where a profile is expected; so do we."""
    return QoSProfile(depth=qos) if isinstance(qos, int) else qos


qos_profile_system_default = QoSProfile(depth=10)
qos_profile_services_default = QoSProfile(depth=10)
qos_profile_sensor_data = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
qos_profile_latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
qos_profile_rosout = QoSProfile(depth=1000, durability=DurabilityPolicy.TRANSIENT_LOCAL)
qos_profile_clock = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
qos_profile_parameter_events = QoSProfile(depth=1000)  # as rclpy's
