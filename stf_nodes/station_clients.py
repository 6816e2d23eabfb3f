"""The scheduler's side of the station nodes: their services and topics as the runner's
:class:`~stf_nodes.scheduler.runner.StationLink`, and the fault facade's map of which station
owns which motor or sensor.

States arrive at the station publish rate in node time (hundreds per second under a fast sim
clock) and are converted to :class:`~stf_nodes.scheduler.runner.StationView` on arrival. A
sample that decodes but does not make sense (an unknown workpiece status or flavor, a state
from a station that is not configured) is dropped, counted and logged once per station, like
the malformed CDR the runtime already drops: one sample from a foreign peer never reaches the
runner.

Finished task statuses are buffered by (station, task id) with an arrival number, because a
status may arrive before the task service's reply; a poll only accepts a status that arrived
after its request was sent (a restarted station reuses task ids).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from stf_nodes import interfaces, runtime
from stf_nodes.messages import STATE_TYPES
from stf_nodes.scheduler.records import InventorySlot, Workpiece, WorkpieceStatus
from stf_nodes.scheduler.runner import (
    Contents,
    Outcome,
    RestorePoll,
    StationView,
    TaskPoll,
    TaskRequest,
    TaskResult,
)
from stf_nodes.storage.models import ID_LEN
from stf_nodes.validation import quote
from stf_nodes.workpieces import FLAVORS

StationTask = interfaces.get_service('stf_msgs/srv/StationTask')
RestoreStation = interfaces.get_service('stf_msgs/srv/RestoreStation')
InjectFault = interfaces.get_service('stf_msgs/srv/InjectFault')
ClearFault = interfaces.get_service('stf_msgs/srv/ClearFault')
Trigger = interfaces.get_service('std_srvs/srv/Trigger')
TaskStatusMsg = interfaces.get_message_class('stf_msgs/msg/TaskStatus')
WorkpieceMsg = interfaces.get_message_class('stf_msgs/msg/Workpiece')
InventorySlotMsg = interfaces.get_message_class('stf_msgs/msg/InventorySlot')

_SERVICES = {
    'task': StationTask,
    'restore': RestoreStation,
    'emergency_stop': Trigger,
    'reset': Trigger,
    'fault/inject': InjectFault,
    'fault/clear': ClearFault,
}
_EVENTS = runtime.QoSProfile(depth=100)
#: Finished task statuses kept for matching with late service replies.
KEPT_RESULTS = 256
_RESULTS = {
    TaskStatusMsg.SUCCEEDED: Outcome.SUCCEEDED,
    TaskStatusMsg.FAILED: Outcome.FAILED,
    TaskStatusMsg.ABORTED: Outcome.FAILED,
}
_READY = 1  # the STATE_READY constant shared by the three state messages


class StationClients:
    """The stations as the runner sees them (see the module docstring)."""

    def __init__(self, node: runtime.Node, stations: tuple[str, ...], timeout_s: float) -> None:
        self._node = node
        self._timeout_s = timeout_s
        self._clients = {
            verb: {s: node.create_client(srv_type, f'stf/{s}/{verb}') for s in stations}
            for verb, srv_type in _SERVICES.items()
        }
        self._arrivals = 0
        self._results: OrderedDict[tuple[str, int], tuple[int, TaskResult]] = OrderedDict()
        self._views: dict[str, StationView] = {}
        self._components: dict[str, tuple[str, ...]] = {}
        self._dropped: dict[str, int] = {}
        for station in stations:
            node.create_subscription(
                TaskStatusMsg, f'stf/{station}/task_status', self._on_task_status, _EVENTS
            )
            node.create_subscription(
                interfaces.get_message_class(STATE_TYPES[station]),
                f'stf/{station}/state',
                lambda message, station=station: self._on_state(station, message),
                10,
            )

    @property
    def stations(self) -> tuple[str, ...]:
        return tuple(self._clients['task'])

    # -- topics ----------------------------------------------------------------------------

    def _on_state(self, station: str, message: Any) -> None:
        try:
            view = _view_of(station, message)
        except ValueError as exc:
            self._drop(station, str(exc))
            return
        self._views[station] = view
        self._components[station] = tuple(
            [m.motor_id for m in message.motors] + [s.sensor_id for s in message.sensors]
        )

    def _drop(self, station: str, reason: str) -> None:
        self._dropped[station] = self._dropped.get(station, 0) + 1
        if self._dropped[station] == 1:
            self._node.get_logger().warning(
                f'stf/{station}/state: dropped a state that makes no sense ({reason}); '
                'further drops are counted, not logged'
            )

    @property
    def dropped(self) -> Mapping[str, int]:
        """States dropped per station because they made no sense."""
        return dict(self._dropped)

    def _on_task_status(self, message: Any) -> None:
        outcome = _RESULTS.get(message.status)
        if outcome is None:
            return
        try:
            workpiece = workpiece_of(message.workpiece)
        except ValueError as exc:
            self._drop(message.station[:16], str(exc))
            return
        self._arrivals += 1
        result = TaskResult(outcome, message.message, workpiece)
        self._results[(message.station, message.task_id)] = (self._arrivals, result)
        while len(self._results) > KEPT_RESULTS:
            self._results.popitem(last=False)

    # -- the StationLink protocol ----------------------------------------------------------

    def views(self) -> Mapping[str, StationView]:
        return self._views

    def start_task(self, request: TaskRequest) -> TaskPoll:
        sent = self._arrivals
        future = self._clients['task'][request.station].call_async(
            StationTask.Request(
                task=request.verb,
                target=request.target,
                workpiece=workpiece_msg(request.workpiece),
                value=request.value,
                key=request.key,
                fencing_token=request.fencing_token,
            ),
            timeout_sec=self._timeout_s,
        )

        def poll() -> TaskResult | None:
            if not future.done():
                return None
            if future.exception() is not None:
                return TaskResult(Outcome.UNREACHABLE, f'{request.station}: {future.exception()}')
            reply = future.result()
            if not reply.accepted:
                return TaskResult(Outcome.REFUSED, reply.message)
            arrived = self._results.get((request.station, reply.task_id))
            return arrived[1] if arrived is not None and arrived[0] > sent else None

        return poll

    def restore(self, station: str, contents: Contents, fencing_token: int) -> RestorePoll:
        request = RestoreStation.Request(
            fencing_token=fencing_token,
            slots=[
                InventorySlotMsg(
                    slot=entry.slot,
                    carrier_id=entry.carrier_id,
                    workpiece=workpiece_msg(entry.workpiece),
                )
                for entry in contents.rack
            ],
            workpiece=workpiece_msg(contents.workpiece),
            place=contents.place,
        )
        future = self._clients['restore'][station].call_async(request, timeout_sec=self._timeout_s)

        def poll() -> str | None:
            if not future.done():
                return None
            if future.exception() is not None:
                return str(future.exception())
            reply = future.result()
            return '' if reply.accepted else reply.message

        return poll

    def stop_station(self, station: str) -> None:
        stop = self._clients['emergency_stop'][station].call_async(
            Trigger.Request(), timeout_sec=self._timeout_s
        )

        def then_reset(done: runtime.Future) -> None:
            if done.exception() is not None:
                self._node.get_logger().error(f'emergency stop of {station}: {done.exception()}')
            self._clients['reset'][station].call_async(
                Trigger.Request(), timeout_sec=self._timeout_s
            )

        stop.add_done_callback(then_reset)

    # -- services for the factory-wide controls --------------------------------------------

    def call(self, station: str, verb: str, request: Any) -> tuple[Any, str]:
        """Call one of the station's services and wait: (reply, '') or (None, the error)."""
        try:
            return self._clients[verb][station].call(request, timeout_sec=self._timeout_s), ''
        except (runtime.ServiceError, TimeoutError) as exc:
            return None, str(exc)

    def trigger(self, station: str, verb: str) -> str:
        """Call the station's `emergency_stop` or `reset`; the error, or ''."""
        reply, error = self.call(station, verb, Trigger.Request())
        return error if reply is None else ('' if reply.success else reply.message)

    def trigger_all(self, verb: str) -> list[str]:
        """`emergency_stop` or `reset` on every station at once (not one timeout after
        another); the errors, per station."""
        futures = {
            station: self._clients[verb][station].call_async(
                Trigger.Request(), timeout_sec=self._timeout_s
            )
            for station in self.stations
        }
        errors = []
        for station, future in futures.items():
            future.wait(self._timeout_s + 1.0)
            if not future.done():
                errors.append(f'{station}: no answer in {self._timeout_s:g} s')
            elif future.exception() is not None:
                errors.append(f'{station}: {future.exception()}')
            elif not future.result().success:
                errors.append(f'{station}: {future.result().message}')
        return errors

    def owner(self, component_id: str) -> str | None:
        """The station whose state lists this motor or sensor (None: unknown or not heard)."""
        return next((s for s, ids in self._components.items() if component_id in ids), None)

    def known_components(self) -> list[str]:
        return sorted(c for ids in self._components.values() for c in ids)

    def forward_fault(self, station: str, verb: str, request: Any) -> tuple[bool, str]:
        """Forward an InjectFault (`fault/inject`) or ClearFault (`fault/clear`) request."""
        reply, error = self.call(station, verb, request)
        return (False, f'{station}: {error}') if reply is None else (reply.accepted, reply.message)


