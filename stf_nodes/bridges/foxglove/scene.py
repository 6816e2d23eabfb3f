"""The factory as a Foxglove 3D scene, derived from decoded station states (pure: no transport).

`SceneBuilder.update(state)` takes an `HbwState`, `VgrState` or `ConveyorState` message (as the
live bridge decodes it from the graph, or a bag player from a recording) and returns the
`foxglove.SceneUpdate` that brings the scene up to date: only entities whose content changed,
plus deletions of those that disappeared (a cookie leaving the belt). `snapshot()` returns the
whole scene for a client that just subscribed (or after a seek). `transforms(tf)` turns a
`tf2_msgs/TFMessage` into `foxglove.FrameTransforms`.

Every entity is frame-locked to a frame of `/tf`, so the stations' transforms place it and it
follows its frame as the frame moves:

- `hbw` (x along the rack, y up, z into the rack): the 3x3 rack with carriers and cookies, the
  crane rail, `HBW_M1_X`; `hbw_crane`: the mast with `HBW_M2_Y`; `hbw_fork`: the fork with
  `HBW_M3_Z` and the cookie it holds;
- `conveyor` (x along the belt from the entry, z up): belt, light barriers, `CONV_M1`, the
  cookie on the belt; `conveyor_belt`: belt marks, so the belt's motion shows;
- `vgr` (x along the rail, z up): rail, `VGR_M1_ARM`, compressor `VGR_M2_GRIP`, the oven (at
  the VGR's `oven` position; it belongs to the conveyor station) and the output tray;
  `vgr_arm`: the carriage with `VGR_M3_Z`; `vgr_gripper`: lift rod, suction cup and the cookie
  it holds.

Positions come from the station configs (`config/factory.yaml`: rack origin and pitch, slot
depth, belt length, barrier positions, VGR rail and named positions); the sizes of parts the
configs do not describe (cookie, carrier, motor bodies) are the constants in `Dimensions`.
Colours: cookies by flavor (raw dough paler, baked darker, with a status badge on top); motors
green → yellow → red as health falls to the maintenance threshold (`alert.low_health`); light
barriers red while triggered; the oven glows with its temperature. Every entity carries
metadata (component id, current, health, status, ...) that the 3D panel shows when clicked.

Entity ids and frames get the namespace as prefix (`factory_2/hbw`), so the factories of a fleet
can share one 3D panel: pick `factory_2/world` as its display frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from foxglove.messages import (
    Color,
    CubePrimitive,
    CylinderPrimitive,
    FrameTransform,
    FrameTransforms,
    KeyValuePair,
    LinePrimitive,
    LinePrimitiveLineType,
    Point3,
    Pose,
    Quaternion,
    SceneEntity,
    SceneEntityDeletion,
    SceneEntityDeletionType,
    SceneUpdate,
    TextPrimitive,
    Timestamp,
    Vector3,
)

from stf_nodes.messages import STATE_TYPES
from stf_nodes.sim import ConveyorConfig, HbwConfig, VgrConfig
from stf_nodes.sim.params import ParameterConfig

STATION_OF_TYPE = {type_name: station for station, type_name in STATE_TYPES.items()}

#: Station state codes (`*State.STATE_*`) as shown in labels.
STATE_NAMES = {
    0: 'OFF',
    1: 'READY',
    2: 'BUSY',
    3: 'WAIT_READY',
    4: 'ERROR',
    6: 'WAIT_ERROR',
    7: 'CALIBRATING',
}
#: `stf_msgs/Workpiece` status codes.
STATUS_NAMES = {0: 'UNKNOWN', 1: 'RAW_DOUGH', 2: 'BAKED', 3: 'PACKAGED', 4: 'STORED', 5: 'SHIPPED'}

RGBA = tuple[float, float, float, float]
FLAVOR_COLORS: dict[str, RGBA] = {
    'CHOCO': (0.40, 0.22, 0.10, 1.0),
    'VANILLA': (0.96, 0.90, 0.70, 1.0),
    'STRAWBERRY': (0.92, 0.30, 0.40, 1.0),
}
UNKNOWN_FLAVOR: RGBA = (0.6, 0.6, 0.6, 1.0)
DOUGH: RGBA = (0.98, 0.93, 0.80, 1.0)
STATUS_COLORS: dict[int, RGBA] = {
    1: (1.0, 1.0, 1.0, 1.0),  # RAW_DOUGH: white badge
    2: (1.0, 0.62, 0.05, 1.0),  # BAKED: golden badge
    3: (0.2, 0.45, 0.95, 1.0),  # PACKAGED
    4: (0.55, 0.55, 0.6, 1.0),  # STORED
    5: (0.2, 0.8, 0.3, 1.0),  # SHIPPED
}
ALUMINIUM: RGBA = (0.70, 0.72, 0.76, 1.0)
DARK: RGBA = (0.18, 0.19, 0.21, 1.0)
CARRIER: RGBA = (0.25, 0.40, 0.65, 1.0)
BARRIER_CLEAR: RGBA = (0.2, 0.85, 0.3, 0.9)
BARRIER_BLOCKED: RGBA = (1.0, 0.1, 0.1, 1.0)
VACUUM_ON: RGBA = (0.2, 0.6, 1.0, 1.0)
LABEL: RGBA = (1.0, 1.0, 1.0, 1.0)

_SQRT_HALF = math.sqrt(0.5)
#: Cylinders are drawn along their z axis; these turn z onto y (HBW frames: y is up) or x.
Z_TO_Y = (-_SQRT_HALF, 0.0, 0.0, _SQRT_HALF)
Z_TO_X = (0.0, _SQRT_HALF, 0.0, _SQRT_HALF)
IDENTITY = (0.0, 0.0, 0.0, 1.0)
#: A deletion at this stamp removes entities whatever their own stamps ("created before").
_LATEST = Timestamp(2**32 - 1, 999_999_999)


@dataclass(frozen=True, kw_only=True)
class Dimensions:
    """Sizes (mm) of parts the station configs do not describe."""

    cookie_diameter: float = 40.0
    cookie_height: float = 15.0  # the VGR mount height in config/factory.yaml assumes this
    carrier: tuple[float, float, float] = (60.0, 10.0, 60.0)  # width, height, depth
    shelf_thickness: float = 4.0
    rack_depth: float = 80.0
    upright: float = 8.0
    motor_diameter: float = 28.0
    motor_length: float = 40.0
    belt_width: float = 50.0
    belt_thickness: float = 10.0
    mast_offset: float = 30.0  # crane mast and rail, outside the rack (HBW frame -z)
    vgr_rail_height: float = 40.0  # rail above the travel height
    oven_size: tuple[float, float, float] = (80.0, 80.0, 60.0)
    font_size_m: float = 0.018


@dataclass(frozen=True, kw_only=True)
class FactoryGeometry:
    """Where things are: the station configs (as `config/factory.yaml` sets them)."""

    hbw: HbwConfig = field(default_factory=HbwConfig)
    vgr: VgrConfig = field(default_factory=VgrConfig)
    conveyor: ConveyorConfig = field(default_factory=ConveyorConfig)
    sizes: Dimensions = field(default_factory=Dimensions)

    @classmethod
    def from_parameters(
        cls,
        *,
        hbw: Mapping[str, Any] | None = None,
        vgr: Mapping[str, Any] | None = None,
        conveyor: Mapping[str, Any] | None = None,
    ) -> FactoryGeometry:
        """From the stations' parameters (node parameters such as `use_sim_time` or
        `mount_xyz_m` are ignored); raises ValueError on a malformed value."""
        return cls(
            hbw=_config(HbwConfig, hbw),
            vgr=_config(VgrConfig, vgr),
            conveyor=_config(ConveyorConfig, conveyor),
        )


def _config(config_type: type[ParameterConfig], parameters: Mapping[str, Any] | None) -> Any:
    known = config_type().to_parameters()
    return config_type.from_parameters(
        {name: value for name, value in (parameters or {}).items() if name in known}
    )


# -- primitives -------------------------------------------------------------------------------


def _color(rgba: RGBA) -> Color:
    return Color(r=rgba[0], g=rgba[1], b=rgba[2], a=rgba[3])


def _pose(xyz_mm: Iterable[float], rotation: tuple[float, ...] = IDENTITY) -> Pose:
    x, y, z = (v / 1000.0 for v in xyz_mm)
    qx, qy, qz, qw = rotation
    return Pose(position=Vector3(x=x, y=y, z=z), orientation=Quaternion(x=qx, y=qy, z=qz, w=qw))


def _size(xyz_mm: Iterable[float]) -> Vector3:
    x, y, z = (v / 1000.0 for v in xyz_mm)
    return Vector3(x=x, y=y, z=z)


def _cube(center: Iterable[float], size: Iterable[float], rgba: RGBA) -> CubePrimitive:
    return CubePrimitive(pose=_pose(center), size=_size(size), color=_color(rgba))


def _cylinder(
    center: Iterable[float],
    diameter: float,
    length: float,
    rgba: RGBA,
    rotation: tuple[float, ...] = IDENTITY,
) -> CylinderPrimitive:
    return CylinderPrimitive(
        pose=_pose(center, rotation),
        size=_size((diameter, diameter, length)),
        bottom_scale=1.0,
        top_scale=1.0,
        color=_color(rgba),
    )


def _text(center: Iterable[float], text: str, size_m: float) -> TextPrimitive:
    return TextPrimitive(
        pose=_pose(center), billboard=True, font_size=size_m, color=_color(LABEL), text=text
    )


def _mix(a: RGBA, b: RGBA, t: float) -> RGBA:
    return (
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
        a[3] + (b[3] - a[3]) * t,
    )


def health_color(health: float, low_health: float) -> RGBA:
    """Green at health 1, yellow halfway, red at the maintenance threshold and below."""
    span = max(1.0 - low_health, 1e-6)
    t = min(max((1.0 - health) / span, 0.0), 1.0)
    green, yellow, red = (0.1, 0.8, 0.2, 1.0), (0.95, 0.85, 0.1, 1.0), (0.95, 0.1, 0.1, 1.0)
    return _mix(green, yellow, t * 2.0) if t < 0.5 else _mix(yellow, red, (t - 0.5) * 2.0)


def cookie_color(flavor: str, status: int) -> RGBA:
    """The flavor's colour, paler as raw dough and darker once baked."""
    base = FLAVOR_COLORS.get(flavor, UNKNOWN_FLAVOR)
    if status == 1:
        return _mix(base, DOUGH, 0.45)
    if status == 2:
        return (base[0] * 0.8, base[1] * 0.8, base[2] * 0.8, 1.0)
    return base


