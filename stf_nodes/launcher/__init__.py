"""``stf launch``: a ROS 2 launch XML interpreter and process supervisor.

Layers: :mod:`.substitutions` and :mod:`.parser` turn a launch file into plain
:class:`NodeSpec` data (pure, no processes); :mod:`.commands` builds the node command lines
exactly as ``ros2 launch`` does; :mod:`.supervisor` runs them; :mod:`.cli` is ``stf launch``.
"""

from __future__ import annotations

from stf_nodes.launcher.cli import launch_main
from stf_nodes.launcher.commands import build_processes, node_command, resolve_executable
from stf_nodes.launcher.model import ArgDecl, LaunchDescription, LaunchError, NodeSpec
from stf_nodes.launcher.parser import declared_arguments, load_launch
from stf_nodes.launcher.supervisor import ProcessSpec, RouterSpec, Supervisor

__all__ = [
    'ArgDecl',
    'LaunchDescription',
    'LaunchError',
    'NodeSpec',
    'ProcessSpec',
    'RouterSpec',
    'Supervisor',
    'build_processes',
    'declared_arguments',
    'launch_main',
    'load_launch',
    'node_command',
    'resolve_executable',
]
