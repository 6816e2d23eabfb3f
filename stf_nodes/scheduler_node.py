"""`scheduler` node: the factory's command queue and the executor that runs it on the stations.

Role: accepts orders, persists them in SQL (`stf_nodes.scheduler.queue.CommandQueue`) and runs
them one at a time, in priority then arrival order, as station tasks
(`stf_nodes.scheduler.executor.Executor`; read its docstring for the failure, cancel,
emergency-stop and recovery policies). The node only converts messages and owns the clients.

Services (relative names, so a launch namespace prefixes them):
- `stf/order/process` (ProcessOrder): bake a RAW_DOUGH cookie. Without `source_slot` the rack is
  scanned row-major, A1, A2, A3, B1, ..., C3, for the first unreserved RAW_DOUGH cookie (of
  `flavor`, if given). `stf/order/store` (StoreWorkpiece: without `slot` the first free slot in
  the same order), `stf/order/retrieve` (RetrieveWorkpiece). A request is validated against the
  durable inventory and its reservations, committed as PENDING and answered at once with the
  command id; a refused one (`accepted` false, `message` says why) persists nothing.
- `stf/command/cancel` (CancelCommand): a PENDING command is CANCELLED at once; the running one
  after its current step, once its cookie is back in the rack. `stf/command/list`
  (ListCommands, newest first, `status` by name), `stf/inventory/get` (GetInventory).
- `stf/emergency_stop`, `stf/reset` (std_srvs/Trigger): forwarded to every station; the stop
  fails the running command and pauses the queue until the reset.
- `stf/fault/inject`, `stf/fault/clear` (InjectFault, ClearFault): forwarded to the station that
  owns the component (learnt from the motors and sensors in its state message); an empty
  component id clears the faults of every station.

Topics: publishes `stf/commands` (CommandStatus, reliable, depth 100) after every committed
transition, `stf/inventory` (Inventory, transient-local) at start and after every change.
Subscribes `stf/<station>/state` and `stf/<station>/task_status`; calls `stf/<station>/task`,
`.../emergency_stop`, `.../reset`, `.../fault/inject`, `.../fault/clear`.

Crash safety: acknowledged commands are committed before the reply. At start, commands left
IN_PROGRESS are FAILED ("interrupted"), never resumed; the first HBW state seeds an empty
database's inventory; a recovery returns a stranded cookie to the rack and reconciles the
inventory with the HBW's rack; then PENDING commands run.

Parameters: `db_url` (default: env `DATABASE_URL`, else `sqlite:///./stf_digital_twin.db`),
`stations` (names, default hbw, conveyor, vgr), `tick_rate` (executor ticks per second of node
time), `poll_interval_s` (node time between looks at the queue for commands other processes
submitted), `timeout.<station>_s` (time a step may take beyond its own duration), `bake_time_s`,
`service_timeout_s` (wall time a station service call may take).
"""

from __future__ import annotations

import os
import sys
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from stf_nodes import interfaces, runtime
from stf_nodes.scheduler import (
    CommandQueue,
    CommandRecord,
    InventorySlot,
    PlanSettings,
    Rejected,
    Workpiece,
    WorkpieceStatus,
)
from stf_nodes.scheduler.executor import (
    Executor,
    FactoryView,
    Outcome,
    StationView,
    TaskPoll,
    TaskRequest,
    TaskResult,
)
from stf_nodes.scheduler.plan import TEMPLATES
from stf_nodes.storage import DEFAULT_DATABASE_URL, make_engine, upgrade_schema

