"""CDR decoding of every message type the project puts on the wire: valid messages
round-trip byte for byte; random, truncated and corrupted payloads decode or raise
`interfaces.SerdeError`, nothing else (an uncaught exception in a subscription's decoder is
a crash of the node's callback)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stf_nodes import interfaces
from tests.fuzz.common import CASES, FUZZ, message_data, project_types

pytestmark = pytest.mark.fuzz

TYPES = project_types()


def decode_or_refuse(decode: Any, payload: bytes) -> Any:
    """The decoded message, or None when the decoder refused the payload with SerdeError."""
    try:
        return decode(payload)
    except interfaces.SerdeError:
        return None


def test_every_service_and_own_message_is_covered() -> None:
    assert len(interfaces._service_names()) >= 19
    for name in interfaces.list_interfaces():
        if name.startswith('stf_msgs/msg/'):
            assert name in TYPES
    for service in interfaces._service_names():
        assert f'{service}_Request' in TYPES


@pytest.mark.parametrize('name', TYPES)
@FUZZ
@given(data=st.data())
def test_decode_random_truncated_and_corrupted(name: str, data: st.DataObject) -> None:
    decode = interfaces.decoder(name)
    message = interfaces.from_data(name, data.draw(message_data(name), label='message'))
    raw = interfaces.serialize(message)
    decoded = decode(raw)
    assert type(decoded) is type(message)
    assert interfaces.serialize(decoded) == raw  # bytes: NaN compares equal here

    cut = data.draw(st.integers(0, len(raw) - 1), label='cut')
    decode_or_refuse(decode, raw[:cut])

    flips = data.draw(
        st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(1, 255)), max_size=4),
        label='flips',
    )
    corrupted = bytearray(raw)
    for index, mask in flips:
        corrupted[index] ^= mask
    decode_or_refuse(decode, bytes(corrupted))

    header = data.draw(st.sampled_from([b'\x00\x01\x00\x00', b'\x00\x00\x00\x00']), label='hdr')
    decode_or_refuse(decode, header + data.draw(st.binary(max_size=200), label='body'))
    CASES['cdr: ' + name.split('/')[0]] += 1
