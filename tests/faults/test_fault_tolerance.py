"""Nothing lost: the whole factory under a stream of orders while its processes are killed.

The scenario, as a user would run it (issue 8, "Done when"): ``stf launch factory.launch.xml
use_sim_time:=true time_scale:=20`` on a SQLite database in a temporary directory, orders of all
three kinds sent through the scheduler's services the whole time, and meanwhile:

- ``kill -9`` of every node in turn (hbw, vgr, conveyor, clock, scheduler, scheduler_2), a
  station while it runs a step, a scheduler in the middle of a command; the launch respawns it;
- ``kill -9`` of the Zenoh router the launch started, once, mid-command (the launch restarts it);
- Ctrl-C on the whole factory and a new ``stf launch`` on the same database, once.

Then the orders stop, the queue drains, and the test reads the database, the topics and the
logs the nodes printed:

- every acknowledged command (a reply with ``accepted`` true) is in the database and final:
  COMPLETED, or its cookie was truly lost and the message says where it was last; no request
  made two commands (the database holds no more commands than requests that were accepted or
  went unanswered);
- no step ran twice: at most one SUCCEEDED journal row (``command_steps``) per command, phase
  and step index; no station process started a task key twice, and a key ran again only on a
  respawned station after the incarnation that ran it was killed (the idempotency key makes a
  live station answer with the first run);
- cookies are conserved: each one that entered (the seeded stock, and each stored cookie that
  left the input) is in the rack with the right status (BAKED once a bake of it succeeded),
  or was shipped by exactly one completed RETRIEVE; nothing waits elsewhere, no slot stays
  reserved; and the rack on ``stf/hbw/state`` and on ``stf/inventory`` equals the database.

The counts (orders, kills per node, outcomes, steps sent again, restores, takeovers) are printed
(``pytest -s``) and written into every assertion message.

The two-replica run is in the default suite; the single-scheduler run (``scheduler_replicas:=1``,
the scheduler's own respawn resumes its commands) runs only when the ``faults`` marker is
selected: ``pytest -m faults``.
"""

from __future__ import annotations

import time
from datetime import timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from stf_nodes.scheduler import CommandQueue, CommandStatus
from stf_nodes.storage import make_engine
from stf_nodes.storage.models import CommandStepRow
from tests.conftest import wait_until
from tests.faults.factory import (
    DRAIN_TIMEOUT_S,
    FINAL,
    LEADING,
    STATIONS,
    Chaos,
    Launch,
    Operator,
    ProcessOrder,
    Report,
    database_rack,
    rack_of,
    settled,
    start_factory,
    steps_ended,
)

pytestmark = pytest.mark.faults


