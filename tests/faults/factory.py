"""The fault suites' factory: `stf launch` of factory.launch.xml, an operator that streams orders
through the scheduler's services, the kills, and the report that reads the database and the logs
(tests/faults/test_fault_tolerance.py, tests/faults/test_combined_faults.py)."""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from stf_nodes import interfaces, runtime
from stf_nodes.runtime.router import free_port
from stf_nodes.scheduler import CommandKind, CommandQueue, CommandStatus, StepState
from stf_nodes.scheduler.records import Phase
from stf_nodes.storage.models import (
    CommandRow,
    CommandStepRow,
    InventoryEventRow,
    InventoryRow,
    SchedulerLeaseRow,
)
from stf_nodes.workpieces import WorkpieceStatus
from tests.conftest import REPO_ROOT, wait_until
from tests.launcher.conftest import LaunchRun, descendants, pid_alive

FACTORY = REPO_ROOT / 'launch' / 'factory.launch.xml'
STATIONS = ('hbw', 'vgr', 'conveyor')
#: The first line each node prints once it is constructed (after a respawn: it is back).
READY = {
    **{station: rf'^\[{station}\] .*\]: {station} ready' for station in STATIONS},
    'clock': r'^\[clock\] .*\]: sim clock at',
    'scheduler': r'^\[scheduler\] .*; standing by for lease',
    'scheduler_2': r'^\[scheduler_2\] .*; standing by for lease',
    'recorder': r'^\[recorder\] .*\]: recording \d+ topics',
    'mqtt_bridge': r'^\[mqtt_bridge\] .*\]: \w+ bridge to .* \(MQTT',
    'maintenance': r'^\[maintenance\] .*\]: estimating',
    'foxglove_bridge': r'^\[foxglove_bridge\] .*\]: Foxglove WebSocket server listening',
}
ProcessOrder = interfaces.get_service('stf_msgs/srv/ProcessOrder')
StoreWorkpiece = interfaces.get_service('stf_msgs/srv/StoreWorkpiece')
RetrieveWorkpiece = interfaces.get_service('stf_msgs/srv/RetrieveWorkpiece')
ListCommands = interfaces.get_service('stf_msgs/srv/ListCommands')
GetInventory = interfaces.get_service('stf_msgs/srv/GetInventory')
CommandStatusMsg = interfaces.get_message_class('stf_msgs/msg/CommandStatus')
HbwState = interfaces.get_message_class('stf_msgs/msg/HbwState')
Inventory = interfaces.get_message_class('stf_msgs/msg/Inventory')
FINAL = {CommandStatus.COMPLETED, CommandStatus.FAILED, CommandStatus.CANCELLED}
#: Wall time a node may take to come back after a kill, and the factory to make progress again.
RESPAWN_TIMEOUT_S = 60.0
PROGRESS_TIMEOUT_S = 90.0
DRAIN_TIMEOUT_S = 150.0
#: Orders kept waiting at most (keeps the final drain short).
QUEUE_DEPTH = 2
_TASK_STARTED = re.compile(r'^\[(\w+)\] .*\]: task (\d+) started: (\w+ \w+) \(key ([^)]+)\)')
LEADING = r'^\[scheduler(_2)?\] .*: leading \(lease'
_NODE_STARTED = re.compile(r'^\[launch\] (\w+) started with pid (\d+)')


# -- the factory, as `stf launch` ------------------------------------------------------------


