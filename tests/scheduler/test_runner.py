"""The command runner against a fake factory and a real queue on SQLite (no transport).

The fake stations keep what the real ones keep (rack, fork, belt, gripper, task keys, the
``restored`` flag, the highest fencing token) and finish a task on the next poll unless a test
says otherwise; ``restart`` makes a station forget everything, as a killed process does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from stf_nodes.scheduler import (
    CommandQueue,
    CommandRecord,
    CommandStatus,
    InventorySlot,
    LeaseLost,
    PlanSettings,
    RunnerSettings,
    StepState,
    Workpiece,
    WorkpieceStatus,
    routes,
)
from stf_nodes.scheduler.runner import (
    CommandRunner,
    Contents,
    Outcome,
    RestorePoll,
    Severity,
    StationView,
    TaskPoll,
    TaskRequest,
    TaskResult,
    locate,
)
from stf_nodes.storage import Base, make_engine
from tests.scheduler.conftest import STOCK, StepClock

STATIONS = ('hbw', 'conveyor', 'vgr')
SETTINGS = RunnerSettings(
    plan=PlanSettings(timeouts={'hbw': 5.0, 'conveyor': 5.0, 'vgr': 5.0}),
    station_wait_s=3.0,
    step_attempts=3,
    poll_interval_s=0.5,
)
RAW, BAKED = WorkpieceStatus.RAW_DOUGH, WorkpieceStatus.BAKED


@dataclass
class FakeStation:
    name: str
    rack: dict[str, Workpiece] = field(default_factory=dict)
    holding: Workpiece = field(default_factory=Workpiece)
    restored: bool = False
    able: bool = True
    down: bool = False
    fence: int = 0
    keys: dict[str, TaskResult] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)


class FakeFactory:
    """The runner's StationLink over fake stations; ``refuse(label)`` says whether a task is
    refused, ``hang`` holds tasks that never end."""

    def __init__(self) -> None:
        self.stations = {name: FakeStation(name) for name in STATIONS}
        self.stations['hbw'].rack = {entry.slot: entry.workpiece for entry in STOCK}
        self.refuse: Callable[[str], str] = lambda label: ''
        self.hang: set[str] = set()
        self.stopped: list[str] = []
        self.restores: list[tuple[str, Contents]] = []
        self.now_s = 0.0

    @property
    def rack(self) -> dict[str, Workpiece]:
        return self.stations['hbw'].rack

    def restart(self, name: str) -> None:
        """The station's process is killed and respawned: it remembers nothing."""
        station = self.stations[name]
        self.stations[name] = FakeStation(
            name, rack={s: Workpiece() for s in station.rack} if station.rack else {}
        )

    def views(self) -> dict[str, StationView]:
        return {
            name: StationView(
                stamp_s=self.now_s,
                busy=False,
                able=station.able,
                condition='READY' if station.able else 'ERROR',
                restored=station.restored,
                holding=station.holding,
                rack=tuple(
                    InventorySlot(slot=s, carrier_id=f'c-{s.lower()}', workpiece=w)
                    for s, w in station.rack.items()
                ),
            )
            for name, station in self.stations.items()
            if not station.down
        }

    def start_task(self, request: TaskRequest) -> TaskPoll:
        station = self.stations[request.station]
        label = f'{request.station} {request.verb} {request.target}'
        if station.down:
            return lambda: TaskResult(Outcome.UNREACHABLE, 'no server')
        if request.fencing_token < station.fence:
            return lambda: TaskResult(Outcome.REFUSED, 'stale fencing token')
        station.fence = request.fencing_token
        if request.key in station.keys:  # idempotent: the first run's result
            result = station.keys[request.key]
            return lambda: result
        if label in self.hang:
            station.keys[request.key] = TaskResult(Outcome.FAILED, 'never ended')
            return lambda: None
        refusal = self.refuse(label)
        result = TaskResult(Outcome.REFUSED, refusal) if refusal else self._run(station, request)
        station.keys[request.key] = result
        return lambda: result

    @staticmethod
    def _run(station: FakeStation, request: TaskRequest) -> TaskResult:
        station.runs.append(f'{request.verb} {request.target}')
        workpiece = request.workpiece
        if request.verb == 'retrieve':
            workpiece, station.rack[request.target] = station.rack[request.target], Workpiece()
        elif request.verb == 'store':
            station.rack[request.target] = workpiece if workpiece.present else station.holding
            station.holding = Workpiece()
        elif request.verb in ('load', 'pick'):
            station.holding = workpiece
        elif request.verb in ('unload', 'place'):
            workpiece, station.holding = station.holding, Workpiece()
        elif request.verb == 'bake':
            workpiece = replace(workpiece, status=BAKED)
        if not workpiece.present:
            return TaskResult(Outcome.REFUSED, f'{request.verb}: nothing to carry')
        return TaskResult(Outcome.SUCCEEDED, '', workpiece)

    def restore(self, station: str, contents: Contents, fencing_token: int) -> RestorePoll:
        target = self.stations[station]
        if fencing_token < target.fence:
            return lambda: 'stale fencing token'
        self.restores.append((station, contents))
        target.holding, target.restored, target.fence = contents.workpiece, True, fencing_token
        if contents.rack:
            target.rack = {entry.slot: entry.workpiece for entry in contents.rack}
        return lambda: ''

    def stop_station(self, station: str) -> None:
        self.stopped.append(station)


