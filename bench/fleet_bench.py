"""Fleet benchmark: `stf launch` with one process per node against `stf launch --compose`.

Measures, each launch with its own router on a free port (started by the launch itself):
- start-up: from starting `stf launch launch/factory.launch.xml` until the graph shows every
  node of the launch (what `stf node list` shows; polled in-process every 50 ms, since one
  `stf node list` costs more than the resolution we want);
- steady state of `fleet.launch.xml count:=N`: CPU (% of one core, utime+stime from /proc of
  the launch's whole process tree: launcher, router, nodes) over `--window` seconds once every
  node is up, and memory (sum of PSS from /proc/<pid>/smaps_rollup, RSS where PSS is not
  readable), both in total and per factory;
- a baseline in the same run: one idle runtime node process (`runtime.Node('idle')`) and the
  router on its own.

`scheduler_node` is left out (`enable_scheduler:=false`) of both modes while it is not installed
or not composable. Launches run in a temporary working directory (node databases go there).
Run: `python bench/fleet_bench.py [--counts 1 5 10] [--window 20] [--settle 3]`.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from stf_nodes import runtime
from stf_nodes.launcher.commands import node_executables
from stf_nodes.launcher.compose import node_class
from stf_nodes.launcher.model import LaunchError
from stf_nodes.launcher.parser import load_launch
from stf_nodes.runtime.router import free_port, is_listening

LAUNCH_DIR = Path(__file__).resolve().parents[1] / 'launch'
FACTORY = LAUNCH_DIR / 'factory.launch.xml'
FLEET = LAUNCH_DIR / 'fleet.launch.xml'
TICKS = os.sysconf('SC_CLK_TCK')
UP_TIMEOUT_S = 300.0
IDLE_NODE = 'from stf_nodes import runtime\nruntime.run_node(lambda: runtime.Node("idle"), [])\n'


@dataclass(frozen=True)
class Usage:
    """Steady-state resource use of a process tree."""

    processes: int
    cpu_percent: float
    memory_mb: float


def scheduler_args() -> list[str]:
    """``enable_scheduler:=false`` unless scheduler_node is installed and composable."""
    try:
        node_class('scheduler_node')
    except LaunchError as error:
        print(f'leaving the scheduler out of both modes: {error}')
        return ['enable_scheduler:=false']
    return []


def expected_nodes(path: Path, args: list[str]) -> set[str]:
    arguments = dict(arg.split(':=', 1) for arg in args)
    return {node.full_name or '' for node in load_launch(path, arguments).nodes}


def _stat_fields(pid: int) -> list[str] | None:
    try:
        return Path(f'/proc/{pid}/stat').read_text().rpartition(')')[2].split()
    except OSError:
        return None


def tree(root: int) -> list[int]:
    """``root`` and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path('/proc').iterdir():
        fields = _stat_fields(int(entry.name)) if entry.name.isdigit() else None
        if fields and fields[0] != 'Z':
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [root], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cpu_ticks(pids: list[int]) -> dict[int, int]:
    ticks = {}
    for pid in pids:
        if fields := _stat_fields(pid):
            ticks[pid] = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks


def memory_kb(pid: int) -> int:
    """PSS in kB, or RSS where smaps_rollup is not readable; 0 for a process that is gone."""
    try:
        for line in Path(f'/proc/{pid}/smaps_rollup').read_text().splitlines():
            if line.startswith('Pss:'):
                return int(line.split()[1])
    except OSError:
        pass
    try:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(root: int, window: float) -> Usage:
    """CPU over ``window`` s and memory at its end, of the process tree below ``root``."""
    pids = tree(root)
    before, started = cpu_ticks(pids), time.monotonic()
    time.sleep(window)
    after, elapsed = cpu_ticks(pids), time.monotonic() - started
    used = sum(after[pid] - before[pid] for pid in after if pid in before)
    return Usage(
        processes=len(after),
        cpu_percent=100.0 * used / TICKS / elapsed,
        memory_mb=sum(memory_kb(pid) for pid in after) / 1024,
    )


