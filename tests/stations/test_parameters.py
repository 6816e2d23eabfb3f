"""Station parameters over the standard parameter services: live rates, read-only physics."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import Processes, stf, wait_until
from tests.stations.probe import FACTORY_YAML

BIN = Path(sys.executable).parent


def test_publish_rate_changes_live_and_physics_parameters_are_read_only(
    router: str, processes: Processes
) -> None:
    processes.start(
        str(BIN / 'hbw_node'),
        '--ros-args',
        '-r',
        '__ns:=/params',
        '--params-file',
        str(FACTORY_YAML),
    )
    wait_until(lambda: '/params/hbw' in stf('node', 'list').stdout.split(), timeout=20)
    assert stf('param', 'get', '/params/hbw', 'publish_rate', '--json').stdout.strip() == '10.0'

    stf('param', 'set', '/params/hbw', 'publish_rate', '4.0')

    def rate_near_4_hz() -> bool:
        hz = stf('topic', 'hz', '/params/stf/hbw/state', '--duration', '3.5', '--window', '8')
        return 3.0 < float(hz.stdout.strip().splitlines()[-2].split(':')[1]) < 5.0

    # Measured on arrival: a busy machine may delay one window, so it is measured again.
    wait_until(rate_near_4_hz, timeout=40, interval=0)

    refused = stf('param', 'set', '/params/hbw', 'motor.voltage_v', '12.0', check=False)
    assert refused.returncode == 1 and 'read-only' in refused.stderr
    zero = stf('param', 'set', '/params/hbw', 'publish_rate', '0.0', check=False)
    assert zero.returncode == 1
    assert "0.0 is out of range for 'publish_rate' (from 0.01 to 1000 Hz)" in zero.stderr
    assert stf('param', 'get', '/params/hbw', 'motor.voltage_v', '--json').stdout.strip() == '24.0'