class Harness:
    def __init__(self, queue: CommandQueue, factory: FakeFactory, holder: str = 'a') -> None:
        self.queue = queue
        self.factory = factory
        self.holder = holder
        self.announced: list[CommandRecord] = []
        self.alerts: list[tuple[Severity, str, str, str]] = []
        self.logs: list[str] = []
        self.runner = CommandRunner(
            queue=queue,
            link=factory,
            stations=STATIONS,
            settings=SETTINGS,
            lease_name='factory',
            holder=holder,
            announce=self._announce,
            inventory_changed=lambda: None,
            alert=lambda *alert: self.alerts.append(alert),
            log=self.logs.append,
            steady=lambda: self.steady_s,
        )
        self.steady_s = 0.0  # the lease's steady clock, advanced with the ticks
        self.now_s = factory.now_s

    def lead(self) -> None:
        """Take the lease (after its holder, if any, stopped renewing it)."""
        for now_ns in (round(self.now_s * 1e9), round(self.now_s * 1e9) + 10**15):
            token = self.queue.acquire_lease(
                'factory', self.holder, now_ns=now_ns, duration_ns=10**15
            )
            if token:
                self.runner.lead(token)
                return
        raise AssertionError('the lease was not taken')

    def _announce(self, record: CommandRecord) -> None:
        stored = self.queue.get(record.id)
        assert stored is not None and stored.status == record.status  # committed first
        self.announced.append(record)

    def tick(self, count: int = 1, dt: float = 0.1, *, renew: bool = True) -> None:
        for _ in range(count):
            self.now_s += dt
            self.steady_s += dt
            self.factory.now_s = self.now_s
            if renew:  # as the node does, every lease_s / 4 and more
                self.runner.renewed()
            self.runner.tick(self.now_s)

    def run_until_idle(self, limit: int = 600) -> None:
        for _ in range(limit):
            self.tick()
            if not self.runner.busy and self.queue.peek_next() is None:
                self.tick(10)
                if not self.runner.busy:
                    return
        raise AssertionError(f'runner did not become idle: {self.logs[-5:]}')

    def slot(self, name: str) -> Workpiece:
        return next(entry.workpiece for entry in self.queue.inventory() if entry.slot == name)

    def record(self, command_id: int) -> CommandRecord:
        record = self.queue.get(command_id)
        assert record is not None
        return record

    def runs(self, station: str) -> list[str]:
        return self.factory.stations[station].runs

    def codes(self) -> list[str]:
        return [code for _, code, _, _ in self.alerts]


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[CommandQueue]:
    engine = make_engine(f'sqlite:///{tmp_path / "stf.db"}')
    Base.metadata.create_all(engine)
    yield CommandQueue(engine=engine, clock=StepClock())
    engine.dispose()


