"""Health, remaining useful life and sensor anomalies from observable signals only.

Pure: no transport, no database, no clock. The ``maintenance`` node feeds it live messages and
``stf maintenance evaluate`` feeds it stored telemetry, through the same :class:`Estimator`.
It never reads ``MotorState.health``: a real line does not publish one, and the twin's health is
the ground truth it is scored against.

Motors (:class:`MotorEstimator`). The health is that of the motor model (``MotorConfig``, what
a data sheet gives): 1 minus the wear of use since the last repair (the damage) minus the
friction a worn bearing adds to the current, ``bearing_health_per_a`` per ampere (a bearing's
damage shows as its friction). Two degradation paths; the forecast takes the RUL of the one
that reaches the maintenance threshold first:

- **friction trend** (``method = 'friction-trend'``). A motor's running current sits at a few
  levels set by its motion (cruise, accelerating, the start transient). The first
  ``baseline_samples`` running samples teach the motor its levels (clusters within
  ``level_width_a``; the motion model learnt, not configured) and its cruise level, the one
  most samples sit at. Friction in a worn bearing adds its excess to the steady current: all
  of it to the cruise level, only part of it to a transient (the inrush decays onto the
  higher steady current). Every ``bin_s`` the excess is the shift from the cruise level to
  the densest cluster of the bin's samples; clusters more than ``max_excess_rise_a`` above
  the excess so far are transients, not friction, and clusters as dense go to the one nearest
  the trend (a bin with one level only). So levels closer together than the excess (HBW_M1_X:
  1.20, 1.28, 1.50 A) are not taken for one another. A least-squares line through the bins
  since the onset (the last bin without excess; at least ``trend_window_h``, at most
  ``max_trend_window_h``) gives the excess now and its growth: a growing friction is fitted on
  all of its growth. The motor is due when the health, the friction taken at the upper edge
  of the bins' scatter about the line, reaches the threshold: the line plus sqrt(3) times the
  residuals' standard deviation, the half-width of a uniform scatter, as a friction growing
  in steps leaves about a line through it. Planning on that edge is the safe side: for a
  friction that grows smoothly with noise it shortens the RUL by that much over the slope.
  The health falls at the slope times ``bearing_health_per_a`` plus the damage rate below.
  Band: the slope ±2 standard errors; confidence: the fit's R² times the number of bins (full
  at 8).
- **damage rate** (``method = 'damage-rate'``). Miner's rule over the motor's wear model:
  per running hour a base wear, overcurrent wear per ampere above
  ``current_limit_a`` (a sample right after a start may catch the inrush: the steady current,
  cruise level plus excess, stands for it); per hour and kelvin above ``wear_temperature_c``;
  per start, plus the overcurrent of its inrush (``inrush_current_a`` decaying with
  ``inrush_tau_s`` onto the steady current: the data sheet's transient, integrated in closed
  form; short moves between two samples show only as starts). Its RUL extrapolates the
  damage of the last ``trend_window_h`` (calendar time, idle nights included) from the health
  with the friction as it is now; the band uses the rates over half and twice that.

Levels: WARNING when the health is below ``warning_health`` or either RUL below
``warning_rul_h``; CRITICAL only from the damage path (health below ``critical_health`` or
its RUL below ``critical_rul_h`` with enough confidence): the friction threshold plans
maintenance, it does not stop a line. INFO when the excess passes ``info_excess_a``.

A repair shows as the friction falling back: a bin whose excess is below half
``repair_min_excess_a`` while the fitted one was above it (a bearing does not heal) resets
both paths. Samples with a non-finite or absurd current are dropped and
counted; a pause longer than ``max_gap_s`` between two samples (a recorder drop, a node
restart) is not integrated; a start counter that goes back (a restarted node) adds no starts.
An unknown motor id gets an estimator of its own at its first sample (a fleet over MQTT).

Sensors (:class:`SensorMonitor`), from light-barrier edges and the belt motor's samples:

- **ghost reading**: a pulse shorter than ``ghost_max_s`` on a light barrier while the belt did
  not move (no encoder progress, motor off) from ``standstill_s`` before it to the next belt
  sample after it: nothing can have passed. ``ghost_count`` of them within ``ghost_window_s``
  raise GHOST_READINGS, cleared after ``sensor_clear_s`` without one.
- **stuck**: a light barrier triggered without interruption while the belt moved more than
  ``stuck_travel_mm`` of belt travel (trail marks; any workpiece would have left the window),
  unless the belt slipped over that travel (a workpiece left short: belt slip, not the sensor).
- **belt slip**: the trail sensor's marks (one rising edge per ``trail_pitch_mm`` of belt
  travel) against the encoder's roller travel, over every ``slip_window_mm`` of roller travel.

Alerts (:class:`Latch`): a level per component, raised once when it is entered, cleared once
when the component is back below the clear limits (wider than the raise limits: hysteresis).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Annotated, NamedTuple

import numpy as np

from stf_nodes.sim.motor import MotorConfig
from stf_nodes.sim.params import Doc, ParameterConfig

HOUR = 3600.0
#: The motor's data sheet: the wear model's defaults are the simulated motors' own.
DATA_SHEET = MotorConfig()


@dataclass(frozen=True, kw_only=True)
class EstimatorConfig(ParameterConfig):
    """Model and alert settings; every field is a parameter of the ``maintenance`` node."""

    threshold: Annotated[float, Doc('health below which maintenance is due', low=0.0, high=1.0)] = (
        0.5
    )
    baseline_samples: Annotated[
        int, Doc('running samples that teach a motor its current levels (its motion model)', low=1)
    ] = 200
    level_width_a: Annotated[
        float, Doc('currents closer than this are one level', unit='A', low=0.0)
    ] = 0.03
    level_share: Annotated[
        float, Doc('share of the baseline samples a level needs', low=0.0, high=1.0)
    ] = 0.05
    current_limit_a: Annotated[
        float, Doc('rated current; wear grows above it', unit='A', low=0.0)
    ] = DATA_SHEET.current_limit_a
    inrush_current_a: Annotated[
        float, Doc('current at a start, decaying to the steady current', unit='A', low=0.0)
    ] = DATA_SHEET.inrush_current_a
    inrush_tau_s: Annotated[
        float, Doc('decay time constant of the inrush current', unit='s', low=0.0)
    ] = DATA_SHEET.inrush_tau_s
    overcurrent_a: Annotated[
        float, Doc('samples above this current are overcurrent, not friction', unit='A', low=0.0)
    ] = 3.0
    bearing_health_per_a: Annotated[
        float,
        Doc('health a worn bearing takes per ampere of its friction current', unit='1/A', low=0.0),
    ] = DATA_SHEET.bearing_health_per_a
    bin_s: Annotated[
        float, Doc('width of the bins the trends are fitted on', unit='s', low=0.0)
    ] = 3600.0
    min_bin_samples: Annotated[
        int, Doc('running samples a bin needs to count for the trend', low=1)
    ] = 3
    trend_window_h: Annotated[float, Doc('hours of history behind a trend, at least', low=0.0)] = (
        24.0
    )
    max_trend_window_h: Annotated[
        float, Doc('hours of history behind a friction trend, at most', low=0.0)
    ] = 168.0
    wear_per_running_h: Annotated[float, Doc('health lost per running hour', low=0.0)] = (
        DATA_SHEET.wear_per_running_h
    )
    wear_per_start: Annotated[float, Doc('health lost per start', low=0.0)] = (
        DATA_SHEET.wear_per_start
    )
    wear_per_overcurrent_ah: Annotated[
        float, Doc('health lost per hour and ampere above current_limit_a', low=0.0)
    ] = DATA_SHEET.wear_per_overcurrent_ah
    wear_temperature_c: Annotated[
        float, Doc('winding temperature above which wear grows', unit='°C')
    ] = DATA_SHEET.wear_temperature_c
    wear_per_kelvin_h: Annotated[
        float, Doc('health lost per hour and kelvin above it', low=0.0)
    ] = DATA_SHEET.wear_per_kelvin_h
    max_gap_s: Annotated[
        float, Doc('longer pauses between samples are not integrated', unit='s', low=0.0)
    ] = 600.0
    max_running_dt_s: Annotated[
        float, Doc('a running sample stands for at most this long', unit='s', low=0.0)
    ] = 5.0
    max_excess_rise_a: Annotated[
        float,
        Doc('largest rise of the friction excess from one bin to the next', unit='A', low=0.0),
    ] = 0.05
    repair_min_excess_a: Annotated[
        float, Doc('fitted excess above which a drop can mean a repair', unit='A', low=0.0)
    ] = 0.1
    info_excess_a: Annotated[
        float, Doc('friction excess that raises an INFO trend alert', unit='A', low=0.0)
    ] = 0.08
    warning_rul_h: Annotated[
        float, Doc('RUL below which a WARNING is raised', unit='h', low=0.0)
    ] = 72.0
    critical_rul_h: Annotated[
        float, Doc('RUL below which a CRITICAL is raised', unit='h', low=0.0)
    ] = 12.0
    warning_health: Annotated[
        float, Doc('estimated health below which a WARNING is raised', low=0.0)
    ] = 0.6
    critical_health: Annotated[
        float, Doc('estimated health below which a CRITICAL is raised', low=0.0)
    ] = 0.5
    warning_confidence: Annotated[
        float, Doc('confidence a RUL needs to raise a WARNING', low=0.0)
    ] = 0.5
    critical_confidence: Annotated[
        float, Doc('confidence a RUL needs to raise a CRITICAL', low=0.0)
    ] = 0.5
    clear_factor: Annotated[
        float,
        Doc('hysteresis: RUL limits times this (and health limits + 0.05) clear a level', low=0.0),
    ] = 1.5
    barrier_ids: Annotated[
        tuple[str, ...], Doc('light barriers watched for ghost and stuck readings')
    ] = ('CONV_L1_ENTRY', 'CONV_L2_PROCESS', 'CONV_L3_EXIT', 'CONV_L4_OVERFLOW')
    belt_motor_id: Annotated[str, Doc('motor that drives the belt')] = 'CONV_M1'
    trail_sensor_id: Annotated[str, Doc('sensor seeing the belt marks')] = 'CONV_T1_TRAIL'
    trail_pitch_mm: Annotated[float, Doc('belt travel per trail mark', unit='mm', low=0.0)] = 10.0
    pulses_per_mm: Annotated[float, Doc('encoder pulses per mm of roller travel', low=0.0)] = 18.75
    ghost_max_s: Annotated[
        float, Doc('longest pulse that can be a ghost reading', unit='s', low=0.0)
    ] = 0.5
    standstill_s: Annotated[
        float, Doc('belt still this long before a pulse for a ghost', unit='s', low=0.0)
    ] = 1.0
    ghost_count: Annotated[
        int, Doc('ghost readings within ghost_window_s that raise an alert', low=1)
    ] = 3
    ghost_window_s: Annotated[float, Doc('window of ghost_count', unit='s', low=0.0)] = 3600.0
    sensor_clear_s: Annotated[
        float, Doc('a sensor alert clears after this long quiet', unit='s', low=0.0)
    ] = 3600.0
    stuck_travel_mm: Annotated[
        float, Doc('belt travel (trail marks) under a steady trigger: stuck', unit='mm', low=0.0)
    ] = 1000.0
    slip_window_mm: Annotated[
        float, Doc('roller travel per belt-slip measurement', unit='mm', low=0.0)
    ] = 5000.0
    slip_warning: Annotated[float, Doc('slip fraction that raises BELT_SLIP', low=0.0)] = 0.08
    slip_clear: Annotated[float, Doc('slip fraction that clears BELT_SLIP', low=0.0)] = 0.04

    def __post_init__(self) -> None:
        positive = (
            'baseline_samples',
            'level_width_a',
            'bearing_health_per_a',
            'trend_window_h',
            'max_gap_s',
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f'{name} must be > 0, got {getattr(self, name)}')
        if not 0 < self.threshold < 1 or not 0 <= self.level_share < 1:
            raise ValueError('threshold must be in (0, 1) and level_share in [0, 1)')
        if self.clear_factor < 1:
            raise ValueError(f'clear_factor must be >= 1, got {self.clear_factor}')


class MotorSample(NamedTuple):
    """What a real line reports about one motor at one moment (no health)."""

    time_s: float
    motor_id: str
    running: bool
    current_a: float
    temperature_c: float
    encoder_pulses: int
    start_count: int


class SensorEdge(NamedTuple):
    """A sensor's binary reading changed at ``time_s``."""

    time_s: float
    sensor_id: str
    triggered: bool


