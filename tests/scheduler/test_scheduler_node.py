"""The scheduler node with real station nodes, a 20x sim clock and a router, as processes.

One factory (hbw, vgr, conveyor, clock) in the namespace `/sched` serves the whole module; each
test starts its own scheduler on a fresh database, which seeds its inventory from the HBW.
"""

from __future__ import annotations

import math
import random
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zenoh
from sqlalchemy.engine import URL

from stf_nodes import interfaces, runtime
from stf_nodes.runtime import names
from stf_nodes.scheduler import CommandQueue, CommandStatus, StepState
from stf_nodes.scheduler_node import SchedulerNode
from stf_nodes.storage import make_engine
from stf_nodes.workpieces import rack_slots
from tests.conftest import REPO_ROOT, Processes, foreign_peer_config, wait_until
from tests.fuzz.common import CASES
from tests.scheduler.conftest import STOCK
from tests.storage.conftest import scratch_databases  # noqa: F401 - fixture

NS = '/sched'
PARAMS = ['--params-file', str(REPO_ROOT / 'config' / 'factory.yaml')]
SCHEDULER_PARAMS = ['--params-file', str(REPO_ROOT / 'config' / 'scheduler.yaml')]
SIM = ['-p', 'use_sim_time:=true', '-r', f'__ns:={NS}']
ProcessOrder = interfaces.get_service('stf_msgs/srv/ProcessOrder')
StoreWorkpiece = interfaces.get_service('stf_msgs/srv/StoreWorkpiece')
RetrieveWorkpiece = interfaces.get_service('stf_msgs/srv/RetrieveWorkpiece')
CancelCommand = interfaces.get_service('stf_msgs/srv/CancelCommand')
ListCommands = interfaces.get_service('stf_msgs/srv/ListCommands')
GetInventory = interfaces.get_service('stf_msgs/srv/GetInventory')
InjectFault = interfaces.get_service('stf_msgs/srv/InjectFault')
ClearFault = interfaces.get_service('stf_msgs/srv/ClearFault')
Trigger = interfaces.get_service('std_srvs/srv/Trigger')
CommandStatusMsg = interfaces.get_message_class('stf_msgs/msg/CommandStatus')
RestoreStation = interfaces.get_service('stf_msgs/srv/RestoreStation')
InventorySlotMsg = interfaces.get_message_class('stf_msgs/msg/InventorySlot')
WorkpieceMsg = interfaces.get_message_class('stf_msgs/msg/Workpiece')
ConveyorStateMsg = interfaces.get_message_class('stf_msgs/msg/ConveyorState')
ON_BELT = 'conveyor transport exit'  # a step during which the cookie is on the belt
FINISHED = {CommandStatus.COMPLETED, CommandStatus.FAILED, CommandStatus.CANCELLED}


def node_argv(name: str, *extra: str) -> list[str]:
    params = SCHEDULER_PARAMS if name == 'scheduler' else PARAMS
    return [sys.executable, '-m', f'stf_nodes.{name}_node', '--ros-args', *params, *extra]


@pytest.fixture(scope='module')
def factory(router: str) -> Iterator[None]:
    stations = Processes()
    for name in ('hbw', 'vgr', 'conveyor'):
        stations.start(*node_argv(name, *SIM))
    stations.start(*node_argv('clock', '-r', f'__ns:={NS}', '-p', 'time_scale:=20.0'))
    yield
    stations.stop_all()


