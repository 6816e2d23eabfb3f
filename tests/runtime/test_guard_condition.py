"""Guard conditions: work from a foreign thread runs on the node's executor, one at a time."""

from __future__ import annotations

import threading
from collections import deque

from stf_nodes import runtime
from tests.conftest import wait_until


def test_triggers_from_another_thread_run_on_the_executor_without_overlap(router: str) -> None:
    context = runtime.Context([])
    node = runtime.Node('guard_test', context=context)
    queued: deque[int] = deque()
    handled: list[int] = []
    running = threading.Lock()
    overlaps = []

    def drain() -> None:
        if not running.acquire(blocking=False):
            overlaps.append(1)
            return
        try:
            while queued:
                handled.append(queued.popleft())
        finally:
            running.release()

    guard = node.create_guard_condition(drain)
    guard.trigger()  # before the executor: kept until the node is added
    executor = runtime.SingleThreadedExecutor(context=context)
    node.create_timer(0.001, drain)  # competes for the same callback slot
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()

    def produce(start: int) -> None:
        for value in range(start, start + 500):
            queued.append(value)
            guard.trigger()

    producers = [threading.Thread(target=produce, args=(k * 1000,)) for k in range(3)]
    for producer in producers:
        producer.start()
    for producer in producers:
        producer.join()
    wait_until(lambda: len(handled) == 1500)
    assert sorted(handled) == [v for k in range(3) for v in range(k * 1000, k * 1000 + 500)]
    assert not overlaps
    node.destroy_node()
    guard.trigger()  # destroyed: ignored
    executor.shutdown()
    context.shutdown()