def _kv(**values: Any) -> list[KeyValuePair]:
    return [KeyValuePair(key=key, value=_format(value)) for key, value in values.items()]


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, float):
        return f'{value:.4g}'
    return str(value)


# -- the builder ------------------------------------------------------------------------------


class SceneBuilder:
    """Turns station states into scene updates; one builder per factory (namespace)."""

    def __init__(self, geometry: FactoryGeometry | None = None, *, namespace: str = '/') -> None:
        self.geometry = geometry or FactoryGeometry()
        #: Prefix of frame and entity ids: '' for the root namespace, 'factory_2/' otherwise.
        self.prefix = namespace.strip('/') + '/' if namespace.strip('/') else ''
        self._entities: dict[str, dict[str, bytes]] = {}  # station → entity id → encoding
        self._latest: dict[str, dict[str, SceneEntity]] = {}

    def frame(self, name: str) -> str:
        return self.prefix + name

    def update(self, state: Any) -> SceneUpdate | None:
        """The changes one station state brings (None if nothing changed)."""
        station = STATION_OF_TYPE.get(getattr(state, '__msgtype__', ''))
        if station is None:
            raise ValueError(f'not a station state: {type(state).__name__}')
        stamp = Timestamp(state.header.stamp.sec, state.header.stamp.nanosec)
        entities = {
            entity_id: SceneEntity(
                timestamp=stamp,
                frame_id=self.frame(frame),
                id=self.prefix + entity_id,
                frame_locked=True,
                **primitives,
            )
            for entity_id, frame, primitives in getattr(self, f'_{station}')(state)
        }
        encoded = {entity_id: entity.encode() for entity_id, entity in entities.items()}
        previous = self._entities.get(station, {})
        changed = [entities[i] for i, data in encoded.items() if previous.get(i) != data]
        gone = [i for i in previous if i not in encoded]
        self._entities[station] = encoded
        self._latest[station] = entities
        if not changed and not gone:
            return None
        return SceneUpdate(
            entities=changed,
            deletions=[SceneEntityDeletion(timestamp=stamp, id=self.prefix + i) for i in gone],
        )

    def snapshot(self, *, replace: bool = False) -> SceneUpdate:
        """Every entity of the current scene; with `replace`, first delete every entity a
        client holds (a bag player after a seek: entities of the old moment must go)."""
        return SceneUpdate(
            deletions=[SceneEntityDeletion(timestamp=_LATEST, type=SceneEntityDeletionType.All)]
            if replace
            else [],
            entities=[e for entities in self._latest.values() for e in entities.values()],
        )

    def entity_ids(self) -> list[str]:
        return sorted(self.prefix + i for entities in self._entities.values() for i in entities)

    def transforms(self, tf_message: Any) -> FrameTransforms:
        """A `tf2_msgs/TFMessage` as Foxglove FrameTransforms, frames prefixed."""
        return FrameTransforms(
            transforms=[
                FrameTransform(
                    timestamp=Timestamp(t.header.stamp.sec, t.header.stamp.nanosec),
                    parent_frame_id=self.frame(t.header.frame_id),
                    child_frame_id=self.frame(t.child_frame_id),
                    translation=Vector3(
                        x=t.transform.translation.x,
                        y=t.transform.translation.y,
                        z=t.transform.translation.z,
                    ),
                    rotation=Quaternion(
                        x=t.transform.rotation.x,
                        y=t.transform.rotation.y,
                        z=t.transform.rotation.z,
                        w=t.transform.rotation.w,
                    ),
                )
                for t in tf_message.transforms
            ]
        )

    # -- shared parts ---------------------------------------------------------------------

    def _motor(
        self, station: str, motor: Any, frame: str, center: tuple[float, ...], rotation: Any
    ) -> tuple[str, str, dict[str, Any]]:
        size = self.geometry.sizes
        low = getattr(self.geometry, station).alert.low_health
        return (
            f'{station}/motor/{motor.motor_id}',
            frame,
            {
                'cylinders': [
                    _cylinder(
                        center,
                        size.motor_diameter,
                        size.motor_length,
                        health_color(motor.health, low),
                        rotation,
                    )
                ],
                'metadata': _kv(
                    component_id=motor.motor_id,
                    health=motor.health,
                    current_a=motor.current_a,
                    temperature_c=motor.temperature_c,
                    running=motor.running,
                    fault=motor.fault or 'none',
                ),
            },
        )

    def _cookie(
        self, workpiece: Any, center: tuple[float, float, float], up: str
    ) -> list[CylinderPrimitive]:
        """A cookie standing on `center` (its bottom), with its status badge on top."""
        size = self.geometry.sizes
        axis = {'y': 1, 'z': 2}[up]
        rotation = Z_TO_Y if up == 'y' else IDENTITY

        def above(height: float) -> tuple[float, ...]:
            return tuple(c + (height if i == axis else 0.0) for i, c in enumerate(center))

        status = int(workpiece.status)
        return [
            _cylinder(
                above(size.cookie_height / 2),
                size.cookie_diameter,
                size.cookie_height,
                cookie_color(workpiece.flavor, status),
                rotation,
            ),
            _cylinder(
                above(size.cookie_height + 1.0),
                size.cookie_diameter * 0.35,
                2.0,
                STATUS_COLORS.get(status, UNKNOWN_FLAVOR),
                rotation,
            ),
        ]

    def _cookie_entity(
        self, entity_id: str, frame: str, workpiece: Any, center: Any, up: str, **where: Any
    ) -> tuple[str, str, dict[str, Any]]:
        return (
            entity_id,
            frame,
            {
                'cylinders': self._cookie(workpiece, center, up),
                'metadata': _kv(
                    workpiece_id=workpiece.id,
                    flavor=workpiece.flavor,
                    status=STATUS_NAMES.get(int(workpiece.status), str(workpiece.status)),
                    **where,
                ),
            },
        )

    def _label(
        self, station: str, state: Any, frame: str, center: tuple[float, ...]
    ) -> tuple[str, str, dict[str, Any]]:
        text = f'{station.upper()} {STATE_NAMES.get(int(state.state), state.state)}'
        if state.task:
            text += f' · {state.task}'
        return (
            f'{station}/label',
            frame,
            {
                'texts': [_text(center, text, self.geometry.sizes.font_size_m)],
                'metadata': _kv(station=station, state=STATE_NAMES.get(int(state.state), '?')),
            },
        )

    # -- HBW (frame: x along the rack, y up, z into the rack) ------------------------------

    def _hbw(self, state: Any) -> list[tuple[str, str, dict[str, Any]]]:
        config, size = self.geometry.hbw, self.geometry.sizes
        (ox, oy), (px, py) = config.rack_origin_mm, config.rack_pitch_mm
        depth = config.z_extended_mm
        x_min, x_max = ox - px / 2, ox + (config.columns - 0.5) * px
        top = oy + (config.rows - 0.5) * py
        cw, ch, cd = size.carrier
        rack: list[CubePrimitive] = []
        for row in range(config.rows):
            shelf_y = oy + row * py - ch - size.shelf_thickness / 2
            rack.append(
                _cube(
                    ((x_min + x_max) / 2, shelf_y, depth),
                    (x_max - x_min, size.shelf_thickness, size.rack_depth),
                    ALUMINIUM,
                )
            )
        for column in range(config.columns + 1):
            x = x_min + column * px
            for z in (depth - size.rack_depth / 2, depth + size.rack_depth / 2):
                rack.append(_cube((x, top / 2, z), (size.upright, top, size.upright), ALUMINIUM))
        rail_z = -size.mast_offset
        rack.append(
            _cube((config.max_mm[0] / 2, 5.0, rail_z), (config.max_mm[0] + 40, 10.0, 20), DARK)
        )
        labels = [
            _text(
                (ox + c * px, oy + r * py - ch - 12.0, depth - size.rack_depth / 2 - 5.0),
                f'{chr(ord("A") + r)}{c + 1}',
                size.font_size_m * 0.6,
            )
            for r in range(config.rows)
            for c in range(config.columns)
        ]
        entities = [
            ('hbw/rack', 'hbw', {'cubes': rack, 'texts': labels, 'metadata': _kv(station='hbw')})
        ]
        for slot in state.slots:
            row, column = ord(slot.slot[0]) - ord('A'), int(slot.slot[1:]) - 1
            x, y = ox + column * px, oy + row * py
            parts: dict[str, Any] = {
                'metadata': _kv(
                    slot=slot.slot,
                    carrier_id=slot.carrier_id or 'none',
                    workpiece_id=slot.workpiece.id or 'empty',
                    flavor=slot.workpiece.flavor,
                    status=STATUS_NAMES.get(int(slot.workpiece.status), '?')
                    if slot.workpiece.id
                    else '',
                )
            }
            if slot.carrier_id:
                parts['cubes'] = [_cube((x, y - ch / 2, depth), (cw, ch, cd), CARRIER)]
            if slot.workpiece.id:
                parts['cylinders'] = self._cookie(slot.workpiece, (x, y, depth), 'y')
            entities.append((f'hbw/slot/{slot.slot}', 'hbw', parts))
        mast_height = config.max_mm[1] + 60.0
        entities.append(
            (
                'hbw/crane',
                'hbw_crane',
                {
                    'cubes': [
                        _cube((0.0, mast_height / 2, rail_z), (30.0, mast_height, 20.0), ALUMINIUM)
                    ],
                    'metadata': _kv(component='crane', x_mm=state.position.x * 1000),
                },
            )
        )
        entities.append(
            (
                'hbw/fork',
                'hbw_fork',
                {
                    'cubes': [
                        _cube((0.0, -2.0, 0.0), (cw * 0.6, 4.0, cd), ALUMINIUM),
                        _cube((0.0, -2.0, -cd / 2 - 20.0), (cw * 0.6, 8.0, 40.0), DARK),
                    ],
                    'metadata': _kv(
                        component='fork',
                        position_mm=', '.join(
                            f'{v * 1000:.0f}'
                            for v in (state.position.x, state.position.y, state.position.z)
                        ),
                        holding=state.holding,
                    ),
                },
            )
        )
        if state.holding and state.workpiece.id:
            entities.append(
                self._cookie_entity(
                    'hbw/workpiece', 'hbw_fork', state.workpiece, (0.0, 0.0, 0.0), 'y', at='fork'
                )
            )
        places = {
            'HBW_M1_X': ('hbw', (config.max_mm[0] + 40.0, 20.0, rail_z), Z_TO_X),
            'HBW_M2_Y': ('hbw_crane', (0.0, mast_height + 20.0, rail_z), Z_TO_Y),
            'HBW_M3_Z': ('hbw_fork', (0.0, 14.0, -cd / 2 - 20.0), IDENTITY),
        }
        entities += self._motors('hbw', state.motors, places)
        entities.append(self._label('hbw', state, 'hbw', ((x_min + x_max) / 2, top + 40.0, depth)))
        return entities

    def _motors(
        self, station: str, motors: Iterable[Any], places: Mapping[str, Any]
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """Motors at their places; one the drawing does not know is shown beside the label."""
        found = []
        for index, motor in enumerate(motors):
            frame, center, rotation = places.get(
                motor.motor_id, (station, (-60.0, 0.0, 40.0 * index), IDENTITY)
            )
            found.append(self._motor(station, motor, frame, center, rotation))
        return found

    # -- conveyor (frame: x along the belt from the entry, z up, belt surface at z = 0) ----

    def _conveyor(self, state: Any) -> list[tuple[str, str, dict[str, Any]]]:
        config, size = self.geometry.conveyor, self.geometry.sizes
        length, width = config.belt_length_mm, size.belt_width
        thickness = size.belt_thickness
        belt = {
            'cubes': [_cube((length / 2, 0.0, -thickness / 2), (length, width, thickness), DARK)],
            'cylinders': [
                _cylinder((x, 0.0, -thickness / 2), 12.0, width + 6.0, ALUMINIUM, Z_TO_Y)
                for x in (0.0, length)
            ],
            'metadata': _kv(station='conveyor'),
        }
        entities = [('conveyor/belt', 'conveyor', belt)]
        pitch = config.trail_pitch_mm
        marks = [
            Point3(x=k * pitch / 1000.0, y=s * width / 2000.0 * 0.9, z=0.0005)
            for k in range(int(length // pitch))
            for s in (-1.0, 1.0)
        ]
        entities.append(
            (
                'conveyor/belt_marks',
                'conveyor_belt',
                {
                    'lines': [
                        LinePrimitive(
                            type=LinePrimitiveLineType.LineList,
                            pose=_pose((0.0, 0.0, 0.0)),
                            thickness=0.0015,
                            points=marks,
                            color=_color((0.85, 0.85, 0.85, 1.0)),
                        )
                    ],
                    'metadata': _kv(
                        belt_position_m=state.position, belt_speed_m_s=state.belt_speed
                    ),
                },
            )
        )
        sensors = {sensor.sensor_id: sensor for sensor in state.sensors}
        for sensor_id, at in zip(config.barrier_ids, config.barrier_positions_mm, strict=True):
            sensor = sensors.get(sensor_id)
            triggered = bool(sensor and sensor.triggered)
            post = width / 2 + 8.0
            beam_z = 8.0
            entities.append(
                (
                    f'conveyor/barrier/{sensor_id}',
                    'conveyor',
                    {
                        'cubes': [
                            _cube((at, s * post, 12.0), (6.0, 6.0, 24.0), DARK) for s in (-1.0, 1.0)
                        ],
                        'lines': [
                            LinePrimitive(
                                type=LinePrimitiveLineType.LineStrip,
                                pose=_pose((0.0, 0.0, 0.0)),
                                thickness=0.004 if triggered else 0.002,
                                points=[
                                    Point3(x=at / 1000, y=s * post / 1000, z=beam_z / 1000)
                                    for s in (-1.0, 1.0)
                                ],
                                color=_color(BARRIER_BLOCKED if triggered else BARRIER_CLEAR),
                            )
                        ],
                        'metadata': _kv(
                            component_id=sensor_id,
                            triggered=triggered,
                            value=sensor.value if sensor else 0.0,
                            fault=(sensor.fault if sensor else '') or 'none',
                        ),
                    },
                )
            )
        if state.has_workpiece and state.workpiece.id:
            entities.append(
                self._cookie_entity(
                    'conveyor/workpiece',
                    'conveyor',
                    state.workpiece,
                    (state.workpiece_position * 1000.0, 0.0, 0.0),
                    'z',
                    at=f'belt {state.workpiece_position * 1000:.0f} mm',
                )
            )
        entities += self._oven(state)
        places = {'CONV_M1': ('conveyor', (-25.0, width / 2 + 10.0, -10.0), Z_TO_Y)}
        entities += self._motors('conveyor', state.motors, places)
        entities.append(
            self._label('conveyor', state, 'conveyor', (length / 2, -width - 30.0, -40.0))
        )
        return entities

    def _oven_spot(self) -> tuple[float, float, float]:
        """Where a cookie lies in the oven, in the VGR frame (the VGR's `oven` position)."""
        return self._vgr_spot('oven')

    def _vgr_spot(self, name: str) -> tuple[float, float, float]:
        vgr, size = self.geometry.vgr, self.geometry.sizes
        index = vgr.position_names.index(name)
        bottom = -vgr.position_z_mm[index] - size.cookie_height
        return vgr.position_x_mm[index], vgr.rail_y_mm, bottom

    def _oven(self, state: Any) -> list[tuple[str, str, dict[str, Any]]]:
        """The oven belongs to the conveyor station; it stands where the VGR puts cookies."""
        if 'oven' not in self.geometry.vgr.position_names:
            return []
        config, size = self.geometry.conveyor, self.geometry.sizes
        x, y, bottom = self._oven_spot()
        heat = (state.oven_temperature_c - config.oven_ambient_c) / max(
            config.oven_setpoint_c - config.oven_ambient_c, 1e-6
        )
        glow = _mix((0.45, 0.45, 0.5, 0.35), (1.0, 0.35, 0.05, 0.55), min(max(heat, 0.0), 1.0))
        ow, od, oh = size.oven_size
        entities = [
            (
                'conveyor/oven',
                'vgr',
                {
                    'cubes': [
                        _cube((x, y, bottom - 3.0), (ow + 10, od + 10, 6.0), DARK),
                        _cube((x, y, bottom + oh / 2), (ow, od, oh), glow),
                    ],
                    'metadata': _kv(
                        component_id='oven',
                        temperature_c=state.oven_temperature_c,
                        busy=state.oven_busy,
                        workpiece_id=state.oven_workpiece.id or 'empty',
                    ),
                },
            )
        ]
        if state.oven_busy and state.oven_workpiece.id:
            entities.append(
                self._cookie_entity(
                    'conveyor/oven_workpiece',
                    'vgr',
                    state.oven_workpiece,
                    (x, y, bottom),
                    'z',
                    at='oven',
                )
            )
        return entities

    # -- VGR (frame: x along the rail, z up, travel height at z = 0) ----------------------

    def _vgr(self, state: Any) -> list[tuple[str, str, dict[str, Any]]]:
        config, size = self.geometry.vgr, self.geometry.sizes
        rail_z = size.vgr_rail_height
        rail_y = config.rail_y_mm
        length = config.max_mm[0]
        static: dict[str, Any] = {
            'cubes': [_cube((length / 2, rail_y, rail_z), (length + 60.0, 20.0, 15.0), ALUMINIUM)],
            'metadata': _kv(station='vgr'),
        }
        if 'output' in config.position_names:
            x, y, bottom = self._vgr_spot('output')
            static['cubes'].append(_cube((x, y, bottom - 3.0), (70.0, 70.0, 6.0), CARRIER))
        entities = [('vgr/rail', 'vgr', static)]
        entities.append(
            (
                'vgr/carriage',
                'vgr_arm',
                {
                    'cubes': [_cube((0.0, 0.0, rail_z), (40.0, 36.0, 30.0), DARK)],
                    'metadata': _kv(component='arm', x_mm=state.position.x * 1000),
                },
            )
        )
        rod = config.max_mm[1] + rail_z + 20.0
        entities.append(
            (
                'vgr/gripper',
                'vgr_gripper',
                {
                    'cylinders': [
                        _cylinder((0.0, 0.0, 10.0 + rod / 2), 10.0, rod, ALUMINIUM),
                        _cylinder(
                            (0.0, 0.0, 5.0),
                            22.0,
                            10.0,
                            VACUUM_ON if state.vacuum_on else DARK,
                        ),
                    ],
                    'metadata': _kv(
                        component_id='VGR_P1_VACUUM',
                        vacuum_on=state.vacuum_on,
                        pressure_bar=state.pressure_bar,
                        holding=state.holding,
                    ),
                },
            )
        )
        if state.holding and state.workpiece.id:
            entities.append(
                self._cookie_entity(
                    'vgr/workpiece',
                    'vgr_gripper',
                    state.workpiece,
                    (0.0, 0.0, -size.cookie_height),
                    'z',
                    at='suction cup',
                )
            )
        places = {
            'VGR_M1_ARM': ('vgr', (length + 50.0, rail_y, rail_z), Z_TO_X),
            'VGR_M3_Z': ('vgr_arm', (0.0, 30.0, rail_z), IDENTITY),
            'VGR_M2_GRIP': ('vgr', (-60.0, rail_y, rail_z), IDENTITY),
        }
        entities += self._motors('vgr', state.motors, places)
        entities.append(self._label('vgr', state, 'vgr', (length - 60.0, rail_y, rail_z + 40.0)))
        return entities
