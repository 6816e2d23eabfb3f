"""Database rows to the scheduler's records (``stf_nodes.scheduler.records``), one way only:
records are built from rows that transactions of ``queue`` read or wrote."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row

from stf_nodes.scheduler.records import (
    CommandEvent,
    CommandKind,
    CommandRecord,
    CommandStatus,
    InventoryEvent,
    InventorySlot,
    Phase,
    StepRecord,
    StepState,
    Workpiece,
)
from stf_nodes.storage.models import (
    CommandEventRow,
    CommandRow,
    CommandStepRow,
    InventoryEventRow,
    InventoryRow,
)
from stf_nodes.workpieces import WorkpieceStatus


def command_record(row: CommandRow | Row[Any]) -> CommandRecord:
    return CommandRecord(
        id=row.id,
        kind=CommandKind(row.kind),
        status=CommandStatus(row.status),
        priority=row.priority,
        source_slot=row.source_slot,
        target_slot=row.target_slot,
        flavor=row.flavor,
        workpiece_id=row.workpiece_id,
        step=row.step,
        message=row.message,
        cancel_requested=row.cancel_requested,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        location=row.location,
        workpiece_status=WorkpieceStatus(row.workpiece_status),
        step_index=row.step_index,
        step_count=row.step_count,
        stranded=row.stranded,
        uid=row.uid,
    )


def event_record(row: CommandEventRow) -> CommandEvent:
    return CommandEvent(
        id=row.id,
        command_id=row.command_id,
        from_status=None if row.from_status is None else CommandStatus(row.from_status),
        to_status=CommandStatus(row.to_status),
        step=row.step,
        reason=row.reason,
        at=row.at,
    )


def step_record(row: CommandStepRow) -> StepRecord:
    return StepRecord(
        id=row.id,
        command_id=row.command_id,
        phase=Phase(row.phase),
        index=row.step_index,
        attempt=row.attempt,
        key=row.key,
        station=row.station,
        verb=row.verb,
        target=row.target,
        value=row.value,
        source=row.source,
        destination=row.destination,
        state=StepState(row.state),
        workpiece=workpiece(row),
        message=row.message,
        fencing_token=row.fencing_token,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def slot_record(row: InventoryRow) -> InventorySlot:
    return InventorySlot(
        slot=row.slot,
        carrier_id=row.carrier_id,
        workpiece=workpiece(row),
        reserved_by=row.reserved_by,
        updated_at=row.updated_at,
    )


def inventory_event_record(row: InventoryEventRow) -> InventoryEvent:
    return InventoryEvent(
        id=row.id,
        slot=row.slot,
        command_id=row.command_id,
        carrier_id=row.carrier_id,
        workpiece=workpiece(row),
        reason=row.reason,
        at=row.at,
    )


def workpiece(row: InventoryRow | InventoryEventRow | CommandStepRow | Row[Any]) -> Workpiece:
    """The workpiece columns (``workpiece_id``, ``flavor``, status) of a row."""
    status = row.workpiece_status if isinstance(row, CommandStepRow) else row.status
    return Workpiece(id=row.workpiece_id, flavor=row.flavor, status=WorkpieceStatus(status))


def describe_contents(row: InventoryRow | Row[Any]) -> str:
    """What a slot row holds, for messages: ``'RAW_DOUGH CHOCO w-a1'`` or ``'nothing'``."""
    if not row.workpiece_id:
        return 'nothing'
    return f'{WorkpieceStatus(row.status).name} {row.flavor} {row.workpiece_id}'
