"""Group commit in the running scheduler node: many concurrent clients, refused requests mixed
into their groups, and a kill -9 in the middle of it that loses nothing acknowledged."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from sqlalchemy import text

from stf_nodes import interfaces, runtime
from stf_nodes.scheduler import CommandQueue, CommandStatus, InventorySlot, Workpiece
from stf_nodes.storage import make_engine, upgrade_schema
from stf_nodes.workpieces import WorkpieceStatus, rack_slots
from tests.conftest import Processes, wait_until

ProcessOrder = interfaces.get_service('stf_msgs/srv/ProcessOrder')
CancelCommand = interfaces.get_service('stf_msgs/srv/CancelCommand')
NS = '/durable'
SLOTS = rack_slots(3, 9)
EMPTY = SLOTS[-3:]  # requests for these are always refused
RAW = WorkpieceStatus.RAW_DOUGH
STOCK = [
    InventorySlot(slot, f'c{slot}', Workpiece() if slot in EMPTY else Workpiece(slot, 'CHOCO', RAW))
    for slot in SLOTS
]


class Loop(threading.Thread):
    """Submits an order for its slot and cancels it, again and again, until stopped or the
    scheduler is gone; keeps what was acknowledged."""

    def __init__(self, node: runtime.Node, slot: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.slot, self.stop = slot, stop
        self.submit = node.create_client(ProcessOrder, f'{NS}/stf/order/process')
        self.cancel = node.create_client(CancelCommand, f'{NS}/stf/command/cancel')
        self.ordered: list[int] = []  # accepted orders
        self.cancelled: list[int] = []  # accepted cancels
        self.refused: list[str] = []

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                order = self.submit.call(ProcessOrder.Request(source_slot=self.slot), 3.0)
                if not order.accepted:
                    self.refused.append(order.message)
                    continue
                self.ordered.append(order.command_id)
                reply = self.cancel.call(CancelCommand.Request(command_id=order.command_id), 3.0)
                if reply.accepted:
                    self.cancelled.append(order.command_id)
        except (runtime.ServiceError, TimeoutError):
            return  # the scheduler was killed


def test_kill_9_mid_group_loses_nothing_acknowledged(
    router: str, processes: Processes, tmp_path: Path
) -> None:
    url = f'sqlite:///{tmp_path / "stf.db"}'
    engine = make_engine(url)
    upgrade_schema(engine)
    assert CommandQueue(engine=engine).seed_inventory(STOCK)
    scheduler = processes.start(
        sys.executable, '-m', 'stf_nodes.scheduler_node', '--ros-args',
        '-p', f'db_url:={url}', '-r', f'__ns:={NS}',
    )  # fmt: skip
    context = runtime.Context([])
    node = runtime.Node('durability_tester', context=context)
    stop = threading.Event()
    try:
        probe = node.create_client(ProcessOrder, f'{NS}/stf/order/process')
        assert probe.wait_for_service(30)
        loops = [Loop(node, slot, stop) for slot in SLOTS]
        for loop in loops:
            loop.start()
        good = [loop for loop in loops if loop.slot not in EMPTY]
        wait_until(lambda: sum(len(loop.ordered) for loop in good) >= 300, timeout=120)
        scheduler.send_signal(signal.SIGKILL)
        scheduler.wait()
        stop.set()
        for loop in loops:
            loop.join(timeout=30)
    finally:
        stop.set()
        node.destroy_node()
        context.shutdown()

    # A refused request in a group left the others alone: every submission for a slot whose
    # own loop had cancelled its previous order was accepted; the empty slots, never.
    assert all(not loop.refused for loop in good), [loop.refused[:1] for loop in good]
    for loop in loops:
        if loop.slot in EMPTY:
            assert not loop.ordered and loop.refused
            assert all(f'slot {loop.slot} is empty' in message for message in loop.refused)
    # Everything acknowledged is in the database, as acknowledged.
    with engine.connect() as connection:
        status = dict(connection.execute(text('SELECT id, status FROM commands')).all())
        reserved = dict(connection.execute(text('SELECT slot, reserved_by FROM inventory')).all())
    for loop in good:
        for command_id in loop.ordered:
            assert command_id in status, f'acknowledged order {command_id} lost'
        for command_id in loop.cancelled:
            assert status[command_id] == CommandStatus.CANCELLED
        pending = [i for i in loop.ordered if status[i] == CommandStatus.PENDING]
        assert len(pending) <= 1  # the loop cancels each order before the next
        holder = reserved[loop.slot]
        if pending:
            assert holder == pending[0]
        elif holder is not None:  # committed when the kill came, before its reply went out
            assert holder not in loop.ordered and status[holder] == CommandStatus.PENDING
