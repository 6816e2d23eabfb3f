"""Graph and interface introspection with the output shapes of the ros2 CLI.

`stf node info`, `stf topic info [-v]|type|find|bw|delay`, `stf service type|find` read the
graph from the rmw_zenoh liveliness tokens (so they describe ROS 2 nodes on rmw_zenoh too);
`stf interface packages|package|proto|show` read the type store. Formats follow ros2cli:
`node info` lists Subscribers / Publishers / Service Servers / Service Clients / Action
Servers / Action Clients; `topic info -v` prints each endpoint as rclpy's TopicEndpointInfo
does (node, type, type hash, GID, QoS); `topic bw` and `topic delay` print every second like
`ros2 topic bw|delay` (with `--duration` to stop); `interface show` expands nested types with
a tab per level, showing comments of the top level only (`--all-comments`, `--no-comments`).
"""

from __future__ import annotations

import argparse
import math
import re
import time
from collections.abc import Callable
from typing import Any

from stf_nodes import interfaces
from stf_nodes.cli.common import (
    CliError,
    absolute_name,
    cli_node,
    graph_nodes,
    message_yaml,
    spin_for,
    topic_type,
    topic_types,
    type_completer,
    verb,
    warn,
)
from stf_nodes.runtime import names
from stf_nodes.runtime.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

# ---------------------------------------------------------------------------------------------
# node


def _names_and_types(endpoints: list[Any]) -> list[str]:
    found: dict[str, set[str]] = {}
    for token in endpoints:
        found.setdefault(token.name, set()).add(token.type_name)
    return [f'    {name}: {", ".join(sorted(types))}' for name, types in sorted(found.items())]


def _hidden(name: str) -> bool:
    return any(part.startswith('_') for part in name.split('/'))


def cmd_node_info(args: argparse.Namespace) -> int:
    target = absolute_name(args.node)
    with cli_node() as node:
        count = graph_nodes(node, include_hidden=True).count(target)
        if not count:
            raise CliError(f"Unable to find node '{target}'")
        if count > 1:
            warn(
                f'WARNING: There are {count} nodes in the graph with the exact name "{target}". '
                'You are seeing information about all of them together.'
            )
        endpoints = [
            token
            for token in node.context.graph.tokens()
            if token.kind != names.NODE
            and token.node_fqn == target
            and (args.include_hidden or not _hidden(token.name))
        ]
    print(target)
    for title, kind in (
        ('Subscribers', names.SUBSCRIPTION),
        ('Publishers', names.PUBLISHER),
        ('Service Servers', names.SERVICE),
        ('Service Clients', names.CLIENT),
    ):
        print(f'  {title}:')
        # As ros2 prints it: an empty section leaves an empty line.
        print('\n'.join(_names_and_types([t for t in endpoints if t.kind == kind])))
    print('  Action Servers:\n\n  Action Clients:\n')
    return 0


# ---------------------------------------------------------------------------------------------
# topic


_LIVELINESS = {0: 'SYSTEM_DEFAULT', 1: 'AUTOMATIC', 2: 'MANUAL_BY_NODE', 3: 'MANUAL_BY_TOPIC'}
_INFINITE = (9223372036, 854775807)


def _duration(text: str) -> str:
    """A `sec,nsec` duration of an rmw_zenoh QoS key, as rclpy prints durations."""
    seconds, _, nanoseconds = text.partition(',')
    if not text or (int(seconds or 0), int(nanoseconds or 0)) == _INFINITE:
        return 'Infinite'
    return f'{int(seconds or 0) * 10**9 + int(nanoseconds or 0)} nanoseconds'


def describe_endpoint(token: Any) -> str:
    """One endpoint as rclpy's `TopicEndpointInfo.__str__` prints it."""
    qos = QoSProfile.from_keyexpr(token.qos)
    fields = token.qos.split(':') + [''] * 6
    liveliness, _, lease = fields[5].partition(',')
    history = (
        f'{qos.history.name} ({qos.depth})'
        if qos.history == HistoryPolicy.KEEP_LAST
        else qos.history.name
    )
    gid = '.'.join(f'{b:02x}' for b in names.gid_of(token.key))
    return '\n'.join(
        [
            f'Node name: {token.node_name}',
            f'Node namespace: {token.namespace}',
            f'Topic type: {token.type_name}',
            f'Topic type hash: {token.type_hash}',
            f'Endpoint type: {"PUBLISHER" if token.kind == names.PUBLISHER else "SUBSCRIPTION"}',
            f'GID: {gid}',
            'QoS profile:',
            f'  Reliability: {ReliabilityPolicy(qos.reliability).name}',
            f'  History (Depth): {history}',
            f'  Durability: {DurabilityPolicy(qos.durability).name}',
            f'  Lifespan: {_duration(fields[4])}',
            f'  Deadline: {_duration(fields[3])}',
            f'  Liveliness: {_LIVELINESS.get(int(liveliness or 1), "UNKNOWN")}',
            f'  Liveliness lease duration: {_duration(lease)}',
        ]
    )


