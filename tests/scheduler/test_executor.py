"""The executor state machine against fake stations and a real queue on SQLite (no transport)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from stf_nodes.scheduler import (
    CommandQueue,
    CommandRecord,
    CommandStatus,
    InventorySlot,
    PlanSettings,
    Workpiece,
    WorkpieceStatus,
)
from stf_nodes.scheduler.executor import (
    Executor,
    FactoryView,
    Outcome,
    StationView,
    TaskPoll,
    TaskRequest,
    TaskResult,
    recovery_steps,
)
from stf_nodes.storage import make_engine, upgrade_schema
from tests.scheduler.conftest import STOCK, StepClock

STATIONS = ('hbw', 'conveyor', 'vgr')
SETTINGS = PlanSettings(timeouts={'hbw': 5.0, 'conveyor': 5.0, 'vgr': 5.0})


class FakeStations:
    """Stations that finish each task on the next poll, carrying the workpiece like the models
    do; ``script`` overrides the result of a step label, ``hang`` keeps it running."""

    def __init__(self) -> None:
        self.rack = {entry.slot: entry.workpiece for entry in STOCK}
        self.sent: list[TaskRequest] = []
        self.stopped: list[str] = []
        self.script: dict[str, TaskResult] = {}
        self.hang: set[str] = set()
        self.holding: dict[str, Workpiece] = {}
        self.now_s = 0.0

    def start_task(self, request: TaskRequest) -> TaskPoll:
        self.sent.append(request)
        label = f'{request.station} {request.verb} {request.target}'
        if label in self.hang:
            return lambda: None
        result = self.script.get(label) or self._run(request)
        return lambda: result

    def _run(self, request: TaskRequest) -> TaskResult:
        workpiece = request.workpiece
        if request.station == 'hbw' and request.verb == 'retrieve':
            workpiece, self.rack[request.target] = self.rack[request.target], Workpiece()
        elif request.station == 'hbw' and request.verb == 'store':
            self.rack[request.target] = workpiece or self.holding['hbw']
            self.holding.clear()  # a recovery's cookie is back in the rack
        elif request.verb == 'bake':
            workpiece = replace(workpiece, status=WorkpieceStatus.BAKED)
        return TaskResult(Outcome.SUCCEEDED, '', workpiece)

    def stop_station(self, station: str) -> None:
        self.stopped.append(station)

    def view(self) -> FactoryView:
        return FactoryView(
            stations={
                name: StationView(self.now_s, False, self.holding.get(name, Workpiece()))
                for name in STATIONS
            },
            rack=tuple(
                InventorySlot(slot=slot, carrier_id=f'c-{slot.lower()}', workpiece=workpiece)
                for slot, workpiece in self.rack.items()
            ),
        )


class Harness:
    def __init__(self, queue: CommandQueue) -> None:
        self.queue = queue
        self.stations = FakeStations()
        self.announced: list[CommandRecord] = []
        self.inventory_changes = 0
        self.logs: list[str] = []
        self.executor = Executor(
            queue=queue,
            link=self.stations,
            stations=STATIONS,
            settings=SETTINGS,
            announce=self._announce,
            inventory_changed=self._inventory_changed,
            log=self.logs.append,
        )
        self.now_s = 0.0

    def _announce(self, record: CommandRecord) -> None:
        stored = self.queue.get(record.id)
        assert stored is not None and stored.status == record.status  # committed first
        self.announced.append(record)

    def _inventory_changed(self) -> None:
        self.inventory_changes += 1

    def tick(self, count: int = 1, dt: float = 0.1) -> None:
        for _ in range(count):
            self.now_s += dt
            self.stations.now_s = self.now_s
            self.executor.tick(self.now_s)

    def run_until_idle(self, limit: int = 200) -> None:
        for _ in range(limit):
            self.tick()
            if not self.executor.busy:
                self.tick()
                if not self.executor.busy:
                    return
        raise AssertionError('executor did not become idle')

    def slot(self, name: str) -> Workpiece:
        return next(entry.workpiece for entry in self.queue.inventory() if entry.slot == name)

    def labels(self) -> list[str]:
        return [f'{r.station} {r.verb} {r.target}' for r in self.stations.sent]


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    engine = make_engine(f'sqlite:///{tmp_path / "stf.db"}')
    upgrade_schema(engine)
    queue = CommandQueue(engine=engine, clock=StepClock())
    assert queue.seed_inventory(STOCK)
    yield Harness(queue)
    engine.dispose()


def test_process_runs_every_step_carrying_the_cookie(harness: Harness) -> None:
    command = harness.queue.submit_process()
    harness.run_until_idle()
    final = harness.queue.get(command.id)
    assert final is not None and final.status is CommandStatus.COMPLETED
    assert harness.labels()[0] == 'hbw retrieve A1' and harness.labels()[-1] == 'hbw store A1'
    store = harness.stations.sent[-1]
    assert store.workpiece == Workpiece('w-a1', 'CHOCO', WorkpieceStatus.BAKED)
    assert harness.slot('A1') == Workpiece('w-a1', 'CHOCO', WorkpieceStatus.BAKED)
    statuses = [r.status for r in harness.announced]
    assert statuses[0] is CommandStatus.IN_PROGRESS and statuses[-1] is CommandStatus.COMPLETED
    assert harness.inventory_changes == 2  # taken out, stored back


def test_commands_run_one_at_a_time_in_priority_order(harness: Harness) -> None:
    low = harness.queue.submit_store(flavor='CHOCO')
    high = harness.queue.submit_retrieve(slot='A2', priority=5)
    harness.run_until_idle()
    finished = [r.id for r in harness.announced if r.status is CommandStatus.COMPLETED]
    assert finished == [high.id, low.id]
    stored = harness.stations.sent[-1]
    assert (stored.verb, stored.workpiece.status) == ('store', WorkpieceStatus.RAW_DOUGH)


def test_refused_step_fails_the_command_and_returns_the_cookie(harness: Harness) -> None:
    command = harness.queue.submit_process(source_slot='A2')
    harness.stations.script['vgr pick conveyor'] = TaskResult(Outcome.REFUSED, 'no vacuum')
    cookie = harness.stations.rack['A2']
    harness.stations.holding['conveyor'] = cookie  # where the fake's belt left it
    harness.tick(6)  # retrieve, load, transport, unload, pick (refused)
    failed = harness.queue.get(command.id)
    assert failed is not None and failed.status is CommandStatus.FAILED
    assert 'vgr pick conveyor refused: no vacuum' in failed.message
    harness.run_until_idle()
    assert harness.labels()[-3:] == [
        'conveyor transport entry',
        'conveyor unload entry',
        'hbw store A2',
    ]
    assert harness.slot('A2') == cookie  # reconciled with the HBW after the recovery


def test_timed_out_step_stops_its_station(harness: Harness) -> None:
    command = harness.queue.submit_retrieve(slot='A3')
    harness.stations.hang.add('conveyor transport exit')
    harness.tick(60)
    failed = harness.queue.get(command.id)
    assert failed is not None and failed.status is CommandStatus.FAILED
    assert 'timed out after 5 s' in failed.message
    assert harness.stations.stopped == ['conveyor']


def test_cancel_running_stops_where_a_station_holds_the_cookie(harness: Harness) -> None:
    command = harness.queue.submit_process(source_slot='B3')
    cookie = harness.stations.rack['B3']
    harness.tick()  # hbw retrieve sent
    assert harness.queue.cancel(command.id).stop_required
    assert harness.executor.request_cancel(command.id)
    harness.stations.holding['conveyor'] = cookie
    harness.tick(2)  # after the retrieve the cookie is handed over: one more step, onto the belt
    assert harness.labels() == ['hbw retrieve B3', 'conveyor load entry']
    harness.run_until_idle()
    assert harness.labels()[-1] == 'hbw store B3'
    final = harness.queue.get(command.id)
    assert final is not None and final.status is CommandStatus.CANCELLED
    assert 'cookie returned to the rack' in final.message
    assert harness.slot('B3') == cookie


def test_emergency_stop_fails_pauses_and_reset_resumes(harness: Harness) -> None:
    first = harness.queue.submit_process()
    second = harness.queue.submit_process()
    harness.stations.hang.add('conveyor transport exit')
    harness.tick(5)
    harness.executor.emergency_stop('emergency stop', harness.now_s)
    sent = len(harness.stations.sent)
    harness.tick(20)
    assert len(harness.stations.sent) == sent  # paused
    stopped = harness.queue.get(first.id)
    assert stopped is not None and stopped.status is CommandStatus.FAILED
    harness.stations.hang.clear()
    harness.executor.reset(harness.now_s)
    harness.run_until_idle()
    done = harness.queue.get(second.id)
    assert done is not None and done.status is CommandStatus.COMPLETED


def test_start_up_reconciles_before_running(harness: Harness) -> None:
    harness.stations.rack['C3'] = Workpiece('w-new', 'VANILLA', WorkpieceStatus.RAW_DOUGH)
    harness.executor.start_up((), harness.now_s)
    harness.run_until_idle()
    assert harness.slot('C3').id == 'w-new'
    assert harness.stations.sent == []


def test_recovery_route_from_the_gripper() -> None:
    cookie = Workpiece('w', 'CHOCO', WorkpieceStatus.BAKED)
    stations = {name: StationView(1.0, False) for name in STATIONS}
    stations['vgr'] = StationView(1.0, False, cookie)
    rack = (InventorySlot('A1', workpiece=cookie), InventorySlot('A2'))
    planned = recovery_steps(FactoryView(stations, rack), 'A1')
    assert [step.label for step, _ in planned] == [
        'vgr place conveyor',
        'conveyor load exit',
        'conveyor transport entry',
        'conveyor unload entry',
        'hbw store A2',  # A1 is taken: the first empty slot
    ]
    assert planned[0][1] == cookie
    empty = {name: StationView(1.0, False) for name in STATIONS}
    assert recovery_steps(FactoryView(empty, rack), 'A1') == ()
