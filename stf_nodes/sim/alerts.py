"""Alerts derived from station snapshots, with hysteresis.

Rules per motor: OVERCURRENT when the current stays above ``overcurrent_a`` for
``overcurrent_sustain_s`` (the start-up inrush is shorter), OVER_TEMPERATURE above
``over_temperature_c``, LOW_HEALTH below ``low_health``; per sensor: SENSOR_FAULT while a fault
is active. An alert is raised once when its condition starts to hold and re-armed only after
the reading is back past the clear limit (``*_clear_*``), so a reading hovering at the limit
does not raise an alert every tick.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated

from stf_nodes.sim.model import StationSnapshot
from stf_nodes.sim.params import Doc, ParameterConfig


class AlertSeverity(IntEnum):
    """Alert severities (``stf_msgs/Alert`` constants)."""

    INFO = 0  # for the record
    WARNING = 1  # needs attention soon
    ERROR = 2  # the component misbehaves
    CRITICAL = 3  # damage or stop imminent


@dataclass(frozen=True)
class Alert:
    """One raised alert (``stf_msgs/Alert``)."""

    time_s: float
    severity: AlertSeverity
    component_id: str
    code: str
    message: str
    value: float
    threshold: float


@dataclass(frozen=True, kw_only=True)
class AlertConfig(ParameterConfig):
    """Alert limits and their clear limits."""

    overcurrent_a: Annotated[
        float, Doc('OVERCURRENT alert above this current', unit='A', low=0.0)
    ] = 1.5
    overcurrent_clear_a: Annotated[
        float, Doc('OVERCURRENT re-armed below this current', unit='A', low=0.0)
    ] = 1.3
    overcurrent_sustain_s: Annotated[
        float,
        Doc('current must stay above the limit this long (inrush is shorter)', unit='s', low=0.0),
    ] = 0.5
    over_temperature_c: Annotated[
        float, Doc('OVER_TEMPERATURE alert above this winding temperature', unit='°C', low=-273.15)
    ] = 80.0
    temperature_clear_c: Annotated[
        float, Doc('OVER_TEMPERATURE re-armed below this temperature', unit='°C', low=-273.15)
    ] = 75.0
    low_health: Annotated[
        float, Doc('LOW_HEALTH alert below this health (maintenance due)', low=0.0, high=1.0)
    ] = 0.5
    health_clear: Annotated[
        float, Doc('LOW_HEALTH re-armed above this health (after maintenance)', low=0.0, high=1.0)
    ] = 0.55


@dataclass(frozen=True)
class _Reading:
    """A reading checked against ``limit``: too high when ``above``, else too low."""

    component_id: str
    code: str
    severity: AlertSeverity
    value: float
    limit: float
    clear: float
    above: bool = True
    sustain_s: float = 0.0

    @property
    def beyond(self) -> bool:
        return self.value > self.limit if self.above else self.value < self.limit

    @property
    def cleared(self) -> bool:
        return self.value < self.clear if self.above else self.value > self.clear


class AlertMonitor:
    """Feed it every snapshot of one station; it returns the alerts newly raised."""

    def __init__(self, *, config: AlertConfig | None = None) -> None:
        self.config = config or AlertConfig()
        self._since: dict[tuple[str, str], float] = {}
        self._active: dict[tuple[str, str], Alert] = {}

    @property
    def active(self) -> frozenset[tuple[str, str]]:
        """(component_id, code) of the alerts raised and not cleared yet."""
        return frozenset(self._active)

    @property
    def active_alerts(self) -> tuple[Alert, ...]:
        """The alerts raised and not cleared yet, as they were raised, oldest first."""
        return tuple(self._active.values())

    def update(self, snapshot: StationSnapshot) -> list[Alert]:
        raised = []
        for r in self._readings(snapshot):
            key = (r.component_id, r.code)
            if key in self._active:
                if r.cleared:
                    del self._active[key]
                continue
            if not r.beyond:
                self._since.pop(key, None)
                continue
            since = self._since.setdefault(key, snapshot.time_s)
            if snapshot.time_s - since >= r.sustain_s:
                self._since.pop(key)
                message = f'{r.component_id} {r.code}: {r.value:.3g} (limit {r.limit:g})'
                alert = Alert(snapshot.time_s, r.severity, *key, message, r.value, r.limit)
                self._active[key] = alert
                raised.append(alert)
        return raised

    def _readings(self, snapshot: StationSnapshot) -> Iterator[_Reading]:
        c = self.config
        warn, error = AlertSeverity.WARNING, AlertSeverity.ERROR
        for m in snapshot.motors:
            i = m.motor_id
            yield _Reading(
                i, 'OVERCURRENT', error, m.current_a, c.overcurrent_a, c.overcurrent_clear_a,
                sustain_s=c.overcurrent_sustain_s,
            )  # fmt: skip
            yield _Reading(
                i, 'OVER_TEMPERATURE', warn, m.temperature_c, c.over_temperature_c,
                c.temperature_clear_c,
            )  # fmt: skip
            yield _Reading(
                i, 'LOW_HEALTH', warn, m.health, c.low_health, c.health_clear, above=False
            )
        for s in snapshot.sensors:
            yield _Reading(s.sensor_id, 'SENSOR_FAULT', warn, float(bool(s.fault)), 0.5, 0.5)
