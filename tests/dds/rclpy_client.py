"""A ROS 2 user's client: plain rclpy and the rosidl-built `stf_msgs`, nothing of this project.

Run with `.venv-dds/bin/python tests/dds/rclpy_client.py MODE`; prints one JSON object per
result line (the tests read them) and exits non-zero with a message on stderr when something
does not arrive in time. Modes:

- `order`: a message of /stf/hbw/state; raw dough in the latched /stf/inventory (the
  scheduler is ready); /stf/order/process called with ProcessOrder; that
  command followed on /stf/commands until COMPLETED (or FAILED/CANCELLED); then the latched
  /stf/inventory read by a new subscription, and its BAKED cookies listed.
- `params`: /hbw parameters listed and one read (rclpy's AsyncParameterClient);
  `set_param`: that one set to 7.5 and read back.
- `list_loop`: /hbw/list_parameters called 20 times, one line per reply.
- `chatter`: std_msgs/String 'rclpy N' on /chatter at 10 Hz until stopped; prints whatever
  arrives on /chatter from other publishers, and at the end how often each own message was
  heard (more than once: it came back through a loop).
- `garbage`: bytes that are no HbwState, published on /stf/hbw/state at 10 Hz until stopped.
- `serve`: offers std_srvs/Trigger /rclpy/trigger until stopped.
- `storm`: 100 short-lived DDS participants, each publishing on a topic of its own.
- `cdr`: one raw /stf/hbw/state sample as received, rclpy's re-serialization of it, and a
  CommandStatus and a ProcessOrder request serialized by rclpy (hex).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import rclpy
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rclpy.node import Node
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import String
from std_srvs.srv import Trigger

from stf_msgs.msg import CommandStatus, HbwState, Inventory, Workpiece
from stf_msgs.srv import ProcessOrder

LATCHED = QoSProfile(
    depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE
)


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def spin_until(node: Node, done: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            sys.exit(f'rclpy_client: no {what} within {timeout_s} s')
        rclpy.spin_once(node, timeout_sec=0.05)


def wait_future(node: Node, future: Any, timeout_s: float, what: str) -> Any:
    spin_until(node, future.done, timeout_s, what)
    return future.result()


def order(node: Node, timeout_s: float) -> None:
    states: list[Any] = []
    node.create_subscription(HbwState, '/stf/hbw/state', states.append, 10)
    spin_until(node, lambda: states, timeout_s, 'message on /stf/hbw/state')
    emit(step='state', frame_id=states[0].header.frame_id, state=states[0].state)

    # The scheduler is ready once its latched inventory holds raw dough (a fresh database is
    # seeded from the HBW first).
    stock: list[Any] = []
    watch = node.create_subscription(Inventory, '/stf/inventory', stock.append, LATCHED)
    spin_until(
        node,
        lambda: (
            any(w.workpiece.status == Workpiece.RAW_DOUGH for w in stock[-1].slots)
            if stock
            else False
        ),
        timeout_s,
        'raw dough in /stf/inventory',
    )
    node.destroy_subscription(watch)

    events: list[Any] = []
    node.create_subscription(CommandStatus, '/stf/commands', events.append, 100)
    client = node.create_client(ProcessOrder, '/stf/order/process')
    spin_until(node, client.service_is_ready, timeout_s, '/stf/order/process server')
    reply = wait_future(
        node, client.call_async(ProcessOrder.Request()), timeout_s, 'reply of /stf/order/process'
    )
    emit(step='order', accepted=reply.accepted, command_id=reply.command_id, message=reply.message)
    if not reply.accepted:
        sys.exit(f'rclpy_client: order refused: {reply.message}')

    finished = (CommandStatus.COMPLETED, CommandStatus.FAILED, CommandStatus.CANCELLED)

    def final() -> Any:
        return next(
            (e for e in events if e.command_id == reply.command_id and e.status in finished), None
        )

    spin_until(node, final, 4 * timeout_s, f'end of command {reply.command_id}')
    statuses = [e.status for e in events if e.command_id == reply.command_id]
    emit(step='command', status=final().status, statuses=statuses)

    inventories: list[Any] = []
    node.create_subscription(Inventory, '/stf/inventory', inventories.append, LATCHED)
    spin_until(node, lambda: inventories, timeout_s, 'latched /stf/inventory')
    baked = [
        {'slot': slot.slot, 'id': slot.workpiece.id}
        for slot in inventories[-1].slots
        if slot.workpiece.id and slot.workpiece.status == Workpiece.BAKED
    ]
    emit(step='inventory', baked=baked)


def parameter_client(node: Node, timeout_s: float) -> AsyncParameterClient:
    client = AsyncParameterClient(node, '/hbw')
    spin_until(node, lambda: client.services_are_ready(), timeout_s, '/hbw parameter services')
    return client


def get_rate(node: Node, client: AsyncParameterClient, timeout_s: float) -> None:
    got = wait_future(node, client.get_parameters(['publish_rate']), timeout_s, 'get_parameters')
    emit(step='get', value=got.values[0].double_value)


def params(node: Node, timeout_s: float) -> None:
    client = parameter_client(node, timeout_s)
    listed = wait_future(node, client.list_parameters(), timeout_s, 'list_parameters')
    emit(step='list', names=sorted(listed.result.names))
    get_rate(node, client, timeout_s)


def set_param(node: Node, timeout_s: float) -> None:
    client = parameter_client(node, timeout_s)
    value = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=7.5)
    results = wait_future(
        node,
        client.set_parameters([Parameter(name='publish_rate', value=value)]),
        timeout_s,
        'set_parameters',
    )
    emit(step='set', results=[[r.successful, r.reason] for r in results.results])
    get_rate(node, client, timeout_s)


def list_loop(node: Node, timeout_s: float) -> None:
    client = parameter_client(node, timeout_s)
    for call in range(20):
        listed = wait_future(node, client.list_parameters(), timeout_s, 'list_parameters')
        emit(step='list', call=call, names=len(listed.result.names))


def chatter(node: Node, timeout_s: float) -> None:
    publisher = node.create_publisher(String, '/chatter', 10)
    own: dict[str, int] = {}

    def on_message(message: String) -> None:
        if message.data.startswith('rclpy'):
            own[message.data] = own.get(message.data, 0) + 1  # a loop would bring it back
        else:
            emit(heard=message.data)

    node.create_subscription(String, '/chatter', on_message, 100)
    count = 0

    def tick() -> None:
        nonlocal count
        count += 1
        publisher.publish(String(data=f'rclpy {count}'))

    node.create_timer(0.1, tick)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
    finally:
        emit(own_heard=len(own), own_most=max(own.values(), default=0))


def garbage(node: Node, timeout_s: float) -> None:
    publisher = node.create_publisher(HbwState, '/stf/hbw/state', 10)
    node.create_timer(0.1, lambda: publisher.publish(b'\x00\x01\x00\x00\xff\xff\xff\x7fjunk'))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)


def storm(node: Node, timeout_s: float) -> None:
    """Participants that come and go: 5 rounds of 20 contexts (a DDS participant each), each
    with a node publishing on a topic of its own for a moment."""
    for round_ in range(5):
        contexts = []
        for index in range(20):
            context = rclpy.Context()
            rclpy.init(context=context)
            peer = Node(f'storm_{round_}_{index}', context=context)
            peer.create_publisher(String, f'/storm/topic_{index}', 10).publish(String(data='x'))
            contexts.append((context, peer))
        time.sleep(0.5)
        for context, peer in contexts:
            peer.destroy_node()
            context.shutdown()
    emit(step='storm', participants=100)


def serve(node: Node, timeout_s: float) -> None:
    served = [0]

    def trigger(request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        served[0] += 1
        response.success = True
        response.message = f'served by rclpy {served[0]}'
        return response

    node.create_service(Trigger, '/rclpy/trigger', trigger)
    emit(step='serving')
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)


def cdr(node: Node, timeout_s: float) -> None:
    raw: list[bytes] = []
    node.create_subscription(HbwState, '/stf/hbw/state', raw.append, 10, raw=True)
    spin_until(node, lambda: raw, timeout_s, 'raw message on /stf/hbw/state')
    state = deserialize_message(raw[0], HbwState)
    emit(
        theirs=raw[0].hex(),
        mine=serialize_message(state).hex(),
        motors=[m.motor_id for m in state.motors],
    )
    status = CommandStatus(
        command_id=42, kind=CommandStatus.PROCESS, status=CommandStatus.COMPLETED
    )
    status.source_slot = 'A2'
    status.message = 'baked by rclpy'
    emit(command_status=serialize_message(status).hex())
    request = ProcessOrder.Request(source_slot='B3', flavor='CHOCOLATE')
    emit(process_order_request=serialize_message(request).hex())


MODES = {
    'order': order,
    'params': params,
    'set_param': set_param,
    'list_loop': list_loop,
    'chatter': chatter,
    'garbage': garbage,
    'storm': storm,
    'serve': serve,
    'cdr': cdr,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('mode', choices=sorted(MODES))
    parser.add_argument('--timeout', type=float, default=30.0)
    args = parser.parse_args()
    rclpy.init()
    node = Node('rclpy_client')
    try:
        MODES[args.mode](node, args.timeout)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