class Launch:
    """One ``stf launch`` of the factory; its output lines are kept for the log checks."""

    def __init__(self, directory: Path, args: list[str], log: Path) -> None:
        argv = [sys.executable, '-m', 'stf_nodes.cli', 'launch', str(FACTORY), *args]
        self.run = LaunchRun(argv, dict(os.environ), cwd=directory)
        self.log = log

    @property
    def lines(self) -> list[str]:
        self.run.collect()
        return self.run.lines

    def mark(self) -> int:
        """The index of the next output line (to wait for lines printed after an action)."""
        return len(self.lines)

    def wait_for(self, pattern: str, *, since: int, timeout: float) -> re.Match[str]:
        self._check_alive()
        try:
            return self.run.wait_for(pattern, timeout=timeout, since=since)
        except AssertionError:
            tail = '\n'.join(self.run.lines[-40:])
            raise AssertionError(
                f'no line {pattern!r} in {timeout:g} s; the last ones:\n{tail}'
            ) from None

    def pid(self, label: str) -> int:
        """The pid of the latest incarnation of ``label`` (a node, or the router)."""
        starts = (_NODE_STARTED.match(line) for line in self.lines)
        pids = [int(m[2]) for m in starts if m and m[1] == label]
        assert pids, f'{label} never started'
        return pids[-1]

    def stop(self) -> None:
        """Ctrl-C: every process of the launch ends within 30 s, exit status 0."""
        tree = descendants(self.run.process.pid)
        self.run.process.send_signal(signal.SIGINT)
        code, stderr = self.run.finish(timeout=30)
        assert code == 0, f'stf launch exited with {code}: {stderr}'
        wait_until(lambda: not any(pid_alive(pid) for pid in tree), timeout=10)

    def power_off(self) -> None:
        """kill -9 of the launcher and every process it started, all at once."""
        for pid in (self.run.process.pid, *descendants(self.run.process.pid)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.run.process.wait(timeout=10)

    def cleanup(self) -> None:
        """Its output into ``log``; after a failed test: nothing of this launch survives."""
        if self.run.process.poll() is None:
            tree = descendants(self.run.process.pid)
            self.run.process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.run.process.wait(timeout=20)
            self.run.kill()
            for pid in tree:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.log.write_text('\n'.join(self.lines) + '\n')

    def _check_alive(self) -> None:
        if self.run.process.poll() is not None:
            code, stderr = self.run.finish()
            raise AssertionError(
                f'stf launch exited with {code}: {stderr}\n' + '\n'.join(self.run.lines[-60:])
            )


# -- the user ------------------------------------------------------------------------------


@dataclass
class Orders:
    """What the user sent and what came back."""

    #: Acknowledged commands: id -> kind.
    accepted: dict[int, CommandKind] = field(default_factory=dict)
    #: Requests refused, by kind (the rack did not allow them at that moment).
    refused: Counter[str] = field(default_factory=Counter)
    #: Requests with no answer (no leader, a timeout): they may or may not have been queued.
    unanswered: int = 0

    def add(self, kind: str, reply: Any) -> None:
        """The reply (None: none came) to a request for a command of ``kind``."""
        if reply is None:
            self.unanswered += 1
        elif reply.accepted:
            self.accepted[reply.command_id] = CommandKind[kind.upper()]
        else:
            self.refused[kind] += 1

    def merge(self, other: Orders) -> None:
        self.accepted |= other.accepted
        self.refused += other.refused
        self.unanswered += other.unanswered


class Operator:
    """A user's node: sends orders through the scheduler's services, watches its topics."""

    def __init__(self, seed: int, mqtt_order: Callable[[str], None] | None = None) -> None:
        self.context = runtime.Context([])
        self.node = runtime.Node('fault_operator', context=self.context)
        self.orders = Orders()
        #: Also orders a raw cookie's flavor through this (the MQTT bridge), which accounts for
        #: its answers itself.
        self.mqtt_order = mqtt_order
        self._rng = random.Random(seed)
        self._clients: dict[str, runtime.Client] = {}
        self._steps: dict[str, threading.Event] = {s: threading.Event() for s in STATIONS}
        self._any_step = threading.Event()
        self._latest: dict[str, Any] = {}
        self.node.create_subscription(CommandStatusMsg, 'stf/commands', self._on_commands, 100)
        self.node.create_subscription(
            Inventory, 'stf/inventory', self._on_inventory, runtime.qos_profile_latched
        )
        self.executor = runtime.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self.executor.spin, daemon=True)]
        self._threads[0].start()

    # topics

    def _on_commands(self, message: Any) -> None:
        if message.status != CommandStatusMsg.IN_PROGRESS or not message.step:
            return
        self._any_step.set()
        station = message.step.split(' ', 1)[0]
        if station in self._steps and 'started (attempt' in message.message:
            self._steps[station].set()

    def _on_inventory(self, message: Any) -> None:
        self._latest['inventory'] = message

    def wait_step(self, station: str | None, timeout: float) -> bool:
        """Wait until a step of ``station`` (None: of any station) is announced as started."""
        event = self._any_step if station is None else self._steps[station]
        event.clear()
        return event.wait(timeout)

    def latest(self, topic: str) -> Any:
        return self._latest.get(topic)

    def watch_hbw(self) -> None:
        """Subscribe to the HBW's state (its rack) from now on; only for the end: it comes
        at 200 Hz of wall time at 20x, too much to decode during the whole run."""
        self.node.create_subscription(
            HbwState, 'stf/hbw/state', lambda m: self._latest.__setitem__('hbw', m), 10
        )

    # services

    def call(self, srv: Any, name: str, timeout: float = 5.0, **fields: Any) -> Any:
        """The reply, or None when nobody answered (no leader now, or a timeout)."""
        if name not in self._clients:
            self._clients[name] = self.node.create_client(srv, name)
        try:
            return self._clients[name].call(srv.Request(**fields), timeout_sec=timeout)
        except (runtime.ServiceError, TimeoutError):
            return None

    def start_orders(self) -> None:
        thread = threading.Thread(target=self._order_stream, daemon=True, name='orders')
        self._threads.append(thread)
        thread.start()

    def stop_orders(self) -> None:
        self._stop.set()
        self._threads[-1].join(timeout=30)
        assert not self._threads[-1].is_alive()

    def _order_stream(self) -> None:
        """Orders as a user sends them, while fewer than QUEUE_DEPTH wait: bake a raw cookie,
        store a new one, ship one; keeping the rack between a third and three quarters full."""
        while not self._stop.wait(0.2):  # the user's pace, not a synchronisation
            listed = self.call(ListCommands, 'stf/command/list', status='PENDING')
            inventory = self.call(GetInventory, 'stf/inventory/get')
            if listed is None or inventory is None or not inventory.inventory.slots:
                continue
            if len(listed.commands) >= QUEUE_DEPTH:
                continue
            slots = inventory.inventory.slots
            occupied = [s.slot for s in slots if s.workpiece.id]
            raw = [s for s in slots if s.workpiece.status == WorkpieceStatus.RAW_DOUGH]
            choices: list[tuple[str, Callable[[], Any]]] = []
            if raw:
                choices += [('process', lambda: self.call(ProcessOrder, 'stf/order/process'))] * 2
                if (mqtt := self.mqtt_order) is not None:
                    flavor = self._rng.choice(raw).workpiece.flavor
                    choices += [('mqtt', lambda f=flavor, m=mqtt: m(f))] * 2
            if len(occupied) < len(slots) * 3 // 4:
                flavor = self._rng.choice(('CHOCO', 'VANILLA', 'STRAWBERRY'))
                choices.append(
                    (
                        'store',
                        lambda f=flavor: self.call(StoreWorkpiece, 'stf/order/store', flavor=f),
                    )
                )
            if len(occupied) > len(slots) // 3:
                slot = self._rng.choice(occupied)
                choices.append(
                    (
                        'retrieve',
                        lambda s=slot: self.call(RetrieveWorkpiece, 'stf/order/retrieve', slot=s),
                    )
                )
            if not choices:
                continue
            kind, send = self._rng.choice(choices)
            reply = send()
            if kind != 'mqtt':
                self.orders.add(kind, reply)

    def close(self) -> None:
        self._stop.set()
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.shutdown()


