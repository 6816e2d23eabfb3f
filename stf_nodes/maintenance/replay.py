"""Stored telemetry through the live estimator, and its score against the ground truth.

:func:`replay` reads one factory's ``motor_samples`` (without their ``health`` column) and the
light-barrier and trail ``sensor_edges`` of a database in time order, feeds them to the same
:class:`~stf_nodes.maintenance.estimator.Estimator` the ``maintenance`` node runs, and asks it
for forecasts and alerts every ``period_s`` of history time, as the node's timer does.

:func:`evaluate` scores a replay against ``ground_truth_health`` and ``ground_truth_faults``,
one :class:`Episode` per motor failure (a motor that fails, is repaired and fails again has
two), one per motor that never fails, one per sensor fault (ghost readings, stuck, belt slip)
and one per watched sensor without a fault:

- ``failure_time``: first moment the true health is below the threshold (from at or above it);
  the episode runs from the previous recovery (or the start of the history) to the recovery.
- ``first_warning_time`` / ``first_critical_time``: first alert of that severity or more for the
  component within the episode; ``lead_time_h``: failure minus first warning.
- ``rul_median_ape``: over the last half of the degradation (it starts at the onset of the
  component's first ground-truth fault in the episode, else where the true health last stood
  at 0.9 or more), the median of |RUL estimate - true RUL| / true RUL at every forecast.
- ``false_critical``: a motor CRITICAL in an episode without failure; for a sensor, an alert of
  the sensor outside every fault interval of it (a false alarm).
- ``fault_onset_time`` / ``detected_at``: for sensor faults, onset (or start) of the fault and
  the first matching alert of the sensor from then on.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import ColumnElement, Double, Engine, cast, func, literal_column, select

from stf_nodes.maintenance.estimator import (
    AlertEvent,
    Estimator,
    EstimatorConfig,
    Forecast,
    Level,
    MotorSample,
    SensorEdge,
)
from stf_nodes.storage.db import read_connection
from stf_nodes.storage.history import (
    GroundTruthFaultRow,
    GroundTruthHealthRow,
    MotorSampleRow,
    SensorEdgeRow,
)

SENSOR_FAULT_CODES = {
    'GHOST_READINGS': 'GHOST_READINGS',
    'STUCK': 'SENSOR_STUCK',
    'BELT_SLIP': 'BELT_SLIP',
}


class ReplayError(ValueError):
    """The database holds nothing to replay."""


@dataclass
class Replay:
    """What the estimator said about a history."""

    start_s: float
    end_s: float
    forecasts: dict[str, list[Forecast]] = field(default_factory=dict)
    alerts: list[AlertEvent] = field(default_factory=list)
    estimator: Estimator = field(default_factory=Estimator)
    samples: int = 0
    edges: int = 0


def epoch(moment: datetime) -> float:
    return moment.timestamp()


def iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    # Milliseconds: the database's epoch arithmetic is exact to well below that.
    moment = datetime.fromtimestamp(round(seconds, 3), timezone.utc)
    return moment.isoformat(timespec='milliseconds').replace('+00:00', 'Z')


def time_range(engine: Engine, factory: str = '') -> tuple[float, float] | None:
    with read_connection(engine) as connection:
        first, last = connection.execute(
            select(func.min(MotorSampleRow.time), func.max(MotorSampleRow.time)).where(
                MotorSampleRow.factory == factory
            )
        ).one()
    if first is None:
        return None
    return epoch(first), epoch(last)


def epoch_seconds(column: Any, engine: Engine) -> ColumnElement[float]:
    """``column`` (naive UTC) as float seconds since 1970, computed by the database: a million
    datetime objects cost more than the estimator itself."""
    seconds: ColumnElement[Any]
    if engine.dialect.name == 'sqlite':
        seconds = (func.julianday(column) - 2440587.5) * 86400.0
    elif engine.dialect.name in (
        'mysql',
        'mariadb',
    ):  # unix_timestamp() would apply the session zone
        micros = func.timestampdiff(literal_column('MICROSECOND'), '1970-01-01 00:00:00', column)
        seconds = micros / 1e6
    else:
        seconds = func.extract('epoch', column)
    return cast(seconds, Double)


def _motor_stream(engine: Engine, factory: str, until: datetime | None) -> Iterator[MotorSample]:
    m = MotorSampleRow
    query = (
        select(
            epoch_seconds(m.time, engine),
            m.motor_id,
            m.running,
            m.current_a,
            m.temperature_c,
            m.encoder_pulses,
            m.start_count,
        )
        .where(m.factory == factory)
        .order_by(m.time, m.id)
    )
    if until is not None:
        query = query.where(m.time <= until)
    with read_connection(engine).execution_options(yield_per=20_000) as connection:
        for time, motor_id, running, current, temperature, encoder, starts in connection.execute(
            query
        ):
            yield MotorSample(
                time,
                motor_id,
                bool(running),
                math.nan if current is None else current,
                math.nan if temperature is None else temperature,
                encoder,
                starts,
            )


def _edge_stream(
    engine: Engine, factory: str, sensors: list[str], until: datetime | None
) -> Iterator[SensorEdge]:
    e = SensorEdgeRow
    query = (
        select(epoch_seconds(e.time, engine), e.sensor_id, e.triggered)
        .where(e.factory == factory, e.sensor_id.in_(sensors))
        .order_by(e.time, e.id)
    )
    if until is not None:
        query = query.where(e.time <= until)
    with read_connection(engine).execution_options(yield_per=20_000) as connection:
        for time, sensor_id, triggered in connection.execute(query):
            yield SensorEdge(time, sensor_id, bool(triggered))


def replay(
    engine: Engine,
    *,
    config: EstimatorConfig | None = None,
    factory: str = '',
    period_s: float = 600.0,
    until: datetime | None = None,
) -> Replay:
    """Run the stored telemetry through an estimator (see the module docstring)."""
    span = time_range(engine, factory)
    if span is None:
        where = f' of factory {factory!r}' if factory else ''
        raise ReplayError(f'no motor telemetry{where} in the database: nothing to estimate')
    estimator = Estimator(config)
    c = estimator.config
    sensors = [*c.barrier_ids, c.trail_sensor_id]
    result = Replay(span[0], span[1], estimator=estimator)
    next_tick = math.floor(span[0] / period_s) * period_s + period_s
    # Edges first, whole: SQLite holds one reading transaction per database at a time. They
    # are few; each goes in before the first motor sample at or after it.
    edges = list(_edge_stream(engine, factory, sensors, until))
    edges.append(SensorEdge(math.inf, '', False))
    k = 0
    for sample in _motor_stream(engine, factory, until):
        time_s = sample.time_s
        while edges[k].time_s <= time_s or time_s >= next_tick:
            if edges[k].time_s < next_tick:
                estimator.on_edge(edges[k])
                k += 1
            else:
                _tick(result, next_tick)
                next_tick += period_s
        estimator.on_motor(sample)
    for edge in edges[k:-1]:
        while edge.time_s >= next_tick:
            _tick(result, next_tick)
            next_tick += period_s
        estimator.on_edge(edge)
    result.samples = sum(m.samples for m in estimator.motors.values())
    result.edges = len(edges) - 1
    _tick(result, next_tick)
    return result


def _tick(result: Replay, time_s: float) -> None:
    estimator = result.estimator
    forecasts = estimator.forecasts(time_s)
    for f in forecasts:
        result.forecasts.setdefault(f.component_id, []).append(f)
    result.alerts.extend(estimator.check(time_s, forecasts))


@dataclass(frozen=True)
class Episode:
    """One line of ``stf maintenance evaluate --json`` (times in epoch seconds)."""

    component_id: str
    fault: str | None
    failure_time: float | None
    first_warning_time: float | None
    first_critical_time: float | None
    rul_median_ape: float | None
    false_critical: bool
    fault_onset_time: float | None
    detected_at: float | None
    degradation_start: float | None = None  # motor failures: where the degradation began

    @property
    def lead_time_h(self) -> float | None:
        if self.failure_time is None or self.first_warning_time is None:
            return None
        return (self.failure_time - self.first_warning_time) / 3600.0

    @property
    def precursor_h(self) -> float | None:
        """Hours of degradation before the failure (the warning target needs 48 or more)."""
        if self.failure_time is None or self.degradation_start is None:
            return None
        return (self.failure_time - self.degradation_start) / 3600.0

    def to_json(self) -> dict[str, Any]:
        return {
            'component_id': self.component_id,
            'failure_time': iso(self.failure_time),
            'first_warning_time': iso(self.first_warning_time),
            'first_critical_time': iso(self.first_critical_time),
            'lead_time_h': _round(self.lead_time_h),
            'rul_median_ape': _round(self.rul_median_ape),
            'false_critical': self.false_critical,
            'fault_onset_time': iso(self.fault_onset_time),
            'detected_at': iso(self.detected_at),
            'fault': self.fault,
            'precursor_h': _round(self.precursor_h),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


@dataclass(frozen=True)
class _Fault:
    component_id: str
    kind: str
    onset_s: float
    start_s: float
    end_s: float


def has_ground_truth(engine: Engine, factory: str = '') -> bool:
    with read_connection(engine) as connection:
        return (
            connection.execute(
                select(GroundTruthHealthRow.id)
                .where(GroundTruthHealthRow.factory == factory)
                .limit(1)
            ).first()
            is not None
        )


def evaluate(
    engine: Engine,
    result: Replay,
    factory: str = '',
    true_health: dict[str, list[tuple[float, float]]] | None = None,
) -> list[Episode]:
    """Score ``result`` against the database's ground truth (see the module docstring);
    ``true_health``: :func:`truth`, when the caller has it already."""
    threshold = result.estimator.config.threshold
    true_health = truth(engine, factory) if true_health is None else true_health
    intervals = faults(engine, factory, result.end_s)
    episodes: list[Episode] = []
    for motor_id in sorted(set(true_health) | set(result.forecasts)):
        series = true_health.get(motor_id, [])
        alerts = [a for a in result.alerts if a.component_id == motor_id and not a.cleared]
        alerts = [a for a in alerts if a.code not in SENSOR_FAULT_CODES.values()]
        motor_faults = [f for f in intervals if f.component_id == motor_id]
        episodes += _motor_episodes(
            motor_id,
            series,
            alerts,
            result.forecasts.get(motor_id, []),
            motor_faults,
            threshold,
            result.start_s,
        )
    config = result.estimator.config
    sensors = set(config.barrier_ids) | {
        f.component_id for f in intervals if f.kind in SENSOR_FAULT_CODES
    }
    for component_id in sorted(sensors):
        component_faults = [
            f for f in intervals if f.component_id == component_id and f.kind in SENSOR_FAULT_CODES
        ]
        alerts = [
            a
            for a in result.alerts
            if a.component_id == component_id
            and not a.cleared
            and a.code in SENSOR_FAULT_CODES.values()
        ]
        false_alarm = any(
            not any(f.onset_s <= a.time_s <= f.end_s + 3600.0 for f in component_faults)
            for a in alerts
        )
        if not component_faults:
            episodes.append(
                Episode(component_id, None, None, None, None, None, false_alarm, None, None)
            )
        for fault in component_faults:
            code = SENSOR_FAULT_CODES[fault.kind]
            detected = next(
                (
                    a.time_s
                    for a in alerts
                    if a.code == code
                    and a.time_s >= fault.onset_s
                    and a.time_s <= fault.end_s + 3600.0
                ),
                None,
            )
            episodes.append(
                Episode(
                    component_id,
                    fault.kind,
                    None,
                    None,
                    None,
                    None,
                    false_alarm,
                    fault.onset_s,
                    detected,
                )
            )
    return episodes


def truth(engine: Engine, factory: str) -> dict[str, list[tuple[float, float]]]:
    g = GroundTruthHealthRow
    out: dict[str, list[tuple[float, float]]] = {}
    query = (
        select(g.motor_id, epoch_seconds(g.time, engine), g.health)
        .where(g.factory == factory)
        .order_by(g.motor_id, g.time)
    )
    with read_connection(engine) as connection:
        for motor_id, time, health in connection.execute(query):
            out.setdefault(motor_id, []).append((time, health))
    return out


def faults(engine: Engine, factory: str, end_s: float) -> list[_Fault]:
    g = GroundTruthFaultRow
    with read_connection(engine) as connection:
        rows = connection.execute(
            select(g.component_id, g.kind, g.onset_at, g.started_at, g.ended_at).where(
                g.factory == factory
            )
        ).all()
    return [
        _Fault(
            component_id,
            kind,
            (onset or started).timestamp(),
            started.timestamp(),
            ended.timestamp() if ended is not None else end_s,
        )
        for component_id, kind, onset, started, ended in rows
    ]


def _motor_episodes(
    motor_id: str,
    series: list[tuple[float, float]],
    alerts: list[AlertEvent],
    forecasts: list[Forecast],
    faults: list[_Fault],
    threshold: float,
    start_s: float,
) -> list[Episode]:
    # (begin, failure, end) of each failure; the healthy remainder is its own episode.
    spans: list[tuple[float, float | None, float]] = []
    begin = series[0][0] if series else start_s
    failed_at: float | None = None
    previous = math.inf
    for time_s, health in series:
        if failed_at is None and health < threshold <= previous:
            failed_at = time_s
        elif failed_at is not None and health >= threshold:
            spans.append((begin, failed_at, time_s))
            begin, failed_at = time_s, None
        previous = health
    end = series[-1][0] if series else math.inf
    if failed_at is not None:
        spans.append((begin, failed_at, end))
    elif not spans or begin < end:
        spans.append((begin, None, math.inf))
    episodes = []
    for begin, failure, stop in spans:
        inside = [a for a in alerts if begin <= a.time_s < stop]
        warning = next((a.time_s for a in inside if a.severity >= Level.WARNING), None)
        critical = next((a.time_s for a in inside if a.severity >= Level.CRITICAL), None)
        if failure is not None:
            warning = warning if warning is not None and warning <= failure else None
        ape = degradation = None
        if failure is not None:
            degradation = _degradation_start(series, faults, begin, failure)
            ape = _rul_ape(forecasts, (degradation + failure) / 2, failure)
        episodes.append(
            Episode(
                motor_id,
                None,
                failure,
                warning,
                critical,
                ape,
                failure is None and critical is not None,
                None,
                None,
                degradation,
            )
        )
    return episodes


def _degradation_start(
    series: list[tuple[float, float]], faults: list[_Fault], begin: float, failure: float
) -> float:
    onsets = [f.onset_s for f in faults if begin <= f.end_s and f.onset_s < failure]
    if onsets:
        return max(begin, min(onsets))
    healthy = [t for t, h in series if begin <= t < failure and h >= 0.9]
    return healthy[-1] if healthy else begin


def _rul_ape(forecasts: list[Forecast], since: float, failure: float) -> float | None:
    errors = [
        abs(f.rul_h - (failure - f.time_s) / 3600.0) / ((failure - f.time_s) / 3600.0)
        for f in forecasts
        if since <= f.time_s < failure
    ]
    errors = [e if math.isfinite(e) else 1e9 for e in errors]
    return statistics.median(errors) if errors else None
