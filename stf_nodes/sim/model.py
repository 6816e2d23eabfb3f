"""Value types shared by the station models: workpieces, task reports and snapshots.

Everything here is immutable (frozen dataclasses, enums) so a snapshot taken after a step can be
kept, compared and handed to another thread without copying. Units: millimetres, seconds,
volts, amperes, watts, watt-hours, degrees Celsius. Poses are in the station's own frame; the
node adds the station's mounting transform and converts millimetres to metres for ``/tf``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from stf_nodes.workpieces import Flavor, WorkpieceStatus


@dataclass(frozen=True)
class Workpiece:
    """A cookie; identity travels with it from station to station."""

    id: str
    flavor: Flavor
    status: WorkpieceStatus = WorkpieceStatus.RAW_DOUGH


class StationState(IntEnum):
    """Station state codes of the fischertechnik dialect (``*State.STATE_*``)."""

    OFF = 0  # not powered (never produced by the models)
    READY = 1  # idle, accepts tasks
    BUSY = 2  # a task is running
    WAIT_READY = 3  # waiting for a hand-over (never produced by the models)
    ERROR = 4  # emergency stop active or a motor failed
    WAIT_ERROR = 6  # waiting in error (never produced by the models)
    CALIBRATING = 7  # reference run in progress


class TaskStatus(IntEnum):
    """Task outcome; the values are the ``stf_msgs/TaskStatus`` constants."""

    RUNNING = 1  # accepted and in progress
    SUCCEEDED = 2  # finished as planned
    FAILED = 3  # stopped by a fault, a timeout or an emergency stop


class Refused(ValueError):  # noqa: N818 (TaskRefused is the contract name)
    """A request was refused; the station's state is unchanged. ``str(exc)`` is the reason."""


class TaskRefused(Refused):
    """``start_task`` refused the task."""


class FaultRefused(Refused):
    """``inject_fault`` or ``clear_fault`` refused the request."""


@dataclass(frozen=True)
class TaskReport:
    """Progress or outcome of one station task (``stf_msgs/TaskStatus``)."""

    task_id: int
    task: str
    target: str
    status: TaskStatus
    progress: float  # 0..1
    message: str  # reason of failure, empty otherwise
    workpiece: Workpiece | None  # workpiece the task ended with (handed over or produced)


@dataclass(frozen=True)
class MotorSnapshot:
    """Electrical, thermal and wear state of one motor (``stf_msgs/MotorState``)."""

    motor_id: str
    running: bool
    direction: int  # -1, 0, +1
    current_a: float
    voltage_v: float
    power_w: float
    energy_wh: float
    temperature_c: float
    health: float
    encoder_pulses: int
    start_count: int
    runtime_h: float
    fault: str  # active fault kind, empty when none


@dataclass(frozen=True)
class SensorSnapshot:
    """One binary sensor with its analog reading (``stf_msgs/SensorState``)."""

    sensor_id: str
    triggered: bool
    value: float
    fault: str


@dataclass(frozen=True)
class Pose:
    """Translation of a moving part in mm relative to ``parent_id`` (rotation is identity)."""

    frame_id: str
    parent_id: str
    x: float
    y: float
    z: float


@dataclass(frozen=True)
class SlotSnapshot:
    """One rack slot (``stf_msgs/InventorySlot``)."""

    slot: str
    carrier_id: str
    workpiece: Workpiece | None


@dataclass(frozen=True, kw_only=True)
class StationSnapshot:
    """State common to every station at sim time ``time_s``."""

    station: str
    time_s: float
    state: StationState
    estop: bool
    restored: bool  # contents restored from the scheduler's records since start
    task: TaskReport | None  # running task, else the last one (None before the first)
    motors: tuple[MotorSnapshot, ...]
    sensors: tuple[SensorSnapshot, ...]
    poses: tuple[Pose, ...]


@dataclass(frozen=True, kw_only=True)
class HbwSnapshot(StationSnapshot):
    """High-bay warehouse (``stf_msgs/HbwState``); ``position`` is the fork (x, y, z) in mm."""

    position: tuple[float, float, float]
    holding: bool  # a workpiece is on the fork
    workpiece: Workpiece | None
    slots: tuple[SlotSnapshot, ...]


@dataclass(frozen=True, kw_only=True)
class VgrSnapshot(StationSnapshot):
    """Vacuum gripper robot (``stf_msgs/VgrState``); ``position`` is the suction cup in mm."""

    position: tuple[float, float, float]
    vacuum_on: bool
    pressure_bar: float
    holding: bool
    workpiece: Workpiece | None


@dataclass(frozen=True, kw_only=True)
class ConveyorSnapshot(StationSnapshot):
    """Conveyor and oven (``stf_msgs/ConveyorState``)."""

    belt_position_mm: float  # belt surface travel since start (after slip)
    belt_speed_mm_s: float  # belt surface speed (after slip)
    workpiece: Workpiece | None
    workpiece_position_mm: float  # from the entry end of the belt; 0 when none
    oven_busy: bool
    oven_temperature_c: float
    oven_workpiece: Workpiece | None
