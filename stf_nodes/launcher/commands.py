"""Node command lines, built exactly as ``ros2 launch`` (launch_ros) builds them.

``<executable> [args...] --ros-args -r __node:=NAME -r __ns:=/NS [--params-file FILE]...
[-r from:=to]...``: parameter files and inline parameters keep their XML order; each run of
inline ``<param name value>`` becomes a temporary params file ``/NS/NAME: ros__parameters:``
(``/**`` when the node name is not given), which is what launch_ros writes too.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

import yaml

from stf_nodes.launcher.model import LaunchError, NodeSpec
from stf_nodes.launcher.substitutions import PACKAGE
from stf_nodes.launcher.supervisor import ProcessSpec

ExecutableResolver = Callable[[str, str], Sequence[str]]
"""Maps ``(pkg, exec)`` to the argv prefix that runs it; raises LaunchError when unknown."""


def console_scripts() -> dict[str, metadata.EntryPoint]:
    """Console scripts of the installed ``stf_digital_twin`` distribution, by name."""
    try:
        distribution = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        return {}
    return {ep.name: ep for ep in distribution.entry_points if ep.group == 'console_scripts'}


def node_executables() -> list[str]:
    """Names of the installed node executables (console scripts ending in ``_node``)."""
    return sorted(name for name in console_scripts() if name.endswith('_node'))


def entry_point_of(executable: str) -> metadata.EntryPoint:
    """The console script ``executable`` of ``stf_digital_twin``; LaunchError when unknown."""
    entry_point = console_scripts().get(executable)
    if entry_point is None:
        known = ', '.join(node_executables()) or 'none installed yet'
        raise LaunchError(
            f'executable {executable!r} not found in package {PACKAGE!r} (node executables: '
            f'{known})'
        )
    return entry_point


def resolve_executable(package: str, executable: str) -> list[str]:
    """Run a console script of ``stf_digital_twin`` with this interpreter.

    Running the entry point through ``sys.executable -c`` works for editable and regular
    installs alike and never picks up a different environment's script from ``PATH``.
    """
    if package != PACKAGE:
        raise LaunchError(f'package {package!r} is not available (only {PACKAGE!r})')
    entry_point = entry_point_of(executable)
    function = entry_point.attr.split('.')[0]
    code = f'import sys; from {entry_point.module} import {function}; '
    code += f'sys.exit({entry_point.attr}())'
    return [sys.executable, '-c', code]


def node_command(node: NodeSpec, *, resolver: ExecutableResolver, params_dir: Path) -> list[str]:
    """The argv of one node; inline parameters are written as YAML files into ``params_dir``."""
    try:
        command = [*resolver(node.package, node.executable), *node.args, '--ros-args']
    except LaunchError as error:
        raise LaunchError(f'{node.source}: {error}') from None
    if node.name is not None:
        command += ['-r', f'__node:={node.name}']
    command += ['-r', f'__ns:={node.namespace}']
    for parameters in node.parameters:
        if isinstance(parameters, Path):
            command += ['--params-file', str(parameters)]
            continue
        document = {node.full_name or '/**': {'ros__parameters': dict(parameters)}}
        with tempfile.NamedTemporaryFile(
            'w',
            dir=params_dir,
            prefix=f'{node.label.replace("/", "_")}_params_',
            suffix='.yaml',
            delete=False,
        ) as file:
            yaml.safe_dump(document, file, default_flow_style=False, sort_keys=False)
        command += ['--params-file', file.name]
    for source, target in node.remaps:
        command += ['-r', f'{source}:={target}']
    return command


def build_processes(
    nodes: Sequence[NodeSpec], *, resolver: ExecutableResolver, params_dir: Path
) -> list[ProcessSpec]:
    """Process specs for all nodes; resolves every executable before anything is started."""
    return [
        ProcessSpec(
            label=node.label,
            argv=tuple(node_command(node, resolver=resolver, params_dir=params_dir)),
            env=dict(node.env or {}),
            respawn=node.respawn,
            respawn_delay=node.respawn_delay,
        )
        for node in nodes
    ]