@pytest.mark.faults_long
@pytest.mark.parametrize('replicas', [2, 1], ids=['hot-standby', 'one-scheduler'])
@pytest.mark.timeout(900)
def test_nothing_lost_under_kill_9_router_crash_and_restart(
    replicas: int, launches: list[Launch], operators: list[Operator], tmp_path: Path
) -> None:
    db_url = f'sqlite:///{tmp_path / "stf.db"}'
    args = [
        'use_sim_time:=true',
        'time_scale:=20',
        f'scheduler_replicas:={replicas}',
        f'db_url:={db_url}',
    ]
    schedulers = ('scheduler', 'scheduler_2')[:replicas]
    victims = (*STATIONS, 'clock', *schedulers)
    engine = make_engine(db_url)
    started = time.monotonic()

    def launch() -> Launch:
        factory = start_factory(launches, tmp_path, args)
        factory.wait_for(LEADING, since=0, timeout=90)
        return factory

    first = launch()
    operator = Operator(seed=8)
    operators.append(operator)
    chaos = Chaos(operator, engine, seed=replicas)
    operator.start_orders()
    for label in victims:
        chaos.kill_node(first, label)
    chaos.kill_router(first)
    for label in victims[::-1]:
        chaos.kill_node(first, label)

    # Ctrl-C on the whole factory in the middle of a command; a new launch on the database.
    operator.wait_step(None, timeout=20)
    chaos.attacks.restarted = {first.pid(label) for label in victims}
    done = steps_ended(engine)
    stopped = time.monotonic()
    first.stop()
    second = launch()
    chaos.wait_progress(done, 'the restart of the factory', stopped)
    for label in victims:
        chaos.kill_node(second, label)
    operator.stop_orders()

    # Drain: every command final, every cookie home.
    queue = CommandQueue(engine=engine)
    try:
        wait_until(lambda: settled(queue), timeout=DRAIN_TIMEOUT_S, interval=0.5)
    except AssertionError:
        unsettled = [c for c in queue.list() if c.status not in FINAL or c.stranded]
        raise AssertionError(
            f'not drained in {DRAIN_TIMEOUT_S:g} s: {unsettled}\n' + '\n'.join(second.lines[-80:])
        ) from None
    operator.watch_hbw()
    rack = database_rack(engine)
    hbw = wait_until(lambda: rack_of(operator.latest('hbw')) == rack, timeout=30)
    published = wait_until(lambda: rack_of(operator.latest('inventory')) == rack, timeout=30)
    second.stop()

    lines = first.lines + second.lines
    report = Report.gather(
        engine, operator.orders, chaos.attacks, lines, time.monotonic() - started, launches=2
    )
    print(f'\n{report.summary}')
    report.check(engine, lines)
    assert hbw and published, report.summary


@pytest.mark.faults_long
@pytest.mark.timeout(600)
def test_after_a_power_loss_a_scheduler_leads_again_at_once(
    launches: list[Launch], operators: list[Operator], tmp_path: Path
) -> None:
    """Every process of the factory is killed at once (a power loss: no clean shutdown releases
    the lease), after it ran long enough at 20x for its sim clock to be 20 minutes ahead of the
    wall clock. On the next `stf launch` a scheduler must take the lease as after any leader's
    death, and resume the command that was running."""
    db_url = f'sqlite:///{tmp_path / "stf.db"}'
    args = ['use_sim_time:=true', 'time_scale:=20', 'scheduler_replicas:=2', f'db_url:={db_url}']
    engine = make_engine(db_url)
    first = start_factory(launches, tmp_path, args)
    first.wait_for(LEADING, since=0, timeout=90)
    operator = Operator(seed=9)
    operators.append(operator)
    reply = operator.call(ProcessOrder, 'stf/order/process')
    assert reply is not None and reply.accepted, reply
    operator.wait_step('vgr', timeout=30)  # the cookie is out of the rack
    ahead_s = 60.0  # sim time ahead of wall time; it grows 19 s per wall second at 20x
    wait_until(
        lambda: _journal_ahead_s(engine, reply.command_id) > ahead_s,
        timeout=ahead_s / 19 + 60,
        interval=0.5,
    )
    first.power_off()

    second = start_factory(launches, tmp_path, args)
    restarted = time.monotonic()
    second.wait_for(LEADING, since=0, timeout=30)
    print(f'\nafter the power loss a scheduler leads in {time.monotonic() - restarted:.1f} s')
    queue = CommandQueue(engine=engine)
    final = wait_until(
        lambda: (c := queue.get(reply.command_id)) is not None and c.status in FINAL and c,
        timeout=60,
    )
    assert final.status is CommandStatus.COMPLETED, final.message


def _journal_ahead_s(engine: Engine, command_id: int) -> float:
    """How far the sim time of the command's latest journalled step is ahead of the wall
    clock, s."""
    with engine.connect() as connection:
        latest = connection.scalar(
            select(func.max(CommandStepRow.started_at)).where(
                CommandStepRow.command_id == command_id
            )
        )
    return 0.0 if latest is None else latest.replace(tzinfo=timezone.utc).timestamp() - time.time()