def cmd_topic_info(args: argparse.Namespace) -> int:
    with cli_node() as node:
        topic = node.resolve_name(args.topic)
        types = topic_types(node, topic)
        if not types:
            raise CliError(f"Unknown topic '{topic}'")
        graph = node.context.graph
        publishers = graph.endpoints(topic, names.PUBLISHER)
        subscriptions = graph.endpoints(topic, names.SUBSCRIPTION)
    end = '\n\n' if args.verbose else '\n'
    print(f'Type: {types[0] if len(types) == 1 else types}', end=end)
    print(f'Publisher count: {len(publishers)}', end=end)
    if args.verbose:
        for token in sorted(publishers, key=lambda t: (t.node_fqn, t.key)):
            print(describe_endpoint(token), end='\n\n')
    print(f'Subscription count: {len(subscriptions)}', end=end)
    if args.verbose:
        for token in sorted(subscriptions, key=lambda t: (t.node_fqn, t.key)):
            print(describe_endpoint(token), end='\n\n')
    return 0


def cmd_topic_type(args: argparse.Namespace) -> int:
    with cli_node() as node:
        topic = node.resolve_name(args.topic)
        types = topic_types(node, topic)
    if not types:
        raise CliError(f"Unknown topic '{topic}'")
    print('\n'.join(types))
    return 0


def _canonical_type(name: str) -> str:
    try:
        return interfaces.get_message_class(name).__msgtype__
    except interfaces.InterfaceError:
        return name  # a type only a foreign node knows: compare the spelling as given


def cmd_topic_find(args: argparse.Namespace) -> int:
    wanted = _canonical_type(args.type)
    with cli_node() as node:
        pairs = node.context.graph.topic_names_and_types()
    found = [name for name, types in pairs if wanted in types]
    if args.count_topics:
        print(len(found))
    else:
        for name in found:
            print(name)
    return 0


def _every_second(
    node: Any, duration: float | None, report: Callable[[], None], *, first: float = 1.0
) -> None:
    """Spin the CLI node and call `report()` every second, for `duration` seconds or forever."""
    end = None if duration is None else time.monotonic() + duration
    while end is None or time.monotonic() < end:
        spin_for(node, first if end is None else min(first, end - time.monotonic()), bool)
        report()


def _size(count: float, unit: str) -> str:
    return f'{count / {"B": 1, "KB": 1e3, "MB": 1e6}[unit]:.{0 if unit == "B" else 2}f} {unit}'


def cmd_topic_bw(args: argparse.Namespace) -> int:
    with cli_node() as node:
        topic = node.resolve_name(args.topic)
        type_name = topic_type(node, topic, None, args.timeout)
        samples: list[tuple[float, int]] = []

        def on_sample(payload: bytes) -> None:
            samples.append((time.monotonic(), len(payload)))
            del samples[: -args.window]

        node.create_subscription(
            interfaces.get_message_class(type_name), topic, on_sample, 100, raw=True
        )
        print(f'Subscribed to [{topic}]', flush=True)

        def report() -> None:
            if len(samples) < 2:
                return
            sizes = [size for _, size in samples]
            elapsed = time.monotonic() - samples[0][0]
            rate = sum(sizes) / elapsed if elapsed > 0 else math.inf
            unit = 'B' if rate < 1e3 else 'KB' if rate < 1e6 else 'MB'
            print(
                f'{_size(rate, unit)}/s from {len(sizes)} messages\n\tMessage size mean: '
                f'{_size(sum(sizes) / len(sizes), unit)} min: {_size(min(sizes), unit)} '
                f'max: {_size(max(sizes), unit)}',
                flush=True,
            )

        _every_second(node, args.duration, report)
        if len(samples) < 2:
            raise CliError(f'fewer than two messages on {topic}')
    return 0