class Client:
    """A test-side node calling the scheduler's services."""

    def __init__(self) -> None:
        self.context = runtime.Context([])
        self.node = runtime.Node('sched_tester', context=self.context)
        self._clients: dict[str, runtime.Client] = {}
        self._hooks: dict[tuple[int, str], Callable[[], None]] = {}
        self.fired: set[tuple[int, str]] = set()
        self.node.create_subscription(CommandStatusMsg, f'{NS}/stf/commands', self._on_command, 100)
        self.executor = runtime.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()

    def when_step(self, command_id: int, step: str, action: Callable[[], None]) -> None:
        """Run ``action`` as soon as the command announces ``step`` (reacting within
        milliseconds: a step lasts a fraction of a wall second at 20x)."""
        self._hooks[(command_id, step)] = action

    def _on_command(self, message: Any) -> None:
        key = (message.command_id, message.step)
        action = self._hooks.pop(key, None)
        if action is not None:
            action()
            self.fired.add(key)

    def wait_fired(self, command_id: int, step: str) -> None:
        wait_until(lambda: (command_id, step) in self.fired, timeout=20)

    def call(self, srv: Any, name: str, timeout: float = 10.0, **fields: Any) -> Any:
        if name not in self._clients:
            self._clients[name] = self.node.create_client(srv, f'{NS}/{name}')
            self._clients[name].wait_for_service(timeout)
        return self._clients[name].call(srv.Request(**fields), timeout_sec=timeout)

    def commands(self) -> dict[int, Any]:
        return {c.command_id: c for c in self.call(ListCommands, 'stf/command/list').commands}

    def status(self, command_id: int) -> CommandStatus:
        return CommandStatus(self.commands()[command_id].status)

    def wait_finished(self, *ids: int, timeout: float = 30.0) -> dict[int, Any]:
        def done() -> dict[int, Any] | None:
            commands = self.commands()
            return commands if all(commands[i].status in FINISHED for i in ids) else None

        return wait_until(done, timeout=timeout, interval=0.1)

    def slots(self) -> dict[str, Any]:
        inventory = self.call(GetInventory, 'stf/inventory/get').inventory
        return {entry.slot: entry.workpiece for entry in inventory.slots}

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.shutdown()


@pytest.fixture
def client(factory: None) -> Iterator[Client]:
    """A client, and the module's HBW holding the configured stock again (each test starts a
    scheduler on a new database, which is seeded from what the HBW holds)."""
    test_client = Client()
    stock = ['WP001', 'WP002', 'WP003', 'WP004', 'WP005', 'WP006']
    flavors = ['CHOCO', 'VANILLA', 'STRAWBERRY'] * 2
    slots = [
        InventorySlotMsg(slot=slot, carrier_id=f'C-{slot}', workpiece=WorkpieceMsg(
            id=stock[n], flavor=flavors[n], status=1) if n < 6 else WorkpieceMsg())
        for n, slot in enumerate(rack_slots(3, 3))
    ]  # fmt: skip

    def restore() -> Any:
        # A task an earlier test's scheduler left running on the HBW finishes first.
        reply = test_client.call(RestoreStation, 'stf/hbw/restore', timeout=20, slots=slots)
        assert reply.accepted or 'is running' in reply.message, reply.message
        return reply.accepted

    wait_until(restore, timeout=60, interval=0.5)
    yield test_client
    test_client.close()


class Scheduler:
    """Starts (and restarts) a scheduler process on one database."""

    def __init__(
        self, processes: Processes, db_url: str, client: Client, name: str = 'scheduler'
    ) -> None:
        self.processes, self.db_url, self.client, self.name = processes, db_url, client, name
        self.process: Any = None

    def start(self, *, wait: bool = True) -> None:
        argv = node_argv('scheduler', *SIM, '-p', self.db_url, '-r', f'__node:={self.name}')
        self.process = self.processes.start(*argv)
        if wait:
            wait_until(self._ready, timeout=20, interval=0.1)

    def _ready(self) -> bool:
        try:
            return any(s.workpiece.id for s in self.client.call(
                GetInventory, 'stf/inventory/get', timeout=1).inventory.slots)  # fmt: skip
        except (runtime.ServiceError, TimeoutError):
            return False

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> str:
        """Stop the scheduler with Ctrl-C; everything it printed."""
        self.process.send_signal(signal.SIGINT)
        output, _ = self.process.communicate(timeout=10)
        return output


@pytest.fixture
def scheduler(processes: Processes, client: Client, tmp_path: Path) -> Scheduler:
    started = Scheduler(processes, f'db_url:=sqlite:///{tmp_path / "stf.db"}', client)
    started.start()
    return started


def submit(client: Client, srv: Any, name: str, **fields: Any) -> int:
    response = client.call(srv, name, **fields)
    assert response.accepted, response.message
    return response.command_id


def process(client: Client, **fields: Any) -> int:
    return submit(client, ProcessOrder, 'stf/order/process', **fields)


def raw_slot(client: Client) -> str:
    return next(s for s, w in client.slots().items() if w.status == 1)


