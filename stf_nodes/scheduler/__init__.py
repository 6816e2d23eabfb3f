"""Command scheduler core, without transport: the durable queue, journal, inventory and lease
(``queue``, over ``validation`` and ``rows``), where workpieces go (``routes``), the runner that
drives commands through the stations (``runner``) and the value types they share
(``records``). The scheduler node (``stf_nodes.scheduler_node``) is the thin layer converting
service requests and station messages to these calls."""

from __future__ import annotations

from stf_nodes.scheduler import routes
from stf_nodes.scheduler.queue import CommandQueue
from stf_nodes.scheduler.records import (
    CancelOutcome,
    CommandEvent,
    CommandKind,
    CommandRecord,
    CommandStatus,
    Fence,
    InventoryEvent,
    InventorySlot,
    LeaseLost,
    Phase,
    Rejected,
    SlotChange,
    StepRecord,
    StepState,
    Workpiece,
)
from stf_nodes.scheduler.routes import PlanSettings, Step, plan_for
from stf_nodes.scheduler.runner import CommandRunner, RunnerSettings
from stf_nodes.workpieces import WorkpieceStatus

__all__ = [
    'CancelOutcome',
    'CommandEvent',
    'CommandKind',
    'CommandQueue',
    'CommandRecord',
    'CommandRunner',
    'CommandStatus',
    'Fence',
    'InventoryEvent',
    'InventorySlot',
    'LeaseLost',
    'Phase',
    'PlanSettings',
    'Rejected',
    'RunnerSettings',
    'SlotChange',
    'Step',
    'StepRecord',
    'StepState',
    'Workpiece',
    'WorkpieceStatus',
    'plan_for',
    'routes',
]
