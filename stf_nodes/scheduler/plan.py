"""Execution plans: the station steps that carry out each command kind (pure data, no I/O).

A plan is a tuple of :class:`PlanStep` ``(station, verb, target, value, timeout_s)`` that the
scheduler node sends one by one as station tasks (``/stf/<station>/task``), waiting for each to
succeed within ``timeout_s``. Verbs and targets are those of the station models: hbw
``retrieve|store|move|calibrate`` (target a slot), conveyor ``load|transport|bake|unload``
(target ``entry|process|exit``; ``unload`` takes the workpiece off the belt wherever it is,
its target only names the place; ``bake`` value in seconds), vgr ``pick|place|move`` (target
``conveyor|oven|output|home``).

Steps that move a workpiece out of or into the rack say so (``effect``); after such a step
succeeded, the executor passes ``step.slot_change(command)`` to ``CommandQueue.set_step`` (or
``complete`` after the last step), so the inventory changes in the same transaction that
records the progress::

    steps = plan_for(command, settings)
    queue.set_step(command.id, steps[0].label)
    for index, step in enumerate(steps):
        ...  # run the station task, fail the command on error or timeout
        change = step.slot_change(command)
        if index + 1 < len(steps):
            queue.set_step(command.id, steps[index + 1].label, change=change)
        else:
            queue.complete(command.id, change=change)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from types import MappingProxyType

from stf_nodes.scheduler.records import (
    CommandKind,
    CommandRecord,
    SlotChange,
    Workpiece,
    WorkpieceStatus,
)

#: Target placeholders filled from the command: the slot a workpiece leaves, the slot it enters.
SOURCE = '{source}'
TARGET = '{target}'


class SlotEffect(Enum):
    """What a step does to the rack."""

    #: The rack is not touched.
    NONE = 'none'
    #: The workpiece leaves the command's source slot.
    TAKE = 'take'
    #: The workpiece enters the command's target slot.
    PUT = 'put'


@dataclass(frozen=True)
class PlanStep:
    """One station task of a plan; ``stored_as`` is the workpiece status a PUT stores."""

    station: str
    verb: str
    target: str
    value: float = 0.0
    timeout_s: float = 0.0
    effect: SlotEffect = SlotEffect.NONE
    stored_as: WorkpieceStatus = WorkpieceStatus.UNKNOWN

    @property
    def label(self) -> str:
        """The step as shown in ``CommandStatus.step``, e.g. ``'hbw retrieve A1'``."""
        return f'{self.station} {self.verb} {self.target}'

    def slot_change(self, command: CommandRecord) -> SlotChange | None:
        """The inventory change this step made once it succeeded, or None."""
        if self.effect is SlotEffect.TAKE:
            return SlotChange(slot=command.source_slot, workpiece=Workpiece())
        if self.effect is SlotEffect.PUT:
            workpiece = Workpiece(
                id=command.workpiece_id, flavor=command.flavor, status=self.stored_as
            )
            return SlotChange(slot=command.target_slot, workpiece=workpiece)
        return None


def _default_timeouts() -> Mapping[str, float]:
    return MappingProxyType({'hbw': 90.0, 'conveyor': 30.0, 'vgr': 45.0})


def _default_values() -> Mapping[str, float]:
    return MappingProxyType({'conveyor bake': 12.0})


@dataclass(frozen=True, kw_only=True)
class PlanSettings:
    """Tunable numbers of the plans (scheduler parameters).

    ``timeouts`` per station: the time a task may take beyond its own duration ``value``.
    ``values`` per ``'station verb'``: the numeric argument, e.g. the bake time in seconds.
    """

    timeouts: Mapping[str, float] = field(default_factory=_default_timeouts)
    values: Mapping[str, float] = field(default_factory=_default_values)


#: Plan templates; SOURCE/TARGET are replaced by the command's slots.
TEMPLATES: Mapping[CommandKind, tuple[PlanStep, ...]] = MappingProxyType(
    {
        CommandKind.PROCESS: (
            PlanStep('hbw', 'retrieve', SOURCE, effect=SlotEffect.TAKE),
            PlanStep('conveyor', 'load', 'entry'),
            PlanStep('conveyor', 'transport', 'exit'),
            # The belt keeps a workpiece until it is unloaded; the gripper then takes it over.
            PlanStep('conveyor', 'unload', 'exit'),
            PlanStep('vgr', 'pick', 'conveyor'),
            PlanStep('vgr', 'place', 'oven'),
            PlanStep('conveyor', 'bake', 'process'),
            PlanStep('vgr', 'pick', 'oven'),
            PlanStep('vgr', 'place', 'conveyor'),
            PlanStep('conveyor', 'load', 'exit'),
            PlanStep('conveyor', 'transport', 'entry'),
            PlanStep('conveyor', 'unload', 'entry'),
            PlanStep(
                'hbw', 'store', TARGET, effect=SlotEffect.PUT, stored_as=WorkpieceStatus.BAKED
            ),
        ),
        CommandKind.STORE: (
            # The new workpiece is put on the conveyor entry (input station) by hand.
            PlanStep('conveyor', 'load', 'entry'),
            PlanStep('conveyor', 'unload', 'entry'),
            PlanStep(
                'hbw', 'store', TARGET, effect=SlotEffect.PUT, stored_as=WorkpieceStatus.RAW_DOUGH
            ),
        ),
        CommandKind.RETRIEVE: (
            PlanStep('hbw', 'retrieve', SOURCE, effect=SlotEffect.TAKE),
            PlanStep('conveyor', 'load', 'entry'),
            PlanStep('conveyor', 'transport', 'exit'),
            PlanStep('conveyor', 'unload', 'exit'),
            PlanStep('vgr', 'pick', 'conveyor'),
            PlanStep('vgr', 'place', 'output'),
        ),
    }
)


def plan_for(command: CommandRecord, settings: PlanSettings | None = None) -> tuple[PlanStep, ...]:
    """The concrete steps for ``command``: slots filled in, values and timeouts applied."""
    settings = settings or PlanSettings()
    steps = []
    for template in TEMPLATES[command.kind]:
        value = settings.values.get(f'{template.station} {template.verb}', template.value)
        steps.append(
            replace(
                template,
                target=template.target.format(
                    source=command.source_slot, target=command.target_slot
                ),
                value=value,
                timeout_s=settings.timeouts[template.station] + value,
            )
        )
    return tuple(steps)
