"""Interfaces against vectors produced by real ROS 2 (../shared/testdata/ros2_oracle.json)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stf_nodes import interfaces
from tests.conftest import SHARED_TESTDATA

ORACLE = json.loads((SHARED_TESTDATA / 'ros2_oracle.json').read_text())


def _padding_mask(name: str, data: bytes) -> list[bool]:
    """True for every byte our encoder leaves as alignment padding.

    The message is encoded a second time into a buffer pre-filled with 0xff: payload bytes are
    written either way, so the bytes that differ from the zero-filled encoding are padding.
    """
    message = interfaces.deserialize(data, name)
    store = interfaces._store()
    raw = memoryview(bytearray(b'\xff' * len(data)))
    store.get_msgdef(message.__msgtype__).serialize_cdr_le(raw[4:], 0, message, store)
    return [index >= 4 and raw[index] != data[index] for index in range(len(data))]


@pytest.mark.parametrize('vector', ORACLE['messages'], ids=lambda v: v['type'])
def test_message_hash_matches_ros2(vector: dict[str, Any]) -> None:
    assert interfaces.type_hash(vector['type']) == vector['rihs01']


@pytest.mark.parametrize('vector', ORACLE['messages'], ids=lambda v: v['type'])
def test_message_cdr_matches_ros2(vector: dict[str, Any]) -> None:
    message = interfaces.from_data(vector['type'], vector['fields'])
    encoded = interfaces.serialize(message)
    assert encoded.hex() == vector['cdr_hex']
    rclpy_bytes = bytes.fromhex(vector['cdr_hex_rclpy'])
    assert len(rclpy_bytes) == len(encoded)
    padding = _padding_mask(vector['type'], encoded)
    for index, (ours, theirs) in enumerate(zip(encoded, rclpy_bytes, strict=True)):
        if not padding[index]:
            assert ours == theirs, f'byte {index} differs outside padding'


@pytest.mark.parametrize('vector', ORACLE['messages'], ids=lambda v: v['type'])
def test_decoding_ros2_bytes_gives_listed_fields(vector: dict[str, Any]) -> None:
    decoded = interfaces.deserialize(bytes.fromhex(vector['cdr_hex_rclpy']), vector['type'])
    assert _approx(interfaces.to_data(decoded)) == _approx(vector['fields'])


@pytest.mark.parametrize('vector', ORACLE['services'], ids=lambda v: v['type'])
def test_service_hash_matches_ros2(vector: dict[str, Any]) -> None:
    assert interfaces.get_service(vector['type']).type_hash == vector['rihs01']


@pytest.mark.parametrize('vector', ORACLE['services'], ids=lambda v: v['type'])
def test_bundled_service_definition_has_ros2_fields(vector: dict[str, Any]) -> None:
    ours = interfaces.interface_definition(vector['type'])
    assert _fields_of(ours) == _fields_of(vector['definition'])


@pytest.mark.parametrize('name', sorted(ORACLE['rmw_zenoh_examples']))
def test_rmw_zenoh_documented_hashes(name: str) -> None:
    assert interfaces.type_hash(name) == ORACLE['rmw_zenoh_examples'][name]


def _fields_of(text: str) -> list[str]:
    return [
        ' '.join(line.split('#')[0].split())
        for line in text.splitlines()
        if line.split('#')[0].strip()
    ]


def _approx(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {k: _approx(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_approx(v) for v in value]
    return value
