"""Places, moves, plans and return routes: pure data, no database."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone

import pytest

from stf_nodes.scheduler import (
    CommandKind,
    CommandRecord,
    CommandStatus,
    PlanSettings,
    SlotChange,
    Workpiece,
    WorkpieceStatus,
    plan_for,
    routes,
)

STATION_VERBS = {
    'hbw': {'retrieve', 'store', 'move', 'calibrate'},
    'conveyor': {'load', 'transport', 'bake', 'unload'},
    'vgr': {'pick', 'place', 'move'},
}
NAMED_TARGETS = {'entry', 'process', 'exit', 'conveyor', 'oven', 'output', 'home'}


def command(kind: CommandKind, source: str, target: str) -> CommandRecord:
    return CommandRecord(
        id=7,
        kind=kind,
        status=CommandStatus.IN_PROGRESS,
        priority=0,
        source_slot=source,
        target_slot=target,
        flavor='VANILLA',
        workpiece_id='w-7',
        step='',
        message='',
        cancel_requested=False,
        created_at=datetime(2024, 1, 1, tzinfo=timezone.utc),
        started_at=None,
        finished_at=None,
    )


PROCESS = command(CommandKind.PROCESS, 'B2', 'B2')
STORE = command(CommandKind.STORE, '', 'C1')
RETRIEVE = command(CommandKind.RETRIEVE, 'A3', '')


def test_process_plan_goes_out_through_the_oven_and_back() -> None:
    assert [step.label for step in plan_for(PROCESS)] == [
        'hbw retrieve B2',
        'conveyor load entry',
        'conveyor transport exit',
        'conveyor unload exit',
        'vgr pick conveyor',
        'vgr place oven',
        'conveyor bake process',
        'vgr pick oven',
        'vgr place conveyor',
        'conveyor load exit',
        'conveyor transport entry',
        'conveyor unload entry',
        'hbw store B2',
    ]


def test_store_and_retrieve_plans() -> None:
    assert [step.label for step in plan_for(STORE)] == [
        'conveyor load entry',
        'conveyor unload entry',
        'hbw store C1',
    ]
    assert [step.label for step in plan_for(RETRIEVE)] == [
        'hbw retrieve A3',
        'conveyor load entry',
        'conveyor transport exit',
        'conveyor unload exit',
        'vgr pick conveyor',
        'vgr place output',
    ]


@pytest.mark.parametrize('record', [PROCESS, STORE, RETRIEVE])
def test_steps_use_only_station_verbs_and_known_targets(record: CommandRecord) -> None:
    for step in plan_for(record):
        assert step.verb in STATION_VERBS[step.station]
        assert step.target in NAMED_TARGETS or step.target in (
            record.source_slot,
            record.target_slot,
        )
        assert step.timeout_s > 0


@pytest.mark.parametrize('record', [PROCESS, STORE, RETRIEVE])
def test_each_step_starts_where_the_last_one_left_the_workpiece(record: CommandRecord) -> None:
    steps = plan_for(record)
    assert steps[0].source == routes.start_place(record)
    for before, after in itertools.pairwise(steps):
        assert after.source == before.destination
    assert steps[-1].destination == (
        routes.OUTPUT if record.kind is CommandKind.RETRIEVE else f'rack {record.target_slot}'
    )


def test_only_rack_steps_change_the_inventory() -> None:
    cookie = Workpiece('w-7', 'VANILLA', WorkpieceStatus.BAKED)
    found = [change for step in plan_for(PROCESS) if (change := step.slot_change(cookie))]
    assert found == [SlotChange('B2', Workpiece()), SlotChange('B2', cookie)]
    assert [step.slot_change(cookie) for step in plan_for(RETRIEVE)][1:] == [None] * 5


def test_settings_set_the_timeouts() -> None:
    settings = PlanSettings(timeouts={'hbw': 5.0, 'conveyor': 2.0, 'vgr': 3.0})
    steps = {step.label: step for step in plan_for(PROCESS, settings)}
    assert steps['conveyor bake process'].value == 0.0  # the conveyor's own bake time
    assert steps['conveyor bake process'].timeout_s == 2.0
    assert steps['hbw retrieve B2'].timeout_s == 5.0
    assert steps['vgr place oven'].timeout_s == 3.0


@pytest.mark.parametrize(
    ('source', 'labels'),
    [
        (routes.OVEN, ['vgr pick oven', 'vgr place conveyor', 'conveyor load exit',
                       'conveyor transport entry', 'conveyor unload entry', 'hbw store C2']),
        (routes.GRIPPER, ['vgr place conveyor', 'conveyor load exit', 'conveyor transport entry',
                          'conveyor unload entry', 'hbw store C2']),
        (routes.BELT_EXIT, ['conveyor transport entry', 'conveyor unload entry', 'hbw store C2']),
        (routes.HBW_FORK, ['hbw store C2']),
        (routes.HANDOFF, ['hbw store C2']),
        ('rack C2', []),
    ],
)  # fmt: skip
def test_return_routes_are_the_shortest_way_home_without_baking(
    source: str, labels: list[str]
) -> None:
    route = routes.return_route(source, 'C2')
    assert route is not None and [step.label for step in route] == labels
    assert all(step.verb != 'bake' for step in route)


def test_no_return_route_from_outside_the_factory() -> None:
    assert routes.return_route(routes.OUTPUT, 'C2') is None
    assert routes.return_route(routes.UNKNOWN, 'C2') is None


@pytest.mark.parametrize(
    ('place', 'holder', 'away'),
    [
        ('rack A1', routes.Holder('hbw'), False),
        (routes.HBW_FORK, routes.Holder('hbw'), True),
        (routes.BELT_EXIT, routes.Holder('conveyor', 'exit'), True),
        (routes.GRIPPER, routes.Holder('vgr'), True),
        (routes.OVEN, None, True),
        (routes.PICKUP, None, True),
        (routes.INPUT, None, False),
        (routes.OUTPUT, None, False),
    ],
)
def test_holders_and_places_away_from_the_rack(
    place: str, holder: routes.Holder | None, away: bool
) -> None:
    assert routes.holder_of(place) == holder
    assert routes.is_away(place) is away
