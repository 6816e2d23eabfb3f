"""Scheduler fixtures: the three-backend database fixtures of ``tests/storage`` and a seeded queue.

Standard stock (carriers everywhere): A1 CHOCO, A2 VANILLA, A3 STRAWBERRY, B3 VANILLA as
RAW_DOUGH; B1 CHOCO BAKED; B2, C1, C2, C3 empty.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine

from stf_nodes.scheduler import CommandQueue, Fence, InventorySlot, Workpiece, WorkpieceStatus
from stf_nodes.workpieces import rack_slots
from tests.storage.conftest import database_url, engine, scratch_databases  # noqa: F401

RAW, BAKED = WorkpieceStatus.RAW_DOUGH, WorkpieceStatus.BAKED
SLOTS = rack_slots(3, 3)
_FILLED = {
    'A1': Workpiece('w-a1', 'CHOCO', RAW),
    'A2': Workpiece('w-a2', 'VANILLA', RAW),
    'A3': Workpiece('w-a3', 'STRAWBERRY', RAW),
    'B1': Workpiece('w-b1', 'CHOCO', BAKED),
    'B3': Workpiece('w-b3', 'VANILLA', RAW),
}
STOCK = tuple(
    InventorySlot(
        slot=slot, carrier_id=f'c-{slot.lower()}', workpiece=_FILLED.get(slot, Workpiece())
    )
    for slot in SLOTS
)


class StepClock:
    """A clock that advances 1.5 ms per reading: distinct, sub-second, predictable times."""

    def __init__(self) -> None:
        self.now = datetime(2024, 3, 1, 12, 0, 0, 250_000, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.now += timedelta(microseconds=1500)
        return self.now


def step_key(key: str) -> tuple[int, str]:
    """A journal key ``<command>.<created>/<P|R><index>/<attempt>`` as (command id,
    ``<P|R><index>/<attempt>``); the creation part is checked to be a hex number."""
    command, _, step = key.partition('/')
    command_id, _, created = command.partition('.')
    int(created, 16)
    return int(command_id), step


@pytest.fixture
def queue(engine: Engine) -> CommandQueue:  # noqa: F811 - the fixture imported above
    """A queue on a fresh database seeded with ``STOCK``."""
    queue = CommandQueue(engine=engine, clock=StepClock())
    assert queue.seed_inventory(STOCK)
    return queue


def lead(queue: CommandQueue, holder: str = 'test') -> Fence:
    """Take the lease of group ``test`` for ``holder``; its fence."""
    token = queue.acquire_lease('test', holder, now_ns=0, duration_ns=10**18)
    assert token
    return Fence('test', holder, token)


def queue_engine(queue: CommandQueue) -> Engine:
    return queue._engine
