# PYTHON_ARGCOMPLETE_OK
"""`stf`: the project's command line, with verbs shaped like the ros2 CLI.

Messages and requests are given as YAML (as in `ros2 topic pub` and `ros2 service call`);
`--json` prints one JSON object per message or response per line. Every error and timeout
exits non-zero with a one-line reason on stderr. Each verb lives beside this module
(`introspection`, `params`, `watch`, `doctor`, `run`); this module holds the oldest verbs and
the parser. Shell completion: `eval "$(register-python-argcomplete stf)"` (argcomplete).
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from stf_nodes import interfaces
from stf_nodes.cli.common import (
    CliError,
    OutputClosed,
    add_enum_names_option,
    build_message,
    call,
    cli_node,
    echo_qos,
    graph_nodes,
    group,
    message_class,
    print_message,
    service_type,
    service_types,
    spin_for,
    topic_type,
    type_completer,
    verb,
    warn,
)
from stf_nodes.exit_codes import FAILURE, USAGE
from stf_nodes.process import exit_process

# ---------------------------------------------------------------------------------------------
# verbs


def cmd_router(args: argparse.Namespace) -> int:
    from stf_nodes.runtime.router import run_router

    return run_router()


def cmd_node_list(args: argparse.Namespace) -> int:
    with cli_node() as node:
        names = graph_nodes(node, include_hidden=args.all)
        if len(set(names)) < len(names):
            warn(
                'WARNING: Be aware that there are nodes in the graph that share an exact name, '
                'which can have unintended side effects.'
            )
        for name in sorted(set(names)):
            print(name)
    return 0


def _print_names_and_types(pairs: list[tuple[str, list[str]]], show_types: bool) -> None:
    for name, types in pairs:
        print(f'{name} [{", ".join(types)}]' if show_types else name)


def _print_endpoint_counts(title: str, counts: dict[str, tuple[list[str], int]], what: str) -> None:
    print(f'{title} topics:')
    for name, (types, count) in sorted(counts.items()):
        print(f' * {name} [{", ".join(types)}] {count} {what}{"s" if count > 1 else ""}')
    print()


def cmd_topic_list(args: argparse.Namespace) -> int:
    from stf_nodes.runtime import names

    with cli_node() as node:
        graph = node.context.graph
        pairs = graph.topic_names_and_types()
        if not args.verbose:
            _print_names_and_types(pairs, args.show_types)
            return 0
        for title, kind, what in (
            ('Published', names.PUBLISHER, 'publisher'),
            ('Subscribed', names.SUBSCRIPTION, 'subscriber'),
        ):
            counts = {}
            for name, _ in pairs:
                endpoints = graph.endpoints(name, kind)
                if endpoints:
                    counts[name] = (sorted({e.type_name for e in endpoints}), len(endpoints))
            _print_endpoint_counts(title, counts, what)
    return 0


def cmd_service_list(args: argparse.Namespace) -> int:
    with cli_node() as node:
        pairs = node.context.graph.service_names_and_types()
        _print_names_and_types(
            [p for p in pairs if args.all or '/_stf_cli_' not in p[0]], args.show_types
        )
    return 0


def cmd_topic_echo(args: argparse.Namespace) -> int:
    with cli_node() as node:
        topic = node.resolve_name(args.topic)
        type_name = topic_type(node, topic, args.type, args.timeout)
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
                print_message(message, args.json, enum_names=args.enum_names)
            except OutputClosed:
                closed = True
                return
            printed += 1

        node.create_subscription(
            interfaces.get_message_class(type_name), topic, on_message, echo_qos(node, topic)
        )
        done = spin_for(
            node, args.timeout, lambda: closed or (wanted is not None and printed >= wanted)
        )
        if closed:
            raise OutputClosed
        if not printed and args.timeout is not None:
            raise CliError(f'no message on {topic} within {args.timeout:g} s')
        return 0 if done or args.timeout is not None else FAILURE


def cmd_topic_pub(args: argparse.Namespace) -> int:
    msg_class = message_class(args.type)
    message = build_message(msg_class.__msgtype__, args.values, 'message')
    with cli_node() as node:
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
    with cli_node() as node:
        topic = node.resolve_name(args.topic)
        type_name = topic_type(node, topic, args.type, args.timeout)
        stamps: list[float] = []
        node.create_subscription(
            interfaces.get_message_class(type_name),
            topic,
            lambda _: stamps.append(time.monotonic()),
            echo_qos(node, topic),
            raw=True,
        )
        end = None if args.duration is None else time.monotonic() + args.duration
        while end is None or time.monotonic() < end:
            spin_for(node, 1.0, lambda: False)
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
    srv_type = service_type(args.type)
    request = build_message(srv_type.Request.__msgtype__, args.values, 'request')
    with cli_node() as node:
        name = node.resolve_name(args.service)
        client = node.create_client(srv_type, name)
        started = time.monotonic()
        graph = node.context.graph
        if not graph.wait_for(lambda _: bool(service_types(node, name)), args.timeout):
            raise CliError(f'service {name} not available within {args.timeout:g} s')
        found = service_types(node, name)
        if srv_type.name not in found:
            raise CliError(
                f'service {name} has type {", ".join(found)}, not {srv_type.name}: a request '
                f'of {srv_type.name} would never be answered'
            )
        if not client.wait_for_service(max(args.timeout - (time.monotonic() - started), 0.1)):
            raise CliError(f'service {name} not available within {args.timeout:g} s')
        if not args.json:
            print(f'requester: making request: {interfaces.to_data(request)}\n', flush=True)
        remaining = max(args.timeout - (time.monotonic() - started), 0.1)
        response = call(client, request, remaining)
        if args.json:
            print_message(response, True)
        else:
            print('response:')
            print_message(response, False, enum_names=args.enum_names)
    return 0


def cmd_interface_list(args: argparse.Namespace) -> int:
    for name in interfaces.list_interfaces():
        if args.only is None or f'/{args.only}/' in name:
            print(name)
    return 0


def cmd_export_interfaces(args: argparse.Namespace) -> int:
    from stf_nodes.export import export_interface_package

    path = export_interface_package(Path(args.directory))
    print(f'wrote ament_cmake package stf_msgs to {path}')
    return 0


def cmd_dds_setup(args: argparse.Namespace) -> int:
    from stf_nodes.bridges.dds.environment import SetupError, default_venv, setup

    venv = Path(args.venv) if args.venv else default_venv()
    try:
        timings = setup(venv)
    except SetupError as exc:
        raise CliError(str(exc)) from exc
    print(
        f'{venv}: ready ({sum(timings.values()):.0f} s); check: {venv}/bin/python -c '
        '"import rclpy, stf_msgs.msg"'
    )
    return 0


def _database_url(given: str | None) -> str:
    from stf_nodes.storage import DEFAULT_DATABASE_URL

    return given or os.environ.get('DATABASE_URL') or DEFAULT_DATABASE_URL


@contextmanager
def _database(url: str) -> Iterator[Any]:
    """An engine on ``url``; connection and schema errors become one-line CLI errors."""
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from stf_nodes.storage import SchemaError, make_engine, normalize_url

    try:
        shown = normalize_url(url).render_as_string(hide_password=True)
        engine = make_engine(url)
    except (ArgumentError, ValueError, ImportError) as exc:
        raise CliError(f'invalid database URL {url!r}: {exc}') from exc
    try:
        yield engine, shown
    except SchemaError as exc:
        raise CliError(f'{shown}: {exc}') from exc
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, 'orig', None) or exc).strip().splitlines()[0]
        raise CliError(f'cannot use database {shown}: {reason}') from exc
    finally:
        engine.dispose()


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from stf_nodes.storage import upgrade_schema

    with _database(_database_url(args.db)) as (engine, shown):
        result = upgrade_schema(engine)
    if result.stamped_baseline:
        print(
            f'{shown}: recognised a database of the scheduler from before migrations '
            f'({result.before})'
        )
    if result.changed:
        print(f'{shown}: upgraded from {result.before or "empty"} to {result.after}')
    else:
        print(f'{shown}: at {result.after}, the newest revision; nothing to do')
    return 0


def cmd_db_current(args: argparse.Namespace) -> int:
    from stf_nodes.storage import current_revision, head_revision

    with _database(_database_url(args.db)) as (engine, shown):
        revision = current_revision(engine)
    head = head_revision()
    state = 'newest' if revision == head else f'newest is {head}; run `stf db upgrade`'
    print(f'{shown}: {revision or "no migration history"} ({state})')
    return 0


def cmd_history_generate(args: argparse.Namespace) -> int:
    from stf_nodes.history.cli import run

    return run(args, _database(_database_url(args.db)), CliError)


# ---------------------------------------------------------------------------------------------
# parser


def _version() -> str:
    try:
        return metadata.version('stf_digital_twin')
    except metadata.PackageNotFoundError:
        return 'unknown (not installed)'


def build_parser() -> argparse.ArgumentParser:
    from stf_nodes.cli import doctor, introspection, params, run, watch

    parser = argparse.ArgumentParser(
        prog='stf',
        description=__doc__.splitlines()[0].replace('`', ''),
        epilog='Each verb has --help. Shell completion: '
        'eval "$(register-python-argcomplete stf)" (bash/zsh; see the README).',
    )
    parser.add_argument('--version', action='version', version=f'stf {_version()}')
    verbs = parser.add_subparsers(dest='verb', required=True, metavar='VERB')

    verb(verbs, 'launch', 'run a ROS 2 XML launch file (stf launch --help)', add_help=False)
    verb(verbs, 'router', 'run a Zenoh router (like rmw_zenohd)', cmd_router)
    run.add_parser(verbs)

    node = group(verbs, 'node', 'nodes of the graph')
    node_list = verb(node, 'list', 'list the nodes of the graph', cmd_node_list)
    node_list.add_argument('-a', '--all', action='store_true', help='include hidden nodes')
    introspection.add_node_actions(node)

    topic = group(verbs, 'topic', 'topics of the graph')
    topic_list = verb(topic, 'list', 'list the topics of the graph', cmd_topic_list)
    topic_list.add_argument('-t', '--show-types', action='store_true', help='show their types')
    topic_list.add_argument(
        '-v',
        '--verbose',
        action='store_true',
        help='published and subscribed topics with their types and endpoint counts',
    )
    echo = verb(topic, 'echo', 'print the messages of a topic', cmd_topic_echo)
    echo.add_argument('topic', help='topic name, e.g. /stf/hbw/state')
    echo.add_argument(
        'type', nargs='?', help="message type (default: the graph's)"
    ).completer = type_completer  # type: ignore[attr-defined]
    echo.add_argument('--once', action='store_true', help='exit after the first message')
    echo.add_argument('--timeout', type=float, help='give up after S seconds (exit 1 if none)')
    echo.add_argument(
        '--json',
        action='store_true',
        help='one JSON object per line; NaN and infinities are written as the strings "NaN", '
        '"Infinity" and "-Infinity" (JSON has no such numbers)',
    )
    add_enum_names_option(echo)
    pub = verb(topic, 'pub', 'publish a message to a topic', cmd_topic_pub)
    pub.add_argument('topic', help='topic name')
    pub.add_argument('type', help='message type').completer = type_completer  # type: ignore[attr-defined]
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
    hz = verb(topic, 'hz', 'print the publishing rate of a topic', cmd_topic_hz)
    hz.add_argument('topic', help='topic name')
    hz.add_argument('type', nargs='?', help="message type (default: the graph's)")
    hz.add_argument('-w', '--window', type=int, default=10000, help='messages in the window')
    hz.add_argument('--duration', type=float, help='stop after S seconds')
    hz.add_argument('--timeout', type=float, default=10.0, help='wait for the topic (s)')
    introspection.add_topic_actions(topic)

    service = group(verbs, 'service', 'services of the graph')
    service_list = verb(service, 'list', 'list the services of the graph', cmd_service_list)
    service_list.add_argument('-t', '--show-types', action='store_true', help='show their types')
    service_list.add_argument(
        '-a', '--all', action='store_true', help="include the CLI's own services"
    )
    call_parser = verb(service, 'call', 'call a service and print its response', cmd_service_call)
    call_parser.add_argument('service', help='service name, e.g. /stf/order/process')
    call_parser.add_argument('type', help='service type').completer = type_completer  # type: ignore[attr-defined]
    call_parser.add_argument('values', nargs='?', default='{}', help='the request as YAML')
    call_parser.add_argument(
        '--timeout', type=float, default=10.0, help='wait for the service and its reply (s)'
    )
    call_parser.add_argument('--json', action='store_true', help='the response as one JSON line')
    add_enum_names_option(call_parser)
    introspection.add_service_actions(service)

    params.add_parser(verbs)

    interface = group(verbs, 'interface', 'message and service types')
    interface_list = verb(interface, 'list', 'list every known interface', cmd_interface_list)
    interface_list.add_argument('--only', choices=['msg', 'srv'], help='messages or services only')
    introspection.add_interface_actions(interface)

    from stf_nodes.cli import bag

    bag.add_parser(verbs)
    watch.add_parser(verbs)
    doctor.add_parser(verbs)

    db = group(verbs, 'db', 'the database schema')
    for action, func, text in (
        ('upgrade', cmd_db_upgrade, 'create or upgrade every table to the newest revision'),
        ('current', cmd_db_current, 'show the revision of the database'),
    ):
        db_action = verb(db, action, text, func)
        db_action.add_argument(
            '--db', metavar='URL', help='SQLAlchemy URL (default: DATABASE_URL, else SQLite ./)'
        )

    history = group(verbs, 'history', 'generated history')
    generate = verb(
        history,
        'generate',
        'simulate weeks of operation into the database (stf_nodes.history)',
        cmd_history_generate,
    )
    from stf_nodes.history.cli import add_arguments as add_history_arguments

    add_history_arguments(generate)

    from stf_nodes.cli import maintenance

    maintenance.add_parser(verbs, group)

    export = verb(
        verbs,
        'export-interfaces',
        'write an ament_cmake stf_msgs package for a ROS 2 workspace',
        cmd_export_interfaces,
    )
    export.add_argument('directory', help='where to write the package')

    dds = group(verbs, 'dds', 'real ROS 2 (rclpy on DDS) beside the graph')
    dds_setup = verb(
        dds,
        'setup',
        'create .venv-dds: ROS 2 Kilted wheels, this project and stf_msgs built with rosidl '
        '(cached: nothing is rebuilt unless an input changed)',
        cmd_dds_setup,
    )
    dds_setup.add_argument(
        '--venv',
        metavar='DIR',
        help='where (default: STF_DDS_VENV, else .venv-dds in the checkout)',
    )
    _mark_leaves(parser)
    return parser


def _mark_leaves(parser: argparse.ArgumentParser) -> None:
    """Let every sub-command report unknown arguments with its own usage (`stf topic list -x`
    shows the usage of `stf topic list`, not of `stf`)."""
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not actions:
        parser.set_defaults(_parser=parser)
    for action in actions:
        for sub in action.choices.values():
            _mark_leaves(sub)


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ['router']:
        # The router alone needs neither the parser nor the message types: it starts at once
        # (the launch waits for it before any node).
        return cmd_router(argparse.Namespace())
    if argv[:1] == ['launch']:
        # `stf launch` owns its whole command line (options may come first, like
        # `stf launch --show-args FILE`) and its own signal handling.
        from stf_nodes.launcher import launch_main

        return launch_main(argv[1:])
    parser = build_parser()
    try:
        import argcomplete

        argcomplete.autocomplete(parser)
    except ImportError:  # completion is a convenience; the CLI works without it
        pass
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:
            getattr(args, '_parser', parser).error(f'unrecognized arguments: {" ".join(extra)}')
    except SystemExit as exit_:
        return USAGE if exit_.code not in (0, None) else 0
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        return args.func(args)
    except CliError as exc:
        print(f'stf: {exc}', file=sys.stderr)
        return FAILURE
    except KeyboardInterrupt:
        return 130
    except (BrokenPipeError, OutputClosed):
        # The reader is gone (`| head`): end quietly, and keep the interpreter from reporting
        # the pipe again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == '__main__':
    exit_process(main())