def test_process_store_and_retrieve_complete(client: Client, scheduler: Scheduler) -> None:
    before = client.slots()
    baked = process(client)
    command = client.wait_finished(baked)[baked]
    assert command.status == CommandStatus.COMPLETED, command.message
    slot = command.source_slot
    assert client.slots()[slot].id == before[slot].id
    assert client.slots()[slot].status == 2  # BAKED, back in its slot

    stored = submit(client, StoreWorkpiece, 'stf/order/store', flavor='vanilla')
    retrieved = submit(client, RetrieveWorkpiece, 'stf/order/retrieve', slot=slot)
    commands = client.wait_finished(stored, retrieved)
    assert commands[stored].status == CommandStatus.COMPLETED, commands[stored].message
    assert commands[retrieved].status == CommandStatus.COMPLETED, commands[retrieved].message
    slots = client.slots()
    assert slots[commands[stored].target_slot].id == commands[stored].workpiece_id
    assert slots[slot].id == ''


def test_cancel_pending_and_running(client: Client, scheduler: Scheduler) -> None:
    running = process(client)
    pending = process(client)
    reply = client.call(CancelCommand, 'stf/command/cancel', command_id=pending)
    assert reply.accepted and client.status(pending) == CommandStatus.CANCELLED
    replies: list[Any] = []
    client.when_step(running, ON_BELT, lambda: replies.append(
        client.call(CancelCommand, 'stf/command/cancel', command_id=running)))  # fmt: skip
    client.wait_fired(running, ON_BELT)
    assert replies[0].accepted, replies[0].message
    cookie = client.commands()[running]
    final = client.wait_finished(running)[running]
    assert final.status == CommandStatus.CANCELLED, final.message
    assert 'conveyor belt' in final.message  # where the cookie was when it ended
    # The cookie goes home; the command's message says so once the return is recorded.
    wait_until(lambda: 'returned to' in client.commands()[running].message, timeout=20)
    assert client.slots()[cookie.source_slot].id == cookie.workpiece_id
    again = client.call(CancelCommand, 'stf/command/cancel', command_id=running)
    assert not again.accepted and 'CANCELLED' in again.message


def test_kill_9_mid_command_resumes_and_runs_nothing_twice(
    client: Client, scheduler: Scheduler, tmp_path: Path
) -> None:
    interrupted = process(client)
    queued = [process(client), submit(client, StoreWorkpiece, 'stf/order/store', flavor='CHOCO')]
    client.when_step(interrupted, ON_BELT, scheduler.kill)
    client.wait_fired(interrupted, ON_BELT)
    scheduler.start()
    commands = client.wait_finished(interrupted, *queued, timeout=40)
    for command_id in (interrupted, *queued):
        assert commands[command_id].status == CommandStatus.COMPLETED, commands[command_id].message
    queue = CommandQueue(engine=make_engine(f'sqlite:///{tmp_path / "stf.db"}'))
    for command_id in (interrupted, *queued):
        starts = [e for e in queue.events(command_id) if e.reason == 'started']
        assert len(starts) == 1
        done = [s.index for s in queue.steps(command_id) if s.state is StepState.SUCCEEDED]
        assert done == list(range(commands[command_id].step_count))  # each step once, in order
    assert client.slots()[commands[interrupted].source_slot].status == 2  # baked, back home


def test_thousands_of_invalid_requests_are_refused(client: Client, scheduler: Scheduler) -> None:
    rng = random.Random(5)
    empty = next(s for s, w in client.slots().items() if not w.id)
    full = next(s for s, w in client.slots().items() if w.id)
    junk = [
        'Z9', 'A0', 'A11', '', ' ', "A1'; DROP TABLE commands; --", 'A1" OR 1=1', 'ä1', '🍪',
        '\x00', 'x' * 1_000_000, 'MINT', 'choco late', 'A1,A2', 'NULL', '%', '\\',
    ]  # fmt: skip
    not_empty = junk[:3] + junk[5:]  # an empty slot means "choose one" for process
    cases = [
        lambda: (ProcessOrder, 'stf/order/process', {'source_slot': rng.choice(not_empty)}),
        lambda: (ProcessOrder, 'stf/order/process', {'source_slot': empty}),
        lambda: (ProcessOrder, 'stf/order/process', {'flavor': rng.choice(not_empty)}),
        lambda: (StoreWorkpiece, 'stf/order/store', {'flavor': rng.choice(junk)}),
        lambda: (StoreWorkpiece, 'stf/order/store', {'flavor': 'CHOCO', 'slot': full}),
        lambda: (RetrieveWorkpiece, 'stf/order/retrieve', {'slot': rng.choice(junk)}),
        lambda: (RetrieveWorkpiece, 'stf/order/retrieve', {'slot': empty}),
        lambda: (CancelCommand, 'stf/command/cancel', {'command_id': rng.randint(-10, 10**9)}),
    ]  # fmt: skip
    before = client.commands()
    for _ in range(2500):
        srv, name, fields = rng.choice(cases)()
        reply = client.call(srv, name, **fields)
        assert not reply.accepted and reply.message, (name, fields)
    for srv, name in ((InjectFault, 'stf/fault/inject'), (ClearFault, 'stf/fault/clear')):
        reply = client.call(srv, name, component_id='x' * 100_000)
        assert not reply.accepted and 'component_id is too long' in reply.message
        assert len(reply.message) < 200
        reply = client.call(srv, name, component_id='CONV_M9')
        assert not reply.accepted and 'unknown component' in reply.message
    reply = client.call(
        InjectFault, 'stf/fault/inject', component_id='CONV_M1', fault='STALL', magnitude=math.nan
    )
    assert not reply.accepted and 'magnitude must be a finite number' in reply.message
    listed = client.call(ListCommands, 'stf/command/list', status='DROP TABLE')
    assert not listed.success and 'unknown status' in listed.message and not listed.commands
    assert client.commands() == before
    assert client.status(process(client)) in {CommandStatus.PENDING, CommandStatus.IN_PROGRESS}


