"""The scenario YAML contract: what is accepted, and refusals naming file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from stf_nodes.history.scenario import FaultSchedule, ScenarioError, load_scenario, parse_scenario
from stf_nodes.history.simulation import FactorySettings, SimFactory
from stf_nodes.sim.faults import FaultKind

REPO = Path(__file__).resolve().parents[2]
COMPONENTS = SimFactory(FactorySettings(), seed=0).components

GOOD = """\
name: test
description: free text
events:
  - day: 2
    hour: 9.5
    component: CONV_M1
    fault: bearing_wear
    magnitude: 0
    duration_h: 10
    onset_h: 24
  - day: 2
    hour: 12
    component: CONV_M1
    fault: MOTOR_FAILURE
    magnitude: 4.5
    duration_h: 0
maintenance:
  - day: 3
    component: CONV_M1
"""


def parse(text: str):
    return parse_scenario(text, 'x.yaml', COMPONENTS)


def test_shipped_scenarios_are_valid() -> None:
    for path in sorted((REPO / 'config' / 'scenarios').glob('*.yaml')):
        scenario = load_scenario(path, COMPONENTS)
        scenario.check_period(30)
    default = load_scenario(REPO / 'config' / 'scenarios' / 'default.yaml', COMPONENTS)
    failure = [e for e in default.events if e.kind is FaultKind.MOTOR_FAILURE]
    assert [(e.component, e.magnitude, e.at_h) for e in failure] == [
        ('CONV_M1', 4.5, 11 * 24 + 9.5)
    ]
    assert {e.component for e in default.events} >= {'CONV_L2_PROCESS', 'HBW_M2_Y', 'VGR_M2_GRIP'}
    assert any(e.kind is FaultKind.VIBRATION for e in default.events)


def test_contract_fields_and_defaults() -> None:
    scenario = parse(GOOD)
    wear, _ = scenario.events
    assert (wear.kind, wear.magnitude, wear.at_h, wear.onset_at_h) == (
        FaultKind.BEARING_WEAR, 1.0, 33.5, 9.5
    )  # fmt: skip
    assert scenario.maintenance[0].at_h == 48.0
    assert parse('name: healthy\nevents: []\n').events == ()


def test_schedule_latest_started_event_applies_and_maintenance_clears() -> None:
    schedule = FaultSchedule(parse(GOOD), 72.0)
    assert schedule.active('CONV_M1', 9.0) is None
    assert schedule.active('CONV_M1', 21.5) == (FaultKind.BEARING_WEAR, 0.5)  # half grown
    assert schedule.active('CONV_M1', 34.0) == (FaultKind.BEARING_WEAR, 1.0)
    assert schedule.active('CONV_M1', 40.0) == (FaultKind.MOTOR_FAILURE, 4.5)
    assert schedule.active('CONV_M1', 48.0) is None  # maintenance ended both
    ends = {i.event.kind: (i.ended_at_h, i.ended_by) for i in schedule.intervals}
    assert ends == {
        FaultKind.BEARING_WEAR: (43.5, 'duration'),
        FaultKind.MOTOR_FAILURE: (48.0, 'maintenance'),
    }


def _swap(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


@pytest.mark.parametrize(
    ('text', 'expected'),
    [
        ('name: x\nevents: [\n', 'x.yaml:3: not valid YAML'),
        ('name: x\nevents: []\ncolour: red\n', 'x.yaml:3: colour: unknown key'),
        ('events: []\n', 'x.yaml:1: scenario: missing name'),
        (
            _swap('CONV_M1\n    fault: bearing', 'CONV_M9\n    fault: bearing'),
            "x.yaml:6: events[0].component: unknown component 'CONV_M9'",
        ),
        (
            _swap('fault: bearing_wear', 'fault: RUST'),
            "x.yaml:7: events[0].fault: unknown fault kind 'RUST'",
        ),
        (
            _swap('CONV_M1\n    fault: bearing', 'CONV_L1_ENTRY\n    fault: bearing'),
            'x.yaml:7: events[0].fault: CONV_L1_ENTRY does not support BEARING_WEAR',
        ),
        (_swap('duration_h: 10', 'duration_h: -1'), 'x.yaml:9: events[0].duration_h: must be >= 0'),
        (_swap('magnitude: 0\n', 'magnitude: -2\n'), 'x.yaml:8: events[0].magnitude: must be >= 0'),
        (_swap('hour: 9.5', 'hour: 24'), 'x.yaml:5: events[0].hour: must be < 24'),
        (
            _swap('day: 2\n    hour: 9.5', 'day: 0\n    hour: 9.5'),
            'x.yaml:4: events[0].day: days count from 1',
        ),
        (
            _swap('4.5\n    duration_h: 0', '4.5\n    duration_h: 0\n    onset_h: 5'),
            'x.yaml:17: events[1].onset_h: MOTOR_FAILURE appears at once',
        ),
        (
            _swap('duration_h: 10', 'duration_h: ten'),
            'x.yaml:9: events[0].duration_h: expected a number',
        ),
        (
            _swap('  - day: 3\n    component', '  - day: 3\n    hours: 2\n    component'),
            'x.yaml:19: maintenance[0].hours: unknown key',
        ),
        (
            'name: x\nevents:\n  - day: 1\n',
            'x.yaml:3: events[0]: missing component, fault, magnitude, duration_h',
        ),
        ('name: x\nevents: {}\n', 'x.yaml:2: events: expected a list'),
        ('', 'x.yaml:1: the scenario is empty'),
    ],
)
def test_bad_scenarios_name_file_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(ScenarioError) as error:
        parse(text)
    assert str(error.value).startswith(expected), str(error.value)


def test_days_outside_the_history_are_refused() -> None:
    scenario = parse(GOOD)
    scenario.check_period(3)
    with pytest.raises(ScenarioError, match=r'x.yaml:18: maintenance\[0\].day: day 3 is outside'):
        scenario.check_period(2)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match='cannot read the scenario'):
        load_scenario(tmp_path / 'missing.yaml', COMPONENTS)