# -- the attacks -----------------------------------------------------------------------------


@dataclass
class Attacks:
    kills: Counter[str] = field(default_factory=Counter)
    #: Pids killed by the test (their tasks may run again on the respawned node).
    killed: set[int] = field(default_factory=set)
    #: Kills of the scheduler that held the lease at that moment.
    leader_kills: int = 0
    #: Pids of the nodes stopped by the factory restart.
    restarted: set[int] = field(default_factory=set)
    #: Per fault: the wall time from each occurrence until the next step ended, s.
    recovery_s: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))


class Chaos:
    """Kills the launch's processes one at a time, each when it has work in hand."""

    def __init__(self, operator: Operator, engine: Engine, seed: int) -> None:
        self.operator = operator
        self.engine = engine
        self.attacks = Attacks()
        self._rng = random.Random(seed)

    def kill_node(self, launch: Launch, label: str) -> None:
        """kill -9 ``label`` mid-work, wait until the launch respawned it and the factory made
        progress again."""
        station = label if label in STATIONS else None
        # A station while it runs a step; anything else in the middle of a command.
        self.operator.wait_step(station, timeout=20)
        time.sleep(self._rng.uniform(0.0, 0.3))  # somewhere inside the step, not at its start
        pid = launch.pid(label)
        if label.startswith('scheduler') and f'/{label}#{pid}.' in lease_holder(self.engine):
            self.attacks.leader_kills += 1
        mark = launch.mark()
        done = steps_ended(self.engine)
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        self.attacks.kills[label] += 1
        self.attacks.killed.add(pid)
        launch.wait_for(
            rf'^\[launch\] {label} started with pid (?!{pid}\b)\d+',
            since=mark,
            timeout=RESPAWN_TIMEOUT_S,
        )
        launch.wait_for(READY[label], since=mark, timeout=RESPAWN_TIMEOUT_S)
        self.wait_progress(done, f'kill -9 of {label}', killed)

    def kill_router(self, launch: Launch) -> None:
        self.operator.wait_step(None, timeout=20)
        pid = launch.pid('router')
        mark = launch.mark()
        done = steps_ended(self.engine)
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        self.attacks.kills['router'] += 1
        self.attacks.killed.add(pid)
        launch.wait_for(r'^\[router\] stf router: listening', since=mark, timeout=30)
        self.wait_progress(done, 'kill -9 of the router', killed)

    def wait_progress(self, done: int, fault: str, since: float) -> None:
        """At least one more step ended (the factory works again); the wall time from ``since``
        (the fault) is the fault's recovery time."""
        try:
            wait_until(
                lambda: steps_ended(self.engine) > done, timeout=PROGRESS_TIMEOUT_S, interval=0.2
            )
        except AssertionError:
            raise AssertionError(
                f'no step ended within {PROGRESS_TIMEOUT_S:g} s after {fault}'
            ) from None
        self.attacks.recovery_s[fault].append(time.monotonic() - since)


