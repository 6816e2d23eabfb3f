"""Node loggers: `[LEVEL] [stamp] [name]: message` on stderr and `rcl_interfaces/msg/Log` on
`/rosout`, with rclpy's `once` and `throttle_duration_sec` filters (keyed by the calling line)."""

from __future__ import annotations

import inspect
import sys
import time
from typing import TYPE_CHECKING, Any

from stf_nodes import interfaces

if TYPE_CHECKING:
    from stf_nodes.runtime.entities import Publisher
    from stf_nodes.runtime.node import Node

LOG_LEVELS = {'DEBUG': 10, 'INFO': 20, 'WARN': 30, 'ERROR': 40, 'FATAL': 50}


class Logger:
    """Node logger: writes `[LEVEL] [stamp] [name]: msg` to stderr and publishes `/rosout`."""

    def __init__(self, node: Node, name: str, level: int) -> None:
        self._node = node
        self.name = name
        self.level = level
        self._once: set[tuple[str, int]] = set()
        self._last: dict[tuple[str, int], float] = {}
        self._publisher: Publisher | None = None

    def _log(
        self, level: str, message: str, *, once: bool = False, throttle_duration_sec: float = 0.0
    ) -> bool:
        severity = LOG_LEVELS[level]
        if severity < self.level:
            return False
        caller = inspect.currentframe()
        frame = caller.f_back.f_back if caller and caller.f_back else None
        where = (frame.f_code.co_filename, frame.f_lineno) if frame else ('', 0)
        function = frame.f_code.co_name if frame else ''
        # Frames held in locals form a cycle that keeps every caller's locals alive until the
        # garbage collector runs (a service's zenoh.Query stays unanswered-complete that long).
        del caller, frame
        if once:
            if where in self._once:
                return False
            self._once.add(where)
        if throttle_duration_sec:
            now = time.monotonic()
            if now - self._last.get(where, -1e18) < throttle_duration_sec:
                return False
            self._last[where] = now
        stamp = self._node.get_clock().now()
        print(
            f'[{level}] [{stamp.seconds():.9f}] [{self.name}]: {message}',
            file=sys.stderr,
            flush=True,
        )
        if self._publisher is not None:
            log = interfaces.get_message_class('rcl_interfaces/msg/Log')(
                stamp=stamp.to_msg(),
                level=severity,
                name=self.name,
                msg=message,
                file=where[0],
                function=function,
                line=where[1],
            )
            self._publisher.publish(log)
        return True

    def debug(self, message: str, **kwargs: Any) -> bool:
        return self._log('DEBUG', message, **kwargs)

    def info(self, message: str, **kwargs: Any) -> bool:
        return self._log('INFO', message, **kwargs)

    def warning(self, message: str, **kwargs: Any) -> bool:
        return self._log('WARN', message, **kwargs)

    warn = warning

    def error(self, message: str, **kwargs: Any) -> bool:
        return self._log('ERROR', message, **kwargs)

    def fatal(self, message: str, **kwargs: Any) -> bool:
        return self._log('FATAL', message, **kwargs)
