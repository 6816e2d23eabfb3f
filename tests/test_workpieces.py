"""The factory-wide names agree with the stf_msgs constants they mirror (one definition each)."""

from __future__ import annotations

import pytest

from stf_nodes import interfaces
from stf_nodes.scheduler.records import CommandKind, CommandStatus
from stf_nodes.sim.model import StationState, TaskStatus
from stf_nodes.workpieces import FLAVORS, Flavor, WorkpieceStatus, rack_slots, slot_order


def constants(type_name: str) -> dict[str, object]:
    cls = interfaces.get_message_class(type_name)
    return {name: value for name, value in vars(cls).items() if name.isupper()}


def test_workpiece_flavors_and_statuses_are_the_message_constants() -> None:
    workpiece = constants('stf_msgs/msg/Workpiece')
    assert {f'FLAVOR_{f.value}': f.value for f in Flavor} == {
        k: v for k, v in workpiece.items() if k.startswith('FLAVOR_')
    }
    assert tuple(f.value for f in Flavor) == FLAVORS
    statuses = {k: v for k, v in workpiece.items() if not k.startswith('FLAVOR_')}
    assert {('STATUS_UNKNOWN' if s.name == 'UNKNOWN' else s.name): s.value
            for s in WorkpieceStatus} == statuses  # fmt: skip


def test_command_kinds_and_statuses_are_the_message_constants() -> None:
    status = constants('stf_msgs/msg/CommandStatus')
    assert {k.name: k.value for k in CommandKind} | {s.name: s.value for s in CommandStatus} == (
        status
    )


@pytest.mark.parametrize('state', ['HbwState', 'VgrState', 'ConveyorState'])
def test_station_states_are_the_message_constants(state: str) -> None:
    assert {f'STATE_{s.name}': s.value for s in StationState} == constants(f'stf_msgs/msg/{state}')


def test_task_statuses_are_the_message_constants() -> None:
    expected = {s.name: s.value for s in TaskStatus}
    assert expected.items() <= constants('stf_msgs/msg/TaskStatus').items()


def test_rack_slots_are_named_and_ordered_row_major() -> None:
    assert rack_slots(3, 3) == ('A1', 'A2', 'A3', 'B1', 'B2', 'B3', 'C1', 'C2', 'C3')
    assert sorted(['B1', 'A3', 'A1'], key=slot_order) == ['A1', 'A3', 'B1']
    with pytest.raises(ValueError, match=r'1\.\.9 columns'):
        rack_slots(3, 10)
    with pytest.raises(ValueError, match='not a slot name'):
        slot_order('1A')
