"""Binary sensors (light barriers, reference switches, pressure switch) with faults.

Each step the station computes the true state and the analog value behind it (received light
1 clear … 0 blocked, with Gaussian noise of ``noise`` for light barriers; a switch's 1/0; a
pressure in bar) and the sensor applies its fault: GHOST_READINGS starts a spurious trigger with
probability 1 - exp(-rate·dt) per step, lasting ``ghost_pulse_s``; STUCK freezes the reading.
Randomness comes from the station's seeded generator, so runs repeat exactly.
"""

from __future__ import annotations

import math
import random

from stf_nodes.sim.faults import SENSOR_FAULTS, Fault, FaultKind
from stf_nodes.sim.model import SensorSnapshot

GHOST_PULSE_S = 0.05  # length of one spurious trigger


class Sensor:
    """A binary sensor; ``triggered`` and ``value`` are what the controller sees."""

    fault_kinds = SENSOR_FAULTS

    def __init__(self, *, sensor_id: str, noise: float = 0.0, triggered_value: float = 1.0) -> None:
        self.sensor_id = sensor_id
        self.noise = noise
        self.triggered_value = triggered_value  # value a fault reports as triggered
        self.fault: Fault | None = None
        self.triggered = False
        self.value = 0.0
        self._ghost_left_s = 0.0
        self._stuck: tuple[bool, float] | None = None

    def set_fault(self, fault: Fault | None) -> None:
        self.fault = fault
        self._ghost_left_s = 0.0
        self._stuck = None
        if fault is not None and fault.kind is FaultKind.STUCK:
            forced = fault.magnitude
            on = self.triggered_value
            stuck = {0: (self.triggered, self.value), 1: (True, on), -1: (False, 1.0 - on)}
            self._stuck = stuck[int(math.copysign(1, forced)) if forced else 0]

    def update(self, triggered: bool, value: float, dt: float, rng: random.Random) -> None:
        """Take the true reading for this step and apply noise and faults."""
        if self.noise:
            value = min(1.0, max(0.0, value + rng.gauss(0.0, self.noise)))
        if self.fault is not None and self.fault.kind is FaultKind.GHOST_READINGS:
            if rng.random() < 1.0 - math.exp(-self.fault.magnitude * dt):
                self._ghost_left_s = GHOST_PULSE_S
            if self._ghost_left_s > 0:
                self._ghost_left_s -= dt
                triggered, value = True, self.triggered_value
        self.triggered, self.value = self._stuck or (triggered, value)

    def snapshot(self) -> SensorSnapshot:
        return SensorSnapshot(
            sensor_id=self.sensor_id,
            triggered=self.triggered,
            value=self.value,
            fault=self.fault.kind.value if self.fault else '',
        )