def test_garbage_on_a_station_state_topic_from_a_foreign_peer_changes_nothing(
    client: Client, scheduler: Scheduler, router: str
) -> None:
    """A 4-byte HbwState (once crash-looped the scheduler) and well-formed states that make no
    sense, published in the middle of an order: the order completes, the scheduler lives."""
    peer = zenoh.open(foreign_peer_config(router))
    wait_until(lambda: list(peer.info.routers_zid()))
    hbw_key = names.data_keyexpr(
        0, f'{NS}/stf/hbw/state', interfaces.dds_type_name('stf_msgs/msg/HbwState'),
        interfaces.type_hash('stf_msgs/msg/HbwState'),
    )  # fmt: skip
    nonsense = interfaces.get_message_class('stf_msgs/msg/HbwState')(state=1, restored=True)
    nonsense.workpiece.id, nonsense.workpiece.status = 'X', 99  # no such status
    garbage = [b'\x00\x01\x00\x00', b'\xff' * 3, interfaces.serialize(nonsense)]
    command = process(client)
    client.when_step(command, ON_BELT, lambda: [peer.put(hbw_key, g) for g in garbage * 20])
    try:
        client.wait_fired(command, ON_BELT)
        final = client.wait_finished(command)[command]
    finally:
        peer.close()
    assert final.status == CommandStatus.COMPLETED, final.message
    assert scheduler.process.poll() is None
    output = scheduler.stop()
    assert output.count('dropped a malformed stf_msgs/msg/HbwState') == 1  # logged once
    assert output.count('dropped a state that makes no sense') == 1


def test_a_hot_standby_takes_over_a_running_command_and_finishes_it(
    client: Client, processes: Processes, tmp_path: Path
) -> None:
    db = tmp_path / 'stf.db'
    leader = Scheduler(processes, f'db_url:=sqlite:///{db}', client)
    leader.start()
    standby = Scheduler(processes, f'db_url:=sqlite:///{db}', client, name='scheduler_2')
    standby.start(wait=False)
    graph = client.node.context.graph
    wait_until(lambda: graph.count(f'{NS}/stf/command/list', names.SERVICE) == 2, timeout=20)
    # Only the leader takes orders; both answer the read-only services.
    assert graph.count(f'{NS}/stf/order/process', names.SERVICE) == 1
    queue = CommandQueue(engine=make_engine(f'sqlite:///{db}'))
    first = process(client)
    second = process(client)
    killed_at: list[float] = []
    client.when_step(first, ON_BELT, lambda: (leader.kill(), killed_at.append(time.monotonic())))
    client.wait_fired(first, ON_BELT)
    lease = wait_until(lambda: _lease_holder(db, '/scheduler_2'), timeout=10, interval=0.01)
    takeover_s = time.monotonic() - killed_at[0]
    commands = client.wait_finished(first, second, timeout=60)
    for command_id in (first, second):
        assert commands[command_id].status == CommandStatus.COMPLETED, commands[command_id].message
        done = [s.index for s in queue.steps(command_id) if s.state is StepState.SUCCEEDED]
        assert done == list(range(13))  # every step once, across the takeover
    tokens = {s.fencing_token for s in queue.steps(first)}
    assert len(tokens) == 2 and max(tokens) == lease  # begun by the leader, ended by the standby
    # At 20x sim time the 2 s lease is 0.1 s of wall time; a takeover over 3 s of wall time
    # would mean the standby missed it altogether.
    assert takeover_s < 3.0, takeover_s
    graph_has_one_leader = graph.count(f'{NS}/stf/order/process', names.SERVICE)
    assert graph_has_one_leader == 1


