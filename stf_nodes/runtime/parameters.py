"""Node parameters: values, ROS 2 parameter files, and the standard parameter services.

Semantics follow rclpy: a parameter is declared with a default (its type is then fixed unless
the descriptor says `dynamic_typing`); overrides come from `--params-file` and `-p` (the last
one wins) and take precedence over the default; `set_parameters` validates type and
read-only, then asks the node's on-set callbacks. Every node serves
`<node>/list_parameters`, `get_parameters`, `set_parameters`, `set_parameters_atomically`,
`describe_parameters` and `get_parameter_types` with the `rcl_interfaces/srv` types, so
`ros2 param` works against our nodes.

Parameter files are ROS 2 YAML: `<node or /**>: ros__parameters: {...}`; nested mappings
become dotted names.

Every change (a declaration, a new value, a deletion) is announced on `/parameter_events`
(`rcl_interfaces/msg/ParameterEvent`, built by `parameter_event`) as ROS 2 nodes do, so
Foxglove, `ros2 param` watchers and other tools follow parameter changes. Deleting is setting
a parameter to NOT_SET (what `ros2 param delete` sends); as in rclcpp, only dynamically typed,
writable parameters can be deleted.
"""

from __future__ import annotations

import enum
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


def _node_keys(node_fqn: str) -> list[str]:
    """Keys of a parameter file that address this node, most general first."""
    name = node_fqn.rsplit('/', 1)[-1]
    return ['/**', f'/**/{name}', name, node_fqn.lstrip('/'), node_fqn]


def load_parameter_file(path: Path, node_fqn: str, *, wildcards: bool = True) -> dict[str, Any]:
    """The parameters a ROS 2 parameter file gives the node `node_fqn` (e.g. `/ns/hbw`);
    without `wildcards`, only the sections naming the node (`ros2 param load` without
    `--use-wildcard`)."""
    try:
        document = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ParameterError(f'cannot read parameter file {path}: {exc}') from exc
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ParameterError(f'{path}: expected a mapping of node names to ros__parameters')
    result: dict[str, Any] = {}
    for key in _node_keys(node_fqn):
        if not wildcards and key.startswith('/**'):
            continue
        section = document.get(key)
        if section is None:
            continue
        if not isinstance(section, dict) or 'ros__parameters' not in section:
            raise ParameterError(f'{path}: section {key!r} has no ros__parameters mapping')
        params = section['ros__parameters'] or {}
        if not isinstance(params, dict):
            raise ParameterError(f'{path}: {key}.ros__parameters must be a mapping')
        _flatten('', params, result)
    return result


def descriptor_msg(
    name: str,
    value: Any,
    *,
    description: str = '',
    read_only: bool = False,
    dynamic_typing: bool = False,
) -> Any:
    return get_message_class('rcl_interfaces/msg/ParameterDescriptor')(
        name=name,
        type=int(type_of(value)),
        description=description,
        read_only=read_only,
        dynamic_typing=dynamic_typing,
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
