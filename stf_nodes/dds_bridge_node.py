"""`dds_bridge` node: the graph on DDS for ROS 2 peers on any middleware (real rclpy).

Runs real rclpy (ROS 2 Kilted wheels, rmw_fastrtps_cpp unless `RMW_IMPLEMENTATION` says
otherwise) beside our Zenoh runtime in one process, and mirrors topics both ways as CDR bytes
and services both ways (see `stf_nodes.bridges.dds.mirror`). `ROS_DOMAIN_ID` is the
domain on both sides.

rclpy lives in `.venv-dds` (`make dds` or `stf dds setup`), not in the project's own venv: when
rclpy is not importable, the executable replaces itself by `.venv-dds/bin/dds_bridge_node` (the venv
given by `STF_DDS_VENV`, else `.venv-dds` in the checkout), where this project is installed
too. Without that venv it stops with a configuration error (`stf launch` does not respawn it).
Started by `stf launch enable_dds:=true`.

Parameters:
- `discovery_period_s` (0.5): how often the DDS graph is read (the Zenoh graph is followed at
  once);
- `service_timeout_s` (10.0): how long a forwarded service call may take (a DDS client's in
  the graph, a graph client's on DDS).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

from stf_nodes import exit_codes, runtime


class DdsBridgeNode(runtime.Node):
    """The bridge node: parameters and the mirror."""

    def __init__(self, **kwargs: Any) -> None:
        if importlib.util.find_spec('rclpy') is None:  # composed into a process without it
            raise ValueError(
                'the dds_bridge node needs rclpy: run it as its own process (dds_bridge_node, '
                'which uses .venv-dds from `make dds`), not composed'
            )
        super().__init__('dds_bridge', **kwargs)
        from stf_nodes.bridges.dds.mirror import DdsMirror, Settings

        settings = Settings(
            discovery_period_s=self.declare_parameter(
                'discovery_period_s', 0.5, description='period of DDS graph reads, s'
            ).value,
            service_timeout_s=self.declare_parameter(
                'service_timeout_s', 10.0, description='timeout of a forwarded service call, s'
            ).value,
        )
        self.mirror = DdsMirror(self, settings)
        self.mirror.start()

    def destroy_node(self) -> None:
        if not self.destroyed:
            self.mirror.stop()
        super().destroy_node()


NODE_CLASS = DdsBridgeNode


def _reexec_under_dds_venv(argv: list[str]) -> int:
    """Replace this process by the same node under `.venv-dds`'s Python (which has rclpy)."""
    from stf_nodes.bridges.dds.environment import RMW_IMPLEMENTATION, default_venv, venv_python

    # The venv's own console script, not `python -m`: that would put the working directory
    # first on sys.path, and in a checkout its stf_msgs would hide the rosidl-built one.
    executable = venv_python(default_venv()).with_name('dds_bridge_node')
    if not executable.exists():
        print(
            f'[FATAL] configuration error: rclpy is not installed here and {executable} does '
            'not exist; create it with `make dds` (or `stf dds setup`)',
            file=sys.stderr,
            flush=True,
        )
        return exit_codes.CONFIG
    os.environ.setdefault('RMW_IMPLEMENTATION', RMW_IMPLEMENTATION)
    os.execv(executable, [str(executable), *argv])  # noqa: S606
    return exit_codes.FAILURE  # not reached


def main(args: list[str] | None = None) -> int:
    argv = sys.argv[1:] if args is None else list(args)
    if importlib.util.find_spec('rclpy') is None and not ({'-h', '--help'} & set(argv)):
        return _reexec_under_dds_venv(argv)
    status = runtime.run_node(DdsBridgeNode, argv)
    # Everything is shut down and closed by now. Skip the interpreter's finalization: a thread
    # of rclpy or Fast DDS that still returns into Python then is killed inside C++ code, which
    # aborts the process ("exception not rethrown") and turns a clean stop into SIGABRT.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == '__main__':
    sys.exit(main())
