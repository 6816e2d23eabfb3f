"""Conversions between the pure models' value types and stf_msgs messages."""

from __future__ import annotations

from typing import Any

from stf_nodes.interfaces import get_message_class
from stf_nodes.sim import Flavor, Workpiece, WorkpieceStatus

WorkpieceMsg = get_message_class('stf_msgs/msg/Workpiece')


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