def cmd_topic_delay(args: argparse.Namespace) -> int:
    with cli_node() as node:
        topic = node.resolve_name(args.topic)
        type_name = topic_type(node, topic, None, args.timeout)
        if 'header' not in interfaces.nested_types(type_name):
            raise CliError(f'{type_name} has no header: its delay cannot be measured')
        delays: list[int] = []
        fresh = [False]

        def on_message(message: Any) -> None:
            stamp = message.header.stamp
            delays.append(node.get_clock().now().nanoseconds - (stamp.sec * 10**9 + stamp.nanosec))
            del delays[: -args.window]
            fresh[0] = True

        node.create_subscription(interfaces.get_message_class(type_name), topic, on_message, 100)

        def report() -> None:
            if not delays:
                return
            if not fresh[0]:
                print('no new messages', flush=True)
                return
            fresh[0] = False
            mean = sum(delays) / len(delays)
            std = math.sqrt(sum((d - mean) ** 2 for d in delays) / len(delays))
            print(
                f'average delay: {mean * 1e-9:.3f}\n\tmin: {min(delays) * 1e-9:.3f}s max: '
                f'{max(delays) * 1e-9:.3f}s std dev: {std * 1e-9:.5f}s window: {len(delays)}',
                flush=True,
            )

        _every_second(node, args.duration, report)
        if not delays:
            raise CliError(f'no message on {topic}')
    return 0


# ---------------------------------------------------------------------------------------------
# service


def cmd_service_type(args: argparse.Namespace) -> int:
    with cli_node() as node:
        service = node.resolve_name(args.service)
        pairs = node.context.graph.service_names_and_types()
    types = next((types for name, types in pairs if name == service), [])
    if not types:
        raise CliError(f"Unknown service '{service}'")
    print('\n'.join(types))
    return 0


def cmd_service_find(args: argparse.Namespace) -> int:
    try:
        wanted = interfaces.get_service(args.type).name
    except interfaces.InterfaceError:
        wanted = args.type
    with cli_node() as node:
        pairs = node.context.graph.service_names_and_types()
    found = [name for name, types in pairs if wanted in types]
    if args.count_services:
        print(len(found))
    else:
        for name in found:
            print(name)
    return 0


# ---------------------------------------------------------------------------------------------
# interface

_PRIMITIVES = {
    'bool', 'byte', 'char', 'float32', 'float64', 'int8', 'uint8', 'int16', 'uint16',
    'int32', 'uint32', 'int64', 'uint64', 'string', 'wstring',
}  # fmt: skip
_FIELD = re.compile(r'^\s*([\w/]+)(?:<=\d+)?(?:\[[^\]]*\])?\s+[a-z]\w*\s*(?:#.*)?$')


def _nested_type(line: str, package: str) -> str | None:
    """`pkg/msg/Type` of a field line whose type is a message; None for anything else."""
    match = _FIELD.match(line)
    if match is None or match.group(1) in _PRIMITIVES:
        return None
    base = match.group(1)
    pkg, _, short = base.rpartition('/')
    return f'{pkg or package}/msg/{short}'


def show_lines(name: str, *, comments: bool, nested_comments: bool, level: int = 0) -> list[str]:
    """The definition of `name` with its nested types expanded (a tab per level)."""
    text = interfaces.interface_definition(name)
    package = name.split('/')[0]
    lines = []
    for raw in text.splitlines():
        line = raw.rstrip()
        stripped = line.strip()
        if not comments:
            if not stripped or stripped.startswith('#'):
                continue
            line = line.split('#', 1)[0].rstrip()
        lines.append('\t' * level + line if line else '')
        nested = None if stripped == '---' else _nested_type(line, package)
        if nested is not None:
            lines += show_lines(
                nested, comments=nested_comments, nested_comments=nested_comments, level=level + 1
            )
    return lines


def cmd_interface_show(args: argparse.Namespace) -> int:
    try:
        lines = show_lines(
            args.type,
            comments=args.all_comments or not args.no_comments,
            nested_comments=args.all_comments,
        )
    except interfaces.InterfaceError as exc:
        raise CliError(str(exc)) from exc
    print('\n'.join(lines))
    return 0


def cmd_interface_proto(args: argparse.Namespace) -> int:
    try:
        full = interfaces.get_service(args.type).Request  # a service: its request, as ros2
    except interfaces.InterfaceError:
        try:
            full = interfaces.get_message_class(args.type)
        except interfaces.InterfaceError as exc:
            raise CliError(str(exc)) from exc
    text = message_yaml(full(), enum_names=False) + '\n'
    print(text if args.no_quotes else f'"{text}"')
    return 0