ProcessOrder = interfaces.get_service('stf_msgs/srv/ProcessOrder')
StoreWorkpiece = interfaces.get_service('stf_msgs/srv/StoreWorkpiece')
RetrieveWorkpiece = interfaces.get_service('stf_msgs/srv/RetrieveWorkpiece')
CancelCommand = interfaces.get_service('stf_msgs/srv/CancelCommand')
ListCommands = interfaces.get_service('stf_msgs/srv/ListCommands')
GetInventory = interfaces.get_service('stf_msgs/srv/GetInventory')
InjectFault = interfaces.get_service('stf_msgs/srv/InjectFault')
ClearFault = interfaces.get_service('stf_msgs/srv/ClearFault')
StationTask = interfaces.get_service('stf_msgs/srv/StationTask')
Trigger = interfaces.get_service('std_srvs/srv/Trigger')
CommandStatusMsg = interfaces.get_message_class('stf_msgs/msg/CommandStatus')
InventoryMsg = interfaces.get_message_class('stf_msgs/msg/Inventory')
InventorySlotMsg = interfaces.get_message_class('stf_msgs/msg/InventorySlot')
WorkpieceMsg = interfaces.get_message_class('stf_msgs/msg/Workpiece')
TaskStatusMsg = interfaces.get_message_class('stf_msgs/msg/TaskStatus')
Time = interfaces.get_message_class('builtin_interfaces/msg/Time')

STATE_TYPES = {
    'hbw': 'stf_msgs/msg/HbwState',
    'conveyor': 'stf_msgs/msg/ConveyorState',
    'vgr': 'stf_msgs/msg/VgrState',
}
_STATION_SERVICES = {
    'task': StationTask,
    'emergency_stop': Trigger,
    'reset': Trigger,
    'fault/inject': InjectFault,
    'fault/clear': ClearFault,
}
RELIABLE_EVENTS = runtime.QoSProfile(depth=100)
_Result = TypeVar('_Result')
#: Finished task statuses kept per scheduler for matching with late service replies.
KEPT_RESULTS = 256
_RESULTS = {
    TaskStatusMsg.SUCCEEDED: Outcome.SUCCEEDED,
    TaskStatusMsg.FAILED: Outcome.FAILED,
    TaskStatusMsg.ABORTED: Outcome.FAILED,
}