def steps_ended(engine: Engine) -> int:
    with engine.connect() as connection:
        rows = connection.execute(
            select(CommandStepRow.id).where(CommandStepRow.finished_at.is_not(None))
        )
        return len(rows.all())


def lease_holder(engine: Engine) -> str:
    with engine.connect() as connection:
        holder = connection.scalar(select(SchedulerLeaseRow.holder))
    return holder or ''


def start_factory(launches: list[Launch], directory: Path, args: list[str]) -> Launch:
    """``stf launch`` of the factory with ``args``, its Foxglove server on a free port (the
    default 8765 may be taken on a shared machine, and the launch ends when it cannot bind)."""
    args = [*args, f'foxglove_port:={free_port()}']
    factory = Launch(directory, args, log=directory / f'launch-{len(launches) + 1}.log')
    launches.append(factory)
    return factory


def settled(queue: CommandQueue) -> bool:
    return all(c.status in FINAL and not c.stranded for c in queue.list())


def database_rack(engine: Engine) -> dict[str, tuple[str, str, str, int]]:
    with engine.connect() as connection:
        rows = connection.execute(select(InventoryRow)).all()
    return {
        row.slot: (
            row.carrier_id,
            row.workpiece_id,
            row.flavor if row.workpiece_id else '',
            row.status,
        )
        for row in rows
    }


def rack_of(message: Any) -> dict[str, tuple[str, str, str, int]] | None:
    if message is None:
        return None
    return {
        entry.slot: (
            entry.carrier_id,
            entry.workpiece.id,
            entry.workpiece.flavor,
            entry.workpiece.status,
        )
        for entry in message.slots
    }


# -- what the database and the logs say ------------------------------------------------------


