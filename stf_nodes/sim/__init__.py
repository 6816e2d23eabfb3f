"""Pure simulation core of the factory stations: no transport, no database.

``Hbw``, ``Vgr`` and ``Conveyor`` are station models sharing the motor, axis, sensor, fault and
task machinery; ``AlertMonitor`` derives alerts from their snapshots. Nodes drive a model with
``step(dt)``, start tasks with ``start_task`` and publish ``snapshot()``.
"""

from __future__ import annotations

from stf_nodes.sim.alerts import Alert, AlertConfig, AlertMonitor, AlertSeverity
from stf_nodes.sim.axis import Axis, AxisConfig, travel_time
from stf_nodes.sim.conveyor import Conveyor, ConveyorConfig
from stf_nodes.sim.faults import Fault, FaultKind
from stf_nodes.sim.hbw import Hbw, HbwConfig
from stf_nodes.sim.model import (
    ConveyorSnapshot,
    FaultRefused,
    HbwSnapshot,
    MotorSnapshot,
    Pose,
    Refused,
    SensorSnapshot,
    SlotSnapshot,
    StationSnapshot,
    StationState,
    TaskRefused,
    TaskReport,
    TaskStatus,
    VgrSnapshot,
    Workpiece,
)
from stf_nodes.sim.motor import Motor, MotorConfig
from stf_nodes.sim.station import Station
from stf_nodes.sim.vgr import Vgr, VgrConfig
from stf_nodes.workpieces import Flavor, WorkpieceStatus

__all__ = [
    'Alert',
    'AlertConfig',
    'AlertMonitor',
    'AlertSeverity',
    'Axis',
    'AxisConfig',
    'Conveyor',
    'ConveyorConfig',
    'ConveyorSnapshot',
    'Fault',
    'FaultKind',
    'FaultRefused',
    'Flavor',
    'Hbw',
    'HbwConfig',
    'HbwSnapshot',
    'Motor',
    'MotorConfig',
    'MotorSnapshot',
    'Pose',
    'Refused',
    'SensorSnapshot',
    'SlotSnapshot',
    'Station',
    'StationSnapshot',
    'StationState',
    'TaskRefused',
    'TaskReport',
    'TaskStatus',
    'Vgr',
    'VgrConfig',
    'VgrSnapshot',
    'Workpiece',
    'WorkpieceStatus',
    'travel_time',
]