def _packages() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name in interfaces.list_interfaces():
        found.setdefault(name.split('/')[0], []).append(name)
    return found


def cmd_interface_packages(args: argparse.Namespace) -> int:
    for package, members in sorted(_packages().items()):
        if args.only_msgs and not any('/msg/' in m for m in members):
            continue
        if args.only_srvs and not any('/srv/' in m for m in members):
            continue
        print(package)
    return 0


def cmd_interface_package(args: argparse.Namespace) -> int:
    members = _packages().get(args.package)
    if members is None:
        raise CliError(f"Unknown package '{args.package}'")
    for name in members:
        kind = name.split('/')[1]
        if (args.only_msgs and kind != 'msg') or (args.only_srvs and kind != 'srv'):
            continue
        print(name)
    return 0


# ---------------------------------------------------------------------------------------------
# parser


def add_node_actions(node: Any) -> None:
    info = verb(node, 'info', 'publishers, subscribers and services of a node', cmd_node_info)
    info.add_argument('node', help='fully qualified node name, e.g. /hbw')
    info.add_argument(
        '--include-hidden', action='store_true', help='show hidden topics and services too'
    )


def add_topic_actions(topic: Any) -> None:
    info = verb(topic, 'info', 'type and endpoint counts of a topic', cmd_topic_info)
    info.add_argument('topic', help='topic name')
    info.add_argument(
        '-v', '--verbose', action='store_true', help='each endpoint: node, GID, QoS profile'
    )
    topic_type_parser = verb(topic, 'type', 'print the type of a topic', cmd_topic_type)
    topic_type_parser.add_argument('topic', help='topic name')
    find = verb(topic, 'find', 'list the topics of a type', cmd_topic_find)
    find.add_argument('type', help='message type').completer = type_completer  # type: ignore[attr-defined]
    find.add_argument('-c', '--count-topics', action='store_true', help='only count them')
    for name, help_text, func, window in (
        ('bw', 'print the bandwidth a topic uses', cmd_topic_bw, 100),
        ('delay', "print the delay from a message's header stamp", cmd_topic_delay, 10000),
    ):
        parser = verb(topic, name, help_text, func)
        parser.add_argument('topic', help='topic name')
        parser.add_argument(
            '-w', '--window', type=int, default=window, help=f'messages (default {window})'
        )
        parser.add_argument('--duration', type=float, help='stop after S seconds')
        parser.add_argument('--timeout', type=float, default=10.0, help='wait for the topic (s)')


def add_service_actions(service: Any) -> None:
    service_type = verb(service, 'type', 'print the type of a service', cmd_service_type)
    service_type.add_argument('service', help='service name')
    find = verb(service, 'find', 'list the services of a type', cmd_service_find)
    find.add_argument('type', help='service type').completer = type_completer  # type: ignore[attr-defined]
    find.add_argument('-c', '--count-services', action='store_true', help='only count them')


def add_interface_actions(interface: Any) -> None:
    show = verb(interface, 'show', 'print a definition, nested types expanded', cmd_interface_show)
    show.add_argument('type', help='e.g. stf_msgs/msg/HbwState').completer = type_completer  # type: ignore[attr-defined]
    comments = show.add_mutually_exclusive_group()
    comments.add_argument(
        '--all-comments', action='store_true', help='comments of nested types too'
    )
    comments.add_argument('--no-comments', action='store_true', help='no comments, no blanks')
    proto = verb(interface, 'proto', 'print a message prototype (YAML)', cmd_interface_proto)
    proto.add_argument('type', help='message or service type').completer = type_completer  # type: ignore[attr-defined]
    proto.add_argument('--no-quotes', action='store_true', help='without the outer quotes')
    packages = verb(
        interface, 'packages', 'list the packages with interfaces', cmd_interface_packages
    )
    package = verb(interface, 'package', 'list the interfaces of a package', cmd_interface_package)
    package.add_argument('package', help='package name, e.g. stf_msgs')
    for parser in (packages, package):
        only = parser.add_mutually_exclusive_group()
        only.add_argument('-m', '--only-msgs', action='store_true', help='messages only')
        only.add_argument('-s', '--only-srvs', action='store_true', help='services only')
