"""Scheduler benchmark: order submission through the scheduler node, with baselines.

For each backend (SQLite, PostgreSQL), starts a router on a free port and one `scheduler_node`
on a fresh database whose inventory this script seeds with RAW_DOUGH cookies, one per client
loop and at least nine (no station nodes run, so nothing executes: every accepted order stays
PENDING until cancelled). Measures:
- `ProcessOrder` service round trip (p50, p99): one client submits `source_slot: A1` and then
  cancels it (a reservation allows one unfinished order per cookie), N times;
- sustained accepted submissions per second: `--loops` client loops (nine by default), one per
  slot, spread over `--processes` client processes, each submitting a valid ProcessOrder for
  its slot and cancelling it, as fast as answered (concurrent requests are what group commit
  shares a transaction among: with a commit taking C ms, L loops cannot exceed L / 2C orders
  per ms); the rate counts accepted submissions (each pair is two
  committed requests: the node commits twice as many), with the ProcessOrder round trips
  (p50, p99) measured meanwhile;
- baselines in the same run: an empty service round trip to the same node
  (`/scheduler/get_parameter_types`, no database), and the raw `CommandQueue.submit_process` +
  `cancel` rate on the same kind of database without the service layer.

Targets (issue 16): >= 1,000 accepted orders/s through the service on each backend, p99
round trip <= 20 ms at that rate.

Run: `python bench/scheduler_bench.py [--calls 1000] [--seconds 5] [--loops 9] [--backends
sqlite postgresql] [--postgres-url URL]`. PostgreSQL runs in a scratch database created on
that server and dropped after. Prints a table per backend and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from stf_nodes import interfaces, runtime
from stf_nodes.runtime.router import spawn_router
from stf_nodes.scheduler import CommandQueue, InventorySlot, Workpiece, WorkpieceStatus
from stf_nodes.storage import make_engine, upgrade_schema
from stf_nodes.workpieces import rack_slots

ProcessOrder = interfaces.get_service('stf_msgs/srv/ProcessOrder')
CancelCommand = interfaces.get_service('stf_msgs/srv/CancelCommand')
GetParameterTypes = interfaces.get_service('rcl_interfaces/srv/GetParameterTypes')
TARGET_RATE, TARGET_P99_MS = 1000.0, 20.0


def rack(loops: int) -> tuple[str, ...]:
    """A rack of three columns with a slot per client loop (3x3 for the nine loops of old)."""
    return rack_slots(max(3, -(-loops // 3)), 3)[: max(loops, 9)]


def seeded_queue(url: str, slots: tuple[str, ...]) -> CommandQueue:
    engine = make_engine(url)
    upgrade_schema(engine)
    queue = CommandQueue(engine=engine)
    queue.seed_inventory(
        InventorySlot(slot, f'c{n}', Workpiece(f'w{n}', 'CHOCO', WorkpieceStatus.RAW_DOUGH))
        for n, slot in enumerate(slots)
    )
    return queue


@contextmanager
def scratch_database(backend: str, workdir: Path, server: str, name: str) -> Iterator[str]:
    """The URL of a new, empty database (a file for SQLite), dropped after."""
    if backend == 'sqlite':
        yield f'sqlite:///{workdir / f"{name}.db"}'
        return
    database = f'stf_bench_{name}_{uuid.uuid4().hex[:8]}'
    admin = create_engine(make_url(server), isolation_level='AUTOCOMMIT')
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE {database}'))
    try:
        yield make_url(server).set(database=database).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS {database} WITH (FORCE)'))
        admin.dispose()


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


def client_loops(slots: list[str], seconds: float) -> dict[str, object]:
    """Body of one client process: a submit+cancel loop per slot; the accepted orders and the
    ProcessOrder round trips (ms)."""
    runtime.init([])
    node = runtime.Node(f'scheduler_bench_client_{os.getpid()}')
    accepted = [0] * len(slots)
    latencies: list[list[float]] = [[] for _ in slots]
    submit = node.create_client(ProcessOrder, '/stf/order/process')
    submit.wait_for_service(10.0)
    stop = time.monotonic() + seconds

    def loop(index: int, slot: str) -> None:
        cancel = node.create_client(CancelCommand, '/stf/command/cancel')
        request = ProcessOrder.Request(source_slot=slot)
        while time.monotonic() < stop:
            start = time.perf_counter()
            reply = submit.call(request)
            latencies[index].append((time.perf_counter() - start) * 1e3)
            if reply.accepted:
                accepted[index] += 1
                cancel.call(CancelCommand.Request(command_id=reply.command_id))

    threads = [threading.Thread(target=loop, args=item) for item in enumerate(slots)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    runtime.shutdown()
    return {'accepted': sum(accepted), 'latencies': [t for ts in latencies for t in ts]}


def sustained_rate(
    slots: tuple[str, ...], seconds: float, processes: int
) -> tuple[float, list[float]]:
    """Accepted submissions per second and the ProcessOrder round trips meanwhile: one
    submit+cancel loop per slot, the loops spread over client processes so the clients' own
    Python does not cap what the node accepts."""
    groups = [list(slots[index::processes]) for index in range(processes)]
    clients = [
        subprocess.Popen(
            [sys.executable, __file__, '--client', ','.join(group), '--seconds', str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for group in groups
    ]
    results = [
        json.loads(client.communicate(timeout=seconds + 60)[0].splitlines()[-1])
        for client in clients
    ]
    latencies = [t for result in results for t in result['latencies']]
    return sum(result['accepted'] for result in results) / seconds, latencies


def raw_queue_rate(url: str, seconds: float) -> float:
    queue = seeded_queue(url, rack(9))
    done, stop = 0, time.monotonic() + seconds
    start = time.monotonic()
    while time.monotonic() < stop:
        command = queue.submit_process(source_slot='A1')
        queue.cancel(command.id)
        done += 1
    return done / (time.monotonic() - start)


def measure(url: str, raw_url: str, options: argparse.Namespace) -> dict[str, object]:
    slots = rack(options.loops)
    seeded_queue(url, slots)
    endpoint, router = spawn_router()
    os.environ['ZENOH_ROUTER'] = endpoint  # the scheduler, the clients and this process
    scheduler = None
    try:
        scheduler = subprocess.Popen(
            [sys.executable, '-m', 'stf_nodes.scheduler_node', '--ros-args',
             '-p', f'db_url:={url}', '--log-level', 'WARN'],
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
        rate, loaded = sustained_rate(slots, options.seconds, options.processes)
    finally:
        for process in (scheduler, router):
            if process is not None:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=10)
        runtime.shutdown()
    raw = raw_queue_rate(raw_url, options.seconds)
    return {'empty': empty_ms, 'single': elapsed, 'rate': rate, 'loaded': loaded, 'raw': raw}


def report(backend: str, result: dict[str, object], options: argparse.Namespace) -> None:
    print(f'\n{backend}: {"measurement":<70} {"p50 ms":>8} {"p99 ms":>8} {"per s":>8}')
    rows: list[tuple[str, list[float]]] = [
        ('empty service round trip (baseline, no database)', result['empty']),  # type: ignore[list-item]
        ('ProcessOrder round trip alone (validate, commit, reply)', result['single']),  # type: ignore[list-item]
    ]
    for label, values in rows:
        per_s = 1e3 / statistics.mean(values)
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        print(f'{"":<{len(backend) + 2}}{label:<70} {p50:8.2f} {p99:8.2f} {per_s:8.0f}')
    loaded: list[float] = result['loaded']  # type: ignore[assignment]
    rate: float = result['rate']  # type: ignore[assignment]
    p50, p99 = percentile(loaded, 0.5), percentile(loaded, 0.99)
    label = (
        f'sustained accepted ProcessOrders, {options.loops} loops in {options.processes} processes'
    )
    print(f'{"":<{len(backend) + 2}}{label:<70} {p50:8.2f} {p99:8.2f} {rate:8.0f}')
    label = 'raw CommandQueue submit+cancel pairs, no service (baseline)'
    print(f'{"":<{len(backend) + 2}}{label:<70} {"":>8} {"":>8} {result["raw"]:8.0f}')
    print(
        f'  target >= {TARGET_RATE:.0f} accepted/s: {"met" if rate >= TARGET_RATE else "MISSED"}'
        f'; target p99 <= {TARGET_P99_MS:.0f} ms under that load: '
        f'{"met" if p99 <= TARGET_P99_MS else "MISSED"}'
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--calls', type=int, default=1000, help='round trips per latency row')
    parser.add_argument('--seconds', type=float, default=5.0, help='duration of each rate row')
    parser.add_argument('--processes', type=int, default=3, help='client processes')
    parser.add_argument(
        '--loops', type=int, default=9, help='concurrent submit+cancel loops, a slot each (<= 78)'
    )
    parser.add_argument(
        '--backends', nargs='+', default=['sqlite', 'postgresql'], choices=['sqlite', 'postgresql']
    )
    parser.add_argument(
        '--postgres-url',
        default=os.environ.get(
            'STF_TEST_POSTGRES_URL', 'postgresql+psycopg://postgres@127.0.0.1:5432/test'
        ),
        help='a server and database to create the scratch databases from',
    )
    parser.add_argument('--client', help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.client:
        print(json.dumps(client_loops(options.client.split(','), options.seconds)))
        return

    workdir = Path(tempfile.mkdtemp(prefix='stf_sched_bench_'))
    print(f'load average before: {os.getloadavg()}')
    for backend in options.backends:
        server = options.postgres_url
        with (
            scratch_database(backend, workdir, server, 'node') as url,
            scratch_database(backend, workdir, server, 'raw') as raw_url,
        ):
            result = measure(url, raw_url, options)
        report(backend, result, options)
    print(f'\nload average after: {os.getloadavg()} on {os.cpu_count()} cores')


if __name__ == '__main__':
    main()