def _lease_holder(db: Path, holder: str) -> int:
    """The token of the scheduler lease if ``holder`` (a name part) holds it, else 0."""
    with sqlite3.connect(db) as connection:
        row = connection.execute('SELECT holder, token FROM scheduler_leases').fetchone()
    return row[1] if row and holder in row[0] else 0


def test_emergency_stop_fails_and_pauses_reset_resumes(
    client: Client, scheduler: Scheduler
) -> None:
    stopped = process(client)
    waiting = process(client)
    replies: list[Any] = []
    client.when_step(stopped, ON_BELT, lambda: replies.append(
        client.call(Trigger, 'stf/emergency_stop')))  # fmt: skip
    client.wait_fired(stopped, ON_BELT)
    assert replies[0].success, replies[0].message
    command = client.wait_finished(stopped)[stopped]
    assert command.status == CommandStatus.FAILED and 'emergency stop' in command.message
    assert 'is at conveyor belt' in command.message  # where its cookie waits
    time.sleep(1.0)  # 20 s of sim time: nothing moves while paused
    assert client.status(waiting) == CommandStatus.PENDING
    assert client.call(Trigger, 'stf/reset').success
    commands = client.wait_finished(waiting)
    assert commands[waiting].status == CommandStatus.COMPLETED, commands[waiting].message
    assert client.slots()[command.source_slot].id == command.workpiece_id  # carried back


def test_no_cookie_leaves_the_rack_while_the_conveyor_motor_has_failed(
    client: Client, scheduler: Scheduler
) -> None:
    inject = client.call(
        InjectFault, 'stf/fault/inject', component_id='CONV_M1', fault='MOTOR_FAILURE'
    )
    assert inject.accepted, inject.message
    try:
        # The order must come after the scheduler heard the conveyor say ERROR: this node and
        # the scheduler hear its states alike, so two more after the first ERROR are enough.
        errors: list[Any] = []

        def on_state(state: Any) -> None:
            if errors or state.state == state.STATE_ERROR:
                errors.append(state)

        client.node.create_subscription(ConveyorStateMsg, f'{NS}/stf/conveyor/state', on_state, 10)
        wait_until(lambda: len(errors) >= 3, timeout=20)
        before = client.slots()
        command = process(client)
        time.sleep(1.0)  # 20 s of sim time: the conveyor stays in ERROR
        assert client.status(command) == CommandStatus.PENDING
        assert client.slots() == before  # the cookie never left its slot
    finally:
        assert client.call(ClearFault, 'stf/fault/clear', component_id='CONV_M1').accepted
    final = client.wait_finished(command)[command]
    assert final.status == CommandStatus.COMPLETED, final.message


def test_fault_facade_forwards_to_the_owner(client: Client, scheduler: Scheduler) -> None:
    reply = client.call(
        InjectFault, 'stf/fault/inject', component_id='CONV_M1', fault='OVERCURRENT', magnitude=2.0
    )
    assert reply.accepted and 'CONV_M1' in reply.message, reply.message
    reply = client.call(InjectFault, 'stf/fault/inject', component_id='VGR_M1_ARM', fault='NOPE')
    assert not reply.accepted and reply.message  # the station's own refusal, forwarded
    assert client.call(ClearFault, 'stf/fault/clear', component_id='CONV_M1').accepted
    assert client.call(ClearFault, 'stf/fault/clear').accepted
    reply = client.call(InjectFault, 'stf/fault/inject', component_id='HBW_M9', fault='STALL')
    assert not reply.accepted and 'unknown component' in reply.message


def test_process_order_on_postgresql(
    client: Client,
    processes: Processes,
    scratch_databases: Any,  # noqa: F811 - fixture
) -> None:
    url: URL = scratch_databases.url('postgresql')
    scheduler = Scheduler(processes, f'db_url:={url.render_as_string(hide_password=False)}', client)
    scheduler.start()
    baked = process(client)
    command = client.wait_finished(baked)[baked]
    assert command.status == CommandStatus.COMPLETED, command.message
    assert client.slots()[command.source_slot].status == 2


