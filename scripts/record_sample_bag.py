"""Record `bags/sample`: one full process order with an injected conveyor motor fault.

The factory records itself, the way a user would: `stf launch` with the bag recorder enabled
(`enable_bag_recorder:=true bag_output:=...`, settings from `config/factory.yaml`), on
simulated time (`use_sim_time:=true time_scale:=...`, so the bag's timestamps are the factory's
own time and a replay at 1x runs at real factory speed). This script is only the operator:

1. waits until the scheduler serves `/stf/order/process` and the stations publish;
2. orders a cookie (`ProcessOrder`, any RAW_DOUGH cookie);
3. when the cookie rides the belt, injects `OVERCURRENT` on the belt motor `CONV_M1`
   (default 3.0 A for 6 simulated seconds: the current plot jumps, the motor heats, an
   OVERCURRENT alert is raised on `/stf/alerts`) and lets the order run to its end;
4. a few seconds after the command is COMPLETED (or FAILED), stops the launch, which closes
   the bag (`metadata.yaml` written), and prints `stf bag info`.

    python scripts/record_sample_bag.py                 # writes bags/sample (must not exist)
    python scripts/record_sample_bag.py --out /tmp/run --time-scale 8

It starts its own Zenoh router on a free port and keeps its database in a temporary
directory, so it disturbs nothing else on the machine.
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
from pathlib import Path
from typing import Any

from stf_nodes import interfaces, runtime
from stf_nodes.bag.reader import BagReader
from stf_nodes.runtime.router import spawn_router

REPO = Path(__file__).resolve().parents[1]
STF = [sys.executable, '-m', 'stf_nodes.cli']
ProcessOrder = interfaces.get_service('stf_msgs/srv/ProcessOrder')
InjectFault = interfaces.get_service('stf_msgs/srv/InjectFault')
CommandStatus = interfaces.get_message_class('stf_msgs/msg/CommandStatus')
ConveyorState = interfaces.get_message_class('stf_msgs/msg/ConveyorState')
Alert = interfaces.get_message_class('stf_msgs/msg/Alert')
FINISHED = (CommandStatus.COMPLETED, CommandStatus.FAILED, CommandStatus.CANCELLED)


def wait_for(what: str, predicate: Any, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f'timed out waiting for {what}')
        time.sleep(0.02)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', type=Path, default=REPO / 'bags' / 'sample')
    parser.add_argument('--time-scale', type=float, default=4.0)
    parser.add_argument('--component', default='CONV_M1', help='component of the fault')
    parser.add_argument('--fault', default='OVERCURRENT')
    parser.add_argument('--magnitude', type=float, default=3.0)
    parser.add_argument('--fault-duration', type=float, default=6.0, help='simulated seconds')
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f'{args.out} exists; remove it first')
    args.out.parent.mkdir(parents=True, exist_ok=True)

    router, router_process = spawn_router()
    os.environ['ZENOH_ROUTER'] = router
    workdir = Path(tempfile.mkdtemp(prefix='stf-sample-bag-'))
    log = (workdir / 'launch.log').open('w')
    launch = subprocess.Popen(
        [
            *STF,
            'launch',
            'use_sim_time:=true',
            f'time_scale:={args.time_scale}',
            'enable_mqtt:=false',
            'enable_foxglove:=false',
            f'db_url:=sqlite:///{workdir / "stf.db"}',
            'enable_bag_recorder:=true',
            f'bag_output:={args.out.resolve()}',
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    print(f'factory starting (log: {workdir / "launch.log"}), recording to {args.out}')
    context = runtime.Context([])
    node = runtime.Node('sample_operator', context=context)
    executor = runtime.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    latest: dict[str, Any] = {}
    commands: list[Any] = []
    alerts: list[Any] = []
    node.create_subscription(CommandStatus, '/stf/commands', commands.append, 100)
    node.create_subscription(Alert, '/stf/alerts', alerts.append, 100)
    node.create_subscription(
        ConveyorState, '/stf/conveyor/state', lambda m: latest.__setitem__('conveyor', m), 10
    )
    try:
        order = node.create_client(ProcessOrder, '/stf/order/process')
        fault = node.create_client(InjectFault, '/stf/fault/inject')
        wait_for('the scheduler', lambda: order.wait_for_service(1.0), 90)
        wait_for('the bag recorder', lambda: _recording(node), 60)
        wait_for('station states', lambda: 'conveyor' in latest, 60)
        time.sleep(2.0 / args.time_scale + 1.0)  # a moment of the factory at rest
        response = order.call(ProcessOrder.Request(), timeout_sec=10)
        if not response.accepted:
            raise SystemExit(f'order refused: {response.message}')
        print(f'order {response.command_id} accepted')
        wait_for(
            'the cookie on the belt',
            lambda: latest['conveyor'].has_workpiece and latest['conveyor'].belt_speed > 0,
            300,
        )
        injected = fault.call(
            InjectFault.Request(
                component_id=args.component,
                fault=args.fault,
                magnitude=args.magnitude,
                duration_s=args.fault_duration,
            ),
            timeout_sec=10,
        )
        print(f'fault {args.fault} on {args.component}: {injected.message or injected.accepted}')
        done = wait_for(
            'the end of the order',
            lambda: next(
                (
                    c
                    for c in commands
                    if c.command_id == response.command_id and c.status in FINISHED
                ),
                None,
            ),
            600,
        )
        print(f'order {done.command_id} ended with status {done.status}: {done.message}')
        print(f'alerts: {[f"{a.component_id} {a.code}" for a in alerts]}')
        time.sleep(3.0 / args.time_scale + 1.0)
    finally:
        executor.shutdown()
        node.destroy_node()
        context.shutdown()
        launch.send_signal(signal.SIGINT)
        try:
            launch.wait(30)
        except subprocess.TimeoutExpired:
            launch.kill()
        router_process.send_signal(signal.SIGINT)
        router_process.wait(10)
    with BagReader(args.out) as reader:
        if reader.problems:
            raise SystemExit(f'the bag has problems: {reader.problems}')
    subprocess.run([*STF, 'bag', 'info', str(args.out)], check=True)
    return 0


def _recording(node: runtime.Node) -> bool:
    from stf_nodes.runtime import names

    return any(
        token.node_name == 'bag_recorder' and token.name == '/stf/conveyor/state'
        for token in node.context.graph.endpoints('/stf/conveyor/state', names.SUBSCRIPTION)
    )


if __name__ == '__main__':
    sys.exit(main())
