"""Scheduler benchmark: order submission through the scheduler node, with baselines.

Starts a router on a free port and one `scheduler_node` on a fresh SQLite database whose
inventory this script seeds with nine RAW_DOUGH cookies (no station nodes run, so nothing
executes: every accepted order stays PENDING until cancelled). Measures:
- `ProcessOrder` service round trip (p50, p99): one client submits `source_slot: A1` and then
  cancels it (a reservation allows one unfinished order per cookie), N times;
- sustained accepted submissions per second: nine client loops, one per slot, spread over
  `--processes` client processes, each submitting a valid ProcessOrder for its slot and
  cancelling it, as fast as answered; the rate counts accepted submissions (each pair is two
  committed transactions: the node commits twice as many);
- baselines in the same run: an empty service round trip to the same node
  (`/scheduler/get_parameter_types`, no database), and the raw `CommandQueue.submit_process` +
  `cancel` rate on the same kind of database without the service layer.

Run: `python bench/scheduler_bench.py [--calls 1000] [--seconds 5]`. Prints a table.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from stf_nodes import interfaces, runtime
from stf_nodes.runtime.router import spawn_router
from stf_nodes.scheduler import CommandQueue, InventorySlot, Workpiece, WorkpieceStatus
from stf_nodes.storage import make_engine, upgrade_schema
from stf_nodes.workpieces import rack_slots

ProcessOrder = interfaces.get_service('stf_msgs/srv/ProcessOrder')
CancelCommand = interfaces.get_service('stf_msgs/srv/CancelCommand')
GetInventory = interfaces.get_service('stf_msgs/srv/GetInventory')
GetParameterTypes = interfaces.get_service('rcl_interfaces/srv/GetParameterTypes')
SLOTS = rack_slots(3, 3)
STOCK = [
    InventorySlot(slot, f'c{n}', Workpiece(f'w{n}', 'CHOCO', WorkpieceStatus.RAW_DOUGH))
    for n, slot in enumerate(SLOTS)
]


def seeded_queue(path: Path) -> CommandQueue:
    engine = make_engine(f'sqlite:///{path}')
    upgrade_schema(engine)
    queue = CommandQueue(engine=engine)
    queue.seed_inventory(STOCK)
    return queue


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def round_trips(call: Callable[[], object], count: int) -> list[float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def client_loops(slots: list[str], seconds: float) -> int:
    """Body of one client process: a submit+cancel loop per slot; returns accepted orders."""
    runtime.init([])
    node = runtime.Node(f'scheduler_bench_client_{os.getpid()}')
    accepted = [0] * len(slots)
    submit = node.create_client(ProcessOrder, '/stf/order/process')
    submit.wait_for_service(10.0)
    stop = time.monotonic() + seconds

    def loop(index: int, slot: str) -> None:
        cancel = node.create_client(CancelCommand, '/stf/command/cancel')
        while time.monotonic() < stop:
            reply = submit.call(ProcessOrder.Request(source_slot=slot))
            if reply.accepted:
                accepted[index] += 1
                cancel.call(CancelCommand.Request(command_id=reply.command_id))

    threads = [threading.Thread(target=loop, args=item) for item in enumerate(slots)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    runtime.shutdown()
    return sum(accepted)


def sustained_rate(seconds: float, processes: int) -> float:
    """Accepted submissions per second: one submit+cancel loop per slot, the nine loops spread
    over client processes so the clients' own Python does not cap what the node accepts."""
    groups = [list(SLOTS[index::processes]) for index in range(processes)]
    clients = [
        subprocess.Popen(
            [sys.executable, __file__, '--client', ','.join(group), '--seconds', str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for group in groups
    ]
    accepted = sum(
        int(client.communicate(timeout=seconds + 60)[0].split()[-1]) for client in clients
    )
    return accepted / seconds


def raw_queue_rate(path: Path, seconds: float) -> float:
    queue = seeded_queue(path)
    done, stop = 0, time.monotonic() + seconds
    start = time.monotonic()
    while time.monotonic() < stop:
        command = queue.submit_process(source_slot='A1')
        queue.cancel(command.id)
        done += 1
    return done / (time.monotonic() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--calls', type=int, default=1000, help='round trips per latency row')
    parser.add_argument('--seconds', type=float, default=5.0, help='duration of each rate row')
    parser.add_argument('--processes', type=int, default=3, help='client processes')
    parser.add_argument('--client', help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.client:
        print(client_loops(options.client.split(','), options.seconds))
        return

    workdir = Path(tempfile.mkdtemp(prefix='stf_sched_bench_'))
    seeded_queue(workdir / 'node.db')
    endpoint, router = spawn_router()
    os.environ['ZENOH_ROUTER'] = endpoint
    scheduler = None
    try:
        scheduler = subprocess.Popen(
            [sys.executable, '-m', 'stf_nodes.scheduler_node', '--ros-args',
             '-p', f'db_url:=sqlite:///{workdir / "node.db"}', '--log-level', 'WARN'],
        )  # fmt: skip
        runtime.init([])
        node = runtime.Node('scheduler_bench')
        submit = node.create_client(ProcessOrder, '/stf/order/process')
        while not submit.wait_for_service(1.0):  # served once the scheduler leads
            pass
        cancel = node.create_client(CancelCommand, '/stf/command/cancel')
        empty = node.create_client(GetParameterTypes, '/scheduler/get_parameter_types')

        def process_then_cancel() -> None:
            start = time.perf_counter()
            reply = submit.call(ProcessOrder.Request(source_slot='A1'))
            elapsed.append((time.perf_counter() - start) * 1e3)
            assert reply.accepted, reply.message
            cancel.call(CancelCommand.Request(command_id=reply.command_id))

        round_trips(lambda: empty.call(GetParameterTypes.Request()), 100)  # warm up
        empty_ms = round_trips(lambda: empty.call(GetParameterTypes.Request()), options.calls)
        elapsed: list[float] = []
        round_trips(process_then_cancel, options.calls)
        rate = sustained_rate(options.seconds, options.processes)
        raw = raw_queue_rate(workdir / 'raw.db', options.seconds)
    finally:
        for process in (scheduler, router):
            if process is not None:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=10)
        runtime.shutdown()

    print(f'\n{"measurement":<58} {"p50 ms":>8} {"p99 ms":>8} {"per s":>8}')
    rows = [
        ('empty service round trip (baseline, no database)', empty_ms),
        ('ProcessOrder round trip (validate, commit, reply)', elapsed),
    ]
    for label, values in rows:
        per_s = 1e3 / statistics.mean(values)
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        print(f'{label:<58} {p50:8.2f} {p99:8.2f} {per_s:8.0f}')
    for label, value in (
        (f'sustained accepted ProcessOrders, 9 loops in {options.processes} processes', rate),
        ('raw CommandQueue submit+cancel pairs, no service (baseline)', raw),
    ):
        print(f'{label:<58} {"":>8} {"":>8} {value:8.0f}')


if __name__ == '__main__':
    main()