@pytest.fixture
def harness(queue: CommandQueue) -> Harness:
    started = Harness(queue, FakeFactory())
    started.lead()
    started.tick(10)  # seeds the inventory from the HBW, restores the stations
    assert queue.slots
    assert sorted(station for station, _ in started.factory.restores) == ['conveyor', 'hbw', 'vgr']
    return started


def test_a_new_database_is_seeded_from_the_hbw_and_the_stations_restored(harness: Harness) -> None:
    assert [entry.workpiece for entry in harness.queue.inventory()] == [
        entry.workpiece for entry in STOCK
    ]
    assert all(station.restored for station in harness.factory.stations.values())
    assert harness.alerts == []


def test_process_runs_every_step_carrying_the_cookie(harness: Harness) -> None:
    command = harness.queue.submit_process()
    harness.run_until_idle()
    final = harness.record(command.id)
    assert final.status is CommandStatus.COMPLETED and final.location == 'rack A1'
    assert harness.runs('hbw') == ['retrieve A1', 'store A1']
    assert harness.slot('A1') == Workpiece('w-a1', 'CHOCO', BAKED)
    assert harness.factory.rack['A1'] == harness.slot('A1')
    steps = harness.queue.steps(command.id)
    key = f'{command.id}.{final.uid}'
    assert [s.key for s in steps] == [f'{key}/P{i}/1' for i in range(13)]
    assert all(s.state is StepState.SUCCEEDED for s in steps)
    statuses = [r.status for r in harness.announced]
    assert statuses[0] is CommandStatus.IN_PROGRESS and statuses[-1] is CommandStatus.COMPLETED
    progress = [r.step_index for r in harness.announced if ' succeeded; at ' in r.message]
    assert progress == list(range(1, 14))


def test_commands_run_one_at_a_time_in_priority_order(harness: Harness) -> None:
    low = harness.queue.submit_store(flavor='CHOCO')
    high = harness.queue.submit_retrieve(slot='A2', priority=5)
    harness.run_until_idle()
    finished = [r.id for r in harness.announced if r.status is CommandStatus.COMPLETED]
    assert finished == [high.id, low.id]
    assert harness.runs('hbw') == ['retrieve A2', 'store B2']


def test_a_cookie_never_leaves_the_rack_while_a_station_is_faulted(harness: Harness) -> None:
    harness.factory.stations['conveyor'].able = False  # e.g. CONV_M1 MOTOR_FAILURE
    command = harness.queue.submit_process()
    harness.tick(50)
    assert harness.record(command.id).status is CommandStatus.PENDING
    assert harness.runs('hbw') == [] and harness.slot('A1').present
    assert harness.codes() == ['STATION_UNAVAILABLE']
    harness.factory.stations['conveyor'].able = True
    harness.run_until_idle()
    assert harness.record(command.id).status is CommandStatus.COMPLETED
    assert harness.codes() == ['STATION_UNAVAILABLE', 'STATION_UNAVAILABLE']  # raised, cleared
    assert harness.alerts[-1][0] is Severity.INFO


def test_a_refused_step_is_retried_then_the_command_fails_and_its_cookie_comes_back(
    harness: Harness,
) -> None:
    command = harness.queue.submit_process(source_slot='A2')
    harness.factory.refuse = lambda label: 'no vacuum' if label == 'vgr pick conveyor' else ''
    harness.run_until_idle()
    failed = harness.record(command.id)
    assert failed.status is CommandStatus.FAILED
    assert 'vgr pick conveyor failed 3 times' in failed.message
    assert 'is at conveyor pickup' in failed.message and failed.message.endswith('returned to A2')
    keys = [s.key for s in harness.queue.steps(command.id) if s.verb == 'pick']
    key = f'{command.id}.{failed.uid}'
    assert keys == [f'{key}/P4/1', f'{key}/P4/2', f'{key}/P4/3']
    assert harness.slot('A2') == Workpiece('w-a2', 'VANILLA', RAW)
    assert harness.factory.rack['A2'] == harness.slot('A2')
    assert 'COMMAND_FAILED' in harness.codes()


