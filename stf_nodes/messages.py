"""Conversions between the pure models' value types and stf_msgs messages."""

from __future__ import annotations

from typing import Any

from stf_nodes.interfaces import get_message_class
from stf_nodes.sim import Flavor, Workpiece, WorkpieceStatus

WorkpieceMsg = get_message_class('stf_msgs/msg/Workpiece')
AlertMsg = get_message_class('stf_msgs/msg/Alert')

#: The state message type of each station node (published on `stf/<station>/state`).
STATE_TYPES = {
    'hbw': 'stf_msgs/msg/HbwState',
    'vgr': 'stf_msgs/msg/VgrState',
    'conveyor': 'stf_msgs/msg/ConveyorState',
}


def workpiece_to_msg(workpiece: Workpiece | None) -> Any:
    """An empty `Workpiece` message (id '') stands for no workpiece."""
    if workpiece is None:
        return WorkpieceMsg()
    return WorkpieceMsg(
        id=workpiece.id, flavor=workpiece.flavor.value, status=int(workpiece.status)
    )


def workpiece_from_msg(message: Any) -> Workpiece | None:
    """Raises ValueError on an unknown flavor or status."""
    if not message.id:
        return None
    try:
        return Workpiece(message.id, Flavor(message.flavor), WorkpieceStatus(message.status))
    except ValueError as exc:
        raise ValueError(f'workpiece {message.id!r}: {exc}') from exc


def log_alert(logger: Any, alert: Any) -> None:
    """Log an `Alert` message at the level its severity names: INFO as info, WARNING as a
    warning, ERROR and CRITICAL as errors (a CRITICAL alert says so: the log has no such
    level below FATAL, which means the node itself cannot go on)."""
    severity = int(alert.severity)
    if severity <= AlertMsg.INFO:
        log = logger.info
    elif severity == AlertMsg.WARNING:
        log = logger.warning
    else:
        log = logger.error
    critical = 'CRITICAL ' if severity >= AlertMsg.CRITICAL else ''
    log(f'alert {critical}{alert.code} on {alert.component_id}: {alert.message}')
