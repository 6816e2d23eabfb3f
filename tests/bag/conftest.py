"""Bag test helpers: messages of the project's types, small bags written with the project's
writer, and a real tiny file system (tmpfs) for the full-disk tests."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stf_nodes import interfaces
from stf_nodes.bag.writer import StorageOptions, open_bag
from stf_nodes.runtime.qos import DurabilityPolicy, QoSProfile

MotorState = interfaces.get_message_class('stf_msgs/msg/MotorState')
HbwState = interfaces.get_message_class('stf_msgs/msg/HbwState')
Inventory = interfaces.get_message_class('stf_msgs/msg/Inventory')
InventorySlot = interfaces.get_message_class('stf_msgs/msg/InventorySlot')
T0 = 1_700_000_000_000_000_000
LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def motor(index: int) -> bytes:
    return interfaces.serialize(
        MotorState(motor_id=f'M{index}', current_a=index * 0.01, running=index % 2 == 0)
    )


def inventory(index: int) -> bytes:
    return interfaces.serialize(Inventory(slots=[InventorySlot(slot='A1', carrier_id=f'C{index}')]))


def sample_messages(
    count: int, period_ns: int = 10_000_000, start_ns: int = T0
) -> list[tuple[str, int, bytes]]:
    """`count` motor states every `period_ns`, an inventory every tenth: (topic, time, cdr)."""
    messages = []
    for index in range(count):
        stamp = start_ns + index * period_ns
        messages.append(('/stf/motor', stamp, motor(index)))
        if index % 10 == 0:
            messages.append(('/stf/inventory', stamp, inventory(index)))
    return messages


def write_sample_bag(
    path: Path, count: int = 200, options: StorageOptions | None = None, **kwargs: Any
) -> list[tuple[str, int, bytes]]:
    messages = sample_messages(count, **kwargs)
    with open_bag(path, options) as bag:
        bag.add_topic('/stf/motor', 'stf_msgs/msg/MotorState', qos=QoSProfile(depth=7))
        bag.add_topic('/stf/inventory', 'stf_msgs/msg/Inventory', qos=LATCHED)
        for topic, stamp, data in messages:
            bag.write(topic, data, stamp)
    return messages


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (needs root and mount; skipped otherwise: the simulated-ENOSPC test
    covers the same logic everywhere)."""
    mount_point = tmp_path / f'disk-{uuid.uuid4().hex[:8]}'
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip('mounting a tmpfs needs root')
    result = subprocess.run(
        ['mount', '-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', str(mount_point)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f'cannot mount a tmpfs here: {result.stderr.strip()}')
    try:
        yield mount_point
    finally:
        subprocess.run(['umount', '-l', str(mount_point)], check=False)


@pytest.fixture
def graph_node(router: str) -> Iterator[Any]:
    """A node of the test in its own context, its executor spinning on a thread."""
    from stf_nodes import runtime

    context = runtime.Context([])
    node = runtime.Node(f'bag_tester_{uuid.uuid4().hex[:6]}', context=context)
    executor = runtime.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield node
    executor.shutdown()
    node.destroy_node()
    context.shutdown()


class Arrivals:
    """Raw samples of a subscription with their monotonic arrival time."""

    def __init__(self) -> None:
        self.items: list[tuple[int, bytes]] = []
        self._lock = threading.Lock()

    def __call__(self, payload: bytes) -> None:
        with self._lock:
            self.items.append((time.monotonic_ns(), payload))

    @property
    def payloads(self) -> list[bytes]:
        with self._lock:
            return [p for _, p in self.items]

    def __len__(self) -> int:
        with self._lock:
            return len(self.items)