def test_a_request_left_over_by_a_deposed_leader_queues_nothing(
    router: str, tmp_path: Path
) -> None:
    """The leader's executor may still hold an order request when the node loses its lease and
    drops its order services (a takeover). Answering it must not queue anything: it once
    committed the order and then failed on the dropped publisher ("Undeclared publisher"), so
    the client was told of an error for an order that was queued and ran. White-box (the
    callback is called as the executor would): the race itself is a matter of milliseconds."""
    url = f'sqlite:///{tmp_path / "stf.db"}'
    queue = CommandQueue(engine=make_engine(url))
    context = runtime.Context([])
    node = SchedulerNode(
        context=context,
        namespace='/deposed',
        parameter_overrides=[runtime.Parameter('db_url', url)],
    )
    try:
        assert queue.seed_inventory(STOCK)
        node._lead(queue.acquire_lease('/deposed/scheduler', 'x', now_ns=0, duration_ns=1))
        node._follow('another scheduler took the lease')
        for srv, callback, fields in (
            (ProcessOrder, node._on_process, {}),
            (StoreWorkpiece, node._on_store, {'flavor': 'CHOCO'}),
            (RetrieveWorkpiece, node._on_retrieve, {'slot': 'A1'}),
        ):
            reply = callback(srv.Request(**fields), srv.Response())
            assert not reply.accepted and 'no longer leads' in reply.message, reply.message
        assert queue.list() == ()
    finally:
        node.destroy_node()
        context.shutdown()


# -- hostile requests (issue 17: fuzzing; one live round per kind of service) --------------

StationTask = interfaces.get_service('stf_msgs/srv/StationTask')
HUGE = 'x' * 100_000
SQL = "'; DROP TABLE commands;--"

HOSTILE: list[tuple[Any, str, dict[str, Any]]] = [
    (StationTask, 'stf/hbw/task', {'task': HUGE}),
    (StationTask, 'stf/hbw/task', {'task': 'fetch', 'target': '../../etc/passwd'}),
    (StationTask, 'stf/hbw/task', {'task': 'fetch', 'target': 'A1', 'value': math.nan}),
    (StationTask, 'stf/hbw/task', {'task': SQL, 'key': 'a\x00b', 'fencing_token': -5}),
    (StationTask, 'stf/hbw/task',
     {'task': 'store', 'target': 'C3', 'workpiece': WorkpieceMsg(id=SQL, flavor=SQL, status=250)}),
    (ProcessOrder, 'stf/order/process', {'flavor': SQL}),
    (ProcessOrder, 'stf/order/process', {'source_slot': '../../etc/passwd'}),
    (ProcessOrder, 'stf/order/process', {'flavor': HUGE, 'priority': -(2**31)}),
    (InjectFault, 'stf/fault/inject', {'component_id': SQL, 'fault': 'STALL'}),
    (InjectFault, 'stf/fault/inject', {'component_id': 'HBW_M1', 'fault': 'OVERCURRENT',
                                       'magnitude': math.inf}),
    (InjectFault, 'stf/fault/inject', {'component_id': 'HBW_M1', 'fault': '$(id)',
                                       'magnitude': -1.0, 'duration_s': -math.inf}),
    (InjectFault, 'stf/fault/inject', {'component_id': 'HBW_M1', 'fault': 'OVERCURRENT',
                                       'magnitude': -1e308}),
]  # fmt: skip


@pytest.mark.fuzz
def test_hostile_requests_are_refused_and_nothing_breaks(
    client: Client,
    processes: Processes,
    tmp_path: Path,
) -> None:
    scheduler = Scheduler(processes, f'db_url:=sqlite:///{tmp_path / "stf.db"}', client)
    scheduler.start()
    for srv, name, fields in HOSTILE:
        reply = client.call(srv, name, **fields)
        assert not reply.accepted, (name, fields, reply)
        assert 0 < len(reply.message) < 500, reply.message
        CASES['live: ' + srv.name.rsplit('/', 1)[-1]] += 1
    assert scheduler.process.poll() is None
    assert client.commands() == {}  # nothing was queued, the table is there
    reply = client.call(ProcessOrder, 'stf/order/process', flavor='choco')
    assert reply.accepted, reply.message
    client.wait_finished(reply.command_id, timeout=60)
