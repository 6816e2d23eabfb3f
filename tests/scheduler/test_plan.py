"""Execution plans: pure data, no database."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from stf_nodes.scheduler import (
    CommandKind,
    CommandRecord,
    CommandStatus,
    PlanSettings,
    SlotChange,
    SlotEffect,
    Workpiece,
    WorkpieceStatus,
    plan_for,
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


@pytest.mark.parametrize(
    ('record', 'changes'),
    [
        (
            PROCESS,
            [
                SlotChange('B2', Workpiece()),
                SlotChange('B2', Workpiece('w-7', 'VANILLA', WorkpieceStatus.BAKED)),
            ],
        ),
        (STORE, [SlotChange('C1', Workpiece('w-7', 'VANILLA', WorkpieceStatus.RAW_DOUGH))]),
        (RETRIEVE, [SlotChange('A3', Workpiece())]),
    ],
)
def test_only_rack_steps_change_the_inventory(
    record: CommandRecord, changes: list[SlotChange]
) -> None:
    steps = plan_for(record)
    found = [change for step in steps if (change := step.slot_change(record)) is not None]
    assert found == changes
    assert all(
        (step.slot_change(record) is None) == (step.effect is SlotEffect.NONE) for step in steps
    )


def test_settings_set_bake_time_and_timeouts() -> None:
    settings = PlanSettings(
        timeouts={'hbw': 5.0, 'conveyor': 2.0, 'vgr': 3.0}, values={'conveyor bake': 40.0}
    )
    steps = {step.label: step for step in plan_for(PROCESS, settings)}
    bake = steps['conveyor bake process']
    assert (bake.value, bake.timeout_s) == (40.0, 42.0)
    assert steps['hbw retrieve B2'].timeout_s == 5.0
    assert steps['vgr place oven'].timeout_s == 3.0
    assert steps['conveyor unload exit'].timeout_s == 2.0
    assert plan_for(PROCESS)[6].value == 12.0  # the default bake time