class Run:
    """A process started with its own router endpoint; output goes to a log file."""

    def __init__(self, argv: list[str], port: int, cwd: Path) -> None:
        self.log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop)
        self.endpoint = f'tcp/127.0.0.1:{port}'
        env = {**os.environ, 'ZENOH_ROUTER': self.endpoint}
        self.process = subprocess.Popen(
            argv,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )

    def check(self) -> None:
        if self.process.poll() is not None:
            self.log.seek(0)
            tail = self.log.read().decode(errors='replace')[-3000:]
            raise SystemExit(f'{self.process.args} exited early:\n{tail}')

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def wait_for_graph(run: Run, expected: set[str]) -> float:
    """Seconds from now until the graph behind ``run.endpoint`` shows every expected node."""
    os.environ['ZENOH_ROUTER'] = run.endpoint
    context = runtime.Context([])
    started = time.monotonic()
    try:
        while True:
            run.check()
            if is_listening(run.endpoint):
                names = {
                    f'{ns.rstrip("/")}/{name}'
                    for name, ns in context.graph.node_names_and_namespaces()
                }
                if expected <= names:
                    return time.monotonic() - started
            if time.monotonic() - started > UP_TIMEOUT_S:
                raise SystemExit(f'not all nodes up after {UP_TIMEOUT_S:g} s: {run.process.args}')
            time.sleep(0.05)
    finally:
        context.shutdown()


def start_launch(path: Path, args: list[str], compose: bool, cwd: Path) -> tuple[Run, float]:
    """Start ``stf launch``; returns the run and the seconds until all its nodes were up."""
    argv = [sys.executable, '-m', 'stf_nodes.cli', 'launch', *(['--compose'] * compose)]
    started = time.monotonic()
    run = Run([*argv, str(path), *args], free_port(), cwd)
    # The graph observer needs the router; its wait counts as start-up time too.
    os.environ['ZENOH_ROUTER_CHECK_ATTEMPTS'] = '0'
    while not is_listening(run.endpoint):
        run.check()
        time.sleep(0.05)
    wait_for_graph(run, expected_nodes(path, args))
    return run, time.monotonic() - started


def baseline(window: float, cwd: Path) -> tuple[Usage, Usage]:
    """An idle router alone, and one idle runtime node process on it."""
    router = Run([sys.executable, '-m', 'stf_nodes.cli', 'router'], free_port(), cwd)
    idle = None
    try:
        while not is_listening(router.endpoint):
            router.check()
            time.sleep(0.05)
        idle = Run([sys.executable, '-c', IDLE_NODE], int(router.endpoint.rpartition(':')[2]), cwd)
        wait_for_graph(idle, {'/idle'})
        time.sleep(1.0)
        return measure(router.process.pid, window), measure(idle.process.pid, window)
    finally:
        if idle is not None:
            idle.stop()
        router.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--counts', type=int, nargs='+', default=[1, 5, 10])
    parser.add_argument('--window', type=float, default=20.0, help='CPU window in s (20)')
    parser.add_argument('--settle', type=float, default=3.0, help='wait after start-up (3 s)')
    options = parser.parse_args()
    print(f'{os.cpu_count()} CPUs; node executables: {", ".join(node_executables())}')
    extra = scheduler_args()
    with tempfile.TemporaryDirectory(prefix='fleet_bench_') as directory:
        return _bench(options, extra, Path(directory))


def _bench(options: argparse.Namespace, extra: list[str], cwd: Path) -> int:
    rows = []
    for compose in (False, True):
        run, seconds = start_launch(FACTORY, extra, compose, cwd)
        run.stop()
        rows.append((compose, seconds))
    print('\nStart-up of factory.launch.xml (stf launch start → every node in the graph):')
    for compose, seconds in rows:
        print(f'  {"composed" if compose else "separate":9} {seconds:6.2f} s')

    router, idle = baseline(options.window, cwd)
    print(f'\nBaseline over {options.window:g} s (same run):')
    print(f'  router alone          {router.cpu_percent:6.1f} % CPU {router.memory_mb:7.1f} MB')
    print(f'  one idle runtime node {idle.cpu_percent:6.1f} % CPU {idle.memory_mb:7.1f} MB')

    print(
        f'\nFleet steady state over {options.window:g} s (whole launch tree: launcher, router, '
        'nodes; memory = PSS):'
    )
    header = (
        f'  {"N":>3} {"mode":9} {"procs":>5} {"start s":>8} {"CPU %":>7} {"CPU %/fac":>9} '
        f'{"MB":>8} {"MB/fac":>7}'
    )
    print(header)
    for count in options.counts:
        for compose in (False, True):
            run, seconds = start_launch(FLEET, [f'count:={count}', *extra], compose, cwd)
            try:
                time.sleep(options.settle)
                usage = measure(run.process.pid, options.window)
            finally:
                run.stop()
            print(
                f'  {count:>3} {"composed" if compose else "separate":9} {usage.processes:>5} '
                f'{seconds:>8.1f} {usage.cpu_percent:>7.1f} {usage.cpu_percent / count:>9.1f} '
                f'{usage.memory_mb:>8.1f} {usage.memory_mb / count:>7.1f}',
                flush=True,
            )
    return 0


if __name__ == '__main__':
    sys.exit(main())
