"""The node runtime on Zenoh, shaped like rclpy and wire-compatible with rmw_zenoh.

Module-level helpers mirror rclpy: `init`, `shutdown`, `ok`, `spin`, `spin_once`,
`spin_until_future_complete`, and `main_wrapper` for node executables.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from typing import Any

from stf_nodes import exit_codes
from stf_nodes.runtime.arguments import parse_ros_args
from stf_nodes.runtime.clock import Clock, Duration, SteadyClock, Time
from stf_nodes.runtime.context import (
    Context,
    RouterUnavailableError,
    get_default_context,
    init,
    shutdown,
)
from stf_nodes.runtime.entities import (
    Client,
    Future,
    GuardCondition,
    Publisher,
    Service,
    ServiceError,
    Timer,
)
from stf_nodes.runtime.executor import Executor, SingleThreadedExecutor
from stf_nodes.runtime.node import Node
from stf_nodes.runtime.parameters import Parameter, ParameterError, ParameterType
from stf_nodes.runtime.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_latched,
    qos_profile_sensor_data,
    qos_profile_system_default,
)

__all__ = [
    'Client',
    'Clock',
    'Context',
    'DurabilityPolicy',
    'Duration',
    'Executor',
    'Future',
    'GuardCondition',
    'HistoryPolicy',
    'Node',
    'Parameter',
    'ParameterError',
    'ParameterType',
    'Publisher',
    'QoSProfile',
    'ReliabilityPolicy',
    'RouterUnavailableError',
    'Service',
    'ServiceError',
    'SingleThreadedExecutor',
    'SteadyClock',
    'Time',
    'Timer',
    'get_default_context',
    'init',
    'ok',
    'qos_profile_latched',
    'qos_profile_sensor_data',
    'qos_profile_system_default',
    'run_node',
    'shutdown',
    'spin',
    'spin_once',
    'spin_until_future_complete',
]


def ok(*, context: Context | None = None) -> bool:
    try:
        return (context or get_default_context()).ok
    except RuntimeError:
        return False


def _executor_for(node: Node, executor: Executor | None) -> Executor:
    executor = executor or SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    return executor


def spin(node: Node, executor: Executor | None = None) -> None:
    _executor_for(node, executor).spin()


def spin_once(
    node: Node, *, executor: Executor | None = None, timeout_sec: float | None = None
) -> None:
    _executor_for(node, executor).spin_once(timeout_sec=timeout_sec)


def spin_until_future_complete(
    node: Node, future: Future, executor: Executor | None = None, timeout_sec: float | None = None
) -> None:
    _executor_for(node, executor).spin_until_future_complete(future, timeout_sec)


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


NODE_USAGE = """\
usage: {program} [-h] [--ros-args [-r FROM:=TO] [-r __node:=NAME] [-r __ns:=/NAMESPACE]
       [-p NAME:=VALUE] [--params-file FILE] [--log-level LEVEL] [-e ENCLAVE] [--]]

{doc}
ROS arguments (as `ros2 run` and `ros2 launch` pass them):
  -r, --remap FROM:=TO     remap a topic or service name; __node:= renames the node and
                           __ns:= sets its namespace
  -p, --param NAME:=VALUE  set a parameter (the value is YAML: 5.0, true, "[1, 2]")
  --params-file FILE       a ROS 2 parameter file (node: ros__parameters: ...)
  --log-level LEVEL        DEBUG, INFO, WARN, ERROR or FATAL
  -e, --enclave ENCLAVE    the security enclave

Exit status: 0 after Ctrl-C or SIGTERM, {failure} when no router answers, {usage} on unknown
arguments, {config} when the configuration is wrong (`stf launch` does not respawn a node that
exits with it).
"""


def _program(factory: Callable[[], Node]) -> str:
    """The executable's name: node modules are named after their console scripts."""
    return getattr(factory, '__module__', 'node').rsplit('.', 1)[-1]


def _usage(factory: Callable[[], Node]) -> str:
    module = sys.modules.get(getattr(factory, '__module__', ''), None)
    return NODE_USAGE.format(
        program=_program(factory),
        doc=((module.__doc__ or '') if module else '').strip() + '\n',
        failure=exit_codes.FAILURE,
        usage=exit_codes.USAGE,
        config=exit_codes.CONFIG,
    )


def run_node(factory: Callable[[], Node], args: list[str] | None = None) -> int:
    """The body of every node executable: init, build, spin until Ctrl-C or SIGTERM, clean up.

    `-h`/`--help` prints the node's usage (its module docstring) and starts nothing; any
    other argument outside `--ros-args` is refused. Returns the process exit status (see
    `stf_nodes.exit_codes`): 0 on a clean stop, 1 when no router answered, 2 on unknown
    arguments, 78 when the configuration is wrong (so the launch does not respawn it).
    """
    argv = sys.argv[1:] if args is None else list(args)
    try:
        own = parse_ros_args(argv).unparsed
    except ValueError as exc:
        print(f'[FATAL] configuration error: {exc}', file=sys.stderr, flush=True)
        return exit_codes.CONFIG
    if '-h' in own or '--help' in own:
        print(_usage(factory), end='')
        return 0
    if own:
        program = _program(factory)
        print(
            f'{program}: unrecognized arguments: {" ".join(own)} (node settings go after '
            f'--ros-args, e.g. {program} --ros-args -p NAME:=VALUE; see {program} --help)',
            file=sys.stderr,
            flush=True,
        )
        return exit_codes.USAGE
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    node = None
    try:
        init(argv)
        node = factory()
        spin(node)
    except KeyboardInterrupt:
        pass
    except RouterUnavailableError as exc:
        print(f'[FATAL] {exc}', file=sys.stderr, flush=True)
        return exit_codes.FAILURE
    except (ParameterError, ValueError) as exc:
        # A wrong parameter file, value or name: the same start would fail the same way.
        print(f'[FATAL] configuration error: {exc}', file=sys.stderr, flush=True)
        return exit_codes.CONFIG
    finally:
        if node is not None:
            node.destroy_node()
        shutdown()
    return 0
