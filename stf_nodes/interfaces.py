"""Typed ROS 2 interfaces: one type store, generated message classes, CDR and RIHS01.

The `.msg`/`.srv` files under `stf_msgs/` (and the standard service definitions under
`stf_nodes/std_interfaces/`) are the only definitions. They are parsed by `rosbags`, whose
type store also holds the standard ROS 2 (Kilted) messages and whose generated CDR code matches
rclpy byte for byte. On top of it this module adds what rosbags leaves out:

- Message classes with defaults, so `MotorState()` or `MotorState(current_a=1.2)` work as in
  rclpy. They are slotted dataclasses carrying `__msgtype__`; constants are class attributes.
  The classes replace rosbags' own in the type store, so deserialization yields them too.
  Primitive sequences are numpy arrays (as in rosbags); plain lists are accepted on serialize.
- Service types `pkg/srv/Name` with `Request`, `Response` and RIHS01 hashes computed as
  rosidl does (REP-2011): a type with `request_message`, `response_message` and
  `event_message` (`Name_Event`: `service_msgs/ServiceEventInfo info`, `Name_Request[<=1]`,
  `Name_Response[<=1]`).
- `.msg` `char` is `uint8` in ROS 2 (rosbags keeps a separate char type), which changes the
  hash of e.g. `service_msgs/msg/ServiceEventInfo`; the store is normalised accordingly.
- Conversion from plain data (YAML/JSON) with errors that name the field and expected type,
  and back to plain data for `--json` output.
- Which constants name the values of which integer field (`field_constants`), so output can
  say `state: 4  # STATE_ERROR`.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import struct
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.interfaces import Nodetype
from rosbags.serde import SerdeError
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from stf_nodes import cdr

__all__ = [
    'InterfaceError',
    'SerdeError',
    'ServiceType',
    'codec',
    'dds_type_name',
    'decoder',
    'deserialize',
    'field_constants',
    'from_data',
    'get_message_class',
    'get_service',
    'interface_definition',
    'list_interfaces',
    'message_definition_text',
    'nested_types',
    'serialize',
    'serializer',
    'to_data',
    'type_hash',
]

PROJECT_PACKAGE = 'stf_msgs'
#: The project's definitions: the `stf_msgs` folder installed beside `stf_nodes`, not whatever
#: `import stf_msgs` finds (in `.venv-dds` that name is the rosidl package built from these files).
PROJECT_INTERFACES_DIR = Path(__file__).resolve().parents[1] / PROJECT_PACKAGE
_STD_INTERFACES_DIR = Path(__file__).with_name('std_interfaces')

_NUMPY_DTYPES = {
    'bool': np.bool_,
    'byte': np.int8,  # as rosbags decodes it
    'char': np.uint8,
    'int8': np.int8,
    'uint8': np.uint8,
    'int16': np.int16,
    'uint16': np.uint16,
    'int32': np.int32,
    'uint32': np.uint32,
    'int64': np.int64,
    'uint64': np.uint64,
    'float32': np.float32,
    'float64': np.float64,
}
_INT_RANGES = {
    'int8': (-(2**7), 2**7 - 1),
    'uint8': (0, 2**8 - 1),
    'byte': (-(2**7), 2**8 - 1),  # an octet: rosbags decodes a scalar byte as int8
    'char': (0, 2**8 - 1),
    'int16': (-(2**15), 2**15 - 1),
    'uint16': (0, 2**16 - 1),
    'int32': (-(2**31), 2**31 - 1),
    'uint32': (0, 2**32 - 1),
    'int64': (-(2**63), 2**63 - 1),
    'uint64': (0, 2**64 - 1),
}


class InterfaceError(ValueError):
    """An unknown interface name, or data that does not fit an interface."""


@dataclasses.dataclass(frozen=True)
class ServiceType:
    """A service interface: its name, request and response classes."""

    name: str
    Request: type[Any]
    Response: type[Any]

    @property
    def type_hash(self) -> str:
        return type_hash(self.name)


# ---------------------------------------------------------------------------------------------
# The type store


def _interface_files() -> Iterator[tuple[str, str]]:
    """Yield (`pkg/kind/Name`, text) for every project and bundled standard interface file."""
    for kind in ('msg', 'srv'):
        for path in sorted(PROJECT_INTERFACES_DIR.joinpath(kind).glob(f'*.{kind}')):
            yield f'{PROJECT_PACKAGE}/{kind}/{path.stem}', path.read_text()
    for path in sorted(_STD_INTERFACES_DIR.glob('*/srv/*.srv')):
        yield f'{path.parents[1].name}/srv/{path.stem}', path.read_text()


def _split_srv(text: str) -> tuple[str, str]:
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if line.strip() == '---':
            return ''.join(lines[:index]), ''.join(lines[index + 1 :])
    raise InterfaceError('service definition has no --- separator')


def _parse_srv_part(text: str, name: str) -> tuple[list[Any], list[Any]]:
    """Parse one half of a .srv file as a message named `pkg/srv/Name_Request` (or _Response)."""
    pkg, _, short = name.split('/')
    parsed = get_types_from_msg(text, f'{pkg}/msg/{short}')
    consts, fields = parsed[f'{pkg}/msg/{short}']
    return consts, fields


def _service_typedefs(name: str, text: str) -> dict[str, tuple[list[Any], list[Any]]]:
    request_text, response_text = _split_srv(text)
    request, response, event = f'{name}_Request', f'{name}_Response', f'{name}_Event'
    return {
        request: _parse_srv_part(request_text, request),
        response: _parse_srv_part(response_text, response),
        event: (
            [],
            [
                ('info', (Nodetype.NAME, 'service_msgs/msg/ServiceEventInfo')),
                ('request', (Nodetype.SEQUENCE, ((Nodetype.NAME, request), 1))),
                ('response', (Nodetype.SEQUENCE, ((Nodetype.NAME, response), 1))),
            ],
        ),
        name: (
            [],
            [
                ('request_message', (Nodetype.NAME, request)),
                ('response_message', (Nodetype.NAME, response)),
                ('event_message', (Nodetype.NAME, event)),
            ],
        ),
    }


def _char_as_uint8(desc: Any) -> Any:
    kind, rest = desc
    if kind == Nodetype.BASE and rest[0] == 'char':
        return (kind, ('uint8', rest[1]))
    if kind in (Nodetype.ARRAY, Nodetype.SEQUENCE):
        return (kind, (_char_as_uint8(rest[0]), rest[1]))
    return desc


@cache
def _store() -> Any:
    store = get_typestore(Stores.ROS2_KILTED)
    typedefs: dict[str, tuple[list[Any], list[Any]]] = {}
    for name, text in _interface_files():
        if name in _service_names():
            typedefs.update(_service_typedefs(name, text))
        else:
            typedefs.update(get_types_from_msg(text, name))
    store.register(typedefs)
    for name, (consts, fields) in list(store.fielddefs.items()):
        store.fielddefs[name] = (consts, [(f, _char_as_uint8(d)) for f, d in fields])
    return store


@cache
def _service_names() -> frozenset[str]:
    """The services of the interface files (`pkg/srv/Name`), not their internal parts."""
    return frozenset(name for name, _ in _interface_files() if '/srv/' in name)


# ---------------------------------------------------------------------------------------------
# Names


def _normalize_name(name: str, kind: str = 'msg') -> str:
    """Accept `pkg/msg/Name`, `pkg/Name` and `pkg.msg.Name`; return `pkg/<kind>/Name`."""
    parts = name.strip().replace('.', '/').split('/')
    if len(parts) == 2:
        parts = [parts[0], kind, parts[1]]
    if len(parts) != 3 or not all(parts):
        raise InterfaceError(f'malformed interface name {name!r}: expected pkg/{kind}/Name')
    return '/'.join(parts)


def _unknown(name: str, candidates: list[str]) -> InterfaceError:
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    if not close:
        short = name.rsplit('/', 1)[-1].lower()
        close = [c for c in candidates if c.rsplit('/', 1)[-1].lower() == short][:3]
    hint = f'; did you mean {", ".join(close)}?' if close else ''
    return InterfaceError(f'unknown interface {name!r}{hint}')


def list_interfaces() -> list[str]:
    """All message and service names known to the store (not the service-internal parts)."""
    store = _store()
    names = []
    for name in store.fielddefs:
        if '/srv/' in name:
            if name in _service_names():
                names.append(name)
        elif not name.endswith(('_Request', '_Response', '_Event')):
            names.append(name)
    return sorted(names)


def dds_type_name(name: str) -> str:
    """`pkg/msg/Name` → `pkg::msg::dds_::Name_` as DDS and rmw_zenoh spell it."""
    pkg, kind, short = _normalize_name(name).split('/')
    return f'{pkg}::{kind}::dds_::{short}_'


@cache
def type_hash(name: str) -> str:
    """The RIHS01 hash of a message or service type."""
    full = _resolve(name)
    return str(_store().hash_rihs01(full))


def _resolve(name: str) -> str:
    store = _store()
    full = _normalize_name(name)
    if full in store.fielddefs:
        return full
    as_srv = _normalize_name(name, 'srv')
    if as_srv in store.fielddefs:
        return as_srv
    raise _unknown(full, list_interfaces())


# ---------------------------------------------------------------------------------------------
# Classes


def _default_factory(desc: Any) -> Any:
    kind, rest = desc
    if kind == Nodetype.BASE:
        base = rest[0]
        value: Any = (
            ''
            if base == 'string'
            else False
            if base == 'bool'
            else (0.0 if base.startswith('float') else 0)
        )
        return lambda: value
    if kind == Nodetype.NAME:
        return lambda: get_message_class(rest)()
    sub, length = rest
    if sub[0] == Nodetype.BASE and sub[1][0] != 'string':
        dtype = _NUMPY_DTYPES[sub[1][0]]
        size = length if kind == Nodetype.ARRAY else 0
        return lambda: np.zeros(size, dtype=dtype)
    if kind == Nodetype.ARRAY:
        element = _default_factory(sub)
        return lambda: [element() for _ in range(length)]
    return list


def _message_eq(self: Any, other: object) -> Any:  # bool, or NotImplemented
    if type(other) is not type(self):
        return NotImplemented
    return bool(to_data(self) == to_data(other))


@cache
def get_message_class(name: str) -> type[Any]:
    """The generated class of a message type (`pkg/msg/Name` or `pkg/Name`)."""
    store = _store()
    full = _normalize_name(name)
    if full not in store.fielddefs:
        full = _resolve(name)
    consts, fields = store.fielddefs[full]
    namespace: dict[str, Any] = {
        '__msgtype__': full,
        '__eq__': _message_eq,
        '__hash__': None,
    }
    for const_name, _, value in consts:
        namespace[const_name] = value
    cls = dataclasses.make_dataclass(
        full.rsplit('/', 1)[-1],
        [
            (field, Any, dataclasses.field(default_factory=_default_factory(desc)))
            for field, desc in fields
        ],
        namespace=namespace,
        slots=True,
        eq=False,
    )
    cls.__module__ = f'{full.split("/")[0]}.{full.split("/")[1]}'
    store.types[full] = cls
    # Nested classes must be ours before rosbags builds (and caches) the codec of this type.
    for _, desc in fields:
        kind, rest = desc
        nested = rest if kind == Nodetype.NAME else rest[0][1] if kind != Nodetype.BASE else None
        if isinstance(nested, str):
            get_message_class(nested)
    return cls


@cache
def get_service(name: str) -> ServiceType:
    """The service type `pkg/srv/Name` with its Request and Response classes."""
    full = _normalize_name(name, 'srv')
    if full not in _service_names():
        raise _unknown(full, [n for n in list_interfaces() if '/srv/' in n])
    return ServiceType(
        name=full,
        Request=get_message_class(f'{full}_Request'),
        Response=get_message_class(f'{full}_Response'),
    )


# ---------------------------------------------------------------------------------------------
# CDR


@cache
def codec(name: str) -> cdr.Codec:
    """The generated codec of a message type (see `stf_nodes.cdr`), built once per type."""
    full = _resolve(name)
    return cdr.build_codecs(_store().fielddefs, get_message_class, [full])[full]


# What the generated encoder raises on values it does not take as they are.
_NOT_AS_IS = (
    AttributeError,
    TypeError,
    ValueError,
    OverflowError,
    IndexError,
    BufferError,
    struct.error,
)


def serialize(message: Any) -> bytes:
    """CDR (little endian, with the 4-byte encapsulation header) of a generated message."""
    return serializer(message.__msgtype__)(message)


@cache
def serializer(name: str) -> Callable[[Any], bytes]:
    """`serialize` for messages of one type (publishers keep it: no lookup per message)."""
    full = _resolve(name)
    encode = codec(full).encode

    def serialize_one(message: Any) -> bytes:
        try:
            return encode(message)
        except _NOT_AS_IS:
            # Plain lists in primitive-sequence fields, or wrong types: normalise through the
            # validating converter, which names the offending field, then encode.
            return encode(from_data(full, to_data(message)))

    return serialize_one


@cache
def decoder(name: str) -> Callable[[bytes | memoryview], Any]:
    """A function decoding CDR bytes (with encapsulation header) of one type.

    Entities keep it, so the hot path does no name lookups. It raises SerdeError on
    malformed input.

    Bytes after the message are ignored, as Fast-CDR's decoder ignores them: rmw_fastrtps hands
    rclpy's serialized messages out in a buffer of the *estimated* size, which counts alignment
    for empty 8-byte sequences that the encoder does not write (a `SetParameters` request with
    one parameter carries 8 such bytes).
    """
    full = _resolve(name)
    decode_le = codec(full).decode
    store = _store()

    def decode(data: bytes | memoryview) -> Any:
        if len(data) < 4 or data[0] != 0 or data[1] not in (0, 1):
            raise SerdeError(f'{full}: invalid or unsupported CDR encapsulation header')
        if data[1] == 0:  # big endian: rare, take rosbags' general path
            return store.deserialize_cdr(data, full)
        if type(data) is not bytes:
            data = bytes(data)
        try:
            message, _ = decode_le(data, 4)
        except (struct.error, UnicodeDecodeError, ValueError, IndexError, TypeError) as exc:
            raise SerdeError(f'could not deserialize {full}: {exc}') from exc
        return message

    return decode


def deserialize(data: bytes | memoryview, name: str) -> Any:
    """Decode CDR bytes (with encapsulation header) into a message; raises SerdeError."""
    return decoder(name)(data)


# ---------------------------------------------------------------------------------------------
# Plain data (YAML / JSON)


def to_data(message: Any) -> Any:
    """A message as plain Python data (dicts, lists, numbers, strings), field order kept."""
    if hasattr(message, '__msgtype__'):
        return {f.name: to_data(getattr(message, f.name)) for f in dataclasses.fields(message)}
    if isinstance(message, np.ndarray):
        return message.tolist()
    if isinstance(message, list):
        return [to_data(item) for item in message]
    if isinstance(message, np.generic):
        return message.item()
    return message


def _convert(desc: Any, value: Any, path: str) -> Any:
    kind, rest = desc
    if kind == Nodetype.NAME:
        return from_data(rest, value, path=path)
    if kind == Nodetype.BASE:
        value = _convert_base(rest[0], rest[1], value, path)
        # rosbags packs `byte` as int8: 255 is sent as the octet -1 is
        return value - 256 if rest[0] == 'byte' and value > 127 else value
    sub, length = rest
    if isinstance(value, (str, bytes)) and not (
        sub[0] == Nodetype.BASE
        and sub[1][0] in ('uint8', 'byte', 'char')
        and isinstance(value, bytes)
    ):
        raise InterfaceError(f'{path}: expected a list, got {type(value).__name__}')
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, bytes):
        value = list(value)
    if not isinstance(value, (list, tuple)):
        raise InterfaceError(f'{path}: expected a list, got {type(value).__name__}')
    if kind == Nodetype.ARRAY and len(value) != length:
        raise InterfaceError(f'{path}: expected exactly {length} elements, got {len(value)}')
    if kind == Nodetype.SEQUENCE and length and len(value) > length:
        raise InterfaceError(f'{path}: expected at most {length} elements, got {len(value)}')
    items = [_convert(sub, item, f'{path}[{i}]') for i, item in enumerate(value)]
    if sub[0] == Nodetype.BASE and sub[1][0] != 'string':
        return np.array(items, dtype=_NUMPY_DTYPES[sub[1][0]])
    return items


def _convert_base(base: str, bound: int, value: Any, path: str) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if base == 'string':
        if not isinstance(value, str):
            raise InterfaceError(f'{path}: expected string, got {type(value).__name__}')
        if bound and len(value) > bound:
            raise InterfaceError(f'{path}: string longer than its bound {bound}')
        return value
    if base == 'bool':
        if not isinstance(value, bool):
            raise InterfaceError(f'{path}: expected bool, got {type(value).__name__}')
        return value
    if base.startswith('float'):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InterfaceError(f'{path}: expected {base}, got {type(value).__name__}')
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InterfaceError(f'{path}: expected {base}, got {type(value).__name__}')
    low, high = _INT_RANGES[base]
    if not low <= value <= high:
        raise InterfaceError(f'{path}: {value} out of range for {base} [{low}, {high}]')
    return value


def from_data(name: str, data: Any, *, path: str = '') -> Any:
    """Build a message from plain data; missing fields keep their defaults.

    Raises InterfaceError naming the field path and the expected type on any mismatch.
    """
    cls = get_message_class(name)
    full = _resolve(name)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InterfaceError(
            f'{path or full}: expected a mapping of fields, got {type(data).__name__}'
        )
    _, fields = _store().fielddefs[full]
    descs = dict(fields)
    unknown = [key for key in data if key not in descs]
    if unknown:
        raise InterfaceError(
            f'{path or full}: unknown field {unknown[0]!r}; fields are {", ".join(descs)}'
        )
    values = {
        key: _convert(descs[key], value, f'{path}.{key}' if path else key)
        for key, value in data.items()
    }
    return cls(**values)


# ---------------------------------------------------------------------------------------------
# Definitions text


_CONSTANT_LINE = re.compile(r'^\s*(\w+)\s+([A-Z][A-Z0-9_]*)\s*=')


def _constant_groups(full: str, consts: list[Any]) -> list[list[Any]]:
    """The constants of a type in runs as its file declares them (a blank line or a field
    ends a run); one run when the source text is not at hand."""
    text = next((t for n, t in _interface_files() if n == full), None)
    if text is None:
        return [list(consts)] if consts else []
    by_name = {const[0]: const for const in consts}
    groups: list[list[Any]] = [[]]
    for line in text.splitlines():
        match = _CONSTANT_LINE.match(line)
        if match and match.group(2) in by_name:
            groups[-1].append(by_name[match.group(2)])
        elif line.split('#', 1)[0].strip() or not line.strip():
            groups.append([])  # a field or a blank line ends the run; a comment does not
    return [group for group in groups if group]


@cache
def field_constants(name: str) -> dict[str, dict[int, str]]:
    """For each integer field of a message, the names of the constants it takes by value.

    ROS messages declare enumerations as constants without saying which field they belong
    to. A run of constants whose names all start with `FIELD_` belongs to that field
    (`STATE_*` to `state`); the remaining runs go, in order, to the remaining integer fields
    of their type, but only when their numbers match (`PROCESS..RETRIEVE` to `kind`, then
    `PENDING..CANCELLED` to `status`); anything ambiguous gets no names.
    """
    full = _resolve(name)
    consts, fields = _store().fielddefs[full]
    integer_fields = [
        (field, desc[1][0])
        for field, desc in fields
        if desc[0] == Nodetype.BASE and desc[1][0] in _INT_RANGES
    ]
    result: dict[str, dict[int, str]] = {}
    unclaimed = []
    for group in _constant_groups(full, consts):
        owner = next(
            (
                field
                for field, base in integer_fields
                if all(c[0].startswith(f'{field.upper()}_') and c[1] == base for c in group)
            ),
            None,
        )
        if owner is None:
            unclaimed.append(group)
        else:
            result[owner] = {}
            for const_name, _, value in group:
                result[owner].setdefault(value, const_name)
    for base in {c[1] for group in unclaimed for c in group}:
        groups = [g for g in unclaimed if {c[1] for c in g} == {base}]
        free = [f for f, b in integer_fields if b == base and f not in result]
        if groups and len(groups) == len(free):
            for field, group in zip(free, groups, strict=True):
                result[field] = {}
                for const_name, _, value in group:
                    result[field].setdefault(value, const_name)
    return result


@cache
def nested_types(name: str) -> dict[str, str]:
    """Field → message type, for the fields of a message that hold messages (or arrays of
    them)."""
    _, fields = _store().fielddefs[_resolve(name)]
    nested = {}
    for field, (kind, rest) in fields:
        if kind == Nodetype.NAME:
            nested[field] = rest
        elif kind in (Nodetype.ARRAY, Nodetype.SEQUENCE) and rest[0][0] == Nodetype.NAME:
            nested[field] = rest[0][1]
    return nested


def interface_definition(name: str) -> str:
    """The definition text of a message or service as its file holds it."""
    for file_name, text in _interface_files():
        if file_name == _normalize_name(name) or file_name == _normalize_name(name, 'srv'):
            return text
    full = _resolve(name)
    return str(_store().generate_msgdef(full, ros_version=2)[0]).split('=' * 80)[0]


def message_definition_text(name: str) -> str:
    """The concatenated definition (`ros2msg` schema text) used by rosbag2 MCAP and Foxglove."""
    full = _resolve(name)
    return str(_store().generate_msgdef(full, ros_version=2)[0])
