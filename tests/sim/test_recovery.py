"""What the stations promise a scheduler that may crash or be replaced: idempotent task keys,
fencing tokens and restoring their contents."""

from __future__ import annotations

import pytest

from stf_nodes.sim import Conveyor, Hbw, Refused, TaskRefused, TaskStatus, Vgr, Workpiece
from stf_nodes.workpieces import Flavor, WorkpieceStatus
from tests.sim.harness import finish

COOKIE = Workpiece('w-1', Flavor.CHOCO, WorkpieceStatus.RAW_DOUGH)


def test_a_task_key_finds_its_task_running_and_finished() -> None:
    conveyor = Conveyor()
    task_id = conveyor.start_task('load', target='entry', workpiece=COOKIE, key='7/P1/1')
    assert conveyor.task_for_key('7/P1/1').task_id == task_id  # type: ignore[union-attr]
    finish(conveyor)
    report = conveyor.task_for_key('7/P1/1')
    assert report is not None and report.status is TaskStatus.SUCCEEDED
    assert report.workpiece == COOKIE
    assert conveyor.task_for_key('7/P1/2') is None and conveyor.task_for_key('') is None
    with pytest.raises(TaskRefused, match='was used by task'):
        conveyor.start_task('transport', target='exit', key='7/P1/1')


def test_a_stale_fencing_token_is_refused() -> None:
    vgr = Vgr()
    vgr.fence(0)  # unfenced requests (manual use) are always accepted
    vgr.fence(5)
    vgr.fence(5)
    with pytest.raises(Refused, match='token 4 is stale: token 5 was accepted'):
        vgr.fence(4)
    vgr.fence(0)


def test_the_hbw_rack_is_restored_whole() -> None:
    hbw = Hbw()
    assert not hbw.restored and hbw.slots['A1'] is not None  # the configured stock
    rack: dict[str, Workpiece | None] = dict.fromkeys(hbw.slots)
    rack['C3'] = COOKIE
    hbw.restore(slots=rack)
    assert hbw.restored and hbw.slots['C3'] == COOKIE and hbw.slots['A1'] is None
    assert hbw.snapshot().restored
    with pytest.raises(Refused, match=r'missing A1'):
        hbw.restore(slots={'C3': COOKIE})
    with pytest.raises(Refused, match=r"unknown 'Z9'"):
        hbw.restore(slots={**rack, 'Z9': None})
    with pytest.raises(Refused, match="workpiece 'w-1' in two places"):
        hbw.restore(slots=rack, workpiece=COOKIE)
    assert hbw.slots['C3'] == COOKIE  # a refused restore changes nothing


def test_a_restored_belt_and_gripper_carry_on_with_their_tasks() -> None:
    conveyor = Conveyor()
    conveyor.restore(workpiece=COOKIE, place='exit')
    assert conveyor.workpiece == COOKIE and conveyor.workpiece_mm == 95.0
    conveyor.start_task('transport', target='entry')
    assert finish(conveyor).status is TaskStatus.SUCCEEDED
    vgr = Vgr()
    vgr.restore(workpiece=COOKIE)
    vgr.start_task('place', target='oven')
    report = finish(vgr)
    assert report.status is TaskStatus.SUCCEEDED and report.workpiece == COOKIE
    with pytest.raises(Refused, match='gripper only'):
        vgr.restore(workpiece=COOKIE, place='oven')


def test_no_restore_while_a_task_runs() -> None:
    conveyor = Conveyor()
    conveyor.restore(workpiece=COOKIE, place='entry')
    conveyor.start_task('transport', target='exit')
    conveyor.step(0.05)
    with pytest.raises(Refused, match='is running'):
        conveyor.restore()
    assert conveyor.workpiece == COOKIE


def test_a_stopped_bake_leaves_the_oven_free_for_a_new_bake() -> None:
    conveyor = Conveyor()
    conveyor.start_task('bake', workpiece=COOKIE, value=1.0)
    conveyor.step(0.5)
    conveyor.emergency_stop()
    assert conveyor.oven_workpiece is None and not conveyor.heater_on
    conveyor.reset()
    conveyor.start_task('bake', workpiece=COOKIE, value=1.0)
    report = finish(conveyor)
    assert report.status is TaskStatus.SUCCEEDED
    assert report.workpiece.status is WorkpieceStatus.BAKED  # type: ignore[union-attr]


@pytest.mark.parametrize(('magnitude', 'duration'), [(float('nan'), 0.0), (1.0, float('inf'))])
def test_faults_refuse_non_finite_numbers(magnitude: float, duration: float) -> None:
    hbw = Hbw()
    with pytest.raises(Refused, match='must be finite numbers'):
        hbw.inject_fault('HBW_M1_X', 'OVERCURRENT', magnitude, duration)
    assert hbw.parts.motors['HBW_M1_X'].fault is None


def test_refusals_quote_hostile_input_briefly() -> None:
    hbw = Hbw()
    with pytest.raises(Refused) as refused:
        hbw.inject_fault('HBW_M1_X', 'X' * 1_000_000)
    assert len(str(refused.value)) < 120 and '1000000 characters' in str(refused.value)
