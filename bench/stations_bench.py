"""Station node benchmark: CPU and memory of the station nodes, and how fast sim time may run.

(a) CPU and RSS: the three station nodes (`hbw`, `vgr`, `conveyor`) on wall time with
    `config/factory.yaml` (state at 10 Hz, physics at 50 Hz, diagnostics at 1 Hz), nobody
    subscribed, next to an idle runtime node with no timers (the baseline) in the same run.
    CPU is utime + stime from /proc/<pid>/stat over `--seconds` of wall time, in percent of
    one core; RSS is VmRSS at the end.
(b) Time scale: for each `--scales` value a fresh factory (stations on sim time + clock node at
    that scale) runs the PROCESS cycle as station tasks (`tests/stations/probe.py`, the same
    sequence as the station tests); reports whether it completed with the cookie BAKED back
    in its slot, the wall time and the sim time it took.

Run: `python bench/stations_bench.py [--seconds 20] [--scales 10 20 50 100 200]`.
Starts its own router on a free port.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# The probe lives with the station tests; the benchmark reuses it rather than copy it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stf_nodes.runtime.router import spawn_router
from tests.stations.probe import (
    FACTORY_YAML,
    STATIONS,
    FactoryProbe,
    Workpiece,
    node_command,
    slot_contents,
    start_factory,
)

CLOCK_TICKS = os.sysconf('SC_CLK_TCK')
IDLE_NODE = [
    sys.executable,
    '-c',
    'from stf_nodes import runtime; runtime.run_node(lambda: runtime.Node("idle"))',
]


def stop(processes: list[subprocess.Popen[str]]) -> list[int]:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(timeout=10))
        except subprocess.TimeoutExpired:
            process.kill()
            codes.append(process.wait())
    return codes


def cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` in seconds."""
    with open(f'/proc/{pid}/stat') as stat:
        fields = stat.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of stat


def rss_mb(pid: int) -> float:
    with open(f'/proc/{pid}/status') as status:
        for line in status:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return float('nan')


# -- (a) CPU and RSS --------------------------------------------------------------------------


def measure_cpu(seconds: float) -> None:
    names = [*STATIONS, 'idle node (baseline)']
    commands = [
        *(node_command(f'{s}_node', '--params-file', str(FACTORY_YAML)) for s in STATIONS),
        IDLE_NODE,
    ]
    processes = [
        subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for c in commands
    ]
    try:
        time.sleep(5.0)  # imports and start-up are not what we measure
        start_wall = time.monotonic()
        start = [cpu_s(p.pid) for p in processes]
        time.sleep(seconds)
        wall = time.monotonic() - start_wall
        used = [cpu_s(p.pid) - s for p, s in zip(processes, start, strict=True)]
        rss = [rss_mb(p.pid) for p in processes]
    finally:
        codes = stop(processes)
    print(f'\n(a) CPU over {wall:.1f} s of wall time, state at 10 Hz, nobody subscribed')
    print(f'{"node":<22} {"CPU % of a core":>16} {"RSS MB":>8} {"exit":>5}')
    for name, cpu, mb, code in zip(names, used, rss, codes, strict=True):
        print(f'{name:<22} {100 * cpu / wall:>16.2f} {mb:>8.1f} {code:>5}')
    stations = sum(used[: len(STATIONS)])
    print(
        f'{"stations total":<22} {100 * stations / wall:>16.2f} {sum(rss[: len(STATIONS)]):>8.1f}'
    )
    print(
        f'{"stations - 3 x idle":<22} {100 * (stations - 3 * used[-1]) / wall:>16.2f} '
        f'{sum(rss[: len(STATIONS)]) - 3 * rss[-1]:>8.1f}'
    )


# -- (b) time scale ---------------------------------------------------------------------------


def stamp_s(message: object) -> float:
    stamp = message.header.stamp  # type: ignore[attr-defined]
    return stamp.sec + stamp.nanosec / 1e9


def run_cycle(scale: float) -> tuple[bool, float, float, str]:
    """(completed, wall s, sim s, note) of one PROCESS cycle on fresh nodes at ``scale``."""
    nodes = start_factory(scale)
    probe = FactoryProbe('stations_bench')
    try:
        probe.wait_ready()
        first = probe.fresh_state('hbw')
        start = time.monotonic()
        try:
            stored = probe.process_cycle('A1', 'A1')
        except AssertionError as exc:
            return False, time.monotonic() - start, 0.0, str(exc).splitlines()[0][:70]
        wall = time.monotonic() - start
        last = probe.fresh_state('hbw')
        sim = stamp_s(last) - stamp_s(first)
        slot = slot_contents(last)['A1']
        ok = stored.status == Workpiece.BAKED and slot == ('WP001', 'CHOCO', Workpiece.BAKED)
        return ok, wall, sim, '' if ok else f'A1 holds {slot}'
    finally:
        probe.close()
        stop(nodes)


def measure_scales(scales: list[float]) -> None:
    rows = [(scale, *run_cycle(scale)) for scale in scales]
    print('\n(b) PROCESS cycle (13 station tasks, bake 3 s) per clock time_scale')
    print(f'{"time_scale":>10} {"completed":>10} {"wall s":>8} {"sim s":>8} {"sim/wall":>9}  note')
    for scale, ok, wall, sim, note in rows:
        ratio = sim / wall if sim else 0.0
        print(f'{scale:>10g} {ok!s:>10} {wall:>8.2f} {sim:>8.2f} {ratio:>9.1f}  {note}')
    good = [scale for scale, ok, *_ in rows if ok]
    print(f'fastest time_scale that completed: {max(good) if good else "none"}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=float, default=20.0, help='CPU window, s of wall time')
    parser.add_argument('--scales', type=float, nargs='+', default=[10, 20, 50, 100, 200])
    args = parser.parse_args()
    endpoint, router = spawn_router()
    os.environ['ZENOH_ROUTER'] = endpoint
    try:
        measure_cpu(args.seconds)
        measure_scales(args.scales)
    finally:
        router.send_signal(signal.SIGINT)
        router.wait(timeout=10)


if __name__ == '__main__':
    main()