class StationClients:
    """The :class:`~stf_nodes.scheduler.executor.StationLink` over the station nodes' services
    and topics; also the fault facade's view of which station owns which component.

    Finished task statuses are buffered by (station, task id) with an arrival number, because a
    status may arrive before the task service's reply; a poll only accepts a status that arrived
    after its request was sent (a restarted station reuses task ids).
    """

    def __init__(self, node: runtime.Node, stations: tuple[str, ...], timeout_s: float) -> None:
        self._node = node
        self._timeout_s = timeout_s
        self._clients = {
            verb: {s: node.create_client(srv_type, f'stf/{s}/{verb}') for s in stations}
            for verb, srv_type in _STATION_SERVICES.items()
        }
        self._arrivals = 0
        self._results: OrderedDict[tuple[str, int], tuple[int, TaskResult]] = OrderedDict()
        # Latest state per station, kept as CDR and decoded only when asked (they arrive at the
        # station publish rate in node time: hundreds per second under a fast sim clock).
        self._raw_states: dict[str, bytes] = {}
        self._decoded: dict[str, tuple[bytes, Any]] = {}
        self._owners: dict[str, str] = {}
        for station in stations:
            node.create_subscription(
                TaskStatusMsg, f'stf/{station}/task_status', self._on_task_status, RELIABLE_EVENTS
            )
            node.create_subscription(
                interfaces.get_message_class(STATE_TYPES[station]),
                f'stf/{station}/state',
                lambda raw, station=station: self._raw_states.__setitem__(station, raw),
                10,
                raw=True,
            )

    @property
    def stations(self) -> tuple[str, ...]:
        return tuple(self._clients['task'])

    def call(self, station: str, verb: str, request: Any) -> tuple[Any, str]:
        """Call one of the station's services (`_STATION_SERVICES`) and wait: (reply, '') or
        (None, the error)."""
        try:
            return self._clients[verb][station].call(request, timeout_sec=self._timeout_s), ''
        except (runtime.ServiceError, TimeoutError) as exc:
            return None, str(exc)

    def _on_task_status(self, message: Any) -> None:
        outcome = _RESULTS.get(message.status)
        if outcome is None:
            return
        self._arrivals += 1
        result = TaskResult(outcome, message.message, _workpiece(message.workpiece))
        self._results[(message.station, message.task_id)] = (self._arrivals, result)
        while len(self._results) > KEPT_RESULTS:
            self._results.popitem(last=False)

    def start_task(self, request: TaskRequest) -> TaskPoll:
        sent = self._arrivals
        future = self._clients['task'][request.station].call_async(
            StationTask.Request(
                task=request.verb,
                target=request.target,
                workpiece=_workpiece_msg(request.workpiece),
                value=request.value,
            ),
            timeout_sec=self._timeout_s,
        )

        def poll() -> TaskResult | None:
            if not future.done():
                return None
            if future.exception() is not None:
                return TaskResult(Outcome.REFUSED, f'{request.station}: {future.exception()}')
            reply = future.result()
            if not reply.accepted:
                return TaskResult(Outcome.REFUSED, reply.message)
            arrived = self._results.get((request.station, reply.task_id))
            return arrived[1] if arrived is not None and arrived[0] > sent else None

        return poll

    def trigger(self, station: str, verb: str) -> str:
        """Call the station's `emergency_stop` or `reset`; the error, or ''."""
        reply, error = self.call(station, verb, Trigger.Request())
        return error if reply is None else ('' if reply.success else reply.message)

    def stop_station(self, station: str) -> None:
        for verb in ('emergency_stop', 'reset'):
            error = self.trigger(station, verb)
            if error:
                self._node.get_logger().error(f'{verb} of {station} failed: {error}')

    def state(self, station: str) -> Any | None:
        raw = self._raw_states.get(station)
        if raw is None:
            return None
        cached = self._decoded.get(station)
        if cached is None or cached[0] is not raw:
            cached = (raw, interfaces.deserialize(raw, STATE_TYPES[station]))
            self._decoded[station] = cached
        return cached[1]

    def rack(self) -> tuple[InventorySlot, ...] | None:
        """The rack contents of the latest HBW state, or None before the first one."""
        hbw = self.state('hbw')
        if hbw is None:
            return None
        return tuple(
            InventorySlot(
                slot=entry.slot, carrier_id=entry.carrier_id, workpiece=_workpiece(entry.workpiece)
            )
            for entry in hbw.slots
        )

    def view(self) -> FactoryView | None:
        states = {station: self.state(station) for station in self.stations}
        rack = self.rack()
        if rack is None or any(state is None for state in states.values()):
            return None
        return FactoryView(
            stations={
                station: StationView(
                    stamp_s=_seconds(state.header.stamp),
                    busy=bool(state.task),
                    holding=_workpiece(state.workpiece),
                )
                for station, state in states.items()
            },
            rack=rack,
        )

    def owner(self, component_id: str) -> str | None:
        """The station whose state lists this motor or sensor (None: unknown or not heard)."""
        if component_id not in self._owners:
            for station in self.stations:
                state = self.state(station)
                if state is None:
                    continue
                ids = [m.motor_id for m in state.motors] + [s.sensor_id for s in state.sensors]
                self._owners.update(dict.fromkeys(ids, station))
        return self._owners.get(component_id)

    def known_components(self) -> list[str]:
        return sorted(self._owners)

    def forward_fault(self, station: str, verb: str, request: Any) -> tuple[bool, str]:
        """Forward an InjectFault (`fault/inject`) or ClearFault (`fault/clear`) request."""
        reply, error = self.call(station, verb, request)
        return (False, f'{station}: {error}') if reply is None else (reply.accepted, reply.message)


