"""``stf launch [FILE] [name:=value ...]``: interpret a launch file and supervise its nodes."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from stf_nodes.launcher.brokers import embedded_brokers
from stf_nodes.launcher.commands import ExecutableResolver, build_processes, resolve_executable
from stf_nodes.launcher.model import LaunchError, NodeSpec
from stf_nodes.launcher.parser import declared_arguments, format_arguments, load_launch
from stf_nodes.launcher.substitutions import PACKAGE, find_pkg_share
from stf_nodes.launcher.supervisor import DEFAULT_ROUTER, ProcessSpec, RouterSpec, Supervisor
from stf_nodes.runtime.router import zenoh_router_answers

DEFAULT_FILE = 'factory.launch.xml'


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='stf launch',
        description='Run a ROS 2 launch XML file: start its nodes as supervised processes.',
        epilog=f'FILE defaults to launch/{DEFAULT_FILE} of {PACKAGE}; a bare file name is also '
        'looked up in that launch directory, and "PACKAGE FILE" works as in ros2 launch. '
        'Exit status: 0 on a clean end or Ctrl-C, 1 when a node failed, 2 on bad input.',
    )
    parser.add_argument('items', nargs='*', metavar='[PACKAGE] [FILE] [name:=value]')
    parser.add_argument('-s', '--show-args', action='store_true', help='list the arguments')
    parser.add_argument(
        '-p',
        '--print',
        action='store_true',
        help='print the node command lines, start nothing (files they name are kept under '
        '~/.cache/stf_digital_twin/launch_print/)',
    )
    parser.add_argument(
        '--compose',
        action='store_true',
        help='run all nodes in one process sharing one Zenoh session (respawn does not apply)',
    )
    parser.add_argument('--no-router', action='store_true', help='never start a Zenoh router')
    parser.add_argument(
        '--no-broker',
        action='store_true',
        help='never start the embedded MQTT broker for an mqtt_bridge node',
    )
    parser.add_argument(
        '--sigint-timeout', type=float, default=5.0, metavar='S', help='SIGINT → SIGTERM (5 s)'
    )
    parser.add_argument(
        '--sigterm-timeout', type=float, default=3.0, metavar='S', help='SIGTERM → SIGKILL (3 s)'
    )
    return parser


def _split_items(items: Sequence[str]) -> tuple[Path, dict[str, str]]:
    """Separate ``[PACKAGE] [FILE]`` from ``name:=value`` arguments."""
    arguments: dict[str, str] = {}
    positional: list[str] = []
    for item in items:
        name, separator, value = item.partition(':=')
        if separator:
            if not name:
                raise LaunchError(f'launch argument {item!r} has no name')
            arguments[name] = value
        else:
            positional.append(item)
    if len(positional) > 2:
        raise LaunchError(f'expected [PACKAGE] [FILE] and name:=value arguments, got {positional}')
    if len(positional) == 2:
        return find_pkg_share(positional[0]) / 'launch' / positional[1], arguments
    if not positional:
        return find_pkg_share(PACKAGE) / 'launch' / DEFAULT_FILE, arguments
    path = Path(positional[0])
    shared = find_pkg_share(PACKAGE) / 'launch' / positional[0]
    if not path.exists() and path.name == positional[0] and shared.is_file():
        return shared, arguments
    return path, arguments


def launch_main(
    argv: Sequence[str],
    *,
    resolver: ExecutableResolver = resolve_executable,
    router_command: Sequence[str] | None = None,
    output: TextIO | None = None,
) -> int:
    """Entry point of ``stf launch``; ``argv`` is everything after ``launch``.

    ``resolver`` maps ``(pkg, exec)`` to an argv prefix and ``router_command`` replaces
    ``stf router``; both exist so tests can run fake nodes and routers.
    """
    try:
        options = _parser().parse_args(list(argv))
    except SystemExit as exit_:
        return int(exit_.code or 0)
    out = output or sys.stdout
    try:
        path, arguments = _split_items(options.items)
        if options.show_args:
            out.write(format_arguments(declared_arguments(path)) + '\n')
            return 0
        description = load_launch(path, arguments)
        if options.print:
            params_dir = _print_dir(path, arguments, options.compose)
            for process in _processes(description.nodes, options.compose, resolver, params_dir):
                env = [f'{name}={shlex.quote(value)}' for name, value in process.env.items()]
                out.write(' '.join([*env, shlex.join(process.argv)]) + '\n')
            if not any(params_dir.iterdir()):
                params_dir.rmdir()
            return 0
        with tempfile.TemporaryDirectory(prefix='stf_launch_') as params_dir:
            processes = _processes(description.nodes, options.compose, resolver, Path(params_dir))
            router = None
            if not options.no_router:
                router = RouterSpec(
                    argv=tuple(router_command or (sys.executable, '-m', 'stf_nodes.cli', 'router')),
                    endpoint=os.environ.get('ZENOH_ROUTER', DEFAULT_ROUTER),
                    # A replaced router command is a test stand-in that speaks no Zenoh.
                    probe=None if router_command else zenoh_router_answers,
                )
            # An MQTT bridge's broker on this machine is started when nothing listens there.
            brokers = [] if options.no_broker else embedded_brokers(description.nodes)
            supervisor = Supervisor(
                output=out,
                sigint_timeout=options.sigint_timeout,
                sigterm_timeout=options.sigterm_timeout,
            )
            return _run_with_signals(supervisor, processes, router, brokers)
    except LaunchError as error:
        sys.stderr.write(f'stf launch: error: {error}\n')
        return 2


def _print_dir(path: Path, arguments: dict[str, str], compose: bool) -> Path:
    """Where ``--print`` writes the files its printed commands name (inline parameters, the
    composition plan): kept, so the commands can be run as they are, but one directory per
    launch file and arguments under the user's cache directory, emptied on every print, so
    printing again leaves nothing new behind (unlike a fresh temporary directory each time).
    """
    key = json.dumps([str(path.resolve()), sorted(arguments.items()), compose])
    cache = Path(os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache')
    directory = cache / PACKAGE / 'launch_print' / hashlib.sha256(key.encode()).hexdigest()[:16]
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


def _processes(
    nodes: Sequence[NodeSpec], compose: bool, resolver: ExecutableResolver, params_dir: Path
) -> list[ProcessSpec]:
    """One process per node, or with ``compose`` the one container process of all nodes."""
    if not compose:
        return build_processes(nodes, resolver=resolver, params_dir=params_dir)
    # Imported here: it loads the node runtime, which only --compose needs in the launcher.
    from stf_nodes.launcher.compose import container_process, plan_composition

    plan = plan_composition(nodes, params_dir=params_dir)
    return [container_process(plan, params_dir=params_dir)]


def _run_with_signals(
    supervisor: Supervisor,
    processes: list[ProcessSpec],
    router: RouterSpec | None,
    brokers: list[RouterSpec],
) -> int:
    """Run the supervisor with SIGINT/SIGTERM turned into a clean shutdown."""
    previous: dict[signal.Signals, object] = {}
    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGINT, signal.SIGTERM):
            previous[number] = signal.signal(number, lambda *_: supervisor.request_shutdown())
    try:
        return supervisor.run(processes, router=router, brokers=brokers)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
