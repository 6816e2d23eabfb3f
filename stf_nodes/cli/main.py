"""`stf`: the project's command line, with verbs shaped like the ros2 CLI.

Messages and requests are given as YAML (as in `ros2 topic pub` and `ros2 service call`);
`--json` prints one JSON object per message or response per line. Every error and timeout
exits non-zero with a one-line reason on stderr.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from stf_nodes import interfaces

EXIT_ERROR = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A user-facing failure: printed as `stf: <message>`, exit status 1."""


# ---------------------------------------------------------------------------------------------
# helpers


@contextmanager
def _cli_node() -> Iterator[Any]:
    """A hidden, short-lived node (name starts with `_`, like ros2cli's) on its own context."""
    from stf_nodes import runtime

    context = runtime.Context([])
    node = None
    try:
        node = runtime.Node(
            f'_stf_cli_{os.getpid()}',
            context=context,
            enable_rosout=False,
            start_parameter_services=False,
        )
        yield node
    except runtime.RouterUnavailableError as exc:
        raise CliError(str(exc)) from exc
    finally:
        if node is not None:
            node.destroy_node()
        context.shutdown()


def _load_yaml(text: str, what: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise CliError(f'{what} is not valid YAML: {exc}') from exc


def _build(type_name: str, text: str, what: str) -> Any:
    try:
        return interfaces.from_data(type_name, _load_yaml(text, what))
    except interfaces.InterfaceError as exc:
        raise CliError(f'{what} does not fit {type_name}: {exc}') from exc


class OutputClosed(Exception):  # noqa: N818 - a state, not an error
    """Whoever read our output stopped (``stf topic echo ... | head``)."""


def _json_safe(data: Any) -> Any:
    """``data`` with non-finite floats as the strings ``NaN``, ``Infinity``, ``-Infinity``:
    JSON has no such numbers, and a bare ``NaN`` breaks every strict parser."""
    if isinstance(data, float) and not math.isfinite(data):
        return 'NaN' if math.isnan(data) else ('Infinity' if data > 0 else '-Infinity')
    if isinstance(data, dict):
        return {key: _json_safe(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_json_safe(value) for value in data]
    return data


def _print_message(message: Any, as_json: bool) -> None:
    """One message as YAML (``---`` after it) or one line of JSON; raises OutputClosed when
    stdout was closed by the reader."""
    data = interfaces.to_data(message)
    if as_json:
        text = json.dumps(_json_safe(data), ensure_ascii=False, allow_nan=False)
    else:
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip() + '\n---'
    try:
        print(text, flush=True)
    except BrokenPipeError as exc:
        raise OutputClosed from exc


def _spin_for(node: Any, seconds: float | None, until: Callable[[], bool]) -> bool:
    """Spin the CLI node until `until()` holds; False on timeout."""
    from stf_nodes import runtime

    executor = runtime.SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    deadline = None if seconds is None else time.monotonic() + seconds
    while not until():
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return False
        executor.spin_once(timeout_sec=0.1 if remaining is None else min(remaining, 0.1))
    return True


def _topic_type(node: Any, topic: str, given: str | None, timeout_s: float | None) -> str:
    if given:
        return interfaces.get_message_class(given).__msgtype__
    graph = node.context.graph

    def types() -> list[str]:
        return next((t for name, t in graph.topic_names_and_types() if name == topic), [])

    graph.wait_for(lambda _: bool(types()), timeout_s)
    found = types()
    if not found:
        raise CliError(f'topic {topic} is not published; give its type to wait for it')
    if len(found) > 1:
        raise CliError(f'topic {topic} has several types ({", ".join(found)}); give one')
    return found[0]


def _echo_qos(node: Any, topic: str) -> Any:
    """Transient-local when any publisher latches, so `echo` shows latched state."""
    from stf_nodes.runtime import names
    from stf_nodes.runtime.qos import DurabilityPolicy, QoSProfile

    publishers = node.context.graph.endpoints(topic, names.PUBLISHER)
    durable = any(
        QoSProfile.from_keyexpr(p.qos).durability == DurabilityPolicy.TRANSIENT_LOCAL
        for p in publishers
    )
    return QoSProfile(
        depth=100,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if durable else DurabilityPolicy.VOLATILE,
    )


# ---------------------------------------------------------------------------------------------
# verbs


def cmd_router(args: argparse.Namespace) -> int:
    from stf_nodes.runtime.router import run_router

    return run_router()


def cmd_node_list(args: argparse.Namespace) -> int:
    with _cli_node() as node:
        for name, namespace in node.context.graph.node_names_and_namespaces():
            if args.all or not name.startswith('_'):
                print(namespace.rstrip('/') + '/' + name)
    return 0


def _print_names_and_types(pairs: list[tuple[str, list[str]]], show_types: bool) -> None:
    for name, types in pairs:
        print(f'{name} [{", ".join(types)}]' if show_types else name)


def cmd_topic_list(args: argparse.Namespace) -> int:
    with _cli_node() as node:
        _print_names_and_types(node.context.graph.topic_names_and_types(), args.show_types)
    return 0


def cmd_service_list(args: argparse.Namespace) -> int:
    with _cli_node() as node:
        pairs = node.context.graph.service_names_and_types()
        _print_names_and_types(
            [p for p in pairs if args.all or '/_stf_cli_' not in p[0]], args.show_types
        )
    return 0


def cmd_topic_echo(args: argparse.Namespace) -> int:
    with _cli_node() as node:
        topic = node.resolve_name(args.topic)
        type_name = _topic_type(node, topic, args.type, args.timeout)
        wanted = 1 if args.once else None
        printed = 0
        closed = False

        def on_message(message: Any) -> None:
            # Several queued messages may be delivered before the spin loop looks again:
            # --once means one, whatever arrives.
            nonlocal printed, closed
            if closed or (wanted is not None and printed >= wanted):
                return
            try:
                _print_message(message, args.json)
            except OutputClosed:
                closed = True
                return
            printed += 1

        node.create_subscription(
            interfaces.get_message_class(type_name), topic, on_message, _echo_qos(node, topic)
        )
        done = _spin_for(
            node, args.timeout, lambda: closed or (wanted is not None and printed >= wanted)
        )
        if closed:
            raise OutputClosed
        if not printed and args.timeout is not None:
            raise CliError(f'no message on {topic} within {args.timeout:g} s')
        return 0 if done or args.timeout is not None else EXIT_ERROR


def cmd_topic_pub(args: argparse.Namespace) -> int:
    msg_class = _message_class(args.type)
    message = _build(msg_class.__msgtype__, args.values, 'message')
    with _cli_node() as node:
        topic = node.resolve_name(args.topic)
        publisher = node.create_publisher(msg_class, topic, 10)
        publisher.wait_for_subscribers(args.wait_matching)
        times = 1 if args.once else args.times
        period = 1.0 / args.rate
        count = 0
        next_at = time.monotonic()
        while times is None or count < times:
            publisher.publish(message)
            count += 1
            print(f'publishing #{count}: {interfaces.to_data(message)}', flush=True)
            next_at += period
            if times is None or count < times:
                time.sleep(max(next_at - time.monotonic(), 0.0))
        time.sleep(0.2)  # let reliable samples leave before the session closes
    return 0


def cmd_topic_hz(args: argparse.Namespace) -> int:
    with _cli_node() as node:
        topic = node.resolve_name(args.topic)
        type_name = _topic_type(node, topic, args.type, args.timeout)
        stamps: list[float] = []
        node.create_subscription(
            interfaces.get_message_class(type_name),
            topic,
            lambda _: stamps.append(time.monotonic()),
            _echo_qos(node, topic),
            raw=True,
        )
        end = None if args.duration is None else time.monotonic() + args.duration
        while end is None or time.monotonic() < end:
            _spin_for(node, 1.0, lambda: False)
            window = stamps[-args.window :]
            if len(window) < 2:
                print('no new messages', flush=True)
                continue
            gaps = [b - a for a, b in itertools.pairwise(window)]
            mean = sum(gaps) / len(gaps)
            std = math.sqrt(sum((g - mean) ** 2 for g in gaps) / len(gaps))
            print(
                f'average rate: {1.0 / mean:.3f}\n\tmin: {min(gaps):.3f}s max: '
                f'{max(gaps):.3f}s std dev: {std:.5f}s window: {len(window)}',
                flush=True,
            )
        if len(stamps) < 2:
            raise CliError(f'fewer than two messages on {topic}')
    return 0


def cmd_service_call(args: argparse.Namespace) -> int:
    srv_type = _service_type(args.type)
    request = _build(srv_type.Request.__msgtype__, args.values, 'request')
    with _cli_node() as node:
        name = node.resolve_name(args.service)
        client = node.create_client(srv_type, name)
        started = time.monotonic()
        if not client.wait_for_service(args.timeout):
            raise CliError(f'service {name} not available within {args.timeout:g} s')
        if not args.json:
            print(f'requester: making request: {interfaces.to_data(request)}\n', flush=True)
        remaining = max(args.timeout - (time.monotonic() - started), 0.1)
        response = _call(client, request, remaining)
        if args.json:
            _print_message(response, True)
        else:
            print('response:')
            _print_message(response, False)
    return 0


def _call(client: Any, request: Any, timeout_s: float = 10.0) -> Any:
    """A service call whose failure (no server, an error reply, a timeout) is a CliError."""
    from stf_nodes.runtime import ServiceError

    try:
        return client.call(request, timeout_sec=timeout_s)
    except (ServiceError, TimeoutError) as exc:
        raise CliError(str(exc)) from exc


def _param_client(node: Any, target: str, service: str) -> Any:
    srv_type = interfaces.get_service(f'rcl_interfaces/srv/{service}')
    node_fqn = target if target.startswith('/') else '/' + target
    snake = ''.join('_' + c.lower() if c.isupper() else c for c in service).lstrip('_')
    client = node.create_client(srv_type, f'{node_fqn}/{snake}')
    if not client.wait_for_service(5.0):
        raise CliError(f'node {node_fqn} not found (no {snake} service)')
    return client


def cmd_param_list(args: argparse.Namespace) -> int:
    with _cli_node() as node:
        if args.node:
            targets = [args.node]
        else:
            targets = [
                ns.rstrip('/') + '/' + n
                for n, ns in node.context.graph.node_names_and_namespaces()
                if not n.startswith('_')
            ]
        for target in targets:
            client = _param_client(node, target, 'ListParameters')
            response = _call(client, client.srv_type.Request())
            if not args.node:
                print(f'{target}:')
            for name in response.result.names:
                print(f'  {name}' if not args.node else name)
    return 0


def cmd_param_get(args: argparse.Namespace) -> int:
    from stf_nodes.runtime.parameters import value_from_msg

    with _cli_node() as node:
        client = _param_client(node, args.node, 'GetParameters')
        response = _call(client, client.srv_type.Request(names=[args.name]))
        value = value_from_msg(response.values[0])
        if value is None:
            raise CliError(f'parameter {args.name} is not set on {args.node}')
        print(
            json.dumps(_json_safe(value), allow_nan=False)
            if args.json
            else f'{type(value).__name__} value is: {value}'
        )
    return 0


def cmd_param_set(args: argparse.Namespace) -> int:
    from stf_nodes.runtime.parameters import Parameter, ParameterError

    value = _load_yaml(args.value, 'value')
    try:
        message = Parameter(args.name, value).to_parameter_msg()
    except ParameterError as exc:
        raise CliError(str(exc)) from exc
    with _cli_node() as node:
        client = _param_client(node, args.node, 'SetParameters')
        result = _call(client, client.srv_type.Request(parameters=[message])).results[0]
        if not result.successful:
            raise CliError(f'setting parameter failed: {result.reason}')
        print('Set parameter successful')
    return 0


def _message_class(name: str) -> type:
    try:
        return interfaces.get_message_class(name)
    except interfaces.InterfaceError as exc:
        raise CliError(str(exc)) from exc


def _service_type(name: str) -> interfaces.ServiceType:
    try:
        return interfaces.get_service(name)
    except interfaces.InterfaceError as exc:
        raise CliError(str(exc)) from exc


def cmd_interface_list(args: argparse.Namespace) -> int:
    for name in interfaces.list_interfaces():
        if args.only is None or f'/{args.only}/' in name:
            print(name)
    return 0


def cmd_interface_show(args: argparse.Namespace) -> int:
    try:
        print(interfaces.interface_definition(args.type).rstrip())
    except interfaces.InterfaceError as exc:
        raise CliError(str(exc)) from exc
    return 0


def cmd_export_interfaces(args: argparse.Namespace) -> int:
    from stf_nodes.export import export_interface_package

    path = export_interface_package(Path(args.directory))
    print(f'wrote ament_cmake package stf_msgs to {path}')
    return 0


# ---------------------------------------------------------------------------------------------
# parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='stf', description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest='verb', required=True, metavar='VERB')

    verbs.add_parser('launch', help='run a ROS 2 XML launch file (stf launch --help)')
    verbs.add_parser('router', help='run a Zenoh router (like rmw_zenohd)').set_defaults(
        func=cmd_router
    )

    node = verbs.add_parser('node', help='nodes of the graph').add_subparsers(
        dest='action', required=True
    )
    node_list = node.add_parser('list')
    node_list.add_argument('-a', '--all', action='store_true', help='include hidden nodes')
    node_list.set_defaults(func=cmd_node_list)

    topic = verbs.add_parser('topic', help='topics').add_subparsers(dest='action', required=True)
    topic_list = topic.add_parser('list')
    topic_list.add_argument('-t', '--show-types', action='store_true')
    topic_list.set_defaults(func=cmd_topic_list)
    echo = topic.add_parser('echo')
    echo.add_argument('topic')
    echo.add_argument('type', nargs='?')
    echo.add_argument('--once', action='store_true', help='exit after the first message')
    echo.add_argument('--timeout', type=float, help='give up after S seconds (exit 1 if none)')
    echo.add_argument(
        '--json',
        action='store_true',
        help='one JSON object per line; NaN and infinities are written as the strings "NaN", '
        '"Infinity" and "-Infinity" (JSON has no such numbers)',
    )
    echo.set_defaults(func=cmd_topic_echo)
    pub = topic.add_parser('pub')
    pub.add_argument('topic')
    pub.add_argument('type')
    pub.add_argument('values', nargs='?', default='{}', help='the message as YAML')
    pub.add_argument('-r', '--rate', type=float, default=1.0, help='Hz (default 1)')
    pub.add_argument('-t', '--times', type=int, help='publish N times, then exit')
    pub.add_argument('-1', '--once', action='store_true', help='publish once, then exit')
    pub.add_argument(
        '--wait-matching',
        type=float,
        default=1.0,
        metavar='S',
        help='wait up to S seconds for a subscription first (default 1)',
    )
    pub.set_defaults(func=cmd_topic_pub)
    hz = topic.add_parser('hz')
    hz.add_argument('topic')
    hz.add_argument('type', nargs='?')
    hz.add_argument('-w', '--window', type=int, default=10000)
    hz.add_argument('--duration', type=float, help='stop after S seconds')
    hz.add_argument('--timeout', type=float, default=10.0, help='wait for the topic (s)')
    hz.set_defaults(func=cmd_topic_hz)

    service = verbs.add_parser('service', help='services').add_subparsers(
        dest='action', required=True
    )
    service_list = service.add_parser('list')
    service_list.add_argument('-t', '--show-types', action='store_true')
    service_list.add_argument('-a', '--all', action='store_true')
    service_list.set_defaults(func=cmd_service_list)
    call = service.add_parser('call')
    call.add_argument('service')
    call.add_argument('type')
    call.add_argument('values', nargs='?', default='{}', help='the request as YAML')
    call.add_argument('--timeout', type=float, default=10.0)
    call.add_argument('--json', action='store_true')
    call.set_defaults(func=cmd_service_call)

    param = verbs.add_parser('param', help='node parameters').add_subparsers(
        dest='action', required=True
    )
    param_list = param.add_parser('list')
    param_list.add_argument('node', nargs='?')
    param_list.set_defaults(func=cmd_param_list)
    param_get = param.add_parser('get')
    param_get.add_argument('node')
    param_get.add_argument('name')
    param_get.add_argument('--json', action='store_true')
    param_get.set_defaults(func=cmd_param_get)
    param_set = param.add_parser('set')
    param_set.add_argument('node')
    param_set.add_argument('name')
    param_set.add_argument('value', help='YAML value')
    param_set.set_defaults(func=cmd_param_set)

    interface = verbs.add_parser('interface', help='message and service types').add_subparsers(
        dest='action', required=True
    )
    interface_list = interface.add_parser('list')
    interface_list.add_argument('--only', choices=['msg', 'srv'])
    interface_list.set_defaults(func=cmd_interface_list)
    show = interface.add_parser('show')
    show.add_argument('type')
    show.set_defaults(func=cmd_interface_show)

    from stf_nodes.cli import bag

    bag.add_parser(verbs)

    export = verbs.add_parser(
        'export-interfaces', help='write an ament_cmake stf_msgs package for a ROS 2 workspace'
    )
    export.add_argument('directory')
    export.set_defaults(func=cmd_export_interfaces)
    return parser


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['launch']:
        # `stf launch` owns its whole command line (options may come first, like
        # `stf launch --show-args FILE`) and its own signal handling.
        from stf_nodes.launcher import launch_main

        return launch_main(argv[1:])
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        return args.func(args)
    except CliError as exc:
        print(f'stf: {exc}', file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except (BrokenPipeError, OutputClosed):
        # The reader is gone (`| head`): end quietly, and keep the interpreter from reporting
        # the pipe again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == '__main__':
    sys.exit(main())
