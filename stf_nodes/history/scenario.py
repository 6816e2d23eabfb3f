"""Breakdown scenarios: the YAML contract of ``config/scenarios/*.yaml`` and its validation.

Format (a contract: users write scenarios this code never saw)::

    name: default
    description: free text
    events:
      - day: 12              # 1-based day of the history
        hour: 9.5            # optional, default 0
        component: CONV_M1   # a motor or sensor id
        fault: MOTOR_FAILURE # an InjectFault kind
        magnitude: 4.5       # as InjectFault; 0 = the kind's default
        duration_h: 30       # 0 = until a maintenance entry for the component
        onset_h: 72          # optional: grows linearly from 0 to magnitude over the hours
                             # before day/hour
    maintenance:             # optional
      - day: 14              # motor repaired or replaced: its faults cleared, health back to 1.0
        hour: 8              # optional
        component: CONV_M1

``events: []`` is a healthy history. Semantics:

- An event is fully present from ``day``/``hour`` for ``duration_h`` hours (0: until the next
  maintenance entry of its component, else to the end of the history). With ``onset_h`` it
  exists from ``onset_h`` hours earlier, its magnitude growing linearly from 0; the onset may
  begin before the history does. Sudden kinds (MOTOR_FAILURE, STALL, STUCK) have no onset.
- A component carries one fault at a time, as in the live sim: of the events active at a
  moment, the one that began (onset included) last applies; when it ends, the previous one
  still active applies again. Events may overlap; a component may have several.
- A maintenance entry clears every event of its component that began before it and, for a
  motor, restores its health to 1.0.
- A bearing that wears out needs no scripted failure: BEARING_WEAR takes health as its
  friction grows (``bearing_health_per_a``, ``stf_nodes/sim/motor.py``), so a new motor is due
  (health below 0.5) at about magnitude 1.5. A MOTOR_FAILURE is a sudden failure; scripted at
  the end of a smaller wear, it fails the motor at a time its signals could not foretell.

Validation refuses, with ``file:line: field: reason`` and before anything is written: YAML
that does not parse, unknown keys, missing or mistyped fields, components the factory does not
have, fault kinds the component does not support (the sim's own check), magnitudes the sim
refuses, negative numbers, hours outside [0, 24), days outside the history.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from stf_nodes.sim.faults import FaultKind, make_fault
from stf_nodes.sim.model import FaultRefused

#: Kinds that appear at once; an onset makes no sense for them.
SUDDEN_KINDS = frozenset({FaultKind.MOTOR_FAILURE, FaultKind.STALL, FaultKind.STUCK})
_TOP_KEYS = {'name': True, 'description': False, 'events': True, 'maintenance': False}
_EVENT_KEYS = {
    'day': True,
    'hour': False,
    'component': True,
    'fault': True,
    'magnitude': True,
    'duration_h': True,
    'onset_h': False,
}
_MAINTENANCE_KEYS = {'day': True, 'hour': False, 'component': True}


class ScenarioError(ValueError):
    """A scenario that cannot be used: ``str()`` is ``file:line: field: reason``."""


@dataclass(frozen=True)
class FaultEvent:
    """One validated event; times in hours from the start of the history."""

    index: int
    line: int
    component: str
    kind: FaultKind
    magnitude: float  # resolved: 0 in the file means the kind's default
    at_h: float
    duration_h: float  # 0 = until maintenance
    onset_h: float

    @property
    def onset_at_h(self) -> float:
        return self.at_h - self.onset_h


@dataclass(frozen=True)
class Maintenance:
    index: int
    line: int
    component: str
    at_h: float


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    events: tuple[FaultEvent, ...]
    maintenance: tuple[Maintenance, ...]
    source: str  # file name for messages
    day_lines: tuple[tuple[int, int, str], ...]  # (day, line, field) to check the period

    def within(self, days: int) -> Scenario:
        """The scenario without the events and maintenance past ``days`` days."""
        end_h = days * 24.0
        return replace(
            self,
            events=tuple(e for e in self.events if e.at_h < end_h),
            maintenance=tuple(m for m in self.maintenance if m.at_h < end_h),
            day_lines=tuple(entry for entry in self.day_lines if entry[0] <= days),
        )

    def check_period(self, days: int) -> None:
        """Refuse events or maintenance on a day outside a history of ``days`` days."""
        for day, line, field in self.day_lines:
            if day > days:
                raise ScenarioError(
                    f'{self.source}:{line}: {field}: day {day} is outside the history of '
                    f'{days} day{"s" if days != 1 else ""}'
                )


def load_scenario(path: Path, components: Mapping[str, frozenset[FaultKind]]) -> Scenario:
    """Read and validate a scenario; ``components`` maps every component id of the factory to
    the fault kinds it supports."""
    try:
        text = path.read_text(encoding='utf-8')
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f'{path}: cannot read the scenario: {exc}') from exc
    return parse_scenario(text, str(path), components)


def parse_scenario(
    text: str, source: str, components: Mapping[str, frozenset[FaultKind]]
) -> Scenario:
    return _Parser(source, components).parse(text)


class _Parser:
    def __init__(self, source: str, components: Mapping[str, frozenset[FaultKind]]) -> None:
        self.source = source
        self.components = components
        self.day_lines: list[tuple[int, int, str]] = []

    def error(self, node: yaml.Node | None, field: str, reason: str) -> ScenarioError:
        line = node.start_mark.line + 1 if node is not None else 1
        return ScenarioError(
            f'{self.source}:{line}: {field}: {reason}'
            if field
            else f'{self.source}:{line}: {reason}'
        )

    def parse(self, text: str) -> Scenario:
        try:
            loader = yaml.SafeLoader(text)
        except yaml.YAMLError as exc:  # a character YAML does not allow (the reader checks)
            raise ScenarioError(f'{self.source}:1: not valid YAML: {exc}') from exc
        try:
            root = loader.get_single_node()
            if root is None:
                raise self.error(None, '', 'the scenario is empty')
            self.loader = loader
            top = self.mapping(root, '', _TOP_KEYS)
            name = self.string(top['name'], 'name')
            description = (
                self.string(top['description'], 'description') if 'description' in top else ''
            )
            events = tuple(
                self.event(i, node) for i, node in enumerate(self.sequence(top['events'], 'events'))
            )
            maintenance = tuple(
                self.maintenance(i, node)
                for i, node in enumerate(self.sequence(top.get('maintenance'), 'maintenance'))
            )
        except yaml.YAMLError as exc:
            mark = getattr(exc, 'problem_mark', None) or getattr(exc, 'context_mark', None)
            line = mark.line + 1 if mark is not None else 1
            problem = getattr(exc, 'problem', None) or str(exc)
            raise ScenarioError(f'{self.source}:{line}: not valid YAML: {problem}') from exc
        except RecursionError:
            raise ScenarioError(f'{self.source}: nested too deeply') from None
        finally:
            loader.dispose()
        if not name.strip():
            raise self.error(top['name'], 'name', 'must not be empty')
        return Scenario(
            name=name,
            description=description,
            events=events,
            maintenance=maintenance,
            source=self.source,
            day_lines=tuple(self.day_lines),
        )

    # -- structure ------------------------------------------------------------------------

    def mapping(self, node: yaml.Node, field: str, keys: dict[str, bool]) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, field, 'expected a mapping of keys')
        found: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = self.loader.construct_object(key_node, deep=True)
            where = f'{field}.{key}' if field else str(key)
            if not isinstance(key, str) or key not in keys:
                known = ', '.join(keys)
                raise self.error(key_node, where, f'unknown key; known keys: {known}')
            if key in found:
                raise self.error(key_node, where, 'given twice')
            found[key] = value_node
        missing = [key for key, required in keys.items() if required and key not in found]
        if missing:
            raise self.error(node, field or 'scenario', f'missing {", ".join(missing)}')
        return found

    def sequence(self, node: yaml.Node | None, field: str) -> list[yaml.Node]:
        if node is None:
            return []
        if isinstance(node, yaml.ScalarNode) and node.tag.endswith(':null'):
            return []
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, field, 'expected a list')
        return list(node.value)

    def value(self, node: yaml.Node, field: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.error(node, field, 'expected a single value')
        return self.loader.construct_object(node, deep=True)

    def string(self, node: yaml.Node, field: str) -> str:
        value = self.value(node, field)
        if not isinstance(value, str):
            raise self.error(node, field, f'expected text, got {value!r}')
        return value

    def number(self, node: yaml.Node, field: str, *, minimum: float | None = 0.0) -> float:
        value = self.value(node, field)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(node, field, f'expected a number, got {value!r}')
        if not math.isfinite(value):
            raise self.error(node, field, f'must be finite, got {value}')
        if minimum is not None and value < minimum:
            raise self.error(node, field, f'must be >= {minimum:g}, got {value}')
        return float(value)

    def when(self, fields: dict[str, yaml.Node], where: str) -> float:
        """``day``/``hour`` as hours from the start of the history."""
        day_node = fields['day']
        day = self.value(day_node, f'{where}.day')
        if isinstance(day, bool) or not isinstance(day, int):
            raise self.error(day_node, f'{where}.day', f'expected a whole day number, got {day!r}')
        if day < 1:
            raise self.error(day_node, f'{where}.day', f'days count from 1, got {day}')
        self.day_lines.append((day, day_node.start_mark.line + 1, f'{where}.day'))
        hour = 0.0
        if 'hour' in fields:
            hour = self.number(fields['hour'], f'{where}.hour')
            if hour >= 24:
                raise self.error(fields['hour'], f'{where}.hour', f'must be < 24, got {hour:g}')
        return (day - 1) * 24.0 + hour

    def component(self, node: yaml.Node, field: str) -> str:
        component = self.string(node, field)
        if component not in self.components:
            known = ', '.join(sorted(self.components))
            raise self.error(node, field, f'unknown component {component!r}; known: {known}')
        return component

    # -- entries --------------------------------------------------------------------------

    def event(self, index: int, node: yaml.Node) -> FaultEvent:
        where = f'events[{index}]'
        fields = self.mapping(node, where, _EVENT_KEYS)
        at_h = self.when(fields, where)
        component = self.component(fields['component'], f'{where}.component')
        kind_name = self.string(fields['fault'], f'{where}.fault').strip().upper()
        kind_node = fields['fault']
        try:
            kind = FaultKind(kind_name)
        except ValueError:
            known = ', '.join(k.value for k in FaultKind)
            raise self.error(
                kind_node, f'{where}.fault', f'unknown fault kind {kind_name!r}; known: {known}'
            ) from None
        stuck = kind is FaultKind.STUCK
        magnitude = self.number(
            fields['magnitude'], f'{where}.magnitude', minimum=None if stuck else 0.0
        )
        duration_h = self.number(fields['duration_h'], f'{where}.duration_h')
        onset_h = self.number(fields['onset_h'], f'{where}.onset_h') if 'onset_h' in fields else 0
        try:
            fault = make_fault(
                kind.value,
                magnitude,
                0.0,
                allowed=self.components[component],
                component_id=component,
                now_s=0.0,
            )
        except FaultRefused as exc:
            raise self.error(kind_node, f'{where}.fault', str(exc)) from None
        if onset_h and kind in SUDDEN_KINDS:
            raise self.error(
                fields['onset_h'],
                f'{where}.onset_h',
                f'{kind.value} appears at once and has no onset; put a precursor event '
                '(e.g. BEARING_WEAR) before it',
            )
        return FaultEvent(
            index=index,
            line=node.start_mark.line + 1,
            component=component,
            kind=kind,
            magnitude=fault.magnitude,
            at_h=at_h,
            duration_h=duration_h,
            onset_h=onset_h,
        )

    def maintenance(self, index: int, node: yaml.Node) -> Maintenance:
        where = f'maintenance[{index}]'
        fields = self.mapping(node, where, _MAINTENANCE_KEYS)
        at_h = self.when(fields, where)
        component = self.component(fields['component'], f'{where}.component')
        return Maintenance(
            index=index, line=node.start_mark.line + 1, component=component, at_h=at_h
        )


@dataclass(frozen=True)
class FaultInterval:
    """When an event really applied in a history of a given length (its ground truth)."""

    event: FaultEvent
    onset_at_h: float  # clipped to the start of the history
    ended_at_h: float  # the end of the history if nothing ended it before
    ended_by: str  # 'duration', 'maintenance' or 'end_of_history'


class FaultSchedule:
    """Which fault each component carries at any time of a history of ``history_h`` hours.

    Onsets grow in steps of ``onset_step`` of the magnitude, each step applied once reached
    (a fraction below the first step is no fault yet): the generator reuses simulations of
    equal fault states, and the steps bound how many distinct states an onset produces. 40
    steps: a friction growing over 72 h rises every 1.8 h, close to the smooth growth of a
    real bearing (10 steps, 7.2 h apart, put the failure up to a step away from the trend).
    """

    def __init__(self, scenario: Scenario, history_h: float, *, onset_step: float = 0.025) -> None:
        self.scenario = scenario
        self.history_h = history_h
        self.onset_step = onset_step
        self.intervals = tuple(self._interval(event) for event in scenario.events)
        self._by_component: dict[str, list[FaultInterval]] = {}
        for interval in self.intervals:
            self._by_component.setdefault(interval.event.component, []).append(interval)
        for intervals in self._by_component.values():
            intervals.sort(key=lambda i: (i.event.onset_at_h, i.event.index))
        self.maintenance = tuple(
            sorted((m for m in scenario.maintenance if m.at_h < history_h), key=lambda m: m.at_h)
        )

    def _interval(self, event: FaultEvent) -> FaultInterval:
        end, ended_by = self.history_h, 'end_of_history'
        if event.duration_h:
            end, ended_by = event.at_h + event.duration_h, 'duration'
        for entry in self.scenario.maintenance:
            if entry.component == event.component and event.onset_at_h <= entry.at_h < end:
                end, ended_by = entry.at_h, 'maintenance'
        if end >= self.history_h:
            end, ended_by = self.history_h, 'end_of_history'
        return FaultInterval(event, max(0.0, event.onset_at_h), end, ended_by)

    @property
    def components(self) -> tuple[str, ...]:
        return tuple(self._by_component)

    def active(self, component: str, at_h: float) -> tuple[FaultKind, float] | None:
        """(kind, magnitude) of the fault on ``component`` at ``at_h``, or None."""
        chosen = None
        for interval in self._by_component.get(component, ()):
            if interval.event.onset_at_h <= at_h < interval.ended_at_h:
                chosen = interval
        if chosen is None:
            return None
        event = chosen.event
        if event.onset_h and at_h < event.at_h:
            fraction = (at_h - event.onset_at_h) / event.onset_h
            steps = math.floor(fraction / self.onset_step + 1e-9)
            if steps <= 0:
                return None
            return event.kind, event.magnitude * steps * self.onset_step
        return event.kind, event.magnitude

    def state(self, at_h: float) -> dict[str, tuple[FaultKind, float]]:
        """Every component's fault at ``at_h``."""
        found = {}
        for component in self._by_component:
            fault = self.active(component, at_h)
            if fault is not None:
                found[component] = fault
        return found

    def change_points(self, *, sudden_only: bool = False) -> list[float]:
        """Hours where some component's fault changes, sorted; ``sudden_only`` leaves out the
        steps of onsets (a fault growing over hours), keeping starts, ends and maintenance."""
        points = set()
        for interval in self.intervals:
            event = interval.event
            points.add(interval.ended_at_h)
            if not event.onset_h:
                points.add(interval.onset_at_h)
            elif not sudden_only:
                steps = round(1 / self.onset_step)
                points.update(event.onset_at_h + event.onset_h * k / steps for k in range(steps))
                points.add(event.at_h)
        points.update(m.at_h for m in self.maintenance)
        return sorted(p for p in points if 0.0 <= p < self.history_h)
