"""The history generator: weeks of factory operation in the recorder's schema, in seconds.

What happens in a generated history (``HistoryGenerator``):

- **Orders.** Every day ``orders_per_day`` customer orders arrive at uniformly random times
  between ``work_start_h`` and ``work_end_h`` (UTC), each for a random flavor. An order is
  served as the fischertechnik factory serves one, through the scheduler's commands: PROCESS a
  RAW_DOUGH cookie of the flavor (baked and stored back), RETRIEVE it to the output (shipped),
  STORE a fresh RAW_DOUGH cookie of the flavor to restock; with no raw cookie of the flavor in
  the rack the STORE comes first. Each command is submitted when the previous one of its order
  finished; commands wait in one FIFO queue like the scheduler's (equal priorities), slots
  are chosen as the scheduler chooses them (first suitable slot, row-major). An order whose
  command fails ends there; an order that finds neither a cookie nor a free slot is refused.
- **Physics.** Commands run on :class:`~stf_nodes.history.simulation.SimFactory`: the live
  station models and the scheduler's plans, timeouts and recovery, at the nodes' physics rate
  (see that module for how simulated commands are reused). Between commands the factory
  stands still and is integrated exactly, minute by minute (``Station.step``).
- **Faults** follow the scenario (``FaultSchedule``): set on the model components when they
  change, cleared by maintenance (which also restores a motor's health to 1.0).
  GHOST_READINGS are a Poisson process of ``GHOST_PULSE_S`` pulses laid over the sensor's
  edges (continuous-time form of the sensor model's per-step draw).
- **Alerts** come from the live ``AlertMonitor`` fed with the motor samples; station logs
  are written as the nodes log (task starts, fault injections, alerts, recoveries).

Rows (the recorder's tables, ``stf_nodes/storage/history.py``): motor samples of every motor
every ``sample_period_s`` while a command runs and every ``idle_period_s`` (on the whole
minute) while the factory stands still; sensor edges and station state changes at physics
resolution; every ``CommandStatus`` the scheduler would publish; inventory changes; alerts;
logs. Ground truth: every motor's health, temperature and fault at every whole minute, the
fault intervals and the maintenance actions as simulated.

Deterministic: the same settings, scenario, options and seed give the same rows (all
randomness comes from generators seeded from ``seed``). Rows are produced day by day
(:meth:`HistoryGenerator.days`), so memory does not grow with the length of the history.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import numpy as np

from stf_nodes.history.scenario import FaultSchedule, Scenario
from stf_nodes.history.simulation import (
    ELECTRICAL_FAULTS,
    OVERLAY_FAULTS,
    CommandRun,
    FactorySettings,
    FaultChange,
    MotorTrace,
    SimFactory,
    motor_state,
    replay,
)
from stf_nodes.scheduler.records import CommandKind, CommandRecord, CommandStatus
from stf_nodes.scheduler.routes import Step, plan_for, slot_of
from stf_nodes.sim import AlertMonitor, Flavor, Motor, Workpiece, WorkpieceStatus
from stf_nodes.sim.faults import Fault, FaultKind
from stf_nodes.sim.sensors import GHOST_PULSE_S
from stf_nodes.storage.writer import micros

HOUR = 3600.0
DAY = 86400.0
LOG_INFO, LOG_WARN = 20, 30
FLAVORS = tuple(Flavor)


@dataclass(frozen=True, kw_only=True)
class HistoryOptions:
    """What to generate; ``start`` is the aware UTC moment day 1 begins."""

    days: int
    orders_per_day: int
    start: datetime
    seed: int = 0
    factory: str = ''
    sample_period_s: float = 1.0
    idle_period_s: float = 60.0
    work_start_h: float = 6.0
    work_end_h: float = 22.0
    first_command_id: int = 1
    reuse: bool = True  # False: every segment simulated (to check or time the reuse)

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError(f'days must be >= 1, got {self.days}')
        if self.orders_per_day < 0:
            raise ValueError(f'orders per day must be >= 0, got {self.orders_per_day}')
        if self.start.tzinfo is None:
            raise ValueError('start must be an aware (UTC) datetime')
        if not 0 <= self.work_start_h < self.work_end_h <= 24:
            raise ValueError('working hours must satisfy 0 <= start < end <= 24')
        if self.sample_period_s <= 0 or self.idle_period_s <= 0:
            raise ValueError('sample periods must be > 0')


class Tables:
    """Rows of one day, column by column: lists of values, or chunks of numpy arrays (a
    scalar in a chunk stands for itself repeated)."""

    def __init__(self) -> None:
        self.columns: dict[str, dict[str, list[Any]]] = {}
        self.sizes: dict[str, list[int]] = {}

    def add(self, table: str, **values: Any) -> None:
        columns = self.columns.setdefault(table, {name: [] for name in values})
        for name, value in values.items():
            columns[name].append(value)
        sizes = self.sizes.get(table)
        if sizes is not None:
            sizes.append(1)

    def add_chunk(self, table: str, n: int, **arrays: Any) -> None:
        """Append ``n`` rows given as arrays or scalars (repeated)."""
        columns = self.columns.setdefault(table, {name: [] for name in arrays})
        if table not in self.sizes:  # rows added one by one so far: chunks of one
            self.sizes[table] = [1] * len(next(iter(columns.values())))
        for name, value in arrays.items():
            columns[name].append(value)
        self.sizes[table].append(n)

    def take(self) -> dict[str, dict[str, Any]]:
        """The rows so far, per table and column (chunked tables as numpy arrays)."""
        out: dict[str, dict[str, Any]] = {}
        for table, columns in self.columns.items():
            sizes = self.sizes.get(table)
            if sizes is None:
                out[table] = columns
                continue
            out[table] = {name: _joined(chunks, sizes) for name, chunks in columns.items()}
        self.columns, self.sizes = {}, {}
        return out


def _joined(chunks: list[Any], sizes: list[int]) -> np.ndarray | list[Any]:
    if all(isinstance(chunk, np.ndarray) for chunk in chunks):
        return np.concatenate(chunks)
    out: list[Any] = []
    for chunk, n in zip(chunks, sizes, strict=True):
        if isinstance(chunk, np.ndarray):
            out.extend(chunk.tolist())
        else:
            out.extend([chunk] * n)
    return out


@dataclass
class Stack:
    """Motor traces stacked: ``values[field]`` is (motors, samples) in ``motor_ids`` order."""

    values: dict[str, np.ndarray]
    ends: list[dict[str, float]]
    max_temperature_c: np.ndarray
    currents: list[list[tuple[int, float]]]  # per motor, see MotorTrace.currents

    @classmethod
    def of(cls, traces: list[MotorTrace]) -> Stack:
        return cls(
            values={name: np.stack([t.values[name] for t in traces]) for name in traces[0].values},
            ends=[t.end for t in traces],
            max_temperature_c=np.array([t.max_temperature_c for t in traces]),
            currents=[t.currents for t in traces],
        )


@dataclass
class _Order:
    number: int
    flavor: Flavor
    arrival_s: float
    stage: str = 'new'  # new, store_first, process, retrieve, restock, done
    slot: str = ''


@dataclass(order=True)
class _Queued:
    created_s: float
    sequence: int
    kind: CommandKind = field(compare=False)
    order: _Order = field(compare=False)
    command_id: int = field(compare=False, default=0)
    source: str = field(compare=False, default='')
    target: str = field(compare=False, default='')
    cookie: Workpiece | None = field(compare=False, default=None)
    message: str = field(compare=False, default='')


def _segments(plan: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """The plan cut before every bake and every pick and around the crane's steps: the oven
    matters from a bake on, the vacuum from a pick on, where the crane starts only to its own
    step; reused independently, the number of distinct pieces is the sum of the variants of
    each rather than their product."""
    cuts = [
        i
        for i, step in enumerate(plan)
        if i and (step.verb in ('bake', 'pick') or 'hbw' in (step.station, plan[i - 1].station))
    ]
    bounds = [0, *cuts, len(plan)]
    return [plan[a:b] for a, b in itertools.pairwise(bounds)]


#: Cache entry under a plain key: the run failed, look under the key of all stations.
_FAILED: Any = object()


class HistoryGenerator:
    """Generates a history; see the module docstring."""

    def __init__(
        self, settings: FactorySettings, scenario: Scenario, options: HistoryOptions
    ) -> None:
        self.settings = settings
        self.scenario = scenario
        self.options = options
        scenario.check_period(options.days)
        self.factory = SimFactory(settings, seed=options.seed)
        self.schedule = FaultSchedule(scenario, options.days * 24.0)
        self.rng = np.random.default_rng(options.seed)
        self.start_us = micros(options.start)
        self.dt = self.factory.dt
        self.sample_steps = max(1, round(options.sample_period_s / self.dt))
        self.sample_s = self.sample_steps * self.dt
        self.now = 0.0
        self.tables = Tables()
        self.idle_samples: list[tuple[Any, ...]] = []
        self.cache: dict[tuple[Any, ...], CommandRun] = {}
        self.stats = {'commands': 0, 'simulated': 0, 'reused': 0, 'exact': 0, 'refused': 0}
        self.rack: dict[str, Workpiece | None] = dict(self.factory.hbw.slots)
        self.db_rack: dict[str, Workpiece | None] = dict(self.rack)
        self.reserved: set[str] = set()
        self.task_ids = dict.fromkeys(('hbw', 'vgr', 'conveyor'), 0)
        self.command_ids = itertools.count(options.first_command_id)
        self.sequence = itertools.count()
        self.queue: list[_Queued] = []
        self.new_cookies = itertools.count(1)
        # Two monitors per station: one sees the currents at the publish rate, the other the
        # samples' temperatures and health (which change slowly).
        self.monitors, self.current_monitors = (
            {
                'hbw': AlertMonitor(config=settings.hbw.alert),
                'vgr': AlertMonitor(config=settings.vgr.alert),
                'conveyor': AlertMonitor(config=settings.conveyor.alert),
            }
            for _ in range(2)
        )
        self.current_points: list[tuple[int, str, float]] = []
        self.changes = self.schedule.change_points()
        self.sudden_changes = self.schedule.change_points(sudden_only=True)
        self.change_index = 0
        self.applied_faults: dict[str, tuple[FaultKind, float]] = {}
        self.axis_of = {
            axis.motor.motor_id: axis
            for station in self.factory.stations.values()
            for axis in station.parts.axes.values()
        }
        self.motor_ids = tuple(self.factory.motors)
        self.motor_station = {m: self.factory.station_of[m] for m in self.motor_ids}
        self.motor_id_array = np.array(self.motor_ids, dtype=object)
        self.motor_stations = np.array(
            [self.motor_station[m] for m in self.motor_ids], dtype=object
        )
        configs = [self.factory.motors[m].config for m in self.motor_ids]
        self.voltages = np.array([c.voltage_v for c in configs])
        self.ambient_c = np.array([c.ambient_c for c in configs])
        self.wear_temperature_c = np.array([c.wear_temperature_c for c in configs])
        self.thermal_tau_s = np.array(
            [c.thermal_resistance_k_w * c.thermal_capacity_j_k for c in configs]
        )

    # -- helpers --------------------------------------------------------------------------

    def _us(self, seconds: float | np.ndarray) -> Any:
        if isinstance(seconds, np.ndarray):
            return self.start_us + np.round(seconds * 1e6).astype(np.int64)
        return self.start_us + round(seconds * 1e6)

    def _log(self, at_s: float, level: int, node: str, message: str) -> None:
        name = f'{self.options.factory}.{node}' if self.options.factory else node
        self.tables.add(
            'logs',
            time=self._us(at_s),
            factory=self.options.factory,
            level=level,
            name=name,
            message=message,
            file='',
            function='',
            line=0,
        )

    # -- the main loop --------------------------------------------------------------------

    def days(self) -> Iterator[tuple[int, dict[str, dict[str, Any]]]]:
        """Generate day by day: yields (day number, rows of that day per table)."""
        self._begin()
        arrivals = self._arrivals()
        for day in range(1, self.options.days + 1):
            day_end = day * DAY
            while True:
                next_arrival = arrivals[0].arrival_s if arrivals else math.inf
                next_start = max(self.now, self.queue[0].created_s) if self.queue else math.inf
                if min(next_arrival, next_start) >= day_end:
                    break
                if next_arrival <= next_start:
                    order = arrivals.pop(0)
                    self._advance_to(order.arrival_s)
                    self._next_command(order, order.arrival_s)
                    continue
                self._advance_to(next_start)
                self._run(heapq.heappop(self.queue))
            self._advance_to(day_end)
            self._flush_idle()
            self._ghosts(day_end - DAY, day_end)
            self._alerts()
            yield day, self.tables.take()
        self._ground_truth_faults()
        yield self.options.days, self.tables.take()

    def _begin(self) -> None:
        """What the recorder sees first: every slot, sensor and station once."""
        for slot, wp in self.rack.items():
            self._inventory_row(0.0, slot, wp)
        for name, station in self.factory.stations.items():
            self._station_row(0.0, name, int(station.state), '', 0)
            for sensor_id, sensor in station.parts.sensors.items():
                self._edge_row(0.0, name, sensor_id, sensor.triggered, sensor.value, '')
        self._apply_faults(0.0)
        self._sample_idle()

    def _arrivals(self) -> list[_Order]:
        o = self.options
        orders = []
        number = 0
        for day in range(o.days):
            times = np.sort(self.rng.uniform(o.work_start_h, o.work_end_h, o.orders_per_day))
            flavors = self.rng.integers(0, len(FLAVORS), o.orders_per_day)
            for at_h, flavor in zip(times.tolist(), flavors.tolist(), strict=True):
                number += 1
                orders.append(_Order(number, FLAVORS[flavor], day * DAY + at_h * HOUR))
        return orders

    # -- standing still -------------------------------------------------------------------

    def _advance_to(self, target_s: float) -> None:
        """Let the factory stand still until ``target_s``: faults and maintenance applied when
        they change, samples on every whole ``idle_period_s``."""
        period = self.options.idle_period_s
        while self.now < target_s:
            boundary = (math.floor(self.now / period + 1e-9) + 1) * period
            change = (
                self.changes[self.change_index] * HOUR
                if self.change_index < len(self.changes)
                else math.inf
            )
            stop = min(boundary, change, target_s)
            # A change a rounding error before the boundary (an onset step at 4.1 h) is at it:
            # the next boundary is counted from there, so this one is sampled now.
            at_boundary = boundary - stop < 1e-6
            self.factory.idle(stop - self.now)
            self.now = stop
            if stop == change:
                self._apply_faults(stop)
            if at_boundary:
                self._sample_idle()

    def _apply_faults(self, at_s: float) -> None:
        """Apply every change point up to ``at_s``: maintenance, then the scenario's faults."""
        self.factory.settle()
        at_h = at_s / HOUR
        while self.change_index < len(self.changes) and self.changes[self.change_index] <= at_h:
            self.change_index += 1
        for entry in self.schedule.maintenance:
            if abs(entry.at_h - at_h) < 1e-9:
                self._maintain(at_s, entry.component)
        state = self.schedule.state(at_h)
        self.factory.set_faults(state, include=lambda kind: kind not in OVERLAY_FAULTS)
        self._log_fault_changes(at_s, state)

    def _maintain(self, at_s: float, component: str) -> None:
        motor = self.factory.motors.get(component)
        before = motor.health if motor else None
        if motor is not None:
            motor.maintain()
        self.tables.add(
            'ground_truth_maintenance',
            time=self._us(at_s),
            factory=self.options.factory,
            component_id=component,
            health_before=before,
            scenario=self.scenario.name,
        )
        self._log(at_s, LOG_INFO, self.factory.station_of[component], f'{component} maintained')

    def _log_fault_changes(self, at_s: float, state: dict[str, tuple[FaultKind, float]]) -> None:
        for component, (kind, _) in state.items():
            if self.applied_faults.get(component, (None, 0))[0] is not kind:
                station = self.factory.station_of[component]
                self._log(at_s, LOG_WARN, station, f'{kind.value} injected into {component}')
        self.applied_faults = dict(state)

    def _sample_idle(self) -> None:
        """One sample and one ground-truth row of every motor (kept as tuples; see
        ``_flush_idle``)."""
        at = self._us(self.now)
        for motor_id, motor in self.factory.motors.items():
            axis = self.axis_of.get(motor_id)
            self.idle_samples.append(
                (
                    at,
                    motor_id,
                    motor.running,
                    motor.direction,
                    motor.current_a,
                    motor.energy_wh,
                    motor.temperature_c,
                    motor.health,
                    axis.encoder_pulses if axis else 0,
                    motor.start_count,
                    motor.runtime_s / 3600.0,
                    motor.fault.kind.value if motor.fault else '',
                )
            )

    def _flush_idle(self) -> None:
        if not self.idle_samples:
            return
        columns = list(zip(*self.idle_samples, strict=True))
        self.idle_samples = []
        (times, motors, running, direction, current, energy, temperature, health, encoder,
         starts, runtime, faults) = columns  # fmt: skip
        current_a = np.array(current)
        motor_ids = np.array(motors, dtype=object)
        n = len(times)
        stations = np.array([self.motor_station[m] for m in motors], dtype=object)
        volts = np.array([self.factory.motors[m].config.voltage_v for m in motors])
        common = {'time': np.array(times, dtype=np.int64), 'factory': self.options.factory}
        self.tables.add_chunk(
            'motor_samples',
            n,
            **common,
            station=stations,
            motor_id=motor_ids,
            running=np.array(running, dtype=bool),
            direction=np.array(direction, dtype=np.int64),
            current_a=current_a,
            voltage_v=volts,
            power_w=volts * current_a,
            energy_wh=np.array(energy),
            temperature_c=np.array(temperature),
            health=np.array(health),
            encoder_pulses=np.array(encoder, dtype=np.int64),
            start_count=np.array(starts, dtype=np.int64),
            runtime_h=np.array(runtime),
            fault=np.array(faults, dtype=object),
        )
        self.tables.add_chunk(
            'ground_truth_health',
            n,
            **common,
            motor_id=motor_ids,
            health=np.array(health),
            temperature_c=np.array(temperature),
            fault=np.array(faults, dtype=object),
        )

    # -- rows -----------------------------------------------------------------------------

    def _station_row(self, at_s: float, station: str, state: int, task: str, task_id: int) -> None:
        self.tables.add(
            'station_states',
            time=self._us(at_s),
            factory=self.options.factory,
            station=station,
            state=state,
            task=task,
            task_id=task_id,
        )

    def _edge_row(
        self, at_s: float, station: str, sensor_id: str, triggered: bool, value: float, fault: str
    ) -> None:
        self.tables.add(
            'sensor_edges',
            time=self._us(at_s),
            factory=self.options.factory,
            station=station,
            sensor_id=sensor_id,
            triggered=triggered,
            value=value,
            fault=fault,
        )

    def _inventory_row(self, at_s: float, slot: str, workpiece: Workpiece | None) -> None:
        self.tables.add(
            'inventory_changes',
            time=self._us(at_s),
            factory=self.options.factory,
            slot=slot,
            carrier_id=f'C-{slot}',
            workpiece_id=workpiece.id if workpiece else '',
            flavor=workpiece.flavor.value if workpiece else '',
            status=int(workpiece.status) if workpiece else 0,
        )

    def _command_row(
        self,
        at_s: float,
        queued: _Queued,
        status: CommandStatus,
        *,
        step: str = '',
        message: str,
        started_s: float | None = None,
        finished_s: float | None = None,
    ) -> None:
        cookie = queued.cookie
        self.tables.add(
            'command_transitions',
            time=self._us(at_s),
            factory=self.options.factory,
            command_id=queued.command_id,
            kind=int(queued.kind),
            status=int(status),
            priority=0,
            source_slot=queued.source,
            target_slot=queued.target,
            flavor=cookie.flavor.value if cookie else queued.order.flavor.value,
            workpiece_id=cookie.id if cookie else '',
            step=step,
            message=message,
            created_at=self._us(queued.created_s),
            started_at=None if started_s is None else self._us(started_s),
            finished_at=None if finished_s is None else self._us(finished_s),
        )

    # -- orders and commands --------------------------------------------------------------

    def _free_slot(self) -> str:
        free = (s for s, wp in self.db_rack.items() if wp is None and s not in self.reserved)
        return next(free, '')

    def _raw_slot(self, flavor: Flavor) -> str:
        for slot, wp in self.db_rack.items():
            if (
                wp is not None
                and slot not in self.reserved
                and wp.flavor is flavor
                and wp.status is WorkpieceStatus.RAW_DOUGH
            ):
                return slot
        return ''

    def _next_command(self, order: _Order, at_s: float) -> None:
        """Submit the order's next command at ``at_s`` (or end the order)."""
        if order.stage == 'new':
            order.stage = 'process' if self._raw_slot(order.flavor) else 'store_first'
        if order.stage in ('store_first', 'restock'):
            slot = self._free_slot()
            if not slot:
                self._refuse(order, at_s, 'no free slot for a new cookie')
                return
            cookie = Workpiece(
                f'{self.options.seed:04x}{next(self.new_cookies):010x}', order.flavor
            )
            self._submit(order, at_s, CommandKind.STORE, '', slot, cookie, 'store new', slot)
        elif order.stage == 'process':
            slot = self._raw_slot(order.flavor)
            if not slot:
                self._refuse(order, at_s, f'no RAW_DOUGH {order.flavor.value} cookie in the rack')
                return
            order.slot = slot
            self._submit(
                order, at_s, CommandKind.PROCESS, slot, slot, self.db_rack[slot], 'bake', slot
            )
        elif order.stage == 'retrieve':
            slot = order.slot
            self._submit(
                order, at_s, CommandKind.RETRIEVE, slot, '', self.db_rack[slot], 'retrieve', slot
            )

    def _refuse(self, order: _Order, at_s: float, reason: str) -> None:
        self.stats['refused'] += 1
        order.stage = 'done'
        self._log(at_s, LOG_INFO, 'scheduler', f'order {order.number} refused: {reason}')

    def _submit(
        self,
        order: _Order,
        at_s: float,
        kind: CommandKind,
        source: str,
        target: str,
        cookie: Workpiece | None,
        verb: str,
        slot: str,
    ) -> None:
        how = 'requested' if kind is CommandKind.RETRIEVE else 'chosen automatically'
        flavor = cookie.flavor.value if cookie else order.flavor.value
        if kind is CommandKind.PROCESS:
            what = f'bake {flavor} cookie from {slot}'
        elif kind is CommandKind.STORE:
            what = f'store new {flavor} cookie into {slot}'
        else:
            what = f'retrieve {flavor} {cookie.id if cookie else ""} from {slot}'
        queued = _Queued(
            created_s=at_s,
            sequence=next(self.sequence),
            kind=kind,
            order=order,
            command_id=next(self.command_ids),
            source=source,
            target=target,
            cookie=cookie,
            message=f'queued: {what} ({how})',
        )
        self.reserved.add(slot)
        heapq.heappush(self.queue, queued)
        self._command_row(at_s, queued, CommandStatus.PENDING, message=queued.message)

    def _run(self, queued: _Queued) -> None:
        """Run one command at ``self.now`` and continue its order."""
        self.stats['commands'] += 1
        self.factory.settle()
        start_s = self.now
        record = CommandRecord(
            id=queued.command_id,
            kind=queued.kind,
            status=CommandStatus.IN_PROGRESS,
            priority=0,
            source_slot=queued.source,
            target_slot=queued.target,
            flavor=queued.cookie.flavor.value if queued.cookie else '',
            workpiece_id=queued.cookie.id if queued.cookie else '',
            step='',
            message='',
            cancel_requested=False,
            created_at=datetime.now(timezone.utc),
            started_at=None,
            finished_at=None,
        )
        plan = plan_for(record, self.settings.plan)
        workpiece = queued.cookie if queued.kind is CommandKind.STORE else None
        state = self.schedule.state(start_s / HOUR)
        home = queued.source or queued.target
        pieces: list[tuple[float, CommandRun]] = []
        at_s = start_s
        for segment in _segments(plan):
            actual = workpiece or queued.cookie  # the cookie as it is now
            run, traces = self._simulate(
                segment, workpiece, actual, home, at_s, state, lead=bool(pieces), exact=False
            )
            self._emit_run(run, traces, at_s, state)
            pieces.append((at_s, run))
            at_s += run.n_steps * self.dt
            if run.failed is not None:
                break
            last = next((r.workpiece for r in reversed(run.results) if r.workpiece), None)
            workpiece = run.rebind(last, actual) or workpiece
        self._emit_command(queued, plan, pieces, start_s)
        self.now = at_s
        self.reserved.discard(queued.source or queued.target)
        order = queued.order
        if pieces[-1][1].failed is not None:
            order.stage = 'done'
            return
        order.stage = {
            'store_first': 'process',
            'process': 'retrieve',
            'retrieve': 'restock',
            'restock': 'done',
        }[order.stage]
        if order.stage != 'done':
            self._next_command(order, self.now)

    # -- simulation and reuse -------------------------------------------------------------

    def _simulate(
        self,
        plan: tuple[Any, ...],
        first: Workpiece | None,
        actual: Workpiece | None,
        home_slot: str,
        start_s: float,
        state: dict[str, tuple[FaultKind, float]],
        *,
        lead: bool,
        exact: bool,
    ) -> tuple[CommandRun, Stack]:
        """Simulate or reuse one segment of a plan at ``start_s`` (``lead``: one executor tick
        passes before its first step)."""
        f = self.factory
        used = f.involved(plan, recovery=False)
        motors_before = np.array(
            [
                (
                    m.temperature_c,
                    m.energy_wh,
                    m.runtime_s,
                    m.start_count,
                    m.health,
                    m.bearing_damage,
                )
                for m in f.motors.values()
            ]
        )
        start_axes = {i: axis.position_mm for i, axis in f.axes.items()}
        start_belt_mm = f.conveyor.belt_mm
        oven = (f.conveyor.oven_c, f.conveyor.heater_on)
        motor_states = {i: motor_state(m) for i, m in f.motors.items()}
        run = None
        missed = False
        if not exact:
            # A run that failed depends on every station (its recovery may use any): it is
            # kept under the key of all stations, the plain key only says so.
            base = (
                lead,
                tuple((s.label, s.value) for s in plan),
                int(first.status) if first else -1,
            )
            key = (*base, f.start_key(state, plan, used))
            run = self.cache.get(key) if self.options.reuse else None
            if run is _FAILED:
                used = f.involved(plan, recovery=True)
                key = (*base, f.start_key(state, plan, used))
                run = self.cache.get(key)
            if run is None:
                before = f.checkpoint()  # to go back if the run cannot be used after all
                f.set_faults(
                    state, include=lambda k: k not in ELECTRICAL_FAULTS and k not in OVERLAY_FAULTS
                )
                run = f.run_plan(
                    plan,
                    first_workpiece=first,
                    home_slot=home_slot,
                    sample_steps=self.sample_steps,
                    exact=False,
                    lead=lead,
                    involved=used,
                )
                if run.failed is not None and len(used) < 3:
                    self.cache[key] = _FAILED
                    used = f.involved(plan, recovery=True)
                    key = (*base, self._start_key_before(before, state, plan, used))
                self.cache[key] = run
                self.stats['simulated'] += 1
                missed = True
            else:
                self.stats['reused'] += 1
            traces = self._replayed(run, state, f.motors)
            if self._sudden_change_within(start_s, start_s + run.n_steps * self.dt) or (
                self._too_hot(traces, motors_before)
            ):
                exact = True
                if missed:
                    f.load_checkpoint(before)
        if exact:
            self.stats['exact'] += 1
            f.set_faults(state, include=lambda k: k not in OVERLAY_FAULTS)
            run = f.run_plan(
                plan,
                first_workpiece=first,
                home_slot=home_slot,
                sample_steps=self.sample_steps,
                exact=True,
                lead=lead,
                fault_changes=self._changes_within(start_s),
            )
            self.rack = dict(f.hbw.slots)
            return run, Stack.of([run.traces[i] for i in self.motor_ids])
        assert run is not None
        traces = self._applied(run, traces, motors_before, start_axes)
        self._failed_motors(run, traces, state, motor_states)
        if not missed:  # a simulated run left the factory where it ended already
            f.reuse(run, plan, used, start_axes, start_belt_mm, oven)
        self._rebind(run, traces, state, actual)
        self.rack = dict(f.hbw.slots)
        return run, traces

    def _start_key_before(
        self, before: dict[str, Any], state: dict[str, Any], plan: tuple[Any, ...], used: Any
    ) -> tuple[Any, ...]:
        """``start_key`` of the state ``before`` a run that has already moved the factory."""
        f = self.factory
        after = f.checkpoint()
        f.load_checkpoint(before)
        key = f.start_key(state, plan, used)
        f.load_checkpoint(after)
        return key

    def _sudden_change_within(self, start_s: float, end_s: float) -> bool:
        """A fault starts or ends, or maintenance happens, between the two times (an onset
        step inside a command takes effect at the next segment instead)."""
        index = bisect.bisect_right(self.sudden_changes, start_s / HOUR)
        return index < len(self.sudden_changes) and self.sudden_changes[index] * HOUR <= end_s

    def _changes_within(self, start_s: float) -> list[FaultChange]:
        """Fault changes and maintenance in the hour after ``start_s``, by physics step."""
        out = []
        for at_h in self.changes[self.change_index :]:
            at_s = at_h * HOUR
            if at_s > start_s + HOUR:
                break
            maintained = tuple(
                m.component for m in self.schedule.maintenance if abs(m.at_h - at_h) < 1e-9
            )
            step = max(0, math.ceil((at_s - start_s) / self.dt - 1e-9))
            out.append((step, self.schedule.state(at_h), maintained))
        return out

    def _replayed(
        self, run: CommandRun, state: dict[str, tuple[FaultKind, float]], motors: dict[str, Motor]
    ) -> Stack:
        """Every motor's course through ``run`` from a fresh state with its electrical fault,
        stacked (one row per motor)."""
        faults = tuple(
            fault if (fault := state.get(motor_id)) and fault[0] in ELECTRICAL_FAULTS else None
            for motor_id in self.motor_ids
        )
        stack = run.stacks.get(faults)
        if stack is not None:
            return stack
        traces = []
        for motor_id, electrical in zip(self.motor_ids, faults, strict=True):
            key = (motor_id, electrical)
            trace = run.replays.get(key)
            if trace is None:
                motor = motors[motor_id]
                fresh = Motor(motor_id=motor_id, config=motor.config, fault_kinds=motor.fault_kinds)
                fresh.direction, fresh.load = motor.direction, motor.load
                fresh._since_start_s = motor._since_start_s
                if electrical:  # its physics only: a bearing's damage is the real motor's
                    fresh.fault = Fault(electrical[0], electrical[1], None)
                trace = replay(
                    run.call_logs[motor_id],
                    fresh,
                    dt=self.dt,
                    sample_steps=self.sample_steps,
                    n_steps=run.n_steps,
                    encoder=run.encoders[motor_id],
                    publish_steps=self.factory.publish_steps,
                    watch_current_a=self.factory.watch_current_a,
                )
                run.replays[key] = trace
            traces.append(trace)
        stack = Stack.of(traces)
        run.stacks[faults] = stack
        return stack

    def _failed_motors(
        self,
        run: CommandRun,
        stack: Stack,
        state: dict[str, tuple[FaultKind, float]],
        motor_states: dict[str, dict[str, float]],
    ) -> None:
        """Rows of failed motors replayed from their real state: a MOTOR_FAILURE pulls health
        toward a level, which a replay from a fresh motor cannot shift onto the real one."""
        for row, motor_id in enumerate(self.motor_ids):
            fault = state.get(motor_id)
            if fault is None or fault[0] is not FaultKind.MOTOR_FAILURE:
                continue
            real = self.factory.motors[motor_id]
            copy = Motor(motor_id=motor_id, config=real.config, fault_kinds=real.fault_kinds)
            for name, value in motor_states[motor_id].items():
                setattr(copy, name, value)
            copy.set_fault(Fault(fault[0], fault[1], None))
            trace = replay(
                run.call_logs[motor_id],
                copy,
                dt=self.dt,
                sample_steps=self.sample_steps,
                n_steps=run.n_steps,
                encoder=stack.values['encoder_pulses'][row],
                publish_steps=self.factory.publish_steps,
                watch_current_a=self.factory.watch_current_a,
            )
            for name, values in trace.values.items():  # copies: the rest may be the cache's
                stack.values[name] = stack.values[name].copy()
                stack.values[name][row] = values
            stack.ends[row] = trace.end
            stack.currents = [*stack.currents[:row], trace.currents, *stack.currents[row + 1 :]]

    def _too_hot(self, stack: Stack, before: np.ndarray) -> bool:
        excess = np.maximum(0.0, before[:, 0] - self.ambient_c)
        return bool(np.any(stack.max_temperature_c + excess >= self.wear_temperature_c))

    def _applied(
        self, run: CommandRun, stack: Stack, before: np.ndarray, start_axes: dict[str, float]
    ) -> Stack:
        """A reused stack moved onto the motors' real start state (see simulation.py);
        ``before`` holds temperature, energy, runtime (s), starts, health and bearing damage per
        motor (a plan piece leaves the bearing as it was: its faults are set between pieces)."""
        n_samples = run.n_steps // self.sample_steps + 1
        elapsed = np.arange(n_samples) * self.sample_s
        t0, e0, r0, s0, h0, b0 = (before[:, i : i + 1] for i in range(6))
        v = stack.values
        decay = np.exp(-elapsed[None, :] / self.thermal_tau_s[:, None])
        shift = np.array(
            [
                round(
                    (start_axes[m] - run.start_axes[m]) * self.factory.axes[m].config.pulses_per_mm
                )
                if m in self.factory.axes
                else 0
                for m in self.motor_ids
            ]
        )
        values = dict(v)
        values['energy_wh'] = v['energy_wh'] + e0
        values['runtime_h'] = v['runtime_h'] + r0 / 3600.0
        values['start_count'] = v['start_count'] + s0
        values['temperature_c'] = v['temperature_c'] + (t0 - self.ambient_c[:, None]) * decay
        values['health'] = np.maximum(0.0, h0 - (1.0 - v['health']))
        values['encoder_pulses'] = v['encoder_pulses'] + shift[:, None]
        end_decay = np.exp(-run.n_steps * self.dt / self.thermal_tau_s)
        ends = []
        for i, end in enumerate(stack.ends):
            end = dict(end)
            end['energy_wh'] += e0[i, 0]
            end['runtime_s'] += r0[i, 0]
            end['start_count'] += int(s0[i, 0])
            end['temperature_c'] += (t0[i, 0] - self.ambient_c[i]) * end_decay[i]
            end['health'] = max(0.0, h0[i, 0] - (1.0 - end['health']))
            end['bearing_damage'] = b0[i, 0]
            ends.append(end)
        return Stack(
            values=values,
            ends=ends,
            max_temperature_c=stack.max_temperature_c,
            currents=stack.currents,
        )

    def _rebind(
        self,
        run: CommandRun,
        stack: Stack,
        state: dict[str, tuple[FaultKind, float]],
        actual: Workpiece | None,
    ) -> None:
        """After restoring a reused command's end state: this history's workpieces, rack,
        motor states and faults in place of those the command was first simulated with."""
        f = self.factory
        rack = dict(self.rack)
        for slot, end in f.hbw.slots.items():
            if end != run.start_slots[slot]:
                rack[slot] = run.rebind(end, actual)
        f.hbw.slots = rack
        f.hbw.fork = run.rebind(f.hbw.fork, actual)
        f.vgr.held = run.rebind(f.vgr.held, actual)
        f.conveyor.workpiece = run.rebind(f.conveyor.workpiece, actual)
        f.conveyor.oven_workpiece = run.rebind(f.conveyor.oven_workpiece, actual)
        for motor_id, end in zip(self.motor_ids, stack.ends, strict=True):
            motor = f.motors[motor_id]
            for name, value in end.items():
                setattr(motor, name, value)
        f.set_faults(state, include=lambda kind: kind not in OVERLAY_FAULTS)

    def _emit_run(
        self,
        run: CommandRun,
        traces: Stack,
        start_s: float,
        state: dict[str, tuple[FaultKind, float]],
    ) -> None:
        """The rows of one simulated segment but its command's transitions."""
        dt = self.dt
        end_s = start_s + run.n_steps * dt
        self._emit_motors(run, traces, start_s, end_s, state)
        for index, station, code, task, number in run.station_changes:
            task_id = self.task_ids[station] + number if number else 0
            self._station_row(start_s + index * dt, station, code, task, task_id)
        for index, station, sensor_id, triggered, value, fault in run.sensor_changes:
            overlay = state.get(sensor_id)
            label = fault or (overlay[0].value if overlay else '')
            self._edge_row(start_s + index * dt, station, sensor_id, triggered, value, label)
        self._emit_task_logs(run, start_s)
        for station, count in run.tasks_started.items():
            self.task_ids[station] += count

    def _emit_motors(
        self,
        run: CommandRun,
        stack: Stack,
        start_s: float,
        end_s: float,
        state: dict[str, tuple[FaultKind, float]],
    ) -> None:
        n_samples = run.n_steps // self.sample_steps + 1
        period = self.options.idle_period_s
        skip_first = abs(start_s / period - round(start_s / period)) < 1e-9
        first = 1 if skip_first else 0
        n = n_samples - first
        m = len(self.motor_ids)
        labels = np.array(
            [fault[0].value if (fault := state.get(i)) else '' for i in self.motor_ids],
            dtype=object,
        )
        if n > 0:
            times = self._us(start_s + np.arange(first, n_samples) * self.sample_s)
            v = {name: array[:, first:].ravel() for name, array in stack.values.items()}
            self.tables.add_chunk(
                'motor_samples',
                n * m,
                time=np.tile(times, m),
                factory=self.options.factory,
                station=np.repeat(self.motor_stations, n),
                motor_id=np.repeat(self.motor_id_array, n),
                running=v['running'].astype(bool),
                direction=v['direction'].astype(np.int64),
                current_a=v['current_a'],
                voltage_v=np.repeat(self.voltages, n),
                power_w=np.repeat(self.voltages, n) * v['current_a'],
                energy_wh=v['energy_wh'],
                temperature_c=v['temperature_c'],
                health=v['health'],
                encoder_pulses=v['encoder_pulses'].astype(np.int64),
                start_count=v['start_count'].astype(np.int64),
                runtime_h=v['runtime_h'],
                fault=np.repeat(labels, n),
            )
        boundaries = np.arange(
            (math.floor(start_s / period + 1e-9) + 1) * period, end_s + 1e-9, period
        )
        for motor_id, points in zip(self.motor_ids, stack.currents, strict=True):
            for index, current in points:
                self.current_points.append((self._us(start_s + index * self.dt), motor_id, current))
        k = len(boundaries)
        if k:
            index = np.minimum(
                np.floor((boundaries - start_s) / self.sample_s + 1e-9).astype(np.int64),
                n_samples - 1,
            )
            self.tables.add_chunk(
                'ground_truth_health',
                k * m,
                time=np.tile(self._us(boundaries), m),
                factory=self.options.factory,
                motor_id=np.repeat(self.motor_id_array, k),
                health=stack.values['health'][:, index].ravel(),
                temperature_c=stack.values['temperature_c'][:, index].ravel(),
                fault=np.repeat(labels, k),
            )

    def _emit_task_logs(self, run: CommandRun, start_s: float) -> None:
        counters = dict(self.task_ids)
        for position, result in enumerate((*run.results, *run.recovery)):
            step = result.step
            at_s = start_s + result.start_step * self.dt
            if position == len(run.results):
                labels = ', '.join(r.step.label for r in run.recovery)
                self._log(at_s, LOG_WARN, 'scheduler', f'recovery: {labels}')
            if result.message.startswith(f'{step.label} refused'):
                reason = result.message.split(': ', 1)[1]
                self._log(
                    at_s,
                    LOG_INFO,
                    step.station,
                    f'refused task {step.verb!r} {step.target!r}: {reason}',
                )
                continue
            counters[step.station] += 1
            self._log(
                at_s,
                LOG_INFO,
                step.station,
                f'task {counters[step.station]}: {step.verb} {step.target}',
            )

    def _emit_command(
        self,
        queued: _Queued,
        plan: tuple[Any, ...],
        pieces: list[tuple[float, CommandRun]],
        start_s: float,
    ) -> None:
        """Every CommandStatus the scheduler publishes for the command, and its inventory."""
        self._command_row(
            start_s, queued, CommandStatus.IN_PROGRESS, step=plan[0].label, message='started',
            started_s=start_s,
        )  # fmt: skip
        results = [(at_s + r.end_step * self.dt, r) for at_s, run in pieces for r in run.results]
        for position, (at_s, result) in enumerate(results):
            if not result.succeeded:
                self._command_row(
                    at_s, queued, CommandStatus.FAILED, message=result.message,
                    started_s=start_s, finished_s=at_s,
                )  # fmt: skip
                at_s, run = pieces[-1]
                self._returned(at_s + run.n_steps * self.dt, queued.source or queued.target)
                return
            self._slot_change(at_s, queued, result.step, result.workpiece)
            if position + 1 == len(plan):
                self._command_row(
                    at_s, queued, CommandStatus.COMPLETED, message='completed',
                    started_s=start_s, finished_s=at_s,
                )  # fmt: skip
            else:
                self._command_row(
                    at_s, queued, CommandStatus.IN_PROGRESS, step=plan[position + 1].label,
                    message='started', started_s=start_s,
                )  # fmt: skip

    def _slot_change(
        self, at_s: float, queued: _Queued, step: Step, workpiece: Workpiece | None
    ) -> None:
        """A step out of or into the rack changes the inventory (``Step.slot_change``): the
        workpiece stored is the one the step ended with (BAKED after a bake)."""
        if slot_of(step.source):
            slot, stored = slot_of(step.source), None
        elif slot_of(step.destination):
            slot, stored = slot_of(step.destination), workpiece or queued.cookie
        else:
            return
        self.db_rack[slot] = stored
        self._inventory_row(at_s, slot, stored)

    def _returned(self, at_s: float, slot: str) -> None:
        """After a failed command the runner carries its cookie back into its slot; the slot
        is recorded as the rack holds it then (empty if the cookie could not be brought
        back)."""
        if self.db_rack[slot] != self.rack[slot]:
            self.db_rack[slot] = self.rack[slot]
            self._inventory_row(at_s, slot, self.rack[slot])

    # -- overlays and derived rows --------------------------------------------------------

    def _ghosts(self, begin_s: float, end_s: float) -> None:
        """GHOST_READINGS pulses of every sensor that has them between the two times."""
        points = [begin_s, *(h * HOUR for h in self.changes if begin_s < h * HOUR < end_s), end_s]
        for interval in self.schedule.intervals:
            event = interval.event
            if event.kind not in OVERLAY_FAULTS:
                continue
            sensor = self.factory.parts[event.component]
            station = self.factory.station_of[event.component]
            starts = []
            for a, b in itertools.pairwise(points):
                fault = self.schedule.active(event.component, a / HOUR)
                if fault is None or fault[0] is not event.kind:
                    continue
                count = self.rng.poisson(fault[1] * (b - a))
                starts.append(np.sort(self.rng.uniform(a, b, count)))
            if not starts:
                continue
            pulses = np.concatenate(starts)
            if not len(pulses):
                continue
            ends = pulses + GHOST_PULSE_S
            # Overlapping pulses make one longer trigger, as the sensor model extends a pulse.
            new_group = np.ones(len(pulses), dtype=bool)
            new_group[1:] = pulses[1:] > np.maximum.accumulate(ends)[:-1]
            rises = pulses[new_group]
            falls = np.maximum.reduceat(ends, np.flatnonzero(new_group))
            n = len(rises)
            times = np.empty(2 * n)
            times[0::2], times[1::2] = rises, falls
            triggered = np.zeros(2 * n, dtype=bool)
            triggered[0::2] = True
            values = np.where(triggered, sensor.triggered_value, 1.0 - sensor.triggered_value)
            self.tables.add_chunk(
                'sensor_edges',
                2 * n,
                time=self._us(times),
                factory=self.options.factory,
                station=station,
                sensor_id=event.component,
                triggered=triggered,
                value=values,
                fault=event.kind.value,
            )

    def _alerts(self) -> None:
        """Alerts of the day's samples and sensor faults, from the stations' monitors."""
        columns = self.tables.columns.get('motor_samples')
        if columns:
            sizes = self.tables.sizes['motor_samples']
            data = {
                name: np.asarray(_joined(columns[name], sizes))
                for name in ('time', 'motor_id', 'temperature_c', 'health')
            }
            for motor_id in self.motor_ids:
                self._motor_alerts(motor_id, data)
        self.current_points.sort()
        for at_us, motor_id, current in self.current_points:
            motor = SimpleNamespace(
                motor_id=motor_id, current_a=current, temperature_c=-math.inf, health=math.inf
            )
            at_s = (at_us - self.start_us) / 1e6
            station = self.motor_station[motor_id]
            self._feed(station, at_s, motors=(motor,), sensors=(), current=True)
        self.current_points = []
        for interval in self.schedule.intervals:
            event = interval.event
            if event.component in self.factory.motors:
                continue
            day_begin = self.now - DAY
            for at_h, faulty in ((interval.onset_at_h, True), (interval.ended_at_h, False)):
                if day_begin < at_h * HOUR <= self.now or (at_h == 0 and day_begin <= 0):
                    self._feed(
                        self.factory.station_of[event.component],
                        at_h * HOUR,
                        motors=(),
                        sensors=(SimpleNamespace(sensor_id=event.component, fault=faulty),),
                    )

    def _motor_alerts(self, motor_id: str, data: dict[str, np.ndarray]) -> None:
        config = self.monitors[self.motor_station[motor_id]].config
        mine = data['motor_id'] == motor_id
        order = np.argsort(data['time'][mine], kind='stable')
        times = data['time'][mine][order]
        temperature = data['temperature_c'][mine][order]
        health = data['health'][mine][order]
        abnormal = (temperature >= config.temperature_clear_c) | (health <= config.health_clear)
        after = np.zeros_like(abnormal)
        after[1:] = abnormal[:-1] & ~abnormal[1:]
        for index in np.flatnonzero(abnormal | after).tolist():
            motor = SimpleNamespace(
                motor_id=motor_id,
                current_a=-math.inf,  # currents go to the other monitor, at the publish rate
                temperature_c=float(temperature[index]),
                health=float(health[index]),
            )
            at_s = (int(times[index]) - self.start_us) / 1e6
            self._feed(self.motor_station[motor_id], at_s, motors=(motor,), sensors=())

    def _feed(
        self,
        station: str,
        at_s: float,
        *,
        motors: tuple[Any, ...],
        sensors: tuple[Any, ...],
        current: bool = False,
    ) -> None:
        snapshot = SimpleNamespace(time_s=at_s, motors=motors, sensors=sensors)
        monitors = self.current_monitors if current else self.monitors
        for alert in monitors[station].update(snapshot):  # type: ignore[arg-type]
            self.tables.add(
                'alerts',
                time=self._us(at_s),
                factory=self.options.factory,
                severity=int(alert.severity),
                component_id=alert.component_id,
                code=alert.code,
                message=alert.message,
                value=alert.value,
                threshold=alert.threshold,
            )
            self._log(
                at_s,
                LOG_WARN,
                station,
                f'alert {alert.code} on {alert.component_id}: {alert.message}',
            )

    def _ground_truth_faults(self) -> None:
        for interval in self.schedule.intervals:
            event = interval.event
            self.tables.add(
                'ground_truth_faults',
                factory=self.options.factory,
                component_id=event.component,
                kind=event.kind.value,
                magnitude=event.magnitude,
                onset_at=self._us(event.onset_at_h * HOUR) if event.onset_h else None,
                started_at=self._us(event.at_h * HOUR),
                ended_at=None
                if interval.ended_by == 'end_of_history'
                else self._us(interval.ended_at_h * HOUR),
                ended_by=interval.ended_by,
                scenario=self.scenario.name,
                event_index=event.index,
            )
