"""The station nodes as processes: hbw, vgr and conveyor on sim time from `config/factory.yaml`,
the sim clock at 20x, all through a real router. The test drives station tasks the way the
scheduler will (`probe.FactoryProbe`), injects faults through the services and reads their
effect in the published telemetry.

The nodes are started once for the module; tests leave the stations as they found them
(faults cleared, emergency stop reset, belt and gripper empty) so their order does not matter,
except that motor health only goes down.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.stations.probe import (
    FactoryProbe,
    TaskStatus,
    Workpiece,
    motor,
    sensor,
    slot_contents,
    start_factory,
    wait_for,
    workpiece,
)

TIME_SCALE = 20.0
READY, ERROR = 1, 4  # *State.STATE_READY, STATE_ERROR
OK, WARN, DIAG_ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels


@pytest.fixture(scope='module')
def factory(router: str) -> Iterator[list[subprocess.Popen[str]]]:
    nodes = start_factory(TIME_SCALE)
    yield nodes
    for process in nodes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    for process in nodes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope='module')
def probe(factory: list[subprocess.Popen[str]]) -> Iterator[FactoryProbe]:
    probe = FactoryProbe()
    try:
        probe.wait_ready()
    except AssertionError:
        for process in factory:
            if process.poll() is not None:
                pytest.fail(f'{process.args}: exited {process.returncode}\n{process.stdout.read()}')
        raise
    yield probe
    probe.close()


@pytest.fixture(autouse=True)
def restored(probe: FactoryProbe) -> Iterator[FactoryProbe]:
    """Each test gets (and leaves) ready stations without faults."""
    yield probe
    for station in ('hbw', 'vgr', 'conveyor'):
        probe.clear(station)
        probe.trigger(station, 'reset')
        wait_for(lambda s=station: probe.fresh_state(s).task == '', what=f'{station} idle')


# -- the process cycle ------------------------------------------------------------------------


def test_process_cycle_bakes_the_cookie_and_stores_it_back(probe: FactoryProbe) -> None:
    before = slot_contents(probe.fresh_state('hbw'))
    assert before['A1'] == ('WP001', 'CHOCO', Workpiece.RAW_DOUGH)
    tf_mark = probe.tf.count

    stored = probe.process_cycle('A1', 'A1')

    assert (stored.id, stored.status) == ('WP001', Workpiece.BAKED)
    after = slot_contents(probe.fresh_state('hbw'))
    assert after['A1'] == ('WP001', 'CHOCO', Workpiece.BAKED)
    assert {s: v for s, v in after.items() if s != 'A1'} == {
        s: v for s, v in before.items() if s != 'A1'
    }
    frames = probe.frames(tf_mark)
    for carried in ('hbw_workpiece', 'vgr_workpiece', 'conveyor_workpiece'):
        assert carried in frames, f'{carried} never on /tf while the cookie travelled'
