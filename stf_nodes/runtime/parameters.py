"""Node parameters: values, ROS 2 parameter files, and the standard parameter services.

Semantics follow rclpy: a parameter is declared with a default (its type is then fixed unless
the descriptor says `dynamic_typing`); overrides come from `--params-file` and `-p` (the last
one wins) and take precedence over the default; `set_parameters` validates type and
read-only, then asks the node's on-set callbacks. Every node serves
`<node>/list_parameters`, `get_parameters`, `set_parameters`, `set_parameters_atomically`,
`describe_parameters` and `get_parameter_types` with the `rcl_interfaces/srv` types, so
`ros2 param` works against our nodes.

Parameter files are ROS 2 YAML read by rcl's rules (`load_parameter_file`): sections
`<node name>: ros__parameters: {...}` where the name is fully qualified (`/factory_1/hbw`; a
bare `hbw` means `/hbw`), may use the wildcards `/*` (one namespace token) and `/**` (any
number), and may be nested under namespace mappings; every matching section applies, later
ones overriding earlier ones; nested mappings inside `ros__parameters` become dotted names.

Every change (a declaration, a new value, a deletion) is announced on `/parameter_events`
(`rcl_interfaces/msg/ParameterEvent`, built by `parameter_event`) as ROS 2 nodes do, so
Foxglove, `ros2 param` watchers and other tools follow parameter changes. Deleting is setting
a parameter to NOT_SET (what `ros2 param delete` sends); as in rclcpp, only dynamically typed,
writable parameters can be deleted.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from stf_nodes.interfaces import get_message_class


class ParameterType(enum.IntEnum):
    """rcl_interfaces/msg/ParameterType values."""

    NOT_SET = 0
    BOOL = 1
    INTEGER = 2
    DOUBLE = 3
    STRING = 4
    BYTE_ARRAY = 5
    BOOL_ARRAY = 6
    INTEGER_ARRAY = 7
    DOUBLE_ARRAY = 8
    STRING_ARRAY = 9


class ParameterError(ValueError):
    """A parameter that cannot be declared, set or loaded."""


_ARRAY_FIELDS = {
    ParameterType.BYTE_ARRAY: ('byte_array_value', np.uint8),
    ParameterType.BOOL_ARRAY: ('bool_array_value', np.bool_),
    ParameterType.INTEGER_ARRAY: ('integer_array_value', np.int64),
    ParameterType.DOUBLE_ARRAY: ('double_array_value', np.float64),
}
_SCALAR_FIELDS = {
    ParameterType.BOOL: 'bool_value',
    ParameterType.INTEGER: 'integer_value',
    ParameterType.DOUBLE: 'double_value',
    ParameterType.STRING: 'string_value',
}


def type_of(value: Any) -> ParameterType:
    """The parameter type of a Python value; raises ParameterError for unsupported values."""
    if value is None:
        return ParameterType.NOT_SET
    if isinstance(value, bool):
        return ParameterType.BOOL
    if isinstance(value, int):
        return ParameterType.INTEGER
    if isinstance(value, float):
        return ParameterType.DOUBLE
    if isinstance(value, str):
        return ParameterType.STRING
    if isinstance(value, (bytes, bytearray)):
        return ParameterType.BYTE_ARRAY
    if isinstance(value, (list, tuple)) and value:
        kinds = {type_of(v) for v in value}
        if kinds == {ParameterType.BOOL}:
            return ParameterType.BOOL_ARRAY
        if kinds == {ParameterType.INTEGER}:
            return ParameterType.INTEGER_ARRAY
        if kinds <= {ParameterType.INTEGER, ParameterType.DOUBLE}:
            return ParameterType.DOUBLE_ARRAY
        if kinds == {ParameterType.STRING}:
            return ParameterType.STRING_ARRAY
    raise ParameterError(
        f'unsupported parameter value {value!r}: use a bool, int, float, string, bytes or a '
        'non-empty list of one of them'
    )


@dataclass(frozen=True)
class Parameter:
    """A named parameter value (rclpy's `Parameter`, minus the `Type` inner enum)."""

    name: str
    value: Any = None

    @property
    def type_(self) -> ParameterType:
        return type_of(self.value)

    def to_value_msg(self) -> Any:
        return value_to_msg(self.value)

    def to_parameter_msg(self) -> Any:
        return get_message_class('rcl_interfaces/msg/Parameter')(
            name=self.name, value=self.to_value_msg()
        )


def value_to_msg(value: Any) -> Any:
    kind = type_of(value)
    msg = get_message_class('rcl_interfaces/msg/ParameterValue')(type=int(kind))
    if kind in _SCALAR_FIELDS:
        setattr(msg, _SCALAR_FIELDS[kind], value)
    elif kind in _ARRAY_FIELDS:
        field, dtype = _ARRAY_FIELDS[kind]
        setattr(msg, field, np.array(list(value), dtype=dtype))
    elif kind == ParameterType.STRING_ARRAY:
        msg.string_array_value = list(value)
    return msg


def value_from_msg(msg: Any) -> Any:
    try:
        kind = ParameterType(msg.type)
    except ValueError as exc:
        raise ParameterError(f'unknown parameter type {msg.type}') from exc
    if kind in _SCALAR_FIELDS:
        return getattr(msg, _SCALAR_FIELDS[kind])
    if kind == ParameterType.BYTE_ARRAY:
        return bytes(np.asarray(msg.byte_array_value, dtype=np.uint8))
    if kind in _ARRAY_FIELDS:
        return [v.item() for v in getattr(msg, _ARRAY_FIELDS[kind][0])]
    if kind == ParameterType.STRING_ARRAY:
        return list(msg.string_array_value)
    return None


def _flatten(prefix: str, values: dict[str, Any], out: dict[str, Any]) -> None:
    for key, value in values.items():
        name = f'{prefix}.{key}' if prefix else str(key)
        if isinstance(value, dict):
            _flatten(name, value, out)
        else:
            out[name] = value


def _parameter_sections(document: dict[Any, Any], path: Path) -> list[tuple[str, dict[str, Any]]]:
    """The ``ros__parameters`` mappings of a file with the node name each addresses, in file
    order. As in rcl's YAML parser, mappings above ``ros__parameters`` are namespaces
    (``ns: {hbw: {ros__parameters: ...}}`` is ``/ns/hbw``) and a name without a leading slash
    is absolute (``hbw`` is ``/hbw``)."""
    sections: list[tuple[str, dict[str, Any]]] = []

    def walk(prefix: str, mapping: dict[Any, Any]) -> None:
        for key, value in mapping.items():
            if key == 'ros__parameters':
                if not prefix:
                    raise ParameterError(f'{path}: ros__parameters must sit under a node name')
                if not isinstance(value, dict | None):
                    raise ParameterError(f'{path}: {prefix}.ros__parameters must be a mapping')
                sections.append((prefix, value or {}))
            elif isinstance(value, dict):
                walk(f'{prefix.rstrip("/")}/{str(key).strip("/")}', value)
            else:
                name = f'{prefix}/{key}'.lstrip('/')
                raise ParameterError(
                    f'{path}: {name!r} is neither a namespace nor a node (a node section is '
                    '`NAME: {ros__parameters: {...}}`)'
                )

    walk('', document)
    return sections


_WILDCARDS = {'/**': r'(/\w+)*', '/*': r'(/\w+)'}


def node_name_matches(pattern: str, node_fqn: str) -> bool:
    """Whether a parameter file's node name addresses the node ``node_fqn``, by rclcpp's rule:
    ``/*`` stands for one name token and ``/**`` for any number of them (also none), so
    ``/**`` is every node, ``/**/hbw`` every node called ``hbw`` in any namespace and ``/hbw``
    only the node ``hbw`` in the root namespace."""
    parts = re.split(r'(/\*\*|/\*)', pattern)
    regex = ''.join(_WILDCARDS.get(part, re.escape(part)) for part in parts)
    return re.fullmatch(regex, node_fqn) is not None


def load_parameter_file(path: Path, node_fqn: str, *, wildcards: bool = True) -> dict[str, Any]:
    """The parameters a ROS 2 parameter file gives the node ``node_fqn`` (e.g. ``/ns/hbw``):
    every section whose node name matches it (:func:`node_name_matches`), later sections
    overriding earlier ones, as ``ros2 launch`` applies them. Without ``wildcards``, only
    sections naming the node exactly (``ros2 param load`` without ``--use-wildcard``)."""
    try:
        document = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ParameterError(f'cannot read parameter file {path}: {exc}') from exc
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ParameterError(f'{path}: expected a mapping of node names to ros__parameters')
    result: dict[str, Any] = {}
    for name, params in _parameter_sections(document, Path(path)):
        if '*' in name and not wildcards:
            continue
        if node_name_matches(name, node_fqn):
            _flatten('', params, result)
    return result


def descriptor_msg(
    name: str,
    value: Any,
    *,
    description: str = '',
    unit: str = '',
    low: float | None = None,
    high: float | None = None,
    read_only: bool = False,
    dynamic_typing: bool = False,
) -> Any:
    """A ``rcl_interfaces/msg/ParameterDescriptor``. ROS 2 has no unit field: the unit ends
    the description (``supply voltage [V]``), as tools show the description. ``low``/``high``
    become the integer or floating-point range of a number (open ends are the type's limits)
    and ``additional_constraints`` in words."""
    kind = type_of(value)
    fields: dict[str, Any] = {}
    if low is not None or high is not None:
        if kind == ParameterType.INTEGER:
            whole = (
                -(2**63) if low is None else int(low),
                2**63 - 1 if high is None else int(high),
            )
            fields['integer_range'] = [_message('IntegerRange')(*whole, 0)]
        elif kind == ParameterType.DOUBLE:
            real = (
                -math.inf if low is None else float(low),
                math.inf if high is None else float(high),
            )
            fields['floating_point_range'] = [_message('FloatingPointRange')(*real, 0.0)]
        else:
            raise ParameterError(f'parameter {name!r}: a range needs a number, not {kind.name}')
        fields['additional_constraints'] = _range_text(low, high, unit)
    return _message('ParameterDescriptor')(
        name=name,
        type=int(kind),
        description=f'{description} [{unit}]' if unit else description,
        read_only=read_only,
        dynamic_typing=dynamic_typing,
        **fields,
    )


def _message(name: str) -> Any:
    return get_message_class(f'rcl_interfaces/msg/{name}')


def _range_text(low: float | None, high: float | None, unit: str) -> str:
    unit = f' {unit}' if unit else ''
    if low is not None and high is not None:
        return f'from {low:g} to {high:g}{unit}'
    return f'at least {low:g}{unit}' if low is not None else f'at most {high:g}{unit}'


def out_of_range(descriptor: Any, value: Any) -> str:
    """Why ``value`` is outside the descriptor's range, or '' when it is inside (or has none)."""
    ranges = list(descriptor.integer_range) + list(descriptor.floating_point_range)
    if not ranges or isinstance(value, bool) or not isinstance(value, int | float):
        return ''
    bounds = ranges[0]
    if bounds.from_value <= value <= bounds.to_value:
        return ''
    return (
        f'{value!r} is out of range for {descriptor.name!r} ({descriptor.additional_constraints})'
    )


def parameter_event(
    node_fqn: str,
    stamp: Any,
    *,
    new: Iterable[Parameter] = (),
    changed: Iterable[Parameter] = (),
    deleted: Iterable[str] = (),
) -> Any:
    """The `rcl_interfaces/msg/ParameterEvent` a node publishes after a change."""
    return get_message_class('rcl_interfaces/msg/ParameterEvent')(
        stamp=stamp,
        node=node_fqn,
        new_parameters=[p.to_parameter_msg() for p in new],
        changed_parameters=[p.to_parameter_msg() for p in changed],
        deleted_parameters=[Parameter(name).to_parameter_msg() for name in deleted],
    )


def names_matching(names: Iterable[str], prefixes: list[str], depth: int) -> list[str]:
    """`list_parameters` filtering: by prefix (dotted) and by depth (0 = any)."""
    selected = []
    for name in names:
        if prefixes and not any(name == p or name.startswith(p + '.') for p in prefixes):
            continue
        if depth:
            base = max((p for p in prefixes if name.startswith(p + '.')), key=len, default='')
            relative = name[len(base) + 1 :] if base else name
            if relative.count('.') >= depth:
                continue
        selected.append(name)
    return sorted(selected)