def _view_of(station: str, message: Any) -> StationView:
    """A state message as the runner's view; ValueError when it makes no sense."""
    busy = bool(message.task)
    names = {
        value: name.removeprefix('STATE_')
        for name, value in vars(type(message)).items()
        if name.startswith('STATE_')
    }
    condition = 'BUSY' if busy else names.get(message.state, f'in state {message.state}')
    rack = tuple(
        InventorySlot(
            slot=entry.slot, carrier_id=entry.carrier_id, workpiece=workpiece_of(entry.workpiece)
        )
        for entry in getattr(message, 'slots', ())
    )
    return StationView(
        stamp_s=message.header.stamp.sec + message.header.stamp.nanosec / 1e9,
        busy=busy,
        able=message.state == _READY and not busy,
        condition=condition,
        restored=message.restored,
        holding=workpiece_of(message.workpiece),
        rack=rack,
    )


def workpiece_of(message: Any) -> Workpiece:
    """A Workpiece message as the scheduler's value; ValueError when it makes no sense."""
    if not message.id:
        return Workpiece()
    if len(message.id) > ID_LEN:
        raise ValueError(f'workpiece id of {len(message.id)} characters')
    if message.flavor not in FLAVORS:
        raise ValueError(f'unknown flavor {quote(message.flavor)} of workpiece {message.id!r}')
    try:
        status = WorkpieceStatus(message.status)
    except ValueError:
        raise ValueError(
            f'unknown status {message.status} of workpiece {message.id[:32]!r}'
        ) from None
    return Workpiece(id=message.id, flavor=message.flavor, status=status)


def workpiece_msg(workpiece: Workpiece) -> Any:
    return WorkpieceMsg(id=workpiece.id, flavor=workpiece.flavor, status=int(workpiece.status))
