"""The 3D scene from station states (pure: no processes), decoded as a client decodes it."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from foxglove.messages import SceneUpdate

from stf_nodes import interfaces
from stf_nodes.bridges.foxglove.scene import (
    FactoryGeometry,
    SceneBuilder,
    cookie_color,
    health_color,
)
from tests.bridges.foxglove_client import schema_decoder

HbwState = interfaces.get_message_class('stf_msgs/msg/HbwState')
VgrState = interfaces.get_message_class('stf_msgs/msg/VgrState')
ConveyorState = interfaces.get_message_class('stf_msgs/msg/ConveyorState')
InventorySlot = interfaces.get_message_class('stf_msgs/msg/InventorySlot')
Workpiece = interfaces.get_message_class('stf_msgs/msg/Workpiece')
MotorState = interfaces.get_message_class('stf_msgs/msg/MotorState')
SensorState = interfaces.get_message_class('stf_msgs/msg/SensorState')
TFMessage = interfaces.get_message_class('tf2_msgs/msg/TFMessage')
TransformStamped = interfaces.get_message_class('geometry_msgs/msg/TransformStamped')

_SCHEMA = SceneUpdate.get_schema()
decode = schema_decoder(_SCHEMA.name, _SCHEMA.encoding, base64.b64encode(_SCHEMA.data).decode())


def entities(update: Any) -> dict[str, dict[str, Any]]:
    return {e['id']: e for e in decode(update.encode()).get('entities', [])}


def meta(entity: dict[str, Any]) -> dict[str, str]:
    return {kv['key']: kv.get('value', '') for kv in entity.get('metadata', [])}


def hbw_state(**slots: tuple[str, str, int] | None) -> Any:
    state = HbwState(state=HbwState.STATE_READY)
    for slot in ('A1', 'A2', 'A3', 'B1', 'B2', 'B3', 'C1', 'C2', 'C3'):
        content = slots.get(slot)
        workpiece = (
            Workpiece(id=content[0], flavor=content[1], status=content[2])
            if content
            else Workpiece()
        )
        state.slots.append(InventorySlot(slot=slot, carrier_id=f'C-{slot}', workpiece=workpiece))
    state.motors = [
        MotorState(motor_id=m, health=1.0) for m in ('HBW_M1_X', 'HBW_M2_Y', 'HBW_M3_Z')
    ]
    return state


def test_rack_carriers_and_cookies_where_the_config_puts_them() -> None:
    builder = SceneBuilder()
    scene = entities(
        builder.update(hbw_state(A1=('WP001', 'CHOCO', 1), C3=('WP009', 'VANILLA', 2)))
    )
    a1, c3, b2 = scene['hbw/slot/A1'], scene['hbw/slot/C3'], scene['hbw/slot/B2']
    assert a1['frame_id'] == 'hbw' and a1['frame_locked']
    cookie = a1['cylinders'][0]['pose']['position']
    assert (cookie['x'], cookie['y'], cookie['z']) == pytest.approx((0.1, 0.1075, 0.05))
    top = c3['cylinders'][0]['pose']['position']
    assert (top['x'], top['y']) == pytest.approx((0.3, 0.3075))  # column 3, row C
    assert meta(c3) == {
        'slot': 'C3',
        'carrier_id': 'C-C3',
        'workpiece_id': 'WP009',
        'flavor': 'VANILLA',
        'status': 'BAKED',
    }
    assert 'cylinders' not in b2 and len(b2['cubes']) == 1  # an empty carrier
    assert meta(b2)['workpiece_id'] == 'empty'
    # Flavor colours, raw dough paler than baked, and a status badge of its own colour.
    chocolate = a1['cylinders'][0]['color']
    assert chocolate['r'] > chocolate['b']
    assert a1['cylinders'][1]['color'] != c3['cylinders'][1]['color']
    assert cookie_color('VANILLA', 1) != cookie_color('VANILLA', 2)
    assert {'hbw/rack', 'hbw/crane', 'hbw/fork', 'hbw/label', 'hbw/motor/HBW_M2_Y'} <= set(scene)


def test_geometry_follows_the_station_parameters() -> None:
    geometry = FactoryGeometry.from_parameters(
        hbw={
            'rack_origin_mm': [50.0, 80.0],
            'rack_pitch_mm': [120.0, 90.0],
            'use_sim_time': True,
            'mount_xyz_m': [1.0, 2.0, 3.0],
        },
        conveyor={'belt_length_mm': 200.0},
    )
    scene = entities(SceneBuilder(geometry).update(hbw_state(B2=('WP005', 'STRAWBERRY', 1))))
    position = scene['hbw/slot/B2']['cylinders'][0]['pose']['position']
    assert (position['x'], position['y']) == pytest.approx((0.17, 0.1775))
    with pytest.raises(ValueError, match='rack_pitch_mm'):
        FactoryGeometry.from_parameters(hbw={'rack_pitch_mm': 3.0})


def test_only_changes_are_sent_and_vanished_entities_deleted() -> None:
    builder = SceneBuilder()
    conveyor = ConveyorState(has_workpiece=True, workpiece_position=0.01)
    conveyor.workpiece = Workpiece(id='WP001', flavor='CHOCO', status=1)
    conveyor.sensors = [SensorState(sensor_id='CONV_L1_ENTRY', triggered=True)]
    first = entities(builder.update(conveyor))
    assert first['conveyor/workpiece']['frame_id'] == 'conveyor'
    beam = first['conveyor/barrier/CONV_L1_ENTRY']['lines'][0]['color']
    assert beam['r'] == 1.0 and beam.get('g', 0.0) < 0.5  # triggered: red
    assert builder.update(conveyor) is None  # nothing changed, nothing sent

    conveyor.workpiece_position = 0.06
    moved = decode(builder.update(conveyor).encode())
    assert [e['id'] for e in moved['entities']] == ['conveyor/workpiece']
    conveyor.has_workpiece, conveyor.workpiece = False, Workpiece()
    conveyor.sensors[0].triggered = False
    gone = decode(builder.update(conveyor).encode())
    assert [d['id'] for d in gone['deletions']] == ['conveyor/workpiece']
    assert 'conveyor/workpiece' not in builder.entity_ids()
    assert 'conveyor/workpiece' not in {
        e['id'] for e in decode(builder.snapshot().encode())['entities']
    }


def test_cookies_on_fork_and_gripper_oven_and_motor_health() -> None:
    builder = SceneBuilder()
    hbw = hbw_state()
    hbw.holding, hbw.workpiece = True, Workpiece(id='WP002', flavor='VANILLA', status=1)
    hbw.motors[0].health, hbw.motors[0].current_a = 0.45, 4.5
    scene = entities(builder.update(hbw))
    assert scene['hbw/workpiece']['frame_id'] == 'hbw_fork'
    failing = scene['hbw/motor/HBW_M1_X']
    assert meta(failing)['current_a'] == '4.5' and meta(failing)['health'] == '0.45'
    assert (
        failing['cylinders'][0]['color']['r'] > 0.9 > failing['cylinders'][0]['color'].get('g', 0)
    )
    assert health_color(1.0, 0.5)[1] > 0.7 and health_color(0.5, 0.5)[0] > 0.9

    vgr = VgrState(
        holding=True, vacuum_on=True, workpiece=Workpiece(id='WP002', flavor='VANILLA', status=1)
    )
    scene = entities(builder.update(vgr))
    assert scene['vgr/workpiece']['frame_id'] == 'vgr_gripper'
    assert meta(scene['vgr/gripper'])['vacuum_on'] == 'true'

    oven = ConveyorState(oven_busy=True, oven_temperature_c=180.0)
    oven.oven_workpiece = Workpiece(id='WP002', flavor='VANILLA', status=1)
    scene = entities(builder.update(oven))
    assert scene['conveyor/oven_workpiece']['frame_id'] == 'vgr'
    spot = scene['conveyor/oven_workpiece']['cylinders'][0]['pose']['position']
    assert (spot['x'], spot['y']) == pytest.approx((0.22, 0.15))  # the VGR's oven position
    assert meta(scene['conveyor/oven'])['temperature_c'] == '180'


def test_namespaced_factory_prefixes_frames_and_ids() -> None:
    builder = SceneBuilder(namespace='/factory_2')
    scene = entities(builder.update(VgrState()))
    assert scene['factory_2/vgr/rail']['frame_id'] == 'factory_2/vgr'
    tf = TFMessage(transforms=[TransformStamped(child_frame_id='vgr_arm')])
    tf.transforms[0].header.frame_id = 'vgr'
    tf.transforms[0].transform.translation.x = 0.25
    schema = builder.transforms(tf).get_schema()
    frames = schema_decoder(schema.name, schema.encoding, base64.b64encode(schema.data).decode())(
        builder.transforms(tf).encode()
    )
    transform = frames['transforms'][0]
    assert (transform['parent_frame_id'], transform['child_frame_id']) == (
        'factory_2/vgr',
        'factory_2/vgr_arm',
    )
    assert transform['translation']['x'] == 0.25


def test_not_a_station_state_is_refused() -> None:
    with pytest.raises(ValueError, match='not a station state'):
        SceneBuilder().update(Workpiece())