def test_a_step_that_outlives_its_timeout_stops_its_station(harness: Harness) -> None:
    command = harness.queue.submit_retrieve(slot='A3')
    harness.factory.hang.add('conveyor transport exit')
    harness.tick(60)
    assert harness.factory.stopped == ['conveyor']
    harness.factory.hang.clear()
    harness.run_until_idle()
    assert harness.record(command.id).status is CommandStatus.COMPLETED  # the retry went through
    timed_out = [s for s in harness.queue.steps(command.id) if s.state is StepState.FAILED]
    assert timed_out and all('timed out after 5 s' in step.message for step in timed_out)
    assert set(harness.factory.stopped) == {'conveyor'}


def test_cancel_ends_the_command_after_its_step_and_carries_the_cookie_back(
    harness: Harness,
) -> None:
    command = harness.queue.submit_process(source_slot='B3')
    cookie = harness.slot('B3')
    harness.tick(5)  # a few steps in
    harness.runner.request_cancel(harness.queue.cancel(command.id))
    harness.run_until_idle()
    final = harness.record(command.id)
    assert final.status is CommandStatus.CANCELLED and final.message.endswith('returned to B3')
    assert harness.slot('B3') == cookie and harness.factory.rack['B3'] == cookie
    assert 'bake process' not in harness.runs('conveyor')


def test_emergency_stop_fails_pauses_and_reset_carries_back_and_resumes(
    harness: Harness,
) -> None:
    first = harness.queue.submit_process()
    second = harness.queue.submit_process()
    harness.factory.hang.add('conveyor transport exit')
    harness.tick(8)
    harness.runner.emergency_stop('emergency stop', harness.now_s)
    harness.tick(5)
    stopped = harness.record(first.id)
    assert stopped.status is CommandStatus.FAILED and stopped.stranded
    assert stopped.message == (
        'emergency stop during conveyor transport exit; RAW_DOUGH CHOCO cookie w-a1 is at '
        'conveyor belt entry'
    )
    sent = list(harness.runs('conveyor'))
    harness.tick(20)
    assert harness.runs('conveyor') == sent  # paused
    harness.factory.hang.clear()
    harness.runner.reset()
    harness.run_until_idle()
    assert harness.record(first.id).message.endswith('returned to A1')
    assert harness.record(second.id).status is CommandStatus.COMPLETED


def test_a_restarted_scheduler_resumes_and_a_finished_step_is_not_run_again(
    harness: Harness, queue: CommandQueue
) -> None:
    command = harness.queue.submit_process()
    harness.tick(6)  # a few steps done
    while (in_flight := queue.last_step(command.id)).state is not StepState.STARTED:  # type: ignore[union-attr]
        harness.tick()  # until one is journalled STARTED and sent (the fake runs it at once)
    assert in_flight is not None
    label = f'{in_flight.verb} {in_flight.target}'
    runs_before = harness.runs(in_flight.station).count(label)
    # The scheduler dies here: its station finished the task, the result never arrived.
    successor = Harness(queue, harness.factory, holder='b')
    successor.now_s = harness.now_s + 1e6  # long after the old lease expired
    successor.lead()
    successor.run_until_idle()
    assert successor.record(command.id).status is CommandStatus.COMPLETED
    steps = queue.steps(command.id)
    assert [s.index for s in steps if s.state is StepState.SUCCEEDED] == list(range(13))
    assert len(steps) == 13  # the STARTED attempt was sent again under its key
    assert harness.runs(in_flight.station).count(label) == runs_before  # and not run twice


