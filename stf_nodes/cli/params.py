"""`stf param list|get|set|describe|dump|load|delete`: node parameters, as `ros2 param` does it.

Everything goes through the standard parameter services every node serves
(`<node>/list_parameters`, `get_parameters`, `set_parameters`, `describe_parameters`), so the
same commands work on ROS 2 nodes on rmw_zenoh. `dump` prints a ROS 2 parameter file
(`/node: ros__parameters: ...`, nested by the dots of the names) that `--params-file` and
`stf param load` accept. `delete` sets a parameter to NOT_SET, which a node accepts only for
a dynamically typed, writable parameter (as rclcpp).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from stf_nodes import interfaces
from stf_nodes.cli.common import (
    CliError,
    absolute_name,
    call,
    cli_node,
    group,
    json_safe,
    load_yaml,
    verb,
)
from stf_nodes.exit_codes import FAILURE

#: `ros2 param describe` spells the types like this.
TYPE_NAMES = {
    0: 'not set',
    1: 'boolean',
    2: 'integer',
    3: 'double',
    4: 'string',
    5: 'byte array',
    6: 'boolean array',
    7: 'integer array',
    8: 'double array',
    9: 'string array',
}


def _client(node: Any, target: str, service: str, timeout_s: float = 5.0) -> Any:
    srv_type = interfaces.get_service(f'rcl_interfaces/srv/{service}')
    snake = ''.join('_' + c.lower() if c.isupper() else c for c in service).lstrip('_')
    client = node.create_client(srv_type, f'{absolute_name(target)}/{snake}')
    if not client.wait_for_service(timeout_s):
        raise CliError(f'node {absolute_name(target)} not found (no {snake} service)')
    return client


def _values(node: Any, target: str, names: list[str]) -> list[Any]:
    from stf_nodes.runtime.parameters import value_from_msg

    client = _client(node, target, 'GetParameters')
    response = call(client, client.srv_type.Request(names=names))
    return [value_from_msg(v) for v in response.values]


def _names(node: Any, target: str) -> list[str]:
    client = _client(node, target, 'ListParameters')
    return sorted(call(client, client.srv_type.Request()).result.names)


def _set(node: Any, target: str, parameters: list[Any]) -> list[Any]:
    client = _client(node, target, 'SetParameters')
    return list(call(client, client.srv_type.Request(parameters=parameters)).results)


def cmd_list(args: argparse.Namespace) -> int:
    with cli_node() as node:
        if args.node:
            targets = [args.node]
        else:
            targets = sorted(
                ns.rstrip('/') + '/' + n
                for n, ns in node.context.graph.node_names_and_namespaces()
                if not n.startswith('_')
            )
        for target in targets:
            if not args.node:
                print(f'{target}:')
            for name in _names(node, target):
                print(f'  {name}' if not args.node else name)
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    with cli_node() as node:
        value = _values(node, args.node, [args.name])[0]
    if value is None:
        raise CliError(f'parameter {args.name} is not set on {args.node}')
    print(
        json.dumps(json_safe(_plain(value)), allow_nan=False)
        if args.json
        else f'{type(value).__name__} value is: {value}'
    )
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    from stf_nodes.runtime.parameters import Parameter, ParameterError

    value = load_yaml(args.value, 'value')
    try:
        message = Parameter(args.name, value).to_parameter_msg()
    except ParameterError as exc:
        raise CliError(str(exc)) from exc
    with cli_node() as node:
        result = _set(node, args.node, [message])[0]
    if not result.successful:
        raise CliError(f'setting parameter failed: {result.reason}')
    print('Set parameter successful')
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    with cli_node() as node:
        client = _client(node, args.node, 'DescribeParameters')
        names = args.names
        response = call(client, client.srv_type.Request(names=names))
    for descriptor in response.descriptors:
        print(f'Parameter name: {descriptor.name}')
        print(f'  Type: {TYPE_NAMES.get(descriptor.type, str(descriptor.type))}')
        if descriptor.description:
            print(f'  Description: {descriptor.description}')
        print('  Constraints:')
        if descriptor.read_only:
            print('    Read only: true')
        if descriptor.dynamic_typing:
            print('    Dynamic typing: true')
        ranges = [*descriptor.floating_point_range, *descriptor.integer_range]
        if ranges:
            print(f'    Min value: {ranges[0].from_value}')
            print(f'    Max value: {ranges[0].to_value}')
            if ranges[0].step:
                print(f'    Step: {ranges[0].step}')
        if descriptor.additional_constraints:
            print(f'    Additional constraints: {descriptor.additional_constraints}')
    unknown = [d.name for d in response.descriptors if d.type == 0]
    if unknown:
        raise CliError(f'parameter(s) {", ".join(unknown)} not declared on {args.node}')
    return 0


def _plain(value: Any) -> Any:
    """A parameter value as YAML/JSON data (byte arrays as lists of numbers, like ros2)."""
    return list(value) if isinstance(value, bytes) else value


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """`{'a.b': 1}` → `{'a': {'b': 1}}`: how parameter files group dotted names."""
    nested: dict[str, Any] = {}
    for name, value in flat.items():
        *parents, leaf = name.split('.')
        level = nested
        for part in parents:
            level = level.setdefault(part, {})
        level[leaf] = value
    return nested


def dump_document(node_fqn: str, values: dict[str, Any]) -> str:
    """The parameter file of one node, as `ros2 param dump` prints it."""
    document = {node_fqn: {'ros__parameters': _nest({k: _plain(v) for k, v in values.items()})}}
    return yaml.safe_dump(document, default_flow_style=False, allow_unicode=True)


def cmd_dump(args: argparse.Namespace) -> int:
    target = absolute_name(args.node)
    with cli_node() as node:
        names = _names(node, target)
        values = dict(zip(names, _values(node, target, names), strict=True))
    print(dump_document(target, {k: v for k, v in values.items() if v is not None}))
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    from stf_nodes.runtime.parameters import Parameter, ParameterError, load_parameter_file

    target = absolute_name(args.node)
    try:
        values = load_parameter_file(Path(args.file), target, wildcards=args.use_wildcard)
        messages = [Parameter(name, value).to_parameter_msg() for name, value in values.items()]
    except ParameterError as exc:
        raise CliError(str(exc)) from exc
    if not messages:
        raise CliError(f'{args.file} has no parameters for {target}')
    with cli_node() as node:
        results = _set(node, target, messages)
    failed = 0
    for message, result in zip(messages, results, strict=True):
        if result.successful:
            print(f'Set parameter {message.name} successful')
        else:
            failed += 1
            print(f'Set parameter {message.name} failed: {result.reason}', file=sys.stderr)
    return FAILURE if failed else 0


def cmd_delete(args: argparse.Namespace) -> int:
    from stf_nodes.runtime.parameters import Parameter

    with cli_node() as node:
        result = _set(node, args.node, [Parameter(args.name).to_parameter_msg()])[0]
    if not result.successful:
        raise CliError(f'Deleting parameter failed: {result.reason}')
    print('Deleted parameter successfully')
    return 0


def add_parser(verbs: Any) -> None:
    param = group(verbs, 'param', 'node parameters')
    listing = verb(param, 'list', 'list the parameters of one node or of every node', cmd_list)
    listing.add_argument('node', nargs='?', help='node name (default: every node)')
    get = verb(param, 'get', 'print a parameter value', cmd_get)
    get.add_argument('node', help='node name, e.g. /hbw')
    get.add_argument('name', help='parameter name')
    get.add_argument('--json', action='store_true', help='the value as JSON')
    set_ = verb(param, 'set', 'set a parameter value', cmd_set)
    set_.add_argument('node', help='node name')
    set_.add_argument('name', help='parameter name')
    set_.add_argument('value', help='the value as YAML (5.0, true, "[1, 2]")')
    describe = verb(param, 'describe', 'print the type, description and constraints', cmd_describe)
    describe.add_argument('node', help='node name')
    describe.add_argument('names', nargs='+', metavar='name', help='parameter names')
    dump = verb(param, 'dump', 'print every parameter of a node as a parameter file', cmd_dump)
    dump.add_argument('node', help='node name')
    load = verb(param, 'load', 'set the parameters a parameter file gives a node', cmd_load)
    load.add_argument('node', help='node name')
    load.add_argument('file', help='a ROS 2 parameter file (node: ros__parameters: ...)')
    load.add_argument(
        '--use-wildcard', action='store_true', help="also load the file's /** section"
    )
    delete = verb(param, 'delete', 'delete a (dynamically typed) parameter', cmd_delete)
    delete.add_argument('node', help='node name')
    delete.add_argument('name', help='parameter name')
