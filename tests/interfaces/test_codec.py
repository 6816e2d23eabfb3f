"""The generated CDR codec (stf_nodes.cdr) against rosbags' codec, the reference.

For every type in the store (the stf interfaces, the standard ROS 2 Kilted messages and the
services' parts), random messages must encode to rosbags' bytes exactly, and rosbags' bytes
must decode to a message that rosbags encodes back to the same bytes, with the same classes
and array dtypes. Malformed input must raise SerdeError, never a message made of garbage.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rosbags.typesys.base import Nodetype

from stf_nodes import interfaces
from tests.conftest import SHARED_TESTDATA

STORE = interfaces._store()
ORACLE = json.loads((SHARED_TESTDATA / 'ros2_oracle.json').read_text())
# The standard types the project's nodes publish, subscribe or serve; with every stf type they
# get the most examples, the rest of the store a few each.
USED_STANDARD = (
    'builtin_interfaces/msg/Time',
    'diagnostic_msgs/msg/DiagnosticArray',
    'example_interfaces/srv/AddTwoInts',
    'geometry_msgs/msg/TransformStamped',
    'rcl_interfaces/msg/Log',
    'rcl_interfaces/msg/ParameterEvent',
    'rcl_interfaces/msg/SetParametersResult',
    'rcl_interfaces/srv/GetParameterTypes',
    'rcl_interfaces/srv/GetParameters',
    'rcl_interfaces/srv/ListParameters',
    'rcl_interfaces/srv/SetParameters',
    'rosgraph_msgs/msg/Clock',
    'std_msgs/msg/Empty',
    'std_msgs/msg/String',
    'std_srvs/srv/Trigger',
    'tf2_msgs/msg/TFMessage',
)
PROJECT = {
    name
    for name in STORE.fielddefs
    if name.startswith('stf_msgs/') or name.startswith(USED_STANDARD)
}
TYPES = sorted(STORE.fielddefs)


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        database=None,
    )


SETTINGS = _settings(20)
_INTS = {
    'byte': (-(2**7), 2**7 - 1),  # signed in rosbags
    'int8': (-(2**7), 2**7 - 1),
    'uint8': (0, 2**8 - 1),
    'int16': (-(2**15), 2**15 - 1),
    'uint16': (0, 2**16 - 1),
    'int32': (-(2**31), 2**31 - 1),
    'uint32': (0, 2**32 - 1),
    'int64': (-(2**63), 2**63 - 1),
    'uint64': (0, 2**64 - 1),
}
_DTYPES = {'bool': np.bool_, 'byte': np.int8, 'float32': np.float32, 'float64': np.float64}
TEXT = st.text(st.characters(blacklist_categories=['Cs']), max_size=12)


def _scalar(base: str, bound: int) -> st.SearchStrategy[Any]:
    if base == 'string':
        return st.text(st.characters(blacklist_categories=['Cs']), max_size=bound or 12)
    if base == 'bool':
        return st.booleans()
    if base == 'float32':
        return st.floats(width=32)
    if base == 'float64':
        return st.floats()
    low, high = _INTS[base]
    return st.integers(low, high)


def _value(desc: Any) -> st.SearchStrategy[Any]:
    kind, rest = desc
    if kind == Nodetype.NAME:
        return message(rest)
    if kind == Nodetype.BASE:
        return _scalar(*rest)
    sub, length = rest
    size = st.just(length) if kind == Nodetype.ARRAY else st.integers(0, min(length or 4, 4))
    if sub[0] == Nodetype.BASE and sub[1][0] != 'string':
        dtype = _DTYPES.get(sub[1][0], sub[1][0])
        return size.flatmap(
            lambda n: st.lists(_scalar(*sub[1]), min_size=n, max_size=n).map(
                lambda items: np.array(items, dtype=dtype)
            )
        )
    return size.flatmap(lambda n: st.lists(_value(sub), min_size=n, max_size=n))


def message(name: str) -> st.SearchStrategy[Any]:
    cls = interfaces.get_message_class(name)
    fields = STORE.fielddefs[name][1]
    return st.fixed_dictionaries({field: _value(desc) for field, desc in fields}).map(
        lambda values: cls(**values)
    )


def _reference(msg: Any) -> bytes:
    return bytes(STORE.serialize_cdr(msg, msg.__msgtype__))


def _same_structure(ours: Any, theirs: Any) -> None:
    """Same classes, list-ness and array dtypes all the way down."""
    assert type(ours) is type(theirs)
    if isinstance(ours, np.ndarray):
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    elif isinstance(ours, list):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            _same_structure(a, b)
    elif hasattr(ours, '__msgtype__'):
        for field, _ in STORE.fielddefs[ours.__msgtype__][1]:
            _same_structure(getattr(ours, field), getattr(theirs, field))


@pytest.mark.parametrize('name', TYPES)
def test_codec_matches_rosbags_both_ways(name: str) -> None:
    codec = interfaces.codec(name)

    @_settings(20 if name in PROJECT else 3)
    @given(message(name))
    def check(msg: Any) -> None:
        reference = _reference(msg)
        assert codec.encode(msg) == reference
        decoded, end = codec.decode(reference, 4)
        assert end == len(reference)
        assert _reference(decoded) == reference
        _same_structure(decoded, STORE.deserialize_cdr(reference, name))

    check()


@pytest.mark.parametrize('vector', ORACLE['messages'], ids=lambda v: v['type'])
def test_codec_on_oracle_vectors(vector: dict[str, Any]) -> None:
    name = vector['type']
    codec = interfaces.codec(name)
    msg = interfaces.from_data(name, vector['fields'])
    assert codec.encode(msg).hex() == vector['cdr_hex'] == _reference(msg).hex()
    rclpy_bytes = bytes.fromhex(vector['cdr_hex_rclpy'])
    decoded = interfaces.deserialize(rclpy_bytes, name)
    theirs = STORE.deserialize_cdr(rclpy_bytes, name)
    assert _reference(decoded) == _reference(theirs)
    _same_structure(decoded, theirs)


# Types whose layouts cover strings, nested messages, sequences of messages and of strings and
# primitive arrays, for the malformed-input properties.
MALFORMED_TYPES = [
    'stf_msgs/msg/MotorState',
    'stf_msgs/msg/Inventory',
    'rcl_interfaces/msg/ParameterEvent',
    'sensor_msgs/msg/PointCloud2',
    'geometry_msgs/msg/PoseWithCovarianceStamped',
    'diagnostic_msgs/msg/DiagnosticArray',
]


@pytest.mark.parametrize('name', MALFORMED_TYPES)
def test_truncated_input_is_refused(name: str) -> None:
    decode = interfaces.decoder(name)

    @SETTINGS
    @given(message(name), st.data())
    def check(msg: Any, data: st.DataObject) -> None:
        encoded = _reference(msg)
        cut = data.draw(st.integers(0, len(encoded) - 1))
        with pytest.raises(interfaces.SerdeError):
            decode(encoded[:cut])

    check()


@pytest.mark.parametrize('name', MALFORMED_TYPES)
def test_garbage_is_refused_or_decoded_as_rosbags_does(name: str) -> None:
    decode = interfaces.decoder(name)

    @SETTINGS
    @given(message(name), st.data())
    def check(msg: Any, data: st.DataObject) -> None:
        encoded = bytearray(_reference(msg))
        for _ in range(data.draw(st.integers(1, 4))):
            encoded[data.draw(st.integers(4, len(encoded) - 1))] = data.draw(st.integers(0, 255))
        try:
            ours = decode(bytes(encoded))
        except interfaces.SerdeError:
            return
        # A count made smaller leaves bytes after the message, which are ignored (as Fast-CDR
        # does): rosbags must read the same message from the bytes that were read.
        again = _reference(ours)
        assert again == _reference(STORE.deserialize_cdr(bytes(encoded[: len(again)]), name))

    check()


# rclpy 9.1.2 (rmw_fastrtps_cpp, Kilted wheels) `serialize_message` of a SetParameters request
# setting `publish_rate` to 7.5: the buffer has the estimated size, 8 bytes longer than the
# message (left uninitialised: junk), and padding bytes are junk too.
RCLPY_SET_PARAMETERS = (
    '00010000010000000d0000007075626c6973685f72617465000300a7'
    '00000000000000000000000000001e400100000000c973a700000000'
    '0000000000000000000000000000000000c96fac6a7f0000'
)  # fmt: skip


def test_bytes_after_the_message_are_ignored_as_fast_cdr_does() -> None:
    data = bytes.fromhex(RCLPY_SET_PARAMETERS)
    request = interfaces.deserialize(data, 'rcl_interfaces/srv/SetParameters_Request')
    assert [(p.name, p.value.type, p.value.double_value) for p in request.parameters] == [
        ('publish_rate', 3, 7.5)
    ]
    assert len(interfaces.serialize(request)) == 68 + 4  # the message without them


def test_plain_lists_and_wrong_types_go_through_the_converter() -> None:
    Polygon = interfaces.get_message_class('geometry_msgs/msg/PolygonStamped')  # noqa: N806
    Point32 = interfaces.get_message_class('geometry_msgs/msg/Point32')  # noqa: N806
    Float64Array = interfaces.get_message_class('std_msgs/msg/Float64MultiArray')  # noqa: N806
    msg = Float64Array(data=[1, 2.5])
    as_array = Float64Array(data=np.array([1.0, 2.5]))
    assert interfaces.serialize(msg) == _reference(as_array)
    poly = Polygon()
    poly.polygon.points = [Point32(x=1.0)]
    assert interfaces.serialize(poly) == _reference(poly)
    # An int64 array in a float64 field is converted, not written as its raw bytes.
    wrong_dtype = Float64Array(data=np.array([1, 2], dtype=np.int64))
    assert interfaces.serialize(wrong_dtype) == _reference(Float64Array(data=np.array([1.0, 2.0])))
    with pytest.raises(interfaces.InterfaceError, match='data'):
        interfaces.serialize(Float64Array(data=[1.0, 'x']))
    with pytest.raises(interfaces.InterfaceError, match='x'):
        interfaces.serialize(Point32(x='1'))
