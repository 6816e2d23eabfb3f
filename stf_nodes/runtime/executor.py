"""Executors: run the callbacks of one or more nodes, one at a time (rclpy's model).

Callbacks of one executor never overlap: every callback runs holding the executor's run
lock. While the executor spins and is idle, work that arrives (a sample, a query) runs at once
on the Zenoh thread that delivered it; otherwise the entity is queued and the spinning thread
runs it. Timers run on the spinning thread when due on their clock. Nodes that were not yet
added to an executor keep their work until they are.

Fairness: each turn runs the due timers, then everything that was queued when the turn began,
so a busy timer (a fast sim clock makes a 20 Hz timer fire hundreds of times a second) cannot
leave a service request waiting behind a backlog. Wake-ups (the clock advanced) are coalesced:
at most one is queued.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import TYPE_CHECKING, Any

from stf_nodes.runtime.context import Context, get_default_context

if TYPE_CHECKING:
    from stf_nodes.runtime.entities import Future
    from stf_nodes.runtime.node import Node

#: Longest sleep while sim-time timers exist: sim time may advance at any rate.
_SIM_TIME_POLL_S = 0.05


class _Wake:
    """The work item that wakes the executor (clock advanced, node added, shutdown)."""

    def __init__(self, executor: SingleThreadedExecutor) -> None:
        self._executor = executor

    def execute(self) -> None:
        self._executor._woken = False


class SingleThreadedExecutor:
    def __init__(self, *, context: Context | None = None) -> None:
        self.context = context or get_default_context()
        self._nodes: list[Node] = []
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._spinning = 0
        self._stopped = False
        self._wake_item = _Wake(self)
        self._woken = False

    def add_node(self, node: Node) -> None:
        with self._lock:
            if node not in self._nodes:
                self._nodes.append(node)
        node._attach(self)

    def remove_node(self, node: Node) -> None:
        with self._lock:
            if node in self._nodes:
                self._nodes.remove(node)
        node._detach(self)

    def get_nodes(self) -> list[Node]:
        with self._lock:
            return list(self._nodes)

    def post(self, item: Any) -> None:
        """Queue work from any thread."""
        self._work.put(item)

    def run_inline(self, entity: Any) -> bool:
        """Run `entity` on the calling thread if the executor spins and is idle."""
        if not self._spinning or not self._run_lock.acquire(blocking=False):
            return False
        try:
            entity.execute()
        finally:
            self._run_lock.release()
        return True

    def wake(self) -> None:
        if not self._woken:
            self._woken = True
            self._work.put(self._wake_item)

    def _due_timer_wait(self) -> float | None:
        """Run every due timer; return how long to wait for the next (None: no timers)."""
        wait: float | None = None
        for node in self.get_nodes():
            for timer in list(node.timers):
                remaining = timer.time_until_next_call_ns()
                if remaining is None:
                    continue
                if remaining <= 0:
                    with self._run_lock:
                        timer.execute()
                    remaining = timer.time_until_next_call_ns()
                    if remaining is None:
                        continue
                seconds = max(remaining, 0) / 1e9
                if timer.clock.ros_time_is_active:
                    seconds = min(seconds, _SIM_TIME_POLL_S)
                wait = seconds if wait is None else min(wait, seconds)
        return wait

    def spin_once(self, timeout_sec: float | None = None) -> None:
        """Run due timers, then wait up to `timeout_sec` for one work item and run it."""
        self._spinning += 1
        try:
            self._spin_once(timeout_sec)
        finally:
            self._spinning -= 1

    def _spin_once(self, timeout_sec: float | None) -> None:
        wait = self._due_timer_wait()
        if timeout_sec is not None:
            wait = timeout_sec if wait is None else min(wait, timeout_sec)
        backlog = self._work.qsize()
        try:
            item = (
                self._work.get(timeout=wait)
                if wait is None or wait > 0
                else self._work.get_nowait()
            )
        except queue.Empty:
            return
        with self._run_lock:
            item.execute()
        for _ in range(backlog - 1):  # the rest of what was queued when the turn began
            try:
                item = self._work.get_nowait()
            except queue.Empty:
                return
            with self._run_lock:
                item.execute()

    def spin(self) -> None:
        while self.context.ok and not self._stopped:
            self.spin_once(timeout_sec=0.5)

    def spin_until_future_complete(self, future: Future, timeout_sec: float | None = None) -> None:
        deadline = None if timeout_sec is None else time.monotonic() + timeout_sec
        future.add_done_callback(lambda _: self.wake())
        while self.context.ok and not future.done():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            self.spin_once(timeout_sec=0.5 if remaining is None else min(remaining, 0.5))

    def shutdown(self) -> None:
        self._stopped = True
        self.wake()
        for node in self.get_nodes():
            self.remove_node(node)


Executor = SingleThreadedExecutor
