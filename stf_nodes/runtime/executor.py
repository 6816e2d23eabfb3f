"""Executors: run the callbacks of one or more nodes, one at a time (rclpy's model).

Callbacks of one executor never overlap: one thread at a time *owns* the executor and runs
callbacks. While the executor spins and nobody owns it, work that arrives (a sample, a query)
runs at once on the Zenoh thread that delivered it; otherwise the entity is queued and the
spinning thread runs it. Timers run on the spinning thread when due on their clock. Nodes
that were not yet added to an executor keep their work until they are.

Fairness: each turn runs the due timers, then everything that was queued when the turn began,
so a busy timer (a fast sim clock makes a 20 Hz timer fire hundreds of times a second) cannot
leave a service request waiting behind a backlog. Wake-ups (the clock advanced, a reply
arrived) are a counter, never queued work: any number of them costs one look.

A callback that raises is handled the same wherever it ran (inline on a Zenoh thread or from
the queue): `Node.callback_failed` logs it with its traceback and counts it, and the node goes
on, unless `STF_CALLBACK_ERRORS=raise` asks for rclpy's behaviour (the exception ends the
spin, so the process ends and its launch respawns it). Work queued behind the failing item is
not stranded: an endpoint hands its remaining items back to the executor.

A callback that calls a service and waits for the reply (`Client.call`) lends the executor
while it waits: the waiting thread runs the ready work of the executor's *other* nodes, never
of a node that has a callback waiting (so a node's callbacks still never interleave, exactly
as when each node has its own process). Without this, composition deadlocks: a scheduler's
service callback that calls a station's service in the same process would block the only
thread that can answer it, until the call times out.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stf_nodes.runtime.context import Context, get_default_context

if TYPE_CHECKING:
    from stf_nodes.runtime.entities import Future
    from stf_nodes.runtime.node import Node

#: Longest sleep while sim-time timers exist: sim time may advance at any rate.
_SIM_TIME_POLL_S = 0.05

_running = threading.local()


def running_executor() -> SingleThreadedExecutor | None:
    """The executor whose callback the calling thread is running, if any."""
    stack = getattr(_running, 'stack', None)
    return stack[-1] if stack else None


class SingleThreadedExecutor:
    def __init__(self, *, context: Context | None = None) -> None:
        self.context = context or get_default_context()
        self._nodes: list[Node] = []
        self._lock = threading.Lock()
        # The condition's lock, entered directly on the per-message paths (run_inline,
        # _release): `with` on the Condition itself goes through Python-level methods.
        self._mutex = threading.RLock()
        self._cond = threading.Condition(self._mutex)
        self._ready: collections.deque[Any] = collections.deque()
        self._owner: int | None = None  # the thread running callbacks now
        self._acquiring = 0  # threads waiting in _acquire
        self._busy: list[Node] = []  # nodes with a callback on the owner's stack
        self._wakeups = 0
        self._spinning = 0
        self._stopped = False
        self._fatal: Exception | None = None

    def add_node(self, node: Node) -> None:
        with self._lock:
            if node not in self._nodes:
                self._nodes.append(node)
        node._attach(self)
        self.wake()

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
        with self._cond:
            self._ready.append(item)
            self._cond.notify_all()

    def wake(self) -> None:
        """Make a waiting spin look again (clock advanced, node added, a reply arrived)."""
        with self._cond:
            self._wakeups += 1
            self._cond.notify_all()

    def run_inline(self, entity: Any) -> bool:
        """Run `entity` on the calling thread if the executor spins and nobody owns it."""
        if not self._spinning:
            return False
        with self._mutex:
            if self._owner is not None:
                return False
            self._owner = threading.get_ident()
        try:
            self._execute(entity)
        finally:
            self._release()
        return True

    # -- ownership ------------------------------------------------------------------------

    def _acquire(self) -> None:
        with self._cond:
            self._acquiring += 1
            try:
                while self._owner is not None:
                    self._cond.wait()
            finally:
                self._acquiring -= 1
            self._owner = threading.get_ident()

    def _release(self) -> None:
        with self._mutex:
            self._owner = None
            # Only work queued meanwhile or a thread waiting to own needs a wake-up: waking the
            # idle spinning thread after every message run inline costs a context switch each.
            if self._ready or self._acquiring:
                self._cond.notify_all()

    def _execute(self, item: Any) -> None:
        """Run one work item on the owning thread, marking its node busy meanwhile."""
        node = item.node
        try:
            stack = _running.stack
        except AttributeError:  # the thread's first callback
            stack = _running.stack = []
        stack.append(self)
        self._busy.append(node)
        try:
            item.execute()
        except Exception as exc:
            if node.callback_failed(item, exc):
                self._fatal = exc  # raised by the spinning thread, wherever the callback ran
                self.wake()
        finally:
            self._busy.remove(node)
            stack.pop()

    # -- spinning -------------------------------------------------------------------------

    def _run_due_timers(self, *, owned: bool) -> float | None:
        """Run every due timer of a node that is not busy; return how long to wait for the
        next (None: no timers). `owned`: the calling thread owns the executor already."""
        wait: float | None = None
        for node in self.get_nodes():
            if node in self._busy:
                continue
            for timer in list(node.timers):
                remaining = timer.time_until_next_call_ns()
                if remaining is None:
                    continue
                if remaining <= 0:
                    if not owned:
                        self._acquire()
                    try:
                        # Waiting for ownership, a lending callback may have run it already.
                        again = remaining if owned else timer.time_until_next_call_ns()
                        if again is not None and again <= 0 and node not in self._busy:
                            self._execute(timer)
                    finally:
                        if not owned:
                            self._release()
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
        fatal, self._fatal = self._fatal, None
        if fatal is not None:
            raise fatal

    def _spin_once(self, timeout_sec: float | None) -> None:
        with self._cond:
            wakeups = self._wakeups
        wait = self._run_due_timers(owned=False)
        if timeout_sec is not None:
            wait = timeout_sec if wait is None else min(wait, timeout_sec)
        deadline = None if wait is None else time.monotonic() + wait
        with self._cond:
            while True:
                if self._owner is None and self._ready:
                    backlog = len(self._ready)
                    item = self._ready.popleft()
                    self._owner = threading.get_ident()
                    break
                if self._wakeups != wakeups:
                    return
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return
                self._cond.wait(remaining)
        try:
            self._execute(item)
            for _ in range(backlog - 1):  # the rest of what was queued when the turn began
                with self._cond:
                    if not self._ready:
                        break
                    item = self._ready.popleft()
                self._execute(item)
        finally:
            self._release()

    def lend_until(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """While a callback on this thread waits for `done()`, run the ready work and due
        timers of the nodes that have no callback running. Only the owning thread may call
        this; returns `done()` at the end (False after `timeout_s`). Whoever makes `done()`
        true must call `wake()`."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._cond:
                wakeups = self._wakeups
            if done():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return done()
            wait = self._run_due_timers(owned=True)
            with self._cond:
                item = self._take_ready_of_idle_node()
                if item is None:
                    if self._wakeups == wakeups:
                        self._cond.wait(remaining if wait is None else min(wait, remaining))
                    continue
            self._execute(item)

    def _take_ready_of_idle_node(self) -> Any:
        """The first queued item whose node has no callback running (caller holds _cond)."""
        for index, item in enumerate(self._ready):
            if item.node not in self._busy:
                del self._ready[index]
                return item
        return None

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
