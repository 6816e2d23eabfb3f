"""Where a workpiece can be, the station steps that move it, and the plans built from them
(pure data, no I/O).

**Places.** A workpiece is always at one place. Some places are inside a station's simulated
contents, its *holder*: a rack slot (``rack A1``: the HBW's rack), the HBW fork, the two ends
of the belt (the conveyor carries the workpiece there), the gripper (the VGR). The others lie
between stations, where a workpiece waits for the next station to take it: the hand-off in
front of the rack, the pick-up beside the belt exit, the oven tray, the input (where a new
cookie is put by hand) and the output (it has left the factory)::

    rack X --hbw retrieve X--> hbw handoff --conveyor load entry--> conveyor belt entry
    conveyor belt entry --conveyor transport exit--> conveyor belt exit
    conveyor belt exit --conveyor unload exit--> conveyor pickup --vgr pick conveyor--> vgr gripper
    vgr gripper --vgr place oven--> oven --conveyor bake process--> oven (BAKED)
    vgr gripper --vgr place output--> output                  (and each way back: MOVES)

**Steps** are these moves as station tasks (``StationTask``: station, verb, target, value).
After a step succeeded the workpiece is at its ``destination``; a step from a rack slot takes
the workpiece out of the inventory, one into a slot puts it in (``slot_change``).

**Plans** (``plan_for``) are fixed sequences of steps per command kind; a PROCESS goes out
through the oven and back into its own slot. **Return routes** (``return_route``) bring a
workpiece from wherever it is back into a rack slot, the shortest way over the same moves (never
through the oven's bake); they carry a cancelled or failed command's cookie home.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from stf_nodes.scheduler.records import CommandKind, CommandRecord, SlotChange, Workpiece

RACK = 'rack'
HBW_FORK = 'hbw fork'
HANDOFF = 'hbw handoff'
BELT_ENTRY = 'conveyor belt entry'
BELT_EXIT = 'conveyor belt exit'
PICKUP = 'conveyor pickup'
GRIPPER = 'vgr gripper'
OVEN = 'oven'
INPUT = 'input'
OUTPUT = 'output'
#: The place of a workpiece whose whereabouts nobody knows (it is lost).
UNKNOWN = 'unknown'


def rack_place(slot: str) -> str:
    """The place of rack slot ``slot``: ``'rack A1'``."""
    return f'{RACK} {slot}'


def slot_of(place: str) -> str:
    """The slot of a rack place, '' for any other place."""
    kind, _, slot = place.partition(' ')
    return slot if kind == RACK else ''


@dataclass(frozen=True)
class Holder:
    """The station whose simulated contents include a workpiece at a place; ``part`` is what
    ``RestoreStation`` needs (the belt position for the conveyor, else empty)."""

    station: str
    part: str = ''


def holder_of(place: str) -> Holder | None:
    """Who holds a workpiece at ``place``; None between stations."""
    if slot_of(place) or place == HBW_FORK:
        return Holder('hbw')
    if place in (BELT_ENTRY, BELT_EXIT):
        return Holder('conveyor', place.rsplit(' ', 1)[1])
    if place == GRIPPER:
        return Holder('vgr')
    return None


def is_away(place: str) -> bool:
    """True when a workpiece at ``place`` is inside the factory but not in the rack: it has to
    be brought back when its command ends there."""
    return not slot_of(place) and place not in (INPUT, OUTPUT, UNKNOWN, '')


@dataclass(frozen=True)
class Step:
    """One station task moving a workpiece from ``source`` to ``destination``.

    ``value`` is the task's numeric argument (none of the plans' steps needs one); ``timeout_s``
    the node time it may take before the scheduler stops it.
    """

    station: str
    verb: str
    target: str
    source: str
    destination: str
    value: float = 0.0
    timeout_s: float = 0.0

    @property
    def label(self) -> str:
        """The step as shown in ``CommandStatus.step``, e.g. ``'hbw retrieve A1'``."""
        return f'{self.station} {self.verb} {self.target}'

    def slot_change(self, workpiece: Workpiece) -> SlotChange | None:
        """The inventory change once this step succeeded with ``workpiece``, or None."""
        if slot_of(self.source):
            return SlotChange(slot=slot_of(self.source), workpiece=Workpiece())
        if slot_of(self.destination):
            return SlotChange(slot=slot_of(self.destination), workpiece=workpiece)
        return None


#: Every move, with ``{slot}`` standing for a rack slot.
MOVES: tuple[Step, ...] = (
    Step('hbw', 'retrieve', '{slot}', rack_place('{slot}'), HANDOFF),
    Step('hbw', 'store', '{slot}', HANDOFF, rack_place('{slot}')),
    Step('hbw', 'store', '{slot}', HBW_FORK, rack_place('{slot}')),
    Step('conveyor', 'load', 'entry', INPUT, BELT_ENTRY),
    Step('conveyor', 'load', 'entry', HANDOFF, BELT_ENTRY),
    Step('conveyor', 'unload', 'entry', BELT_ENTRY, HANDOFF),
    Step('conveyor', 'transport', 'exit', BELT_ENTRY, BELT_EXIT),
    Step('conveyor', 'transport', 'entry', BELT_EXIT, BELT_ENTRY),
    Step('conveyor', 'unload', 'exit', BELT_EXIT, PICKUP),
    Step('conveyor', 'load', 'exit', PICKUP, BELT_EXIT),
    Step('vgr', 'pick', 'conveyor', PICKUP, GRIPPER),
    Step('vgr', 'place', 'conveyor', GRIPPER, PICKUP),
    Step('vgr', 'place', 'oven', GRIPPER, OVEN),
    Step('vgr', 'pick', 'oven', OVEN, GRIPPER),
    Step('vgr', 'place', 'output', GRIPPER, OUTPUT),
    Step('conveyor', 'bake', 'process', OVEN, OVEN),
)
_BAKE = MOVES[-1]

_SOURCE, _TARGET = rack_place('{source}'), rack_place('{target}')
#: Plans as the places the workpiece visits; staying at the oven is the bake.
_ROUTES: Mapping[CommandKind, tuple[str, ...]] = MappingProxyType(
    {
        CommandKind.PROCESS: (
            *(_SOURCE, HANDOFF, BELT_ENTRY, BELT_EXIT, PICKUP, GRIPPER, OVEN),
            *(OVEN, GRIPPER, PICKUP, BELT_EXIT, BELT_ENTRY, HANDOFF, _TARGET),
        ),
        CommandKind.STORE: (INPUT, BELT_ENTRY, HANDOFF, _TARGET),
        CommandKind.RETRIEVE: (_SOURCE, HANDOFF, BELT_ENTRY, BELT_EXIT, PICKUP, GRIPPER, OUTPUT),
    }
)


def _default_timeouts() -> Mapping[str, float]:
    return MappingProxyType({'hbw': 90.0, 'conveyor': 90.0, 'vgr': 45.0})


@dataclass(frozen=True, kw_only=True)
class PlanSettings:
    """Tunable numbers of the plans (scheduler parameters).

    ``timeouts`` per station: the node time one of its tasks may take (a conveyor bake
    included: the oven heats up, then bakes for the conveyor's own ``bake_time_s``).
    """

    timeouts: Mapping[str, float] = field(default_factory=_default_timeouts)


def _moves(slots: set[str], settings: PlanSettings) -> dict[tuple[str, str], Step]:
    """Every move for these rack slots, by (source, destination), with their timeouts."""
    moves = {}
    for slot in slots:
        for template in MOVES:
            step = replace(
                template,
                target=template.target.replace('{slot}', slot),
                source=template.source.replace('{slot}', slot),
                destination=template.destination.replace('{slot}', slot),
                timeout_s=settings.timeouts[template.station] + template.value,
            )
            moves[step.source, step.destination] = step
    return moves


def plan_for(command: CommandRecord, settings: PlanSettings | None = None) -> tuple[Step, ...]:
    """The concrete steps of ``command``'s plan: slots filled in, timeouts applied."""
    moves = _moves({command.source_slot, command.target_slot} - {''}, settings or PlanSettings())
    places = [
        place.format(source=command.source_slot, target=command.target_slot)
        for place in _ROUTES[command.kind]
    ]
    return tuple(moves[pair] for pair in itertools.pairwise(places))


def start_place(command: CommandRecord) -> str:
    """Where ``command``'s workpiece is before its first step."""
    return INPUT if command.kind is CommandKind.STORE else rack_place(command.source_slot)


def return_route(
    source: str, slot: str, settings: PlanSettings | None = None
) -> tuple[Step, ...] | None:
    """The shortest sequence of steps from ``source`` into rack slot ``slot`` (never through
    the bake); ``()`` when already there, None when there is no way (e.g. from the output)."""
    goal = rack_place(slot)
    moves = [
        step
        for (start, end), step in _moves({slot}, settings or PlanSettings()).items()
        if start != end
    ]
    came_from: dict[str, Step | None] = {source: None}
    frontier = deque([source])
    while frontier and goal not in came_from:
        here = frontier.popleft()
        for step in moves:
            if step.source == here and step.destination not in came_from:
                came_from[step.destination] = step
                frontier.append(step.destination)
    if goal not in came_from:
        return None
    route: list[Step] = []
    previous = came_from[goal]
    while previous is not None:
        route.append(previous)
        previous = came_from[previous.source]
    return tuple(reversed(route))