def test_keys_stay_unique_when_the_stations_outlive_the_database(
    harness: Harness, tmp_path: Path
) -> None:
    """A new database numbers its commands from 1 again; the stations still remember the
    keys of the old one. The new command 1 must not get the old command 1's results."""
    first = harness.queue.submit_process(source_slot='A2')
    harness.run_until_idle()
    engine = make_engine(f'sqlite:///{tmp_path / "new.db"}')
    Base.metadata.create_all(engine)
    fresh = Harness(CommandQueue(engine=engine, clock=StepClock()), harness.factory, holder='c')
    fresh.now_s = harness.now_s
    fresh.lead()
    fresh.tick(20)  # seeded from the HBW as it is now
    again = fresh.queue.submit_process(source_slot='A3')
    assert again.id == first.id  # numbered from 1 again
    fresh.run_until_idle()
    assert fresh.record(again.id).status is CommandStatus.COMPLETED
    assert fresh.slot('A3') == Workpiece('w-a3', 'STRAWBERRY', BAKED)  # its own cookie
    assert fresh.slot('A2') == Workpiece('w-a2', 'VANILLA', BAKED)
    engine.dispose()


@pytest.mark.parametrize(
    'label', ['hbw retrieve A1', 'vgr place oven', 'conveyor unload exit', 'hbw store A1']
)
def test_a_successor_accepts_a_station_that_finished_the_step_in_flight(
    harness: Harness, queue: CommandQueue, label: str
) -> None:
    """The leader dies after its station finished a step and before the result was journalled:
    the station holds what the step left (a cookie already placed, a slot already emptied).
    The successor asks for the step's result under its key; it must not first "restore" the
    station to the step's start (a phantom cookie in the gripper or the rack, and a false
    CONTENTS_MISMATCH alert)."""
    command = harness.queue.submit_process()
    station = label.split()[0]
    while not (
        (last := queue.last_step(command.id)) is not None
        and last.state is StepState.STARTED
        and f'{last.station} {last.verb} {last.target}' == label
    ):
        harness.tick()  # the fake station runs the step as soon as it is sent
    restores = len(harness.factory.restores)
    successor = Harness(queue, harness.factory, holder='b')
    successor.now_s = harness.now_s + 1e6  # long after the old lease expired
    successor.lead()
    successor.run_until_idle()
    assert successor.record(command.id).status is CommandStatus.COMPLETED
    assert 'CONTENTS_MISMATCH' not in successor.codes(), [a[3] for a in successor.alerts]
    assert [s for s, _ in harness.factory.restores[restores:]] == []
    assert harness.factory.rack['A1'] == harness.slot('A1') == Workpiece('w-a1', 'CHOCO', BAKED)
    assert not harness.factory.stations[station].holding.present


def test_sim_time_that_jumps_back_mid_command_does_not_fail_it(harness: Harness) -> None:
    """A respawned /clock restarts sim time from the wall clock: node time jumps back by far
    more than ``station_wait_s``. The command in hand goes on; no station is taken for
    "not reported since the last change" because its new stamps are smaller than the marks
    taken before the jump."""
    command = harness.queue.submit_process()
    harness.tick(8)
    assert harness.record(command.id).status is CommandStatus.IN_PROGRESS
    harness.now_s -= 1000.0  # the stations follow the same /clock: their stamps jump too
    harness.run_until_idle()
    final = harness.record(command.id)
    assert final.status is CommandStatus.COMPLETED, final.message
    assert harness.factory.rack['A1'] == harness.slot('A1') == Workpiece('w-a1', 'CHOCO', BAKED)


def test_a_station_killed_mid_task_is_restored_and_the_step_retried(harness: Harness) -> None:
    command = harness.queue.submit_process(source_slot='A2')
    harness.factory.hang.add('conveyor transport exit')
    harness.tick(8)
    assert harness.factory.stations['conveyor'].holding.id == 'w-a2'  # on the belt
    harness.factory.restart('conveyor')  # kill -9 and respawn: the belt is empty now
    harness.factory.hang.clear()
    harness.run_until_idle()
    assert harness.record(command.id).status is CommandStatus.COMPLETED
    cookie = Workpiece('w-a2', 'VANILLA', RAW)
    assert ('conveyor', Contents(workpiece=cookie, place='entry')) in harness.factory.restores
    assert 'CONTENTS_MISMATCH' not in harness.codes()  # a restart is expected, not alarming


