"""High-bay warehouse: a 3x3 rack served by a crane with axes X (along the rack), Y (height)
and a fork Z (into the rack).

Geometry (station frame, mm): slot ``<row><column>`` (rows A.. bottom to top, columns 1..) sits
at ``rack_origin_mm + ((column-1)·pitch_x, row·pitch_y)`` with the fork extended to
``z_extended_mm``; A1 = (100, 100, 50). The crane hands workpieces over to the conveyor at
``handoff_mm`` = (400, 100, 25) and rests at ``home_mm`` = (400, 90, 10).

Carriers stay in the rack. Every slot keeps its carrier; the fork slides under the cookie,
lifts it by ``lift_mm`` and carries the cookie alone. This keeps the inventory (slot →
carrier, workpiece) true at every moment and lets ``store`` use any slot with an empty carrier.

Verbs (``start_task``):

- ``retrieve`` target slot: fetch the slot's workpiece and set it down at the hand-off; the task
  reports it as its workpiece.
- ``store`` target slot, workpiece: pick the workpiece up at the hand-off and put it into the
  (empty) slot. Without a workpiece, stores the one already on the fork (recovery after a
  failed task).
- ``move`` target slot, ``home``, ``handoff`` or coordinates ``"x,y,z"`` in mm.
- ``calibrate``: reference run (fork in, then X and Y to their switches), then home.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated

from stf_nodes.sim.alerts import AlertConfig
from stf_nodes.sim.axis import AxisConfig
from stf_nodes.sim.model import (
    HbwSnapshot,
    Pose,
    Refused,
    SlotSnapshot,
    TaskRefused,
    Workpiece,
)
from stf_nodes.sim.motor import MotorConfig
from stf_nodes.sim.params import Doc, ParameterConfig
from stf_nodes.sim.station import Planner, Station, Step, parse_coordinates
from stf_nodes.validation import quote
from stf_nodes.workpieces import Flavor, WorkpieceStatus, rack_slots

AXES = ('x', 'y', 'z')
MOTOR_IDS = {'x': 'HBW_M1_X', 'y': 'HBW_M2_Y', 'z': 'HBW_M3_Z'}
REFERENCE_IDS = {'x': 'HBW_S1_REF_X', 'y': 'HBW_S2_REF_Y', 'z': 'HBW_S3_REF_Z'}


@dataclass(frozen=True, kw_only=True)
class HbwConfig(ParameterConfig):
    """High-bay warehouse parameters (``hbw`` in ``config/factory.yaml``)."""

    publish_rate: Annotated[float, Doc('state topic rate', unit='Hz', low=0.01, high=1000.0)] = 10.0
    seed: Annotated[
        int, Doc('seed of the station random generator (sensor noise, ghost readings)')
    ] = 1
    motor: MotorConfig = field(default_factory=MotorConfig)
    axis: AxisConfig = field(default_factory=AxisConfig)
    alert: AlertConfig = field(default_factory=AlertConfig)
    rows: Annotated[int, Doc('rack rows, named A, B, C, ... bottom to top', low=1.0, high=26.0)] = 3
    columns: Annotated[int, Doc('rack columns, numbered 1, 2, 3, ...', low=1.0, high=99.0)] = 3
    rack_origin_mm: Annotated[tuple[float, ...], Doc('crane (x, y) of slot A1', unit='mm')] = (
        100.0,
        100.0,
    )
    rack_pitch_mm: Annotated[
        tuple[float, ...], Doc('slot spacing (x between columns, y between rows)', unit='mm')
    ] = (100.0, 100.0)
    max_mm: Annotated[
        tuple[float, ...],
        Doc('upper axis limits (lower limits are the reference switches at 0)', unit='mm'),
    ] = (450.0, 350.0, 60.0)
    z_retracted_mm: Annotated[
        float, Doc('fork position while travelling empty', unit='mm', low=0.0)
    ] = 10.0
    z_carry_mm: Annotated[
        float, Doc('fork position while travelling with a workpiece', unit='mm', low=0.0)
    ] = 25.0
    z_extended_mm: Annotated[float, Doc('fork position inside a slot', unit='mm', low=0.0)] = 50.0
    lift_mm: Annotated[
        float,
        Doc('fork lift to take a workpiece off / set it onto its carrier', unit='mm', low=0.0),
    ] = 10.0
    handoff_mm: Annotated[
        tuple[float, ...],
        Doc('fork (x, y, z) where workpieces pass to and from the conveyor', unit='mm'),
    ] = (400.0, 100.0, 25.0)
    home_mm: Annotated[
        tuple[float, ...], Doc('rest position (x, y, z) and start position', unit='mm')
    ] = (400.0, 90.0, 10.0)
    stock: Annotated[
        tuple[str, ...],
        Doc(
            'initial stock of a new rack, "SLOT:FLAVOR" or "SLOT:FLAVOR:STATUS" '
            '(status default RAW_DOUGH)'
        ),
    ] = (
        'A1:CHOCO',
        'A2:VANILLA',
        'A3:STRAWBERRY',
        'B1:CHOCO',
        'B2:VANILLA',
        'B3:STRAWBERRY',
    )


class Hbw(Station):
    """The high-bay warehouse model."""

    name = 'hbw'

    def __init__(self, *, config: HbwConfig | None = None, seed: int | None = None) -> None:
        self.config = config = config or HbwConfig()
        super().__init__(seed=config.seed if seed is None else seed)
        for i, axis in enumerate(AXES):
            self._add_axis(
                axis,
                motor=self._add_motor(MOTOR_IDS[axis], config.motor),
                config=config.axis,
                limits_mm=(0.0, config.max_mm[i]),
                position_mm=config.home_mm[i],
                reference_id=REFERENCE_IDS[axis],
            )
        self.slots: dict[str, Workpiece | None] = dict.fromkeys(
            rack_slots(config.rows, config.columns)
        )
        for n, entry in enumerate(config.stock, start=1):
            slot, flavor, *status = entry.split(':')
            if slot not in self.slots:
                raise ValueError(f'stock entry {entry!r}: unknown slot')
            state = WorkpieceStatus[status[0]] if status else WorkpieceStatus.RAW_DOUGH
            self.slots[slot] = Workpiece(f'WP{n:03d}', Flavor(flavor), state)
        self.fork: Workpiece | None = None

    # --- geometry -------------------------------------------------------------------------

    def slot_position(self, slot: str) -> tuple[float, float, float]:
        """Fork position (x, y, z) mm that sets a workpiece down in ``slot``."""
        if slot not in self.slots:
            raise TaskRefused(f'unknown slot {quote(slot)}')
        c = self.config
        row, column = ord(slot[0]) - ord('A'), int(slot[1:]) - 1
        x = c.rack_origin_mm[0] + column * c.rack_pitch_mm[0]
        return x, c.rack_origin_mm[1] + row * c.rack_pitch_mm[1], c.z_extended_mm

    def _named(self, target: str) -> tuple[float, float, float]:
        c = self.config
        named = {'home': c.home_mm, 'handoff': c.handoff_mm}
        if target in named:
            x, y, z = named[target]
            return x, y, z
        coordinates = parse_coordinates(target, 'xyz')
        if coordinates is not None:
            x, y, z = coordinates
            return x, y, z
        return self.slot_position(target)

    @property
    def position(self) -> tuple[float, float, float]:
        x, y, z = (self.parts.axes[a].position_mm for a in AXES)
        return x, y, z

    # --- tasks ----------------------------------------------------------------------------

    def _planners(self) -> dict[str, Planner]:
        return {
            'retrieve': self._plan_retrieve,
            'store': self._plan_store,
            'move': self._plan_move,
            'calibrate': self._plan_calibrate,
        }

    def _travel(self, to: tuple[float, float, float], *, carrying: bool = False) -> list[Step]:
        """Fork in (to the carry position with a workpiece), X and Y together, then the fork
        to ``to``'s Z."""
        x, y, z = to
        z_in = self.config.z_carry_mm if carrying else self.config.z_retracted_mm
        return [self._move(z=z_in), self._move(x=x, y=y), self._move(z=z)]

    def _plan_move(self, target: str, _wp: Workpiece | None, _value: float) -> list[Step]:
        return self._travel(self._named(target))

    def _plan_retrieve(self, slot: str, _wp: Workpiece | None, _value: float) -> list[Step]:
        x, y, z = self.slot_position(slot)
        if self.slots[slot] is None:
            raise TaskRefused(f'slot {slot} is empty')
        if self.fork is not None:
            raise TaskRefused(f'fork already holds {self.fork.id}; store it first')
        c = self.config
        return [
            *self._travel((x, y, z)),
            self._move(y=y + c.lift_mm),
            self._do(lambda: self._take_from(slot)),
            *self._travel(self._named('handoff'), carrying=True),
            self._do(self._hand_over),
        ]

    def _plan_store(self, slot: str, wp: Workpiece | None, _value: float) -> list[Step]:
        x, y, z = self.slot_position(slot)
        occupant = self.slots[slot]
        if occupant is not None:
            raise TaskRefused(f'slot {slot} is occupied by {occupant.id}')
        if wp is None and self.fork is None:
            raise TaskRefused('store needs a workpiece')
        if wp is not None and self.fork is not None and wp.id != self.fork.id:
            raise TaskRefused(f'fork holds {self.fork.id}, cannot take {wp.id}')
        c = self.config
        fetch = [*self._travel(self._named('handoff')), self._do(lambda: self._take(wp))]
        return [
            *([] if self.fork else fetch),
            *self._travel((x, y + c.lift_mm, z), carrying=True),
            self._move(y=y),
            self._do(lambda: self._put_into(slot)),
            self._move(z=c.z_retracted_mm),
        ]

    def _plan_calibrate(self, _t: str, _wp: Workpiece | None, _value: float) -> list[Step]:
        return [*self._reference_run(('z',), ('x', 'y')), *self._travel(self._named('home'))]

    # --- actions --------------------------------------------------------------------------

    def _take_from(self, slot: str) -> None:
        self.fork, self.slots[slot] = self.slots[slot], None
        self._running_task().workpiece = self.fork

    def _take(self, wp: Workpiece | None) -> None:
        self.fork = wp
        self._running_task().workpiece = wp

    def _hand_over(self) -> None:
        self.fork = None

    def _put_into(self, slot: str) -> None:
        self._running_task().workpiece = self.slots[slot] = self.fork
        self.fork = None

    def _restore(
        self, workpiece: Workpiece | None, place: str, slots: Mapping[str, Workpiece | None]
    ) -> None:
        """The whole rack (every slot named, empty ones as None) and the fork."""
        if place:
            raise Refused(f'the hbw restores its rack and fork, not a place ({quote(place)})')
        unknown = sorted(set(slots) - set(self.slots))
        missing = sorted(set(self.slots) - set(slots))
        if unknown or missing:
            raise Refused(
                'a rack restore names every slot once: '
                f'unknown {", ".join(map(quote, unknown)) or "none"}, '
                f'missing {", ".join(missing) or "none"}'
            )
        contents = [wp for wp in (*slots.values(), workpiece) if wp is not None]
        ids = [wp.id for wp in contents]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise Refused(f'workpiece {", ".join(map(quote, twice))} in two places')
        self.slots = {slot: slots[slot] for slot in self.slots}
        self.fork = workpiece

    # --- observation ----------------------------------------------------------------------

    def _update_sensors(self, dt: float) -> None:
        self._update_references(dt)

    def _poses(self) -> tuple[Pose, ...]:
        x, y, z = self.position
        poses = [Pose('hbw_crane', 'hbw', x, 0.0, 0.0), Pose('hbw_fork', 'hbw_crane', 0.0, y, z)]
        if self.fork is not None:
            poses.append(Pose('hbw_workpiece', 'hbw_fork', 0.0, 0.0, 0.0))
        return tuple(poses)

    def snapshot(self) -> HbwSnapshot:
        return HbwSnapshot(
            **self._common(),
            position=self.position,
            holding=self.fork is not None,
            workpiece=self.fork,
            slots=tuple(SlotSnapshot(s, f'C-{s}', wp) for s, wp in self.slots.items()),
        )
