"""`stf run PACKAGE EXECUTABLE [ARGS ...]`: start one node executable, as `ros2 run` does.

The executable is a console script of the installed package (the same lookup `stf launch`
uses), run with this interpreter; the arguments go to it unchanged, so ROS arguments work as
with `ros2 run`: `stf run stf_digital_twin hbw_node --ros-args -r __ns:=/factory_2 -p
publish_rate:=5.0`. Every `*_node` script accepts `--ros-args ...` and prints its usage with
`--help`. The exit status is the node's.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from stf_nodes.cli.common import CliError, verb


def cmd_run(args: argparse.Namespace) -> int:
    from stf_nodes.launcher.commands import node_executables, resolve_executable
    from stf_nodes.launcher.model import LaunchError

    if args.executable is None:
        print('\n'.join(node_executables()))
        return 0
    try:
        argv = [*resolve_executable(args.package, args.executable), *args.arguments]
    except LaunchError as exc:
        raise CliError(str(exc)) from exc
    sys.stdout.flush()
    # Replace this process: signals (Ctrl-C) and the exit status are the node's own.
    os.execv(argv[0], argv)  # noqa: S606 - argv is our interpreter and a console script
    return 0  # not reached


def add_parser(verbs: Any) -> None:
    run = verb(verbs, 'run', 'run a node executable of a package (like ros2 run)', cmd_run)
    run.add_argument('package', help='the package: stf_digital_twin')
    run.add_argument(
        'executable', nargs='?', help='e.g. hbw_node (omitted: list the node executables)'
    )
    run.add_argument(
        'arguments',
        nargs=argparse.REMAINDER,
        help='passed to the executable, e.g. --ros-args -p publish_rate:=5.0',
    )