def test_a_restarted_hbw_gets_the_rack_of_the_database_not_its_configuration(
    harness: Harness,
) -> None:
    command = harness.queue.submit_process(source_slot='A1')
    harness.run_until_idle()
    harness.factory.restart('hbw')
    harness.factory.rack.update({entry.slot: entry.workpiece for entry in STOCK})  # the config
    harness.tick(20)
    assert harness.factory.rack['A1'] == Workpiece('w-a1', 'CHOCO', BAKED)  # still baked
    assert harness.record(command.id).status is CommandStatus.COMPLETED
    assert harness.alerts == []


def test_a_rack_that_disagrees_is_alerted_and_restored_from_the_database(
    harness: Harness,
) -> None:
    harness.factory.rack['C3'] = Workpiece('stray', 'CHOCO', RAW)
    harness.tick(20)
    [(severity, code, station, message)] = harness.alerts
    assert (severity, code, station) == (Severity.WARNING, 'CONTENTS_MISMATCH', 'hbw')
    assert 'C3=stray' in message and 'the records say' in message
    assert not harness.factory.rack['C3'].present and not harness.slot('C3').present


def test_a_station_that_stays_down_fails_the_command_and_its_cookie_waits(
    harness: Harness,
) -> None:
    command = harness.queue.submit_process(source_slot='A2')
    harness.factory.hang.add('conveyor transport exit')
    harness.tick(8)
    harness.factory.restart('conveyor')
    harness.factory.stations['conveyor'].down = True
    harness.tick(200)  # station_wait_s is 3 s
    failed = harness.record(command.id)
    assert failed.status is CommandStatus.FAILED and failed.stranded
    assert 'conveyor belt entry' in failed.message
    assert 'RETURN_BLOCKED' in harness.codes()
    assert harness.queue.elsewhere()[0].id == command.id
    harness.factory.stations['conveyor'].down = False
    harness.factory.hang.clear()
    harness.run_until_idle()
    assert harness.slot('A2').id == 'w-a2' and not harness.record(command.id).stranded


def test_a_deposed_runner_stops_at_its_next_write(harness: Harness, queue: CommandQueue) -> None:
    harness.queue.submit_process()
    harness.tick(3)
    usurper = Harness(queue, harness.factory, holder='b')
    usurper.lead()  # the heartbeat of 'a' stood still for its whole duration (b's clock)
    assert usurper.runner.token > harness.runner.token
    with pytest.raises(LeaseLost, match='held by b'):
        harness.tick(20)


def test_a_runner_whose_lease_is_not_renewed_stops_by_itself(harness: Harness) -> None:
    harness.queue.submit_process()
    harness.tick(3)
    with pytest.raises(LeaseLost, match=r'not renewed for 2\.\d s'):
        harness.tick(30, renew=False)  # lease_s is 2 s


@pytest.mark.parametrize(
    ('station', 'held', 'in_slot', 'expected'),
    [
        ('hbw', False, True, 'rack A1'),  # the retrieve never took it
        ('hbw', True, False, routes.HBW_FORK),  # stopped with it on the fork
        ('hbw', False, False, routes.HANDOFF),  # handed over, then stopped
        ('vgr', True, False, routes.GRIPPER),
        ('vgr', False, False, routes.PICKUP),
    ],
)
def test_locate_asks_the_station(station: str, held: bool, in_slot: bool, expected: str) -> None:
    step = {
        'hbw': routes.Step('hbw', 'retrieve', 'A1', 'rack A1', routes.HANDOFF),
        'vgr': routes.Step('vgr', 'pick', 'conveyor', routes.PICKUP, routes.GRIPPER),
    }[station]
    cookie = Workpiece('w', 'CHOCO', RAW)
    rack = (InventorySlot(slot='A1', workpiece=cookie if in_slot else Workpiece()),)
    view = StationView(
        stamp_s=1.0,
        busy=False,
        able=True,
        condition='READY',
        restored=True,
        holding=cookie if held else Workpiece(),
        rack=rack if station == 'hbw' else (),
    )
    assert locate(step, 'w', view) == expected
    assert locate(step, 'w', replace(view, restored=False)) == step.source  # it restarted