class Level(IntEnum):
    """Alert levels (``stf_msgs/Alert`` severities), NONE when nothing is raised."""

    NONE = -1  # nothing raised
    INFO = 0  # a trend worth knowing
    WARNING = 1  # plan maintenance
    CRITICAL = 3  # act now


class Estimate(NamedTuple):
    """What the alert levels are decided on."""

    health: float  # damage path
    rul_h: float  # the nearer of both paths
    rul_confidence: float
    damage_rul_h: float
    damage_confidence: float
    excess_current_a: float


@dataclass(frozen=True)
class Forecast:
    """The estimate of one motor at ``time_s`` (RULs in hours; ``inf``: no degradation seen)."""

    component_id: str
    time_s: float
    health: float
    degradation_per_h: float
    rul_h: float
    rul_lower_h: float
    rul_upper_h: float
    confidence: float
    method: str
    estimate: Estimate
    level: Level
    recommendation: str


@dataclass(frozen=True)
class AlertEvent:
    """An alert raised (``cleared`` False) or cleared (an INFO ``<code>_CLEARED``)."""

    time_s: float
    severity: int
    component_id: str
    code: str
    message: str
    value: float
    threshold: float
    cleared: bool


class Latch:
    """One alert level per component: raised once on entry, cleared once below the clear
    limits. ``update(raise_level, hold_level)``: the level the raise limits give and the level
    the (wider) clear limits still give."""

    def __init__(self, component_id: str) -> None:
        self.component_id = component_id
        self.level = Level.NONE
        self.code = ''

    def update(
        self,
        time_s: float,
        raise_level: Level,
        hold_level: Level,
        alert: tuple[str, str, float, float],
    ) -> list[AlertEvent]:
        """``alert``: (code, message, value, threshold) of the level being raised."""
        new = max(raise_level, min(self.level, hold_level))
        old = self.level
        if new == old:
            return []
        self.level = new
        events = []
        if new < old:
            message = f'{self.component_id}: {self.code} cleared'
            clear = AlertEvent(
                time_s,
                int(Level.INFO),
                self.component_id,
                f'{self.code}_CLEARED',
                message,
                alert[2],
                alert[3],
                True,
            )
            events.append(clear)
        if new is not Level.NONE:
            code, message, value, threshold = alert
            self.code = code
            events.append(
                AlertEvent(
                    time_s, int(new), self.component_id, code, message, value, threshold, False
                )
            )
        return events


