"""Every service's request fields with hostile values (NaN, infinities, huge and hostile
strings, negative and huge numbers), through the checks the handlers apply before acting:
`validation.request_problem` (every service of the stations and the scheduler), the
scheduler's field parsers, and the station models behind StartTask / InjectFault /
ClearFault. A request is either refused with a short sentence or acted on, and the model
stays sound afterwards (it steps on, every number it reports is finite)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from rosbags.typesys.base import Nodetype

from stf_nodes import interfaces
from stf_nodes.messages import workpiece_from_msg
from stf_nodes.scheduler import validation as sv
from stf_nodes.scheduler.records import Rejected
from stf_nodes.sim import Conveyor, Hbw, Refused, Vgr
from stf_nodes.validation import MAX_TEXT, request_problem
from stf_nodes.workpieces import FLAVORS
from tests.fuzz.common import CASES, FUZZ, hostile_float, hostile_int, hostile_text

pytestmark = pytest.mark.fuzz

SERVICES = sorted(s for s in interfaces._service_names() if s.startswith('stf_msgs/'))


def _hostile_value(desc: Any) -> st.SearchStrategy[Any]:
    kind, rest = desc
    if kind == Nodetype.NAME:
        return hostile_request(rest)
    if kind == Nodetype.BASE:
        base = rest[0]
        if base == 'string':
            return hostile_text
        if base == 'bool':
            return st.booleans()
        if base.startswith('float'):
            return hostile_float
        low, high = interfaces._INT_RANGES[base]
        return hostile_int.filter(lambda v: low <= v <= high) | st.sampled_from([low, high])
    return st.lists(_hostile_value(rest[0]), max_size=3)


def hostile_request(name: str) -> st.SearchStrategy[Any]:
    """A message of type ``name`` (built as the decoder would: no from_data checks) whose
    fields hold hostile values."""
    _, fields = interfaces._store().fielddefs[name]
    cls = interfaces.get_message_class(name)
    return st.builds(
        lambda values: cls(**values),
        st.fixed_dictionaries({f: st.deferred(lambda d=d: _hostile_value(d)) for f, d in fields}),
    )


def _bad_fields(value: Any) -> bool:
    """Independent oracle: does the message hold a non-finite number or an over-long string?"""
    if hasattr(value, '__msgtype__'):
        return any(_bad_fields(getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, str):
        return len(value) > MAX_TEXT
    if isinstance(value, (list, np.ndarray)):
        return any(_bad_fields(item) for item in value)
    return False


@pytest.mark.parametrize('service', SERVICES)
@FUZZ
@given(data=st.data())
def test_request_problem_refuses_exactly_the_hostile_fields(service: str, data: Any) -> None:
    request = data.draw(hostile_request(f'{service}_Request'))
    problem = request_problem(request)
    assert (problem is not None) == _bad_fields(request), problem
    if problem:
        assert len(problem) < 200
    CASES['requests: request_problem'] += 1


@FUZZ
@given(
    value=hostile_text | hostile_int | hostile_float | st.none() | st.booleans(),
    parser=st.sampled_from(
        [
            'slot',
            'flavor',
            'priority',
            'command_id',
            'workpiece_id',
            'status',
            'limit',
            'clean_text',
        ]
    ),
)
def test_scheduler_field_parsers(value: Any, parser: str) -> None:
    slots = ['A1', 'A2', 'B1']
    try:
        result = {
            'slot': lambda: sv.parse_slot(value, slots, required=False),
            'flavor': lambda: sv.parse_flavor(value, required=True),
            'priority': lambda: sv.parse_priority(value),
            'command_id': lambda: sv.parse_command_id(value),
            'workpiece_id': lambda: sv.parse_workpiece_id(value),
            'status': lambda: sv.parse_status(value),
            'limit': lambda: sv.parse_limit(value),
            'clean_text': lambda: sv.clean_text(value, 64),
        }[parser]()
    except Rejected as exc:
        assert len(exc.reason) < 300
    else:
        if parser == 'slot':
            assert result in ['', *slots]
        elif parser == 'flavor':
            assert result in FLAVORS
        elif parser == 'workpiece_id':
            assert result == '' or (result.isascii() and result.isprintable() and len(result) <= 32)
        elif parser == 'clean_text':
            assert len(result) <= 64 and '\x00' not in result
            result.encode('utf-8')
    CASES['requests: scheduler parsers'] += 1


MODELS = {'hbw': Hbw, 'vgr': Vgr, 'conveyor': Conveyor}


def _sound(model: Any) -> None:
    """The model steps on and reports only finite numbers."""
    for _ in range(20):
        model.step(0.05)
    for motor in model.snapshot().motors:
        for field in dataclasses.fields(motor):
            value = getattr(motor, field.name)
            if isinstance(value, float):
                assert math.isfinite(value), (motor, field.name)


@FUZZ
@given(station=st.sampled_from(sorted(MODELS)), data=st.data())
def test_station_models_behind_the_screen(station: str, data: Any) -> None:
    """What a station node does with a request that passed `request_problem`."""
    model = MODELS[station]()
    components = [m.motor_id for m in model.snapshot().motors] + [
        s.sensor_id for s in model.snapshot().sensors
    ]
    for _ in range(3):
        service = data.draw(st.sampled_from(['StationTask', 'InjectFault', 'ClearFault']))
        request = data.draw(hostile_request(f'stf_msgs/srv/{service}_Request'))
        if service != 'StationTask' and data.draw(st.booleans()):
            request.component_id = data.draw(st.sampled_from(components))
        if request_problem(request):
            continue
        try:
            if service == 'StationTask':
                model.start_task(
                    request.task,
                    target=request.target,
                    workpiece=workpiece_from_msg(request.workpiece),
                    value=request.value,
                    key=request.key,
                )
            elif service == 'InjectFault':
                model.inject_fault(
                    request.component_id,
                    request.fault.upper(),
                    request.magnitude,
                    request.duration_s,
                )
            else:
                model.clear_fault(request.component_id)
        except (Refused, ValueError) as exc:
            assert len(str(exc)) < 400
        _sound(model)
        CASES['requests: station models'] += 1
