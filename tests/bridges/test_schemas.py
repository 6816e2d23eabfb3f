"""Conversions between graph data and the Foxglove protocol (pure)."""

from __future__ import annotations

import json

import foxglove
import pytest

from stf_nodes import interfaces
from stf_nodes.bridges.foxglove.schemas import (
    BadRequestError,
    GraphSummary,
    from_foxglove_parameter,
    log_from_rosout,
    service_schema,
    split_parameter_name,
    to_cdr,
    to_foxglove_parameter,
)
from stf_nodes.runtime.names import parse_token

String = interfaces.get_message_class('std_msgs/msg/String')
Log = interfaces.get_message_class('rcl_interfaces/msg/Log')


def test_client_data_is_checked_before_it_enters_the_graph() -> None:
    good = interfaces.serialize(String(data='ok'))
    assert to_cdr('std_msgs/msg/String', 'cdr', good, limit=1000) is good  # passed on as is
    as_json = to_cdr('std_msgs/msg/String', 'json', json.dumps({'data': 'ok'}).encode(), limit=99)
    assert as_json == good
    for encoding, payload, reason in [
        ('cdr', b'\x00\x01\x00\x00\xff\xff\xff\x7f', 'not a valid CDR'),
        ('cdr', b'', 'not a valid CDR'),
        ('json', b'{"data": 1}', 'expected string'),
        ('json', b'{not json', 'not a valid std_msgs/msg/String in JSON'),
        ('protobuf', good, 'unsupported encoding'),
        ('cdr', good + b'\x00' * 2000, 'exceed the limit'),
    ]:
        with pytest.raises(BadRequestError, match=reason):
            to_cdr('std_msgs/msg/String', encoding, payload, limit=1000)
    # An empty request as a bare CDR header becomes what ROS 2 expects.
    trigger = 'std_srvs/srv/Trigger_Request'
    assert to_cdr(trigger, 'cdr', b'\x00\x01\x00\x00', limit=99) == b'\x00\x01\x00\x00\x00'


def test_parameter_names_and_values() -> None:
    assert split_parameter_name('/factory_2/hbw.motor.voltage_v') == (
        '/factory_2/hbw',
        'motor.voltage_v',
    )
    for bad in ('hbw.rate', '/hbw', '/hbw.', ''):
        with pytest.raises(BadRequestError):
            split_parameter_name(bad)
    assert to_foxglove_parameter('/n.d', 10.0).type == foxglove.ParameterType.Float64
    assert to_foxglove_parameter('/n.a', [1.0, 2.0]).type == foxglove.ParameterType.Float64Array
    assert to_foxglove_parameter('/n.s', ['a']).get_value() == ['a']
    hinted = foxglove.Parameter('/n.d', value=3, type=foxglove.ParameterType.Float64)
    assert from_foxglove_parameter(hinted) == 3.0 and isinstance(
        from_foxglove_parameter(hinted), float
    )
    with pytest.raises(BadRequestError, match='unset or nested'):
        from_foxglove_parameter(foxglove.Parameter('/n.x'))


def test_rosout_levels_and_service_schemas() -> None:
    record = Log(level=30, name='hbw', msg='careful', file='f.py', line=7)
    record.stamp.sec = 12
    assert log_from_rosout(record).encode()  # a valid foxglove.Log
    schema = service_schema('stf_msgs/srv/ProcessOrder')
    assert schema.name == 'stf_msgs/srv/ProcessOrder'
    assert schema.request.schema.name == 'stf_msgs/srv/ProcessOrder_Request'
    assert b'string source_slot' in schema.request.schema.data
    assert schema.response.encoding == 'cdr'


def test_graph_summary_by_node() -> None:
    tokens = [
        parse_token(
            f'@ros2_lv/0/zid/1/{eid}/{kind}/%/%/{node}/%stf%hbw%state/'
            'stf_msgs::msg::dds_::HbwState_/RIHS01_x/1:2:1,10'
        )
        for eid, kind, node in [(2, 'MP', 'hbw'), (3, 'MS', 'bridge'), (4, 'MS', 'recorder')]
    ]
    summary = GraphSummary.of([t for t in tokens if t is not None])
    assert summary.published == {'/stf/hbw/state': ['/hbw']}
    assert summary.subscribed == {'/stf/hbw/state': ['/bridge', '/recorder']}
    assert summary.to_connection_graph() is not None
