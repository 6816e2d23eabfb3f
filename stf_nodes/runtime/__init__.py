"""The node runtime on Zenoh, shaped like rclpy and wire-compatible with rmw_zenoh.

Module-level helpers mirror rclpy: `init`, `shutdown`, `ok`, `spin`, `spin_once`,
`spin_until_future_complete`, and `main_wrapper` for node executables.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from typing import Any

from stf_nodes.runtime.clock import Clock, Duration, Time
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


def run_node(factory: Callable[[], Node], args: list[str] | None = None) -> int:
    """The body of every node executable: init, build, spin until Ctrl-C or SIGTERM, clean up.

    Returns the process exit status: 0 on a clean stop, 1 when the node could not start.
    """
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    node = None
    try:
        init(sys.argv[1:] if args is None else args)
        node = factory()
        spin(node)
    except KeyboardInterrupt:
        pass
    except (RouterUnavailableError, ParameterError, ValueError) as exc:
        print(f'[FATAL] {exc}', file=sys.stderr, flush=True)
        return 1
    finally:
        if node is not None:
            node.destroy_node()
        shutdown()
    return 0
