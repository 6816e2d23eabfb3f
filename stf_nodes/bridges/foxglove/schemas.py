"""Conversions between ROS graph data and the Foxglove WebSocket protocol (pure: no transport).

- ROS channels carry CDR as published; their schema is the `ros2msg` concatenated definition
  (the same text rosbag2 MCAP stores), so Foxglove decodes them as it decodes a bag.
- Services are advertised with `ros2msg` request and response schemas (`pkg/srv/T_Request`,
  `pkg/srv/T_Response`) and CDR encoding (the SDK refuses requests in another encoding); a
  request is checked against its type before it is forwarded, so a malformed one gets a clear
  failure instead of a confused server.
- Clients may publish CDR or JSON (converted to CDR after the same check).
- Parameters are named `<node>.<parameter>` (e.g. `/hbw.publish_rate`), as ROS 2's
  foxglove_bridge names them; doubles carry the `float64` type hint so `10.0` stays a double.
- `/rosout` records (`rcl_interfaces/msg/Log`) become `foxglove.Log` with the same levels.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import foxglove
from foxglove.messages import Log, LogLevel, Timestamp

from stf_nodes import interfaces
from stf_nodes.runtime import names
from stf_nodes.runtime.names import Token

#: Encodings a client may publish in (service requests are CDR, as their schemas declare).
CLIENT_ENCODINGS = ('cdr', 'json')

#: rcl_interfaces/msg/Log levels → foxglove.Log levels.
LOG_LEVELS = {
    10: LogLevel.Debug,
    20: LogLevel.Info,
    30: LogLevel.Warning,
    40: LogLevel.Error,
    50: LogLevel.Fatal,
}


class BadRequestError(ValueError):
    """Data from a client that does not fit the type it claims; `str()` says why."""


def ros_schema(type_name: str) -> foxglove.Schema:
    """The `ros2msg` schema of a message type, as rosbag2 MCAP and Foxglove expect it."""
    return foxglove.Schema(
        name=type_name,
        encoding='ros2msg',
        data=interfaces.message_definition_text(type_name).encode(),
    )


def service_schema(service_type: str) -> foxglove.ServiceSchema:
    """Request and response schemas (`ros2msg`, CDR) of a service type `pkg/srv/Name`."""

    def part(suffix: str) -> foxglove.MessageSchema:
        return foxglove.MessageSchema(encoding='cdr', schema=ros_schema(f'{service_type}_{suffix}'))

    return foxglove.ServiceSchema(service_type, request=part('Request'), response=part('Response'))


def to_cdr(type_name: str, encoding: str, payload: bytes, *, limit: int) -> bytes:
    """Check a client's message or request of `type_name` and return it as CDR.

    `cdr` payloads are decoded to prove they fit the type and then passed on unchanged;
    `json` payloads are converted. Raises BadRequestError with the reason.
    """
    if len(payload) > limit:
        raise BadRequestError(f'{len(payload)} bytes exceed the limit of {limit} bytes')
    if encoding == 'json':
        try:
            data = json.loads(payload)
            return interfaces.serialize(interfaces.from_data(type_name, data))
        except (ValueError, interfaces.InterfaceError) as exc:
            raise BadRequestError(f'not a valid {type_name} in JSON: {exc}') from exc
    if encoding != 'cdr':
        raise BadRequestError(
            f'unsupported encoding {encoding!r}; use one of {", ".join(CLIENT_ENCODINGS)}'
        )
    try:
        interfaces.decoder(type_name)(payload)
    except interfaces.SerdeError as exc:
        if _is_empty_struct_header(type_name, payload):
            # CDR writers differ on empty messages: some send only the encapsulation header,
            # ROS 2 adds one padding member. Send what ROS 2 expects.
            return interfaces.serialize(interfaces.get_message_class(type_name)())
        raise BadRequestError(f'not a valid CDR {type_name}: {exc}') from exc
    return payload


def _is_empty_struct_header(type_name: str, payload: bytes) -> bool:
    return (
        len(payload) == 4
        and payload[:2] == b'\x00\x01'
        and not interfaces.interface_definition(type_name).strip()
    )


# -- parameters -----------------------------------------------------------------------------


def parameter_name(node_fqn: str, name: str) -> str:
    return f'{node_fqn}.{name}'


def split_parameter_name(full: str) -> tuple[str, str]:
    """`/ns/node.a.b` → (`/ns/node`, `a.b`); raises BadRequestError when it is not one."""
    node, dot, name = full.partition('.')
    if not dot or not name or not node.startswith('/') or node.endswith('/'):
        raise BadRequestError(f'{full!r} is not a parameter name of the form /node.parameter')
    return node, name


def to_foxglove_parameter(full_name: str, value: Any) -> foxglove.Parameter:
    """A ROS parameter value as a Foxglove parameter (with the type hint doubles need)."""
    if isinstance(value, float):
        return foxglove.Parameter(full_name, value=value, type=foxglove.ParameterType.Float64)
    if isinstance(value, list) and value and all(isinstance(v, float) for v in value):
        return foxglove.Parameter(full_name, value=value, type=foxglove.ParameterType.Float64Array)
    if isinstance(value, (bytes, bytearray)):
        return foxglove.Parameter(
            full_name, value=bytes(value), type=foxglove.ParameterType.ByteArray
        )
    return foxglove.Parameter(full_name, value=value)


def from_foxglove_parameter(parameter: foxglove.Parameter) -> Any:
    """The ROS value a client asked for; raises BadRequestError for unset or nested values."""
    value = parameter.get_value()
    if parameter.type == foxglove.ParameterType.Float64 and isinstance(value, int):
        value = float(value)
    if parameter.type == foxglove.ParameterType.Float64Array and isinstance(value, list):
        value = [float(v) for v in value]
    if parameter.type == foxglove.ParameterType.ByteArray and isinstance(value, str):
        value = base64.b64decode(value)
    if value is None or isinstance(value, dict):
        raise BadRequestError(f'{parameter.name}: ROS parameters cannot be unset or nested')
    return value


# -- logs -----------------------------------------------------------------------------------


def log_from_rosout(record: Any) -> Log:
    """A `/rosout` record (rcl_interfaces/msg/Log) as a Foxglove Log message."""
    return Log(
        timestamp=Timestamp(record.stamp.sec, record.stamp.nanosec),
        level=LOG_LEVELS.get(int(record.level), LogLevel.Unknown),
        message=record.msg,
        name=record.name,
        file=record.file,
        line=int(record.line),
    )


# -- connection graph -----------------------------------------------------------------------


@dataclass(frozen=True)
class GraphSummary:
    """Who publishes, subscribes and serves what, by name (node FQNs)."""

    published: dict[str, list[str]]
    subscribed: dict[str, list[str]]
    services: dict[str, list[str]]

    @classmethod
    def of(cls, tokens: Iterable[Token]) -> GraphSummary:
        found: dict[str, dict[str, set[str]]] = {
            names.PUBLISHER: {},
            names.SUBSCRIPTION: {},
            names.SERVICE: {},
        }
        for token in tokens:
            if token.kind in found:
                found[token.kind].setdefault(token.name, set()).add(token.node_fqn)
        published, subscribed, services = (
            {name: sorted(ids) for name, ids in sorted(found[kind].items())}
            for kind in (names.PUBLISHER, names.SUBSCRIPTION, names.SERVICE)
        )
        return cls(published=published, subscribed=subscribed, services=services)

    def to_connection_graph(self) -> foxglove.ConnectionGraph:
        graph = foxglove.ConnectionGraph()
        for topic, ids in self.published.items():
            graph.set_published_topic(topic, ids)
        for topic, ids in self.subscribed.items():
            graph.set_subscribed_topic(topic, ids)
        for service, ids in self.services.items():
            graph.set_advertised_service(service, ids)
        return graph
