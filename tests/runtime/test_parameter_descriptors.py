"""Parameter descriptors: the unit ends the description, a number's range becomes the
descriptor's range (what `ros2 param describe` and Foxglove show) and is enforced."""

from __future__ import annotations

import math

import pytest

from stf_nodes.runtime.parameters import ParameterError, descriptor_msg, out_of_range


def test_unit_and_floating_point_range() -> None:
    descriptor = descriptor_msg(
        'motor.voltage_v', 24.0, description='supply voltage', unit='V', low=0.0
    )
    assert descriptor.description == 'supply voltage [V]'
    [bounds] = descriptor.floating_point_range
    assert (bounds.from_value, bounds.to_value) == (0.0, math.inf)
    assert descriptor.additional_constraints == 'at least 0 V'
    assert out_of_range(descriptor, 12.0) == ''
    assert (
        out_of_range(descriptor, -1.0)
        == "-1.0 is out of range for 'motor.voltage_v' (at least 0 V)"
    )
    assert out_of_range(descriptor, math.nan) != ''  # NaN is in no range


def test_integer_range_and_no_range() -> None:
    descriptor = descriptor_msg('rows', 3, description='rack rows', low=1, high=26)
    [bounds] = descriptor.integer_range
    assert (bounds.from_value, bounds.to_value) == (1, 26)
    assert descriptor.additional_constraints == 'from 1 to 26'
    assert out_of_range(descriptor, 27) != '' and out_of_range(descriptor, 26) == ''
    plain = descriptor_msg('label', 'x', description='a label')
    assert not plain.integer_range and not plain.floating_point_range
    assert out_of_range(plain, 'anything') == ''


def test_a_range_on_a_string_is_a_programming_error() -> None:
    with pytest.raises(ParameterError, match='a range needs a number'):
        descriptor_msg('label', 'x', low=0)