@dataclass
class Report:
    orders: Orders
    attacks: Attacks
    wall_s: float
    launches: int
    outcomes: Counter[str]
    #: Journal rows sent again with their key (after a crash, or a station that did not answer).
    resent: int
    #: Attempts after a failed one (new key).
    retries: int
    restores: int
    #: Leases taken after the first of each launch (a scheduler died, or the lease was lost).
    takeovers: int
    #: Leaders that found their lease taken while alive.
    deposed: int
    mismatches: int
    lost: int
    #: Task keys started again on a respawned station.
    rerun_keys: int

    @classmethod
    def gather(
        cls,
        engine: Engine,
        orders: Orders,
        attacks: Attacks,
        lines: list[str],
        wall_s: float,
        *,
        launches: int,
    ) -> Report:
        with engine.connect() as connection:
            commands = connection.execute(select(CommandRow)).all()
            steps = connection.execute(select(CommandStepRow)).all()
        sends = (re.match(r'^\[scheduler.*started \(key ([^)]+)\)$', line) for line in lines)
        scheduler_sends = Counter(m[1] for m in sends if m)
        return cls(
            orders=orders,
            attacks=attacks,
            wall_s=wall_s,
            launches=launches,
            outcomes=Counter(CommandStatus(row.status).name for row in commands),
            resent=sum(count - 1 for count in scheduler_sends.values()),
            retries=sum(1 for row in steps if row.attempt > 1),
            restores=sum(1 for line in lines if re.search(r'\]: \w+ restored: holds', line)),
            takeovers=sum(1 for line in lines if re.search(LEADING, line)) - launches,
            deposed=sum(1 for line in lines if 'standing by: another scheduler took' in line),
            mismatches=sum(1 for line in lines if 'alert CONTENTS_MISMATCH' in line),
            lost=sum(1 for line in lines if 'alert WORKPIECE_LOST' in line),
            rerun_keys=len(task_runs(lines)[1]),
        )

    @property
    def summary(self) -> str:
        kinds = Counter(kind.name for kind in self.orders.accepted.values())
        recovery = {fault: round(max(s), 1) for fault, s in self.attacks.recovery_s.items()}
        return (
            f'fault run: {self.wall_s:.0f} s wall; orders accepted {len(self.orders.accepted)} '
            f'({dict(kinds)}), refused {dict(self.orders.refused)}, unanswered '
            f'{self.orders.unanswered}; kills {dict(self.attacks.kills)} (leader '
            f'{self.attacks.leader_kills}), factory restarts {self.launches - 1}; outcomes '
            f'{dict(self.outcomes)}; '
            f'steps resent with their key {self.resent}, retried {self.retries}, task keys '
            f'run again on a respawned station {self.rerun_keys}; restores {self.restores}; '
            f'takeovers {self.takeovers} (from a live leader {self.deposed}); '
            f'CONTENTS_MISMATCH {self.mismatches}; WORKPIECE_LOST {self.lost}; recovery '
            f'(s, worst per fault) {recovery}'
        )

    def check(self, engine: Engine, lines: list[str]) -> None:
        summary = self.summary
        with engine.connect() as connection:
            commands = {row.id: row for row in connection.execute(select(CommandRow))}
            steps = connection.execute(select(CommandStepRow).order_by(CommandStepRow.id)).all()
            rack = connection.execute(select(InventoryRow)).all()
            seeded = connection.execute(
                select(InventoryEventRow).where(InventoryEventRow.reason == 'seeded')
            ).all()

        # Every acknowledged command is final, COMPLETED unless its cookie was lost.
        assert self.orders.accepted, summary
        for command_id, kind in self.orders.accepted.items():
            row = commands.get(command_id)
            assert row is not None, f'acknowledged command {command_id} is not in the database'
            assert row.kind == kind, (command_id, row.kind, kind)
            status = CommandStatus(row.status)
            assert status is CommandStatus.COMPLETED or 'lost' in row.message, (
                f'command {command_id} ({kind.name}) ended {status.name}: {row.message}; {summary}'
            )
        unacknowledged = set(commands) - set(self.orders.accepted)
        assert len(unacknowledged) <= self.orders.unanswered, (
            f'commands nobody was told about: {sorted(unacknowledged)}, but only '
            f'{self.orders.unanswered} requests went unanswered; {summary}'
        )
        for row in commands.values():
            assert CommandStatus(row.status) in FINAL and not row.stranded, (row.id, summary)

        # No step ran twice: in the journal, and on the stations.
        succeeded = Counter(
            (row.command_id, row.phase, row.step_index)
            for row in steps
            if row.state == StepState.SUCCEEDED
        )
        twice = {step: n for step, n in succeeded.items() if n > 1}
        assert not twice, f'steps that succeeded twice: {twice}; {summary}'
        for row in commands.values():
            if CommandStatus(row.status) is CommandStatus.COMPLETED:
                done = sorted(
                    s.step_index
                    for s in steps
                    if s.command_id == row.id
                    and s.phase == Phase.PLAN
                    and s.state == StepState.SUCCEEDED
                )
                assert done == list(range(row.step_count)), (row.id, done, summary)
        duplicates, reruns = task_runs(lines)
        assert not duplicates, f'task keys a station process started twice: {duplicates}'
        stopped = self.attacks.killed | self.attacks.restarted
        for key, pids in reruns.items():
            assert set(pids[:-1]) <= stopped, (
                f'task key {key} ran on {pids}, but only {sorted(stopped)} were stopped; {summary}'
            )

        # Cookies are conserved.
        entered: dict[str, int] = {e.workpiece_id: e.status for e in seeded if e.workpiece_id}
        for row in commands.values():
            if row.kind == CommandKind.STORE and any(
                s.command_id == row.id and s.source == 'input' and s.state == StepState.SUCCEEDED
                for s in steps
            ):
                assert row.workpiece_id not in entered, (row.id, summary)
                entered[row.workpiece_id] = WorkpieceStatus.RAW_DOUGH
        baked = {
            s.workpiece_id for s in steps if s.verb == 'bake' and s.state == StepState.SUCCEEDED
        }
        shipped = Counter(
            row.workpiece_id
            for row in commands.values()
            if row.kind == CommandKind.RETRIEVE and row.status == CommandStatus.COMPLETED
        )
        assert all(n == 1 for n in shipped.values()), f'shipped twice: {shipped}; {summary}'
        lost = {row.workpiece_id for row in commands.values() if 'lost' in row.message}
        lost -= set(shipped)
        in_rack = Counter(row.workpiece_id for row in rack if row.workpiece_id)
        assert all(n == 1 for n in in_rack.values()), f'in two slots: {in_rack}; {summary}'
        expected = set(entered) - set(shipped) - lost
        assert set(in_rack) == expected, (
            f'rack holds {sorted(in_rack)}, expected {sorted(expected)} (entered '
            f'{len(entered)}, shipped {len(shipped)}, lost {sorted(lost)}); {summary}'
        )
        assert not set(shipped) - set(entered), (set(shipped) - set(entered), summary)
        for row in rack:
            if row.workpiece_id:
                want = (
                    WorkpieceStatus.BAKED
                    if row.workpiece_id in baked
                    else entered[row.workpiece_id]
                )
                assert row.status == want, (row.slot, row.workpiece_id, row.status, want, summary)
                assert row.reserved_by is None, (row.slot, row.reserved_by, summary)
        for row in commands.values():
            if row.kind == CommandKind.PROCESS and row.status == CommandStatus.COMPLETED:
                assert row.workpiece_id in baked, (row.id, summary)
        assert not CommandQueue(engine=engine).elsewhere(), summary
        # Kills and takeovers are expected events: no station ever disagreed with the records.
        assert not self.mismatches, summary


def task_runs(lines: list[str]) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """From the launch output: task keys one station process started twice, and keys started
    by several processes of a station (respawns), each with the pids in order."""
    current: dict[str, int] = {}
    runs: dict[tuple[str, str], list[int]] = defaultdict(list)
    for line in lines:
        if started := _NODE_STARTED.match(line):
            current[started[1]] = int(started[2])
        elif task := _TASK_STARTED.match(line):
            runs[task[1], task[4]].append(current[task[1]])
    duplicates = {f'{s} {k}': p for (s, k), p in runs.items() if len(p) != len(set(p))}
    reruns = {f'{s} {k}': p for (s, k), p in runs.items() if len(p) > 1}
    return duplicates, reruns
