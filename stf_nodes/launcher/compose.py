"""Composition: all nodes of a launch in one process, one Context (one Zenoh session), one executor.

``stf launch --compose FILE`` interprets the file as usual and then starts one supervised
*container* process (``python -m stf_nodes.launcher.compose PLAN``) instead of one process per
node. The router, output prefixing and Ctrl-C handling are the supervisor's, as without
``--compose``.

Convention (what a node module must provide to be composable): the console script
``NAME = stf_nodes.process:NAME`` runs the ``main`` of ``stf_nodes.NAME``, a module that defines
``NODE_CLASS``, the
:class:`stf_nodes.runtime.Node` subclass its ``main`` runs, constructible as
``NODE_CLASS(context=..., cli_args=[...])`` (its ``__init__`` passes ``**kwargs`` on to
``runtime.Node``). An executable without it is refused with a clear error before anything
starts.

Each node gets, as node-local ``cli_args``, exactly the ``--ros-args`` its own process would
get from :func:`~stf_nodes.launcher.commands.node_command`: ``__node``, ``__ns``, one
``--params-file`` per ``<param from>`` and per run of inline ``<param>``, and the remaps; so
names, namespaces and parameters are the same as with separate processes.

Differences from separate processes, by design:

- ``respawn`` cannot apply per node: a node that dies takes the process with it. The container
  is a required process: if a node's constructor fails it reports the node and the error and
  exits (status 78 for a configuration error: a constructor that failed on bad parameters would
  fail again), and the launch stops with status 1; the same happens if the container dies.
- ``<node args>`` and per-node ``<env>`` cannot be honoured in a shared process and are
  refused as bad input.
"""

from __future__ import annotations

import importlib
import json
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stf_nodes import exit_codes, runtime
from stf_nodes.launcher.commands import entry_point_of, node_command
from stf_nodes.launcher.model import LaunchError, NodeSpec
from stf_nodes.launcher.substitutions import PACKAGE
from stf_nodes.launcher.supervisor import ProcessSpec
from stf_nodes.process import exit_process, main_module

CONTAINER_LABEL = 'container'
NODE_CLASS_ATTRIBUTE = 'NODE_CLASS'


@dataclass(frozen=True, kw_only=True)
class ComposedNode:
    """One node of the container: its output label, executable and node-local ROS args."""

    label: str
    executable: str
    cli_args: tuple[str, ...]


def node_class(executable: str) -> type[runtime.Node]:
    """The node class of an installed node executable (its module's ``NODE_CLASS``)."""
    module_name = main_module(entry_point_of(executable).attr)
    module = importlib.import_module(module_name)
    cls = getattr(module, NODE_CLASS_ATTRIBUTE, None)
    if not isinstance(cls, type) or not issubclass(cls, runtime.Node):
        raise LaunchError(
            f'executable {executable!r} cannot be composed: module {module_name} has no '
            f'{NODE_CLASS_ATTRIBUTE} (add `{NODE_CLASS_ATTRIBUTE} = <its runtime.Node '
            'subclass>` next to main); run without --compose to start it as a process'
        )
    return cls


def plan_composition(nodes: Sequence[NodeSpec], *, params_dir: Path) -> list[ComposedNode]:
    """The container's nodes; checks that every executable is composable before any start."""

    def resolver(package: str, executable: str) -> list[str]:
        if package != PACKAGE:
            raise LaunchError(f'package {package!r} is not available (only {PACKAGE!r})')
        node_class(executable)
        return []

    plan = []
    for node in nodes:
        if node.args:
            raise LaunchError(f'{node.source}: --compose cannot pass node args {list(node.args)}')
        if node.env:
            raise LaunchError(f'{node.source}: --compose cannot set a per-node <env>')
        command = node_command(node, resolver=resolver, params_dir=params_dir)
        plan.append(
            ComposedNode(
                label=node.label,
                executable=node.executable,
                cli_args=tuple(command[command.index('--ros-args') + 1 :]),
            )
        )
    return plan


def container_process(plan: Sequence[ComposedNode], *, params_dir: Path) -> ProcessSpec:
    """The one supervised process that runs ``plan``; the plan is written into ``params_dir``."""
    path = params_dir / 'compose_plan.json'
    path.write_text(
        json.dumps(
            [
                {'label': n.label, 'executable': n.executable, 'cli_args': list(n.cli_args)}
                for n in plan
            ],
            indent=1,
        )
    )
    return ProcessSpec(
        label=CONTAINER_LABEL, argv=(sys.executable, '-m', 'stf_nodes.launcher.compose', str(path))
    )


def load_plan(path: Path) -> list[ComposedNode]:
    """Read a plan written by :func:`container_process`."""
    return [
        ComposedNode(
            label=item['label'], executable=item['executable'], cli_args=tuple(item['cli_args'])
        )
        for item in json.loads(path.read_text())
    ]


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run_container(plan: Sequence[ComposedNode]) -> int:
    """Build every node on one context and spin them on one executor until SIGINT/SIGTERM.

    Returns 0 on a clean stop, 1 when no router answered and 78 (`exit_codes.CONFIG`) when a
    node's configuration is wrong.
    """
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    context = runtime.Context([])
    executor = runtime.SingleThreadedExecutor(context=context)
    nodes: list[runtime.Node] = []
    try:
        for entry in plan:
            try:
                node = node_class(entry.executable)(context=context, cli_args=list(entry.cli_args))
            except runtime.RouterUnavailableError as error:
                print(f'[FATAL] {entry.label} could not start: {error}', file=sys.stderr)
                return exit_codes.FAILURE
            except (LaunchError, runtime.ParameterError, ValueError) as error:
                print(
                    f'[FATAL] {entry.label} could not start: configuration error: {error}',
                    file=sys.stderr,
                )
                return exit_codes.CONFIG
            nodes.append(node)
            executor.add_node(node)
        names = ', '.join(node.get_fully_qualified_name() for node in nodes)
        print(f'{len(nodes)} nodes in one process: {names}', flush=True)
        executor.spin()
    except KeyboardInterrupt:
        pass
    finally:
        for node in nodes:
            node.destroy_node()
        executor.shutdown()
        context.shutdown()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m stf_nodes.launcher.compose PLAN``: the container process of a launch."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print('usage: python -m stf_nodes.launcher.compose PLAN.json', file=sys.stderr)
        return 2
    return run_container(load_plan(Path(args[0])))


if __name__ == '__main__':
    exit_process(main())