def _line_fit(xs: list[float], ys: list[float]) -> tuple[float, float, float, float, float]:
    """Least squares y = a + b·x: (a, b, standard error of b, R², residual standard deviation)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    syy = sum((y - my) ** 2 for y in ys)
    if sxx <= 0:
        return my, 0.0, math.inf, 0.0, 0.0
    b = sxy / sxx
    a = my - b * mx
    residual = max(0.0, syy - b * sxy)
    sigma = math.sqrt(residual / (n - 2)) if n > 2 else 0.0
    se = sigma / math.sqrt(sxx) if n > 2 else math.inf
    r2 = 1.0 - residual / syy if syy > 0 else 0.0
    return a, b, se, r2, sigma


def current_levels(currents: list[float], width: float, share: float) -> list[float]:
    """The levels a motor's running current sits at: medians of the clusters of values within
    ``width`` of each other that hold at least ``share`` of the values."""
    ordered = sorted(currents)
    levels, group = [], [ordered[0]]
    for value in ordered[1:]:
        if value - group[0] <= width:
            group.append(value)
            continue
        levels.append(group)
        group = [value]
    levels.append(group)
    return [statistics.median(g) for g in levels if len(g) >= share * len(ordered)]


def inrush_overcurrent_as(steady: float, inrush: float, limit: float, tau: float) -> float:
    """Ampere-seconds above ``limit`` of one start's inrush, i = steady + (inrush - steady)·
    exp(-t / tau) (the motor model's transient; 0 while ``steady`` is unknown, NaN)."""
    if not math.isfinite(steady) or inrush <= limit or inrush <= steady:
        return 0.0
    if steady >= limit:  # the steady part is the running samples' overcurrent
        return (inrush - steady) * tau
    above_s = tau * math.log((inrush - steady) / (limit - steady))
    return (steady - limit) * above_s + tau * (inrush - limit)


def cruise_level(currents: list[float], levels: list[float], width: float) -> float:
    """The level most samples sit at: the motor cruising (the other levels are transients,
    which a friction excess shifts only in part)."""
    return max(levels, key=lambda level: sum(1 for i in currents if abs(i - level) <= width))


def bin_excess(
    currents: list[float], cruise: float, expected: float, width: float, max_rise: float
) -> float:
    """The friction excess of one bin: the shift of the cruise level to the densest cluster
    of samples (within ``width``). Clusters more than ``max_rise`` above the excess so far
    (``expected``) are transients, not friction, unless nothing else is there (a step of the
    friction larger than ``max_rise``); clusters as dense go to the one nearest ``expected``.
    Refined to the cluster's median."""
    shifts = np.sort(np.asarray(currents) - cruise)
    counts = np.searchsorted(shifts, shifts + width, 'right') - np.searchsorted(
        shifts, shifts - width, 'left'
    )
    allowed = shifts <= max(expected, 0.0) + max_rise
    if allowed.any():
        counts = np.where(allowed, counts, 0)
    best = shifts[counts == counts.max()]
    shift = best[np.argmin(np.abs(best - expected))]
    return float(np.median(shifts[np.abs(shifts - shift) <= width]))


@dataclass
class _Hour:
    """What one calendar hour of a motor contributed."""

    start_s: float
    currents: list[float] = field(default_factory=list)
    damage: float = 0.0
    excess_a: float | None = None  # set when the hour is closed


class MotorEstimator:
    """Health and RUL of one motor (see the module docstring)."""

    def __init__(self, motor_id: str, config: EstimatorConfig) -> None:
        self.motor_id = motor_id
        self.config = config
        self.damage = 0.0
        self.hours: deque[_Hour] = deque()
        self.samples = 0
        self.rejected = 0
        self.gaps = 0
        self.repairs = 0
        self._last: MotorSample | None = None
        self._fit = (0.0, 0.0, math.inf, 0.0, 0)  # a, b (per hour of x), se, r2, n
        self._sigma = 0.0  # residual standard deviation of the fit
        self._fit_origin_h = 0.0
        self.levels: list[float] = []
        self.cruise_a = math.nan
        self._baseline: list[float] = []
        self._started = False

    def update(self, sample: MotorSample) -> None:
        c = self.config
        self.samples += 1
        if not (math.isfinite(sample.current_a) and 0.0 <= sample.current_a < 100.0):
            self.rejected += 1
            return
        last, last_started = self._last, self._started
        self._last = sample
        if last is None or sample.time_s <= last.time_s:
            self._started = False
            return
        # A sample just after a start may catch the inrush transient: it is not an overcurrent
        # (its level, learnt like the others, still shifts with friction).
        self._started = sample.start_count != last.start_count
        hour = self._hour(sample.time_s)
        if sample.running and sample.current_a < c.overcurrent_a:
            if self.levels:
                hour.currents.append(sample.current_a)
            else:
                self._learn(sample.current_a)
        dt = sample.time_s - last.time_s
        if dt > c.max_gap_s:
            self.gaps += 1
            return
        damage = 0.0
        starts = sample.start_count - last.start_count
        if last.running:
            run_h = min(dt, c.max_running_dt_s) / HOUR
            damage += run_h * c.wear_per_running_h
            # Right after a start the sample may catch the inrush (accounted per start below):
            # the steady current stands for it.
            current = self._steady_a(last.time_s) if last_started else last.current_a
            if math.isfinite(current):
                overcurrent = max(0.0, current - c.current_limit_a)
                damage += run_h * c.wear_per_overcurrent_ah * overcurrent
        temperature = last.temperature_c
        if math.isfinite(temperature) and -50.0 < temperature < 400.0:
            hot = max(0.0, temperature - c.wear_temperature_c)
            damage += dt / HOUR * c.wear_per_kelvin_h * hot
        if 0 < starts < 10_000:  # a counter that went back: the node restarted
            inrush = inrush_overcurrent_as(
                self._steady_a(last.time_s), c.inrush_current_a, c.current_limit_a, c.inrush_tau_s
            )
            damage += starts * (c.wear_per_start + c.wear_per_overcurrent_ah * inrush / HOUR)
        self.damage += damage
        hour.damage += damage

    def _steady_a(self, time_s: float) -> float:
        """The running current at cruise with the friction then (NaN until levels are learnt)."""
        return self.cruise_a + max(0.0, self._excess_now(time_s))

    def _hour(self, time_s: float) -> _Hour:
        if self.hours and 0.0 <= time_s - self.hours[-1].start_s < self.config.bin_s:
            return self.hours[-1]
        start = math.floor(time_s / self.config.bin_s) * self.config.bin_s
        if not self.hours or self.hours[-1].start_s != start:
            if self.hours:
                self._close(self.hours[-1])
            self.hours.append(_Hour(start))
            kept_h = max(2 * self.config.trend_window_h, self.config.max_trend_window_h)
            while self.hours and self.hours[0].start_s < start - kept_h * HOUR:
                self.hours.popleft()
        return self.hours[-1]

    def _learn(self, current: float) -> None:
        c = self.config
        self._baseline.append(current)
        if len(self._baseline) >= c.baseline_samples:
            self.levels = current_levels(self._baseline, c.level_width_a, c.level_share)
            self.cruise_a = cruise_level(self._baseline, self.levels, c.level_width_a)
            self._baseline = []

    def _close(self, hour: _Hour) -> None:
        c = self.config
        if len(hour.currents) >= c.min_bin_samples:
            fitted = self._excess_now(hour.start_s)
            hour.excess_a = bin_excess(
                hour.currents, self.cruise_a, fitted, c.level_width_a, c.max_excess_rise_a
            )
            # Repaired: the samples sit on the levels again (a bearing does not heal).
            if fitted > c.repair_min_excess_a and hour.excess_a < c.repair_min_excess_a / 2:
                self._repaired(hour)
        hour.currents = []
        self._refit(hour.start_s + self.config.bin_s)

    def _repaired(self, hour: _Hour) -> None:
        self.repairs += 1
        self.damage = 0.0
        kept = _Hour(hour.start_s, [], 0.0, hour.excess_a)
        self.hours.clear()
        self.hours.append(kept)

    def _refit(self, now_s: float) -> None:
        c = self.config
        since = now_s - c.max_trend_window_h * HOUR
        points = [
            ((h.start_s + c.bin_s / 2) / HOUR, h.excess_a)
            for h in self.hours
            if h.excess_a is not None and h.start_s >= since
        ]
        # The trend runs from the onset (the last bin without excess), over trend_window_h
        # at least: a growing friction is fitted on all of its growth.
        start = now_s / HOUR - c.trend_window_h
        onset = next((x for x, y in reversed(points) if y <= c.info_excess_a / 2), None)
        start = min(start, points[0][0] if onset is None and points else onset or start)
        points = [(x, y) for x, y in points if x >= start]
        if len(points) < 2:
            value = points[0][1] if points else 0.0
            self._fit = (value, 0.0, math.inf, 0.0, len(points))
            self._sigma = 0.0
            self._fit_origin_h = now_s / HOUR
            return
        origin = points[-1][0]
        a, b, se, r2, self._sigma = _line_fit(
            [x - origin for x, _ in points], [y for _, y in points]
        )
        self._fit = (a, b, se, r2, len(points))
        self._fit_origin_h = origin

    def _excess_now(self, time_s: float) -> float:
        a, b, _, _, n = self._fit
        if n == 0:
            return 0.0
        return a + b * (time_s / HOUR - self._fit_origin_h) if n >= 2 else a

    def forecast(self, time_s: float) -> Forecast:
        c = self.config
        k = c.bearing_health_per_a
        _, b, se, r2, n = self._fit
        excess = max(0.0, self._excess_now(time_s))
        rates, bins = self._damage_rates(time_s, (0.5, 1.0, 2.0))
        health = max(0.0, 1.0 - self.damage - k * excess)

        upper_excess = excess + math.sqrt(3.0) * self._sigma
        room = max(0.0, 1.0 - self.damage - k * upper_excess - c.threshold)
        significant = n >= 3 and b > 0 and b > se
        if room == 0.0:
            friction = (0.0, 0.0, 0.0)
        elif significant:
            slowest = k * (b - 2 * se) + rates[1]
            friction = (
                room / (k * b + rates[1]),
                room / (k * (b + 2 * se) + rates[1]),
                room / slowest if slowest > 0 else math.inf,
            )
        else:
            friction = (math.inf, math.inf, math.inf)
        friction_conf = max(0.0, r2) * min(1.0, n / 8.0) if significant else 0.0

        left = max(0.0, health - c.threshold)
        ruls = [left / r if r > 0 else math.inf for r in rates]
        damage = (ruls[1], min(ruls), max(ruls))
        damage_conf = min(1.0, bins[1] * c.bin_s / HOUR / c.trend_window_h)

        if friction[0] < damage[0]:
            method, rul, conf = 'friction-trend', friction, friction_conf
            degradation = k * b + rates[1]
        else:
            method, rul, conf = 'damage-rate', damage, damage_conf
            degradation = rates[1]
        estimate = Estimate(health, rul[0], conf, damage[0], damage_conf, excess)
        level = self.level(estimate, relax=1.0)
        return Forecast(
            component_id=self.motor_id,
            time_s=time_s,
            health=health,
            degradation_per_h=degradation,
            rul_h=rul[0],
            rul_lower_h=min(rul[1], rul[0]),
            rul_upper_h=max(rul[2], rul[0]),
            confidence=conf,
            method=method,
            estimate=estimate,
            level=level,
            recommendation=_recommendation(self.motor_id, level, rul[0], excess),
        )

    def _damage_rates(
        self, time_s: float, factors: tuple[float, ...]
    ) -> tuple[list[float], list[int]]:
        """Damage per hour over ``factors`` times ``trend_window_h`` before ``time_s`` (ascending),
        and the bins each window holds: one pass from the newest bin back."""
        windows = [k * self.config.trend_window_h for k in factors]
        sinces = [time_s - w * HOUR for w in windows]
        damage, bins = [0.0] * len(windows), [0] * len(windows)
        total, count, done = 0.0, 0, 0  # windows[:done] are summed
        for hour in reversed(self.hours):
            while done < len(sinces) and hour.start_s < sinces[done]:
                damage[done], bins[done] = total, count
                done += 1
            if done == len(sinces):
                break
            total += hour.damage
            count += 1
        for rest in range(done, len(sinces)):
            damage[rest], bins[rest] = total, count
        return [d / w for d, w in zip(damage, windows, strict=True)], bins

    def level(self, e: Estimate, relax: float) -> Level:
        """The alert level of an estimate; ``relax`` > 1 widens the limits (clearing).

        CRITICAL needs the damage path (health, or its RUL with confidence): the friction
        threshold is a calibration, good for planning (WARNING), not for stopping a line."""
        c = self.config
        slack = 0.05 if relax > 1 else 0.0
        if e.health < c.critical_health + slack or (
            e.damage_rul_h < c.critical_rul_h * relax
            and e.damage_confidence >= c.critical_confidence
        ):
            return Level.CRITICAL
        # A WARNING is raised on a RUL with confidence; once raised the RUL alone holds it.
        confident = relax > 1 or e.rul_confidence >= c.warning_confidence
        if e.health < c.warning_health + slack or (e.rul_h < c.warning_rul_h * relax and confident):
            return Level.WARNING
        if e.excess_current_a > c.info_excess_a / relax:
            return Level.INFO
        return Level.NONE


def _recommendation(motor_id: str, level: Level, rul_h: float, excess: float) -> str:
    if level is Level.CRITICAL:
        return f'stop and replace {motor_id} now (due in {_hours(rul_h)})'
    if level is Level.WARNING:
        return f'schedule maintenance of {motor_id} within {_hours(rul_h)}'
    if level is Level.INFO:
        return f'watch {motor_id}: friction current +{excess:.2f} A over nominal'
    return 'no action'


def _hours(value: float) -> str:
    return 'an unknown time' if not math.isfinite(value) else f'{value:.0f} h'


_MOTOR_CODES = {
    Level.INFO: 'DEGRADATION_TREND',
    Level.WARNING: 'MAINTENANCE_DUE',
    Level.CRITICAL: 'FAILURE_IMMINENT',
}


@dataclass
class _Barrier:
    rise_s: float | None = None
    rise_belt_mm: float = 0.0
    rise_roller_mm: float = 0.0
    slip: float = 0.0  # belt slip over the travel since the rise
    ghosts: deque[float] = field(default_factory=deque)
    pending: list[tuple[float, float]] = field(default_factory=list)
    last_ghost_s: float = -math.inf


class SensorMonitor:
    """Ghost, stuck and belt-slip detection (see the module docstring)."""

    def __init__(self, config: EstimatorConfig) -> None:
        self.config = config
        self.barriers = {sensor_id: _Barrier() for sensor_id in config.barrier_ids}
        self.ghost_counts: dict[str, int] = dict.fromkeys(config.barrier_ids, 0)
        self.stuck: dict[str, bool] = dict.fromkeys(config.barrier_ids, False)
        self.slip: float | None = None
        self._encoder: int | None = None
        self._last_motion_s = -math.inf
        self._roller_mm = 0.0
        self._belt_mm = 0.0
        self._belt_total_mm = 0.0
        self._roller_total_mm = 0.0

    def on_edge(self, edge: SensorEdge) -> None:
        c = self.config
        if edge.sensor_id == c.trail_sensor_id:
            if edge.triggered:
                self._belt_mm += c.trail_pitch_mm
                self._belt_total_mm += c.trail_pitch_mm
                for sensor_id, watched in self.barriers.items():
                    if watched.rise_s is not None:
                        travel = self._belt_total_mm - watched.rise_belt_mm
                        roller = self._roller_total_mm - watched.rise_roller_mm
                        watched.slip = 1.0 - travel / roller if roller > 0 else 0.0
                        self.stuck[sensor_id] = travel > c.stuck_travel_mm
            return
        barrier = self.barriers.get(edge.sensor_id)
        if barrier is None:
            return
        if edge.triggered:  # a repeated rise (a reading missed in between) starts again
            barrier.rise_s = edge.time_s
            barrier.rise_belt_mm = self._belt_total_mm
            barrier.rise_roller_mm = self._roller_total_mm
            self.stuck[edge.sensor_id] = False
        elif barrier.rise_s is not None:
            if edge.time_s - barrier.rise_s <= c.ghost_max_s:
                barrier.pending.append((barrier.rise_s, edge.time_s))
            barrier.rise_s = None
            self.stuck[edge.sensor_id] = False

    def on_belt(self, sample: MotorSample) -> None:
        c = self.config
        moved = self._encoder is not None and sample.encoder_pulses != self._encoder
        if moved and self._encoder is not None:
            roller = abs(sample.encoder_pulses - self._encoder) / c.pulses_per_mm
            self._roller_mm += roller
            self._roller_total_mm += roller
        if moved or sample.running:
            self._last_motion_s = sample.time_s
        self._encoder = sample.encoder_pulses
        for sensor_id, barrier in self.barriers.items():
            still = []
            for rise, fall in barrier.pending:
                if fall > sample.time_s:
                    still.append((rise, fall))
                elif not (moved or sample.running) and self._last_motion_s < rise - c.standstill_s:
                    barrier.ghosts.append(fall)
                    barrier.last_ghost_s = fall
                    self.ghost_counts[sensor_id] += 1
            barrier.pending = still
        if self._roller_mm >= c.slip_window_mm:
            self.slip = 1.0 - self._belt_mm / self._roller_mm
            self._roller_mm = self._belt_mm = 0.0

    def recent_ghosts(self, sensor_id: str, time_s: float) -> int:
        ghosts = self.barriers[sensor_id].ghosts
        while ghosts and ghosts[0] < time_s - self.config.ghost_window_s:
            ghosts.popleft()
        return len(ghosts)


class Estimator:
    """Every motor and sensor of one factory: feed samples and edges in time order, ask for
    forecasts and alert events at any moment."""

    def __init__(self, config: EstimatorConfig | None = None) -> None:
        self.config = config or EstimatorConfig()
        self.motors: dict[str, MotorEstimator] = {}
        self.sensors = SensorMonitor(self.config)
        self.latches: dict[tuple[str, str], Latch] = {}
        self.new_motors: list[str] = []

    def on_motor(self, sample: MotorSample) -> None:
        motor = self.motors.get(sample.motor_id)
        if motor is None:
            motor = self.motors[sample.motor_id] = MotorEstimator(sample.motor_id, self.config)
            self.new_motors.append(sample.motor_id)
        motor.update(sample)
        if sample.motor_id == self.config.belt_motor_id:
            self.sensors.on_belt(sample)

    def on_edge(self, edge: SensorEdge) -> None:
        self.sensors.on_edge(edge)

    def forecasts(self, time_s: float) -> list[Forecast]:
        return [m.forecast(time_s) for _, m in sorted(self.motors.items())]

    def check(self, time_s: float, forecasts: Iterable[Forecast]) -> list[AlertEvent]:
        """Alert events due at ``time_s`` for ``forecasts`` and the sensors."""
        events: list[AlertEvent] = []
        for f in forecasts:
            motor = self.motors[f.component_id]
            hold = motor.level(f.estimate, self.config.clear_factor)
            code = _MOTOR_CODES.get(f.level, _MOTOR_CODES[Level.INFO])
            value, limit = (
                (f.rul_h, self.config.warning_rul_h)
                if f.level >= Level.WARNING
                else (f.estimate.excess_current_a, self.config.info_excess_a)
            )
            message = (
                f'{f.component_id}: health {f.health:.2f}, RUL {_hours(f.rul_h)} '
                f'({f.method}); {f.recommendation}'
            )
            events += self._latch(f.component_id, 'motor').update(
                time_s, f.level, hold, (code, message, _finite(value), limit)
            )
        events += self._check_sensors(time_s)
        return events

    def _check_sensors(self, time_s: float) -> Iterator[AlertEvent]:
        c = self.config
        s = self.sensors
        for sensor_id, barrier in s.barriers.items():
            recent = s.recent_ghosts(sensor_id, time_s)
            quiet = time_s - barrier.last_ghost_s > c.sensor_clear_s
            raise_ghost = Level.WARNING if recent >= c.ghost_count else Level.NONE
            hold = Level.NONE if quiet else Level.WARNING
            message = (
                f'{sensor_id}: {recent} ghost readings within {c.ghost_window_s:.0f} s; '
                'check and clean the light barrier'
            )
            yield from self._latch(sensor_id, 'ghost').update(
                time_s,
                raise_ghost,
                hold,
                ('GHOST_READINGS', message, float(recent), float(c.ghost_count)),
            )
            # A slipping belt can leave a workpiece under a barrier while the belt moves: not
            # a stuck sensor, and the slip is what gets reported. The slip over the travel
            # since the barrier rose counts too: a growing slip shows there before the next
            # slip_window_mm measurement does.
            slipping = (s.slip is not None and s.slip > c.slip_clear) or barrier.slip > c.slip_clear
            stuck = Level.WARNING if s.stuck[sensor_id] and not slipping else Level.NONE
            yield from self._latch(sensor_id, 'stuck').update(
                time_s,
                stuck,
                stuck,
                (
                    'SENSOR_STUCK',
                    f'{sensor_id}: triggered while the belt moved {c.stuck_travel_mm:.0f} mm; '
                    'check the light barrier',
                    1.0,
                    0.0,
                ),
            )
        if s.slip is not None:
            slip_level = Level.WARNING if s.slip > c.slip_warning else Level.NONE
            hold = Level.WARNING if s.slip > c.slip_clear else Level.NONE
            message = (
                f'{c.belt_motor_id}: belt slips {s.slip:.0%} against the roller; '
                'tension or replace the belt'
            )
            yield from self._latch(c.belt_motor_id, 'slip').update(
                time_s, slip_level, hold, ('BELT_SLIP', message, s.slip, c.slip_warning)
            )

    def _latch(self, component_id: str, kind: str) -> Latch:
        latch = self.latches.get((component_id, kind))
        if latch is None:
            latch = self.latches[(component_id, kind)] = Latch(component_id)
        return latch


def _finite(value: float) -> float:
    return value if math.isfinite(value) else -1.0


__all__ = [
    'AlertEvent',
    'Estimate',
    'Estimator',
    'EstimatorConfig',
    'Forecast',
    'Latch',
    'Level',
    'MotorEstimator',
    'MotorSample',
    'SensorEdge',
    'SensorMonitor',
    'inrush_overcurrent_as',
]
