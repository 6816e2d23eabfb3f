"""Command scheduler core: durable queue and inventory (``queue``), execution plans (``plan``)
and the value types both use (``records``). No transport import: the scheduler node is a thin
layer converting service requests and station task results to these calls."""

from __future__ import annotations

from stf_nodes.scheduler.plan import PlanSettings, PlanStep, SlotEffect, plan_for
from stf_nodes.scheduler.queue import CommandQueue
from stf_nodes.scheduler.records import (
    FLAVORS,
    SLOTS,
    CancelOutcome,
    CommandEvent,
    CommandKind,
    CommandRecord,
    CommandStatus,
    InventoryEvent,
    InventorySlot,
    Reconciliation,
    Rejected,
    SlotChange,
    Workpiece,
    WorkpieceStatus,
)

__all__ = [
    'FLAVORS',
    'SLOTS',
    'CancelOutcome',
    'CommandEvent',
    'CommandKind',
    'CommandQueue',
    'CommandRecord',
    'CommandStatus',
    'InventoryEvent',
    'InventorySlot',
    'PlanSettings',
    'PlanStep',
    'Reconciliation',
    'Rejected',
    'SlotChange',
    'SlotEffect',
    'Workpiece',
    'WorkpieceStatus',
    'plan_for',
]
