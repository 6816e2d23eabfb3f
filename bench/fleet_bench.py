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
Scale (``--scale 1 5 10 20 40``): the fleet composed into one process at each N (a launch
file with N includes of factory.launch.xml, as fleet.launch.xml has for N <= 10, written for
the run), with CPU and memory per factory and the rate of every station state topic over the
window, counted by a subscriber in this process; the largest N whose slowest state topic
still holds 10 Hz (>= 9.5 Hz) is the result, and ``--plot FILE`` draws cost and rate against N.

Run: `python bench/fleet_bench.py [--counts 1 5 10] [--window 20] [--settle 3]`, or
`python bench/fleet_bench.py --scale 1 5 10 20 40 --plot bench/fleet_scale.png`.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bench_report import report

from stf_nodes import interfaces, runtime
from stf_nodes.launcher.commands import node_executables
from stf_nodes.launcher.compose import node_class
from stf_nodes.launcher.model import LaunchError
from stf_nodes.launcher.parser import load_launch
from stf_nodes.messages import STATE_TYPES
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


class NotUpError(Exception):
    """Not every node of a launch joined the graph within UP_TIMEOUT_S."""


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
                raise NotUpError(f'not all nodes up after {UP_TIMEOUT_S:g} s: {run.process.args}')
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
    try:
        wait_for_graph(run, expected_nodes(path, args))
    except NotUpError:
        run.stop()
        raise
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


HOLDS_HZ = 9.5  # the state topics publish at 10 Hz; 5 % below is still holding it


def fleet_launch(count: int, directory: Path) -> Path:
    """A launch file of ``count`` factories, each an include of factory.launch.xml under the
    namespace factory_K with its own database and Foxglove port (fleet.launch.xml's scheme)."""
    includes = ''.join(
        f'  <include file="{FACTORY}">\n'
        f'    <arg name="namespace" value="factory_{k}"/>\n'
        f'    <arg name="db_url" value="sqlite:///./stf_factory_{k}.db"/>\n'
        f'    <arg name="foxglove_port" value="{8765 + k - 1}"/>\n'
        '  </include>\n'
        for k in range(1, count + 1)
    )
    path = directory / f'fleet_{count}.launch.xml'
    path.write_text(f'<?xml version="1.0"?>\n<launch>\n{includes}</launch>\n')
    return path


def state_rates(run: Run, count: int, window: float) -> tuple[Usage, dict[str, float]]:
    """Usage of the launch over ``window`` s and the rate of every station state topic."""
    os.environ['ZENOH_ROUTER'] = run.endpoint
    context = runtime.Context([])
    node = runtime.Node('fleet_bench', context=context)
    counts: dict[str, int] = {}
    for k in range(1, count + 1):
        for station in STATE_TYPES:
            topic = f'/factory_{k}/stf/{station}/state'
            counts[topic] = 0

            def on_state(_: bytes, topic: str = topic) -> None:
                counts[topic] += 1

            node.create_subscription(
                interfaces.get_message_class(STATE_TYPES[station]),
                topic,
                on_state,
                10,
                raw=True,
            )
    executor = runtime.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        time.sleep(2.0)  # every subscription matched and receiving
        before = dict(counts)
        usage = measure(run.process.pid, window)
        rates = {topic: (counts[topic] - before[topic]) / window for topic in counts}
    finally:
        executor.shutdown()
        spinner.join(timeout=5)
        context.shutdown()
    return usage, rates


def scale(options: argparse.Namespace, extra: list[str], cwd: Path) -> int:
    print(
        f'\nScale: the fleet composed into one process, {options.window:g} s windows '
        f'(state topics should hold 10 Hz; holding = >= {HOLDS_HZ:g} Hz)'
    )
    print(f'  {"N":>3} {"start s":>8} {"CPU %":>7} {"CPU %/fac":>9} {"MB":>8} {"MB/fac":>7} '
          f'{"slowest Hz":>10} {"mean Hz":>8}')  # fmt: skip
    rows = []
    for count in options.scale:
        path = fleet_launch(count, cwd)
        try:
            run, seconds = start_launch(path, extra, True, cwd)
        except NotUpError as not_up:  # one process cannot even start them: larger N cannot either
            print(f'  {count:>3} {not_up}', flush=True)
            report(
                f'{count} factories composed: slowest state topic',
                0.0,
                'Hz',
                target=f'>= {HOLDS_HZ:g} Hz (not all nodes up after {UP_TIMEOUT_S:g} s)',
                met=False,
            )
            break
        try:
            time.sleep(options.settle)
            usage, rates = state_rates(run, count, options.window)
        finally:
            run.stop()
        slowest, mean = min(rates.values()), sum(rates.values()) / len(rates)
        rows.append((count, usage, slowest))
        print(
            f'  {count:>3} {seconds:>8.1f} {usage.cpu_percent:>7.1f} '
            f'{usage.cpu_percent / count:>9.1f} {usage.memory_mb:>8.1f} '
            f'{usage.memory_mb / count:>7.1f} {slowest:>10.2f} {mean:>8.2f}',
            flush=True,
        )
        report(
            f'{count} factories composed: slowest state topic',
            slowest,
            'Hz',
            target=f'>= {HOLDS_HZ:g} Hz',
            met=slowest >= HOLDS_HZ,
        )
        report(f'{count} factories composed: CPU per factory', usage.cpu_percent / count, '% core')
        report(f'{count} factories composed: memory per factory', usage.memory_mb / count, 'MB')
    holding = [count for count, _, slowest in rows if slowest >= HOLDS_HZ]
    largest = max(holding, default=0)
    print(f'largest N holding 10 Hz on every state topic: {largest}')
    report('largest fleet holding 10 Hz on every state topic', largest, 'factories')
    if options.plot:
        plot(rows, Path(options.plot))
    return 0


def plot(rows: list[tuple[int, Usage, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    counts = [count for count, _, _ in rows]
    figure, (cost, rate) = plt.subplots(1, 2, figsize=(10, 4))
    cost.plot(counts, [u.cpu_percent for _, u, _ in rows], 'o-', label='CPU, % of one core')
    cost.plot(counts, [u.memory_mb for _, u, _ in rows], 's-', label='memory, MB (PSS)')
    cost.set_xlabel('factories (composed, one process)')
    cost.set_title('cost of the fleet')
    cost.legend()
    rate.plot(counts, [slowest for _, _, slowest in rows], 'o-', label='slowest state topic')
    rate.axhline(10.0, color='grey', linestyle='--', label='10 Hz')
    rate.set_xlabel('factories (composed, one process)')
    rate.set_ylabel('Hz')
    rate.set_ylim(bottom=0)
    rate.set_title('state topic rate')
    rate.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    print(f'plot: {path}')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--counts', type=int, nargs='+', default=[1, 5, 10])
    parser.add_argument('--window', type=float, default=20.0, help='CPU window in s (20)')
    parser.add_argument('--settle', type=float, default=3.0, help='wait after start-up (3 s)')
    parser.add_argument('--scale', type=int, nargs='+', metavar='N', help='composed fleets only')
    parser.add_argument('--plot', help='PNG of cost and rate against N (with --scale)')
    options = parser.parse_args()
    print(f'{os.cpu_count()} CPUs; node executables: {", ".join(node_executables())}')
    extra = scheduler_args()
    with tempfile.TemporaryDirectory(prefix='fleet_bench_') as directory:
        if options.scale:
            return scale(options, extra, Path(directory))
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
