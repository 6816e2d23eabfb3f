"""Fault injection that changes the simulated physics, not just a label.

A fault sits on one component (a motor or a sensor) until cleared or until its duration has
elapsed in sim time. What each kind does and what ``magnitude`` means (0 = the default below):

================  =========  ==========================================================  =======
kind              component  physics                                                     default
================  =========  ==========================================================  =======
OVERCURRENT       motor      running current is ``magnitude`` A; I²R heating and the      3.0 A
                             overcurrent wear term follow from it
MOTOR_FAILURE     motor      running current ``magnitude`` A and health collapsing        4.5 A
                             toward ``failed_health``; the station refuses new tasks
STALL             motor      powered but no motion: the axis does not advance, the        2.5 A
                             current sits at ``magnitude`` A (locked rotor); moves time
                             out
BEARING_WEAR      motor      friction: running current + ``magnitude``·0.3 A; health      1.0
                             down by that friction times ``bearing_health_per_a`` (once,
                             as the friction grows; back with maintenance)
VIBRATION         motor      loose or unbalanced drive: while running the current         1.0
                             carries a ripple ``magnitude``·``vibration_ripple_a`` A at
                             ``vibration_hz``; extra health loss
                             ``magnitude``·``vibration_wear_per_h`` per running hour
BELT_SLIP         belt motor the belt surface moves ``1 - magnitude`` of what the motor       0.3
                             turns; magnitude in [0, 1]
GHOST_READINGS    sensor     spurious triggers, Poisson with rate ``magnitude`` Hz,       2.0 Hz
                             each lasting ``ghost_pulse_s``
STUCK             sensor     reading frozen: 0 = at the current reading, > 0 = stuck      0
                             triggered, < 0 = stuck clear
================  =========  ==========================================================  =======
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from stf_nodes.sim.model import FaultRefused
from stf_nodes.validation import quote


class FaultKind(str, Enum):
    """Injectable fault kinds (the ``fault`` field of ``stf_msgs/srv/InjectFault``)."""

    OVERCURRENT = 'OVERCURRENT'  # motor draws a high running current
    MOTOR_FAILURE = 'MOTOR_FAILURE'  # motor draws a high current and its health collapses
    STALL = 'STALL'  # motor powered but not turning
    BEARING_WEAR = 'BEARING_WEAR'  # friction: more current, less health
    VIBRATION = 'VIBRATION'  # current ripple and faster wear
    BELT_SLIP = 'BELT_SLIP'  # belt moves less than the motor turns
    GHOST_READINGS = 'GHOST_READINGS'  # sensor triggers spuriously
    STUCK = 'STUCK'  # sensor reading frozen


MOTOR_FAULTS = frozenset(
    {
        FaultKind.OVERCURRENT,
        FaultKind.MOTOR_FAILURE,
        FaultKind.STALL,
        FaultKind.BEARING_WEAR,
        FaultKind.VIBRATION,
    }
)
BELT_MOTOR_FAULTS = MOTOR_FAULTS | {FaultKind.BELT_SLIP}
SENSOR_FAULTS = frozenset({FaultKind.GHOST_READINGS, FaultKind.STUCK})

DEFAULT_MAGNITUDE = {
    FaultKind.OVERCURRENT: 3.0,
    FaultKind.MOTOR_FAILURE: 4.5,
    FaultKind.STALL: 2.5,
    FaultKind.BEARING_WEAR: 1.0,
    FaultKind.VIBRATION: 1.0,
    FaultKind.BELT_SLIP: 0.3,
    FaultKind.GHOST_READINGS: 2.0,
    FaultKind.STUCK: 0.0,
}


@dataclass(frozen=True)
class Fault:
    """An active fault; ``expires_s`` is the sim time it ends, None = until cleared."""

    kind: FaultKind
    magnitude: float
    expires_s: float | None


def make_fault(
    kind: str,
    magnitude: float,
    duration_s: float,
    *,
    allowed: frozenset[FaultKind],
    component_id: str,
    now_s: float,
) -> Fault:
    """Validate an injection request and build the fault, or raise ``FaultRefused``."""
    try:
        fault_kind = FaultKind(kind)
    except ValueError:
        raise FaultRefused(f'unknown fault kind {quote(kind)}') from None
    if fault_kind not in allowed:
        names = ', '.join(sorted(k.value for k in allowed))
        raise FaultRefused(f'{component_id} does not support {kind} (supported: {names})')
    if not (math.isfinite(magnitude) and math.isfinite(duration_s)):
        raise FaultRefused(
            f'magnitude and duration_s must be finite numbers, got {magnitude} and {duration_s}'
        )
    if duration_s < 0:
        raise FaultRefused(f'duration_s must be >= 0, got {duration_s}')
    if fault_kind is not FaultKind.STUCK and magnitude < 0:
        raise FaultRefused(f'magnitude of {kind} must be >= 0, got {magnitude}')
    if fault_kind is FaultKind.BELT_SLIP and magnitude > 1:
        raise FaultRefused(f'BELT_SLIP magnitude is a fraction in [0, 1], got {magnitude}')
    if magnitude == 0:
        magnitude = DEFAULT_MAGNITUDE[fault_kind]
    return Fault(fault_kind, magnitude, now_s + duration_s if duration_s > 0 else None)
