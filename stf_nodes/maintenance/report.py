"""`stf report`: PNG charts (matplotlib, Agg backend: no display needed) and an index.html that
opens from disk (relative image paths, no script, no network).

Charts: the running motor currents per motor with the scenario's fault intervals shaded; true
and estimated health per motor with the 0.5 threshold, and the estimated RUL with its band
against the true RUL; energy per day and station; orders per day, completed and failed; the
timeline of the estimator's alerts; ghost readings per sensor. Tables: the maintenance
recommendations at the end of the history and, with ground truth, the evaluation.
Everything comes from the database and one replay through the estimator (``replay.Replay``).
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use('Agg')

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from sqlalchemy import Engine, Float, func, select

from stf_nodes.maintenance.replay import (
    Replay,
    evaluate,
    faults,
    has_ground_truth,
    iso,
    truth,
)
from stf_nodes.storage.db import read_connection
from stf_nodes.storage.history import CommandTransitionRow, MotorSampleRow

SEVERITY_COLORS = {0: 'tab:blue', 1: 'tab:orange', 2: 'tab:red', 3: 'darkred'}
COMPLETED, FAILED = 2, 3


def _dates(seconds: list[float]) -> list[datetime]:
    return [datetime.fromtimestamp(s, timezone.utc) for s in seconds]


def _save(fig: Any, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / name, dpi=80)
    plt.close(fig)
    return name


def _motor_axes(motors: list[str], height: float) -> tuple[Any, list[Any]]:
    fig, axes = plt.subplots(
        len(motors), 1, figsize=(11, height * len(motors)), sharex=True, squeeze=False
    )
    return fig, [row[0] for row in axes]


CurrentSeries = dict[str, list[tuple[float, float, float]]]


def hourly_currents(engine: Engine, factory: str = '') -> CurrentSeries:
    """Per motor (mid-hour epoch seconds, mean, peak) of the running current: the shape of
    the signal without a million points. One aggregate the database computes on its own
    (``stf report`` runs it beside the replay)."""
    m = MotorSampleRow
    hour = func.floor(_epoch(m.time, engine) / 3600)
    query = (
        select(m.motor_id, hour, func.avg(m.current_a), func.max(m.current_a))
        .where(m.factory == factory, m.running.is_(True))
        .group_by(m.motor_id, hour)
    )
    series: CurrentSeries = defaultdict(list)
    with read_connection(engine) as connection:
        for motor_id, h, mean, peak in connection.execute(query):
            if mean is not None:
                series[motor_id].append((float(h) * 3600 + 1800, mean, peak))
    return series


def _currents(
    engine: Engine, result: Replay, series: CurrentSeries, out: Path, factory: str
) -> str:
    motors = sorted(result.forecasts)
    intervals = faults(engine, factory, result.end_s)
    fig, axes = _motor_axes(motors, 1.3)
    for ax, motor_id in zip(axes, motors, strict=True):
        points = sorted(series.get(motor_id, []))
        ax.plot(_dates([p[0] for p in points]), [p[1] for p in points], lw=0.8, label='mean')
        ax.plot(
            _dates([p[0] for p in points]), [p[2] for p in points], lw=0.5, alpha=0.5, label='peak'
        )
        for f in intervals:
            if f.component_id == motor_id:
                ax.axvspan(*_dates([f.onset_s, f.end_s]), color='tab:red', alpha=0.15)
                ax.text(_dates([f.start_s])[0], ax.get_ylim()[1], f.kind, fontsize=7, va='top')
        ax.set_ylabel(f'{motor_id}\nA', fontsize=8)
    axes[0].set_title('Running current per hour (mean, peak); scenario faults shaded')
    axes[0].legend(fontsize=7, loc='upper left')
    axes[-1].xaxis.set_major_formatter(mdates.DateFormatter('%m-%d'))
    return _save(fig, out, 'currents.png')


def _health(result: Replay, true_health: dict[str, list[tuple[float, float]]], out: Path) -> str:
    motors = sorted(result.forecasts)
    fig, axes = _motor_axes(motors, 1.6)
    for ax, motor_id in zip(axes, motors, strict=True):
        forecasts = result.forecasts[motor_id]
        times = _dates([f.time_s for f in forecasts])
        true = true_health.get(motor_id, [])
        if true:
            ax.plot(
                _dates([t for t, _ in true[::10]]),
                [h for _, h in true[::10]],
                'k-',
                lw=1,
                label='true health',
            )
        ax.plot(times, [f.health for f in forecasts], 'b-', lw=1, label='estimated health')
        ax.axhline(0.5, color='r', ls='--', lw=0.8, label='maintenance threshold')
        ax.set_ylim(0, 1.05)
        ax.set_ylabel(f'{motor_id}\nhealth', fontsize=8)
        rul = ax.twinx()
        cap = 120.0
        rul.fill_between(
            times,
            [min(f.rul_lower_h, cap) for f in forecasts],
            [min(f.rul_upper_h, cap) for f in forecasts],
            color='tab:orange',
            alpha=0.25,
            label='RUL band',
        )
        rul.plot(
            times,
            [min(f.rul_h, cap) for f in forecasts],
            color='tab:orange',
            lw=0.8,
            label='RUL estimate',
        )
        rul.set_ylim(0, cap * 1.05)
        rul.set_ylabel('RUL h (≤120)', fontsize=8)
    axes[0].set_title('True and estimated health, threshold 0.5; estimated RUL with its band')
    handles = axes[0].get_legend_handles_labels()
    axes[0].legend(*handles, fontsize=7, loc='lower left')
    axes[-1].xaxis.set_major_formatter(mdates.DateFormatter('%m-%d'))
    return _save(fig, out, 'health.png')


def _epoch(column: Any, engine: Engine) -> Any:
    if engine.dialect.name == 'sqlite':
        return func.cast(func.strftime('%s', column), Float)
    if engine.dialect.name in ('mysql', 'mariadb'):
        return func.unix_timestamp(column)
    return func.extract('epoch', column)


def _day(column: Any, engine: Engine) -> Any:
    if engine.dialect.name == 'sqlite':
        return func.date(column)
    return (
        func.date(column)
        if engine.dialect.name in ('mysql', 'mariadb')
        else func.date_trunc('day', column)
    )


def _energy(engine: Engine, result: Replay, out: Path, factory: str) -> str:
    """Energy per day and station from each motor's energy counter at every midnight (index
    seeks, not a scan); a counter that went back (a restarted node) counts from zero."""
    m = MotorSampleRow
    first_day = math.floor(result.start_s / 86400.0) * 86400.0
    days = math.ceil((result.end_s - first_day) / 86400.0)
    bounds = [first_day + 86400.0 * k for k in range(days + 1)]
    per: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    with read_connection(engine) as connection:
        for motor_id in result.forecasts:
            mine = select(m.station, m.energy_wh).where(
                m.factory == factory, m.motor_id == motor_id
            )
            readings = []
            for bound in bounds:
                moment = datetime.fromtimestamp(bound, timezone.utc)
                row = connection.execute(
                    mine.where(m.time < moment).order_by(m.time.desc()).limit(1)
                ).first()
                readings.append(row)
            for k in range(1, len(bounds)):
                before, after = readings[k - 1], readings[k]
                if after is None or after.energy_wh is None:
                    continue
                start = before.energy_wh if before is not None and before.energy_wh else 0.0
                used = after.energy_wh - start if after.energy_wh >= start else after.energy_wh
                day = datetime.fromtimestamp(bounds[k - 1], timezone.utc).date().isoformat()
                per[after.station or '?'][day] += used
    days = sorted({d for station in per.values() for d in station})
    fig, ax = plt.subplots(figsize=(11, 3))
    bottom = [0.0] * len(days)
    for station in sorted(per):
        values = [per[station].get(d, 0.0) for d in days]
        ax.bar([d[5:] for d in days], values, bottom=bottom, label=station)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_ylabel('Wh')
    ax.set_title('Energy per day and station')
    ax.legend(fontsize=7)
    ax.tick_params(axis='x', labelsize=7, rotation=90)
    return _save(fig, out, 'energy.png')


def _orders(engine: Engine, out: Path, factory: str) -> str:
    c = CommandTransitionRow
    day = _day(c.time, engine)
    query = (
        select(day, c.status, func.count())
        .where(c.factory == factory, c.status.in_([COMPLETED, FAILED]))
        .group_by(day, c.status)
    )
    counts: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    with read_connection(engine) as connection:
        for d, status, n in connection.execute(query):
            counts[str(d)[:10]][status] += n
    days = sorted(counts)
    fig, ax = plt.subplots(figsize=(11, 3))
    done = [counts[d][COMPLETED] for d in days]
    ax.bar([d[5:] for d in days], done, color='tab:green', label='completed')
    ax.bar(
        [d[5:] for d in days],
        [counts[d][FAILED] for d in days],
        bottom=done,
        color='tab:red',
        label='failed',
    )
    ax.set_title('Commands finished per day')
    ax.legend(fontsize=7)
    ax.tick_params(axis='x', labelsize=7, rotation=90)
    return _save(fig, out, 'orders.png')


def _alerts(result: Replay, out: Path) -> str:
    raised = [a for a in result.alerts if not a.cleared]
    components = sorted({a.component_id for a in raised}) or ['(none)']
    fig, ax = plt.subplots(figsize=(11, 0.4 * len(components) + 1.2))
    for a in raised:
        ax.scatter(
            _dates([a.time_s]),
            [components.index(a.component_id)],
            color=SEVERITY_COLORS.get(a.severity, 'k'),
            s=25,
        )
    for a in result.alerts:
        if a.cleared:
            ax.scatter(
                _dates([a.time_s]),
                [components.index(a.component_id)],
                marker='x',
                color='grey',
                s=20,
            )
    ax.set_yticks(range(len(components)), components, fontsize=7)
    ax.set_xlim(*_dates([result.start_s, result.end_s]))
    ax.xaxis.set_major_formatter(mdates.DateFormatter('%m-%d'))
    ax.set_title('Maintenance alerts: INFO blue, WARNING orange, CRITICAL dark red, cleared x')
    return _save(fig, out, 'alerts.png')


def _ghosts(result: Replay, out: Path) -> str:
    counts = result.estimator.sensors.ghost_counts
    fig, ax = plt.subplots(figsize=(6, 2.5))
    ax.bar(list(counts), list(counts.values()), color='tab:purple')
    ax.set_title('Ghost readings per light barrier')
    ax.tick_params(axis='x', labelsize=7)
    return _save(fig, out, 'ghosts.png')


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = ''.join(f'<th>{html.escape(h)}</th>' for h in header)
    body = ''.join(
        '<tr>' + ''.join(f'<td>{html.escape(c)}</td>' for c in row) + '</tr>' for row in rows
    )
    return f'<table><tr>{head}</tr>{body}</table>'


def _hours(value: float) -> str:
    return f'{value:.0f}' if math.isfinite(value) else '-'


def write_report(
    engine: Engine,
    result: Replay,
    out: Path,
    *,
    factory: str = '',
    currents: CurrentSeries | None = None,
) -> Path:
    """Write the charts and ``index.html`` into ``out`` (created); return the index path.
    ``currents``: :func:`hourly_currents`, when the caller has them already."""
    out.mkdir(parents=True, exist_ok=True)
    ground_truth = has_ground_truth(engine, factory)
    true_health = truth(engine, factory)
    if currents is None:
        currents = hourly_currents(engine, factory)
    images = [
        _currents(engine, result, currents, out, factory),
        _health(result, true_health, out),
        _energy(engine, result, out, factory),
        _orders(engine, out, factory),
        _alerts(result, out),
        _ghosts(result, out),
    ]
    forecasts = result.estimator.forecasts(result.end_s)
    recommendations = _table(
        ['motor', 'health', 'RUL h', 'band h', 'method', 'level', 'recommendation'],
        [
            [
                f.component_id,
                f'{f.health:.2f}',
                _hours(f.rul_h),
                f'{_hours(f.rul_lower_h)} to {_hours(f.rul_upper_h)}',
                f.method,
                f.level.name,
                f.recommendation,
            ]
            for f in forecasts
        ],
    )
    if ground_truth:
        from stf_nodes.cli.maintenance import check_targets

        episodes = evaluate(engine, result, factory, true_health)
        evaluation = _table(
            [
                'component',
                'fault',
                'failure',
                'first warning',
                'first critical',
                'precursor h',
                'lead h',
                'RUL MAPE',
                'false alarm',
                'onset',
                'detected',
            ],
            [
                [
                    e.component_id,
                    e.fault or '-',
                    iso(e.failure_time) or '-',
                    iso(e.first_warning_time) or '-',
                    iso(e.first_critical_time) or '-',
                    '-' if e.precursor_h is None else f'{e.precursor_h:.1f}',
                    '-' if e.lead_time_h is None else f'{e.lead_time_h:.1f}',
                    '-' if e.rul_median_ape is None else f'{e.rul_median_ape:.0%}',
                    'yes' if e.false_critical else 'no',
                    iso(e.fault_onset_time) or '-',
                    iso(e.detected_at) or '-',
                ]
                for e in episodes
            ],
        ) + _table(['target', 'verdict'], [list(t) for t in check_targets(episodes)])
    else:
        evaluation = '<p>No ground truth in this database (a recorded history): not scored.</p>'
    figures = ''.join(f'<figure><img src="{name}" alt="{name}"></figure>' for name in images)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>STF maintenance report</title>
<style>body{{font-family:sans-serif;margin:1em}} table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #999;padding:2px 6px}} img{{max-width:100%}}</style></head><body>
<h1>STF Digital Twin: maintenance report</h1>
<p>{html.escape(iso(result.start_s) or '')} to {html.escape(iso(result.end_s) or '')}:
{result.samples} motor samples, {result.edges} sensor edges.</p>
<h2>Maintenance recommendations</h2>{recommendations}
<h2>Evaluation against the ground truth</h2>{evaluation}
<h2>Charts</h2>{figures}
</body></html>
"""
    index = out / 'index.html'
    index.write_text(page, encoding='utf-8')
    return index