class SchedulerNode(runtime.Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__('scheduler', **kwargs)
        db_url = self.declare_parameter(
            'db_url',
            os.environ.get('DATABASE_URL', DEFAULT_DATABASE_URL),
            description='SQLAlchemy URL of the command queue and inventory',
        ).value
        stations = tuple(
            self.declare_parameter(
                'stations', ['hbw', 'conveyor', 'vgr'], description='station node names'
            ).value
        )
        tick_rate = self.declare_parameter(
            'tick_rate', 20.0, description='executor ticks per second of node time'
        ).value
        poll_interval_s = self.declare_parameter(
            'poll_interval_s', 1.0, description='node time between queue polls when idle, s'
        ).value
        defaults = PlanSettings()
        timeouts = {
            station: self.declare_parameter(
                f'timeout.{station}_s',
                defaults.timeouts.get(station, 60.0),
                description=f'time a {station} step may take beyond its own duration, s',
            ).value
            for station in stations
        }
        bake_time_s = self.declare_parameter(
            'bake_time_s', defaults.values['conveyor bake'], description='oven time per cookie, s'
        ).value
        service_timeout_s = self.declare_parameter(
            'service_timeout_s', 5.0, description='wall time a station service call may take, s'
        ).value
        unknown = sorted(set(stations) - set(STATE_TYPES))
        planned = {step.station for steps in TEMPLATES.values() for step in steps}
        if unknown or not planned <= set(stations) or tick_rate <= 0:
            raise ValueError(
                f'stations must include {sorted(planned)} and only {sorted(STATE_TYPES)}; '
                f'tick_rate > 0 (got stations {list(stations)}, tick_rate {tick_rate})'
            )

        engine = make_engine(db_url)
        upgrade_schema(engine)
        self._queue = CommandQueue(engine=engine, clock=self._utcnow)
        self._stations = StationClients(self, stations, service_timeout_s)
        self._commands_pub = self.create_publisher(
            CommandStatusMsg, 'stf/commands', RELIABLE_EVENTS
        )
        self._inventory_pub = self.create_publisher(
            InventoryMsg, 'stf/inventory', runtime.qos_profile_latched
        )
        self._execution = Executor(
            queue=self._queue,
            link=self._stations,
            stations=stations,
            settings=PlanSettings(timeouts=timeouts, values={'conveyor bake': bake_time_s}),
            announce=self._announce,
            inventory_changed=self._publish_inventory,
            log=self.get_logger().warning,
            poll_interval_s=poll_interval_s,
        )
        self._interrupted = self._queue.recover()
        for record in self._interrupted:
            self.get_logger().warning(f'command {record.id} {record.status.name}: {record.message}')
            self._announce(record)
        self._started = False

        self.create_service(ProcessOrder, 'stf/order/process', self._on_process)
        self.create_service(StoreWorkpiece, 'stf/order/store', self._on_store)
        self.create_service(RetrieveWorkpiece, 'stf/order/retrieve', self._on_retrieve)
        self.create_service(CancelCommand, 'stf/command/cancel', self._on_cancel)
        self.create_service(ListCommands, 'stf/command/list', self._on_list)
        self.create_service(GetInventory, 'stf/inventory/get', self._on_get_inventory)
        self.create_service(Trigger, 'stf/emergency_stop', self._on_emergency_stop)
        self.create_service(Trigger, 'stf/reset', self._on_reset)
        self.create_service(InjectFault, 'stf/fault/inject', self._on_inject_fault)
        self.create_service(ClearFault, 'stf/fault/clear', self._on_clear_fault)
        self.create_timer(1.0 / tick_rate, self._on_tick)
        self.get_logger().info(
            f'scheduler on {engine.url.render_as_string()} for {", ".join(stations)}; '
            'waiting for the first HBW state'
        )

    # -- execution ------------------------------------------------------------------------

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds / 1e9

    def _utcnow(self) -> datetime:
        return datetime.fromtimestamp(self._now_s(), timezone.utc)

    def _on_tick(self) -> None:
        try:
            if not self._started:
                self._start_up()
            else:
                self._execution.tick(self._now_s())
        except SQLAlchemyError as exc:  # the database is away: try again on the next tick
            self.get_logger().error(f'database error: {exc}', throttle_duration_sec=5.0)

    def _start_up(self) -> None:
        rack = self._stations.rack()
        if rack is None:
            return
        try:
            if self._queue.seed_inventory(rack):
                self.get_logger().info('inventory seeded from the HBW rack')
        except Rejected as exc:
            self.get_logger().error(f'HBW rack not usable as inventory: {exc.reason}')
        self._started = True
        self._execution.start_up(self._interrupted, self._now_s())
        self._publish_inventory()
        self.get_logger().info('scheduler ready')

    def _announce(self, record: CommandRecord) -> None:
        self._commands_pub.publish(_command_msg(record))

    def _publish_inventory(self) -> None:
        self._inventory_pub.publish(self._inventory_msg())

    def _inventory_msg(self) -> Any:
        message = InventoryMsg(
            slots=[
                InventorySlotMsg(
                    slot=entry.slot,
                    carrier_id=entry.carrier_id,
                    workpiece=_workpiece_msg(entry.workpiece),
                )
                for entry in self._queue.inventory()
            ]
        )
        message.header.stamp = self.get_clock().now().to_msg()
        message.header.frame_id = 'hbw'
        return message

    # -- orders ---------------------------------------------------------------------------

    def _call_queue(
        self, response: Any, call: Callable[[], _Result], *, action: str, undone: str
    ) -> _Result | None:
        """``call()``, or None once a refusal or a database error is answered in ``response``
        (``accepted`` false; for a database error the message says nothing was ``undone``)."""
        try:
            return call()
        except Rejected as exc:
            response.accepted, response.message = False, exc.reason
        except SQLAlchemyError as exc:
            self.get_logger().error(f'database error on {action}: {exc}')
            response.accepted, response.message = False, f'database error; nothing {undone}'
        return None

    def _submit(self, response: Any, submit: Callable[[], CommandRecord]) -> Any:
        record = self._call_queue(response, submit, action='submit', undone='queued')
        if record is None:
            return response
        response.accepted, response.command_id, response.message = True, record.id, record.message
        self._announce(record)
        self._execution.notify()
        return response

    def _on_process(self, request: Any, response: Any) -> Any:
        return self._submit(
            response,
            lambda: self._queue.submit_process(
                source_slot=request.source_slot, flavor=request.flavor, priority=request.priority
            ),
        )

    def _on_store(self, request: Any, response: Any) -> Any:
        return self._submit(
            response,
            lambda: self._queue.submit_store(
                flavor=request.flavor, slot=request.slot, priority=request.priority
            ),
        )

    def _on_retrieve(self, request: Any, response: Any) -> Any:
        return self._submit(
            response,
            lambda: self._queue.submit_retrieve(slot=request.slot, priority=request.priority),
        )

    def _on_cancel(self, request: Any, response: Any) -> Any:
        outcome = self._call_queue(
            response,
            lambda: self._queue.cancel(request.command_id),
            action='cancel',
            undone='cancelled',
        )
        if outcome is None:
            return response
        response.accepted = True
        if not outcome.stop_required:
            response.message = outcome.command.message
        elif self._execution.request_cancel(request.command_id):
            response.message = (
                'cancel requested: the running step ends, the cookie goes back to the rack, '
                'then the command is CANCELLED'
            )
        else:  # running on another scheduler sharing the database: it sees the request there
            response.message = 'cancel recorded; the command runs elsewhere'
        self._announce(outcome.command)
        return response

    def _on_list(self, request: Any, response: Any) -> Any:
        try:
            records = self._queue.list(request.status, request.limit)
        except Rejected as exc:
            self.get_logger().debug(f'list refused: {exc.reason}')
            return response
        except SQLAlchemyError as exc:
            self.get_logger().error(f'database error on list: {exc}')
            return response
        response.commands = [_command_msg(record) for record in records]
        return response

    def _on_get_inventory(self, request: Any, response: Any) -> Any:
        try:
            response.inventory = self._inventory_msg()
        except SQLAlchemyError as exc:
            self.get_logger().error(f'database error on inventory: {exc}')
        return response

    # -- factory-wide controls ------------------------------------------------------------

    def _on_emergency_stop(self, request: Any, response: Any) -> Any:
        errors = self._trigger_all('emergency_stop')
        self._execution.emergency_stop('emergency stop', self._now_s())
        response.success = not errors
        response.message = '; '.join(errors) or 'all stations stopped; queue paused until reset'
        self.get_logger().warning(f'emergency stop: {response.message}')
        return response

    def _on_reset(self, request: Any, response: Any) -> Any:
        errors = self._trigger_all('reset')
        if errors:
            response.success, response.message = False, '; '.join(errors)
            return response
        self._execution.reset(self._now_s())
        response.success, response.message = True, 'all stations reset; queue resumed'
        self.get_logger().info(response.message)
        return response

    def _trigger_all(self, verb: str) -> list[str]:
        errors = []
        for station in self._stations.stations:
            error = self._stations.trigger(station, verb)
            if error:
                errors.append(f'{station}: {error}')
        return errors

    def _on_inject_fault(self, request: Any, response: Any) -> Any:
        station = self._stations.owner(request.component_id)
        if station is None:
            response.accepted = False
            response.message = _unknown_component(
                request.component_id, self._stations.known_components()
            )
            return response
        response.accepted, response.message = self._stations.forward_fault(
            station, 'fault/inject', request
        )
        return response

    def _on_clear_fault(self, request: Any, response: Any) -> Any:
        if request.component_id:
            station = self._stations.owner(request.component_id)
            if station is None:
                response.accepted = False
                response.message = _unknown_component(
                    request.component_id, self._stations.known_components()
                )
                return response
            targets = [station]
        else:
            targets = list(self._stations.stations)
        replies = [
            self._stations.forward_fault(station, 'fault/clear', request) for station in targets
        ]
        response.accepted = all(accepted for accepted, _ in replies)
        response.message = '; '.join(message for _, message in replies)
        return response


def _unknown_component(component_id: str, known: list[str]) -> str:
    shown = component_id if len(component_id) <= 40 else component_id[:40] + '...'
    return f'unknown component {shown!r}; known: {", ".join(known) or "none yet"}'


def _seconds(stamp: Any) -> float:
    return stamp.sec + stamp.nanosec / 1e9


def _time_msg(moment: datetime | None) -> Any:
    if moment is None:
        return Time()
    if moment.tzinfo is None:  # SQLite hands back naive UTC
        moment = moment.replace(tzinfo=timezone.utc)
    nanoseconds = round(moment.timestamp() * 1e9)
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def _workpiece(message: Any) -> Workpiece:
    try:
        status = WorkpieceStatus(message.status)
    except ValueError:
        status = WorkpieceStatus.UNKNOWN
    return Workpiece(id=message.id, flavor=message.flavor, status=status)


def _workpiece_msg(workpiece: Workpiece) -> Any:
    return WorkpieceMsg(id=workpiece.id, flavor=workpiece.flavor, status=int(workpiece.status))


def _command_msg(record: CommandRecord) -> Any:
    return CommandStatusMsg(
        command_id=record.id,
        kind=int(record.kind),
        status=int(record.status),
        priority=record.priority,
        source_slot=record.source_slot,
        target_slot=record.target_slot,
        flavor=record.flavor,
        workpiece_id=record.workpiece_id,
        step=record.step,
        message=record.message,
        created=_time_msg(record.created_at),
        started=_time_msg(record.started_at),
        finished=_time_msg(record.finished_at),
    )


NODE_CLASS = SchedulerNode


def main(args: list[str] | None = None) -> int:
    return runtime.run_node(SchedulerNode, args)


if __name__ == '__main__':
    sys.exit(main())
