"""A full PROCESS cycle across the three station models, driven like the scheduler would."""

from __future__ import annotations

from stf_nodes.sim import TaskStatus, WorkpieceStatus

from .harness import Factory


def test_process_cycle_ends_with_baked_cookie_in_its_slot() -> None:
    factory = Factory()
    original = factory.hbw.slots['A3']
    assert original is not None and original.status is WorkpieceStatus.RAW_DOUGH
    factory.process('A3', 'A3')
    stored = factory.hbw.snapshot().slots[2]
    assert stored.slot == 'A3' and stored.workpiece is not None
    assert stored.workpiece.id == original.id
    assert stored.workpiece.flavor is original.flavor
    assert stored.workpiece.status is WorkpieceStatus.BAKED
    for station in (factory.hbw, factory.vgr, factory.conveyor):
        snap = station.snapshot()
        events = station.pop_events()
        assert events and all(e.status is TaskStatus.SUCCEEDED for e in events)
        assert all(m.energy_wh > 0 and m.health < 1.0 for m in snap.motors)
    conveyor = factory.conveyor.snapshot()
    assert conveyor.workpiece is None and conveyor.oven_workpiece is None
    assert conveyor.oven_temperature_c > 100  # still cooling down
    assert not factory.vgr.snapshot().holding
