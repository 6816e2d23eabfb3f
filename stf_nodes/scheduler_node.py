"""`scheduler` node: the factory's command queue and the runner that carries it out.

Role: accepts orders, persists them in SQL (`stf_nodes.scheduler.queue.CommandQueue`) and runs
them one at a time, in priority then arrival order, as station tasks
(`stf_nodes.scheduler.runner.CommandRunner`: read its docstring for the resume, failure,
cancel, emergency-stop and restore policies). The node converts messages, owns the station
clients (`stf_nodes.station_clients`) and holds the lease.

Hot standby: several schedulers may share one database (`scheduler_replicas:=2` in
`factory.launch.xml`; PostgreSQL across hosts, SQLite on one host). The one that holds the lease
(`scheduler_leases`: a heartbeat it counts up every `lease_s / 10` of steady time) leads: it runs
the commands, restores stations, publishes `stf/commands` and `stf/inventory` and serves every
service. The others answer the read-only services (`stf/command/list`, `stf/inventory/get`)
and watch the heartbeat; when it stands still for `lease_s` on their own clock (no clocks are
compared: hosts may disagree, a sim clock may restart) one of them takes the lease and resumes
the running command where the journal says it stands. A leader that could not renew for
`lease_s` stops by itself, and every write and station request carries its fencing token,
which the database and the stations refuse once a newer leader has written; an order or cancel
request it still held when it lost the lease is refused ("no longer leads"), with nothing
written.

Services (relative names, so a launch namespace prefixes them):
- `stf/order/process` (ProcessOrder): bake a RAW_DOUGH cookie. Without `source_slot` the rack is
  scanned row-major, A1, A2, A3, B1, ..., C3, for the first unreserved RAW_DOUGH cookie (of
  `flavor`, if given). `stf/order/store` (StoreWorkpiece: without `slot` the first free slot in
  the same order), `stf/order/retrieve` (RetrieveWorkpiece). A request is validated against the
  durable inventory and its reservations, committed as PENDING and answered with the command
  id once committed; a refused one (`accepted` false, `message` says why) persists nothing.
  Orders and cancels arriving together share one transaction (group commit,
  `stf_nodes.scheduler.group_commit`), each still validated and answered on its own.
- `stf/command/cancel` (CancelCommand): a PENDING command is CANCELLED at once; the running one
  after its current step, then its cookie is carried back to the rack. `stf/command/list`
  (ListCommands, newest first, `status` by name), `stf/inventory/get` (GetInventory).
- `stf/emergency_stop`, `stf/reset` (std_srvs/Trigger): sent to every station at once; the
  stop fails the running command and pauses the queue until the reset.
- `stf/fault/inject`, `stf/fault/clear` (InjectFault, ClearFault): forwarded to the station that
  owns the component (learnt from the motors and sensors in its state message); an empty
  component id clears the faults of every station.

Topics: publishes `stf/commands` (CommandStatus, reliable, depth 100) after every committed
transition and step, `stf/inventory` (Inventory with the workpieces outside the rack,
transient-local) at start and after every change, `stf/alerts` (the runner's alerts).
Subscribes `stf/<station>/state` and `stf/<station>/task_status`; calls `stf/<station>/task`,
`.../restore`, `.../emergency_stop`, `.../reset`, `.../fault/inject`, `.../fault/clear`.

Requests are checked before anything else (`stf_nodes.validation`): non-finite numbers and
over-long strings are refused with a short quote of the input.

Parameters: `db_url` (default: env `DATABASE_URL`, else `sqlite:///./stf_digital_twin.db`),
`stations` (names, default hbw, conveyor, vgr), `tick_rate` (runner ticks per second of node
time), `poll_interval_s` (node time between looks at the queue for commands other processes
submitted), `timeout.<station>_s` (node time one task of the station may take),
`station_wait_s` (how long a command waits for an unavailable station before it fails),
`step_attempts`, `lease_s` (lease duration; takeover time of a standby), `service_timeout_s`
(wall time a station service call may take).
"""

from __future__ import annotations

import collections
import contextlib
import os
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from stf_nodes import interfaces, runtime
from stf_nodes.messages import STATE_TYPES, log_alert
from stf_nodes.process import exit_process
from stf_nodes.scheduler.group_commit import GroupCommitter
from stf_nodes.scheduler.queue import CommandQueue, Write
from stf_nodes.scheduler.records import CancelOutcome, CommandRecord, LeaseLost, Rejected
from stf_nodes.scheduler.routes import PlanSettings
from stf_nodes.scheduler.runner import CommandRunner, RunnerSettings, Severity
from stf_nodes.station_clients import StationClients, workpiece_msg
from stf_nodes.storage import DEFAULT_DATABASE_URL, make_engine, shown_url, upgrade_schema
from stf_nodes.validation import quote, request_problem

ProcessOrder = interfaces.get_service('stf_msgs/srv/ProcessOrder')
StoreWorkpiece = interfaces.get_service('stf_msgs/srv/StoreWorkpiece')
RetrieveWorkpiece = interfaces.get_service('stf_msgs/srv/RetrieveWorkpiece')
CancelCommand = interfaces.get_service('stf_msgs/srv/CancelCommand')
ListCommands = interfaces.get_service('stf_msgs/srv/ListCommands')
GetInventory = interfaces.get_service('stf_msgs/srv/GetInventory')
InjectFault = interfaces.get_service('stf_msgs/srv/InjectFault')
ClearFault = interfaces.get_service('stf_msgs/srv/ClearFault')
Trigger = interfaces.get_service('std_srvs/srv/Trigger')
CommandStatusMsg = interfaces.get_message_class('stf_msgs/msg/CommandStatus')
InventoryMsg = interfaces.get_message_class('stf_msgs/msg/Inventory')
InventorySlotMsg = interfaces.get_message_class('stf_msgs/msg/InventorySlot')
WorkpieceLocationMsg = interfaces.get_message_class('stf_msgs/msg/WorkpieceLocation')
AlertMsg = interfaces.get_message_class('stf_msgs/msg/Alert')
Time = interfaces.get_message_class('builtin_interfaces/msg/Time')

RELIABLE_EVENTS = runtime.QoSProfile(depth=100)


class SchedulerNode(runtime.Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__('scheduler', **kwargs)
        db_url = self.declare_parameter(
            'db_url',
            os.environ.get('DATABASE_URL', DEFAULT_DATABASE_URL),
            description='SQLAlchemy URL of the command queue and inventory',
            secret=shown_url,
        ).value
        stations = tuple(
            self.declare_parameter(
                'stations', ['hbw', 'conveyor', 'vgr'], description='station node names'
            ).value
        )
        tick_rate = self._number('tick_rate', 20.0, 'runner ticks per second of node time')
        defaults = RunnerSettings()
        timeouts = {
            station: self._number(
                f'timeout.{station}_s',
                PlanSettings().timeouts.get(station, 60.0),
                f'node time one {station} task may take, s',
            )
            for station in stations
        }
        settings = RunnerSettings(
            plan=PlanSettings(timeouts=timeouts),
            station_wait_s=self._number(
                'station_wait_s',
                defaults.station_wait_s,
                'node time a command waits for an unavailable station before it fails, s',
            ),
            step_attempts=int(
                self._number('step_attempts', defaults.step_attempts, 'attempts of one step')
            ),
            poll_interval_s=self._number(
                'poll_interval_s', defaults.poll_interval_s, 'node time between queue polls, s'
            ),
            lease_s=self._number(
                'lease_s',
                defaults.lease_s,
                'lease duration, steady (real) time: a standby takes over when the heartbeat '
                'stood still this long, s',
            ),
        )
        self._lease_s = settings.lease_s
        service_timeout_s = self._number(
            'service_timeout_s', 5.0, 'wall time a station service call may take, s'
        )
        unknown = sorted(set(stations) - set(STATE_TYPES))
        if unknown or set(STATE_TYPES) - set(stations):
            raise ValueError(
                f'stations must be exactly {sorted(STATE_TYPES)}, got {list(stations)}'
            )

        engine = make_engine(db_url)
        upgrade_schema(engine)
        self._queue = CommandQueue(engine=engine, clock=self._utcnow)
        self._committer = GroupCommitter(self._queue)
        # Committed requests, answered on the executor (see _write): (outcome, finish, future).
        self._committed: collections.deque[tuple[Any, Callable[[Any], Any], runtime.Future]] = (
            collections.deque()
        )
        self._answer_committed = self.create_guard_condition(self._on_committed)
        self._stations = StationClients(self, stations, service_timeout_s)
        self._lease_name = f'{self.get_namespace().rstrip("/")}/scheduler'
        self._holder = f'{self.get_fully_qualified_name()}#{os.getpid()}.{uuid.uuid4().hex[:6]}'
        self._runner = CommandRunner(
            queue=self._queue,
            link=self._stations,
            stations=stations,
            settings=settings,
            lease_name=self._lease_name,
            holder=self._holder,
            announce=self._announce,
            inventory_changed=self._publish_inventory,
            alert=self._alert,
            log=self.get_logger().info,
        )
        self._alert_pub = self.create_publisher(AlertMsg, 'stf/alerts', RELIABLE_EVENTS)
        self.create_service(ListCommands, 'stf/command/list', self._on_list)
        self.create_service(GetInventory, 'stf/inventory/get', self._on_get_inventory)
        self._leader_entities: list[Any] = []
        # The lease runs on steady time (see stf_nodes.scheduler.runner: Fencing). A standby
        # measures from the first time it saw the last heartbeat, so how often it looks is
        # what the takeover takes beyond lease_s.
        self.create_timer(self._lease_s / 10, self._on_lease, clock=runtime.SteadyClock())
        self.create_timer(1.0 / tick_rate, self._on_tick)
        self.get_logger().info(
            f'scheduler {self._holder} on {engine.url.render_as_string()}; '
            f'standing by for lease {self._lease_name}'
        )

    def _number(self, name: str, default: float, description: str) -> float:
        # The names carry their unit, as in config/scheduler.yaml: `_s` seconds, `_rate` per s.
        unit = 's' if name.endswith('_s') else '1/s' if name.endswith('_rate') else ''
        value = self.declare_parameter(
            name, default, description=description, unit=unit, low=0.0
        ).value
        if not isinstance(value, (int, float)) or not 0 < value < float('inf'):
            raise ValueError(f'parameter {name} must be a positive number, got {value!r}')
        return float(value)

    # -- leadership -------------------------------------------------------------------------

    @property
    def leading(self) -> bool:
        return bool(self._runner.token)

    def _on_lease(self) -> None:
        now_ns = time.monotonic_ns()
        try:
            token = self._queue.acquire_lease(
                self._lease_name,
                self._holder,
                now_ns=now_ns,
                duration_ns=round(self._lease_s * 1e9),
            )
        except SQLAlchemyError as exc:
            self.get_logger().error(
                f'database error on the lease: {exc}', throttle_duration_sec=5.0
            )
            return
        if token and token != self._runner.token:
            if self.leading:  # a new token: it was lost and taken again meanwhile
                self._follow('the lease was taken meanwhile')
            self._lead(token)
        elif token:
            self._runner.renewed()
        elif self.leading:
            self._follow('another scheduler took the lease')

    def _lead(self, token: int) -> None:
        self._runner.lead(token)
        self._commands_pub = self.create_publisher(
            CommandStatusMsg, 'stf/commands', RELIABLE_EVENTS
        )
        self._inventory_pub = self.create_publisher(
            InventoryMsg, 'stf/inventory', runtime.qos_profile_latched
        )
        self._leader_entities = [
            self._commands_pub,
            self._inventory_pub,
            self.create_service(ProcessOrder, 'stf/order/process', self._on_process),
            self.create_service(StoreWorkpiece, 'stf/order/store', self._on_store),
            self.create_service(RetrieveWorkpiece, 'stf/order/retrieve', self._on_retrieve),
            self.create_service(CancelCommand, 'stf/command/cancel', self._on_cancel),
            self.create_service(Trigger, 'stf/emergency_stop', self._on_emergency_stop),
            self.create_service(Trigger, 'stf/reset', self._on_reset),
            self.create_service(InjectFault, 'stf/fault/inject', self._on_inject_fault),
            self.create_service(ClearFault, 'stf/fault/clear', self._on_clear_fault),
        ]
        self.get_logger().info(f'leading (lease {self._lease_name}, token {token})')
        try:
            self._publish_inventory()
        except SQLAlchemyError as exc:
            self.get_logger().error(f'database error on the inventory: {exc}')

    def _follow(self, reason: str) -> None:
        self._runner.stop()
        for entity in self._leader_entities:
            if isinstance(entity, runtime.Publisher):
                self.destroy_publisher(entity)
            else:
                self.destroy_service(entity)
        self._leader_entities = []
        self.get_logger().warning(f'standing by: {reason}')

    def destroy_node(self) -> None:
        if not self.destroyed:
            self._committer.close()
        if self.leading and not self.destroyed:
            # A clean stop hands over at once instead of after lease_s.
            with contextlib.suppress(SQLAlchemyError):
                self._queue.release_lease(self._lease_name, self._holder)
        super().destroy_node()

    # -- execution ------------------------------------------------------------------------

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds / 1e9

    def _utcnow(self) -> datetime:
        return datetime.fromtimestamp(self._now_s(), timezone.utc)

    def _on_tick(self) -> None:
        if not self.leading:
            return
        try:
            self._runner.tick(self._now_s())
        except LeaseLost as exc:
            self._follow(str(exc))
        except SQLAlchemyError as exc:  # the database is away: the same tick runs again
            self.get_logger().error(f'database error: {exc}', throttle_duration_sec=5.0)

    def _announce(self, record: CommandRecord) -> None:
        self._commands_pub.publish(command_msg(record))

    def _publish_inventory(self) -> None:
        self._inventory_pub.publish(self._inventory_msg())

    def _alert(self, severity: Severity, code: str, component: str, message: str) -> None:
        alert = AlertMsg(
            header=self._header('scheduler'),
            severity=severity.value,
            component_id=component,
            code=code,
            message=message,
        )
        self._alert_pub.publish(alert)
        log_alert(self.get_logger(), alert)

    def _header(self, frame_id: str) -> Any:
        header = interfaces.get_message_class('std_msgs/msg/Header')(frame_id=frame_id)
        header.stamp = self.get_clock().now().to_msg()
        return header

    def _inventory_msg(self) -> Any:
        return InventoryMsg(
            header=self._header('hbw'),
            slots=[
                InventorySlotMsg(
                    slot=entry.slot,
                    carrier_id=entry.carrier_id,
                    workpiece=workpiece_msg(entry.workpiece),
                )
                for entry in self._queue.inventory()
            ],
            elsewhere=[
                WorkpieceLocationMsg(
                    workpiece=workpiece_msg(command.workpiece),
                    location=command.location,
                    command_id=command.id,
                    stranded=command.stranded,
                )
                for command in self._queue.elsewhere()
            ],
        )

    # -- orders ---------------------------------------------------------------------------

    def _write(
        self,
        request: Any,
        response: Any,
        make_write: Callable[[], Write],
        finish: Callable[[Any], Any],
        *,
        action: str,
    ) -> Any:
        """Check ``request`` on its own, then hand its write to the group committer: the reply
        (a future) goes out once the write is committed, with whatever else was waiting.
        ``finish(outcome)`` fills ``response`` on the executor thread after the commit, so it
        may announce and tell the runner as any callback does. A refusal is answered at once
        (``accepted`` false, nothing written)."""
        problem = request_problem(request)
        try:
            if problem:
                raise Rejected(problem)
            if not self.leading:
                # A request the executor still held when this node lost the lease: the new
                # leader takes writes (and would not announce this one); nothing is written.
                raise Rejected(
                    f'this scheduler no longer leads (a standby took over); nothing {action}: '
                    'send the request again'
                )
            write = make_write()
        except Rejected as exc:
            response.accepted, response.message = False, exc.reason
            return response
        future = runtime.Future()

        def committed(outcome: Any) -> None:
            if isinstance(outcome, Rejected):
                response.accepted, response.message = False, outcome.reason
                future.set_result(response)
            elif isinstance(outcome, Exception):  # the database's error, or a defect
                what = 'database error' if isinstance(outcome, SQLAlchemyError) else 'error'
                self.get_logger().error(f'{what} on {action}: {outcome!r}')
                response.accepted, response.message = False, f'{what}; nothing {action}'
                future.set_result(response)
            else:
                self._committed.append((outcome, finish, future))
                self._answer_committed.trigger()

        self._committer.submit(write, committed)
        return future

    def _on_committed(self) -> None:
        """Announce what was committed, tell the runner, reply (executor thread)."""
        while self._committed:
            outcome, finish, future = self._committed.popleft()
            try:
                future.set_result(finish(outcome))
            except Exception as exc:  # the reply says so; the next item still gets answered
                future.set_exception(exc)

    def _submitted(self, response: Any) -> Callable[[CommandRecord], Any]:
        def finish(record: CommandRecord) -> Any:
            response.accepted, response.command_id = True, record.id
            response.message = record.message
            if self.leading:  # a deposed leader's publisher is gone; the new leader has it
                self._announce(record)
                self._runner.notify()
            return response

        return finish

    def _on_process(self, request: Any, response: Any) -> Any:
        return self._write(
            request,
            response,
            lambda: self._queue.process_write(
                source_slot=request.source_slot,
                flavor=request.flavor,
                priority=request.priority,
                request_key=request.request_key,
            ),
            self._submitted(response),
            action='queued',
        )

    def _on_store(self, request: Any, response: Any) -> Any:
        return self._write(
            request,
            response,
            lambda: self._queue.store_write(
                flavor=request.flavor, slot=request.slot, priority=request.priority
            ),
            self._submitted(response),
            action='queued',
        )

    def _on_retrieve(self, request: Any, response: Any) -> Any:
        return self._write(
            request,
            response,
            lambda: self._queue.retrieve_write(slot=request.slot, priority=request.priority),
            self._submitted(response),
            action='queued',
        )

    def _on_cancel(self, request: Any, response: Any) -> Any:
        def finish(outcome: CancelOutcome) -> Any:
            response.accepted = True
            if outcome.stop_required:
                self._runner.request_cancel(outcome)
                response.message = (
                    'cancel requested: the running step ends, then the command is CANCELLED '
                    'and its cookie goes back to the rack'
                )
            else:
                response.message = outcome.command.message
            if self.leading:
                self._announce(outcome.command)
            return response

        return self._write(
            request,
            response,
            lambda: self._queue.cancel_write(request.command_id),
            finish,
            action='cancelled',
        )

    def _on_list(self, request: Any, response: Any) -> Any:
        try:
            records = self._queue.list(request.status, request.limit)
        except Rejected as exc:
            response.success, response.message = False, exc.reason
            return response
        except SQLAlchemyError as exc:
            self.get_logger().error(f'database error on list: {exc}')
            response.success, response.message = False, 'database error'
            return response
        response.success = True
        response.commands = [command_msg(record) for record in records]
        return response

    def _on_get_inventory(self, request: Any, response: Any) -> Any:
        try:
            response.inventory = self._inventory_msg()
        except SQLAlchemyError as exc:
            self.get_logger().error(f'database error on inventory: {exc}')
        return response

    # -- factory-wide controls ------------------------------------------------------------

    def _on_emergency_stop(self, request: Any, response: Any) -> Any:
        errors = self._stations.trigger_all('emergency_stop')
        self._runner.emergency_stop('emergency stop', self._now_s())
        response.success = not errors
        response.message = '; '.join(errors) or 'all stations stopped; queue paused until reset'
        self.get_logger().warning(f'emergency stop: {response.message}')
        return response

    def _on_reset(self, request: Any, response: Any) -> Any:
        errors = self._stations.trigger_all('reset')
        if errors:
            response.success, response.message = False, '; '.join(errors)
            return response
        self._runner.reset()
        response.success, response.message = True, 'all stations reset; queue resumed'
        self.get_logger().info(response.message)
        return response

    def _on_inject_fault(self, request: Any, response: Any) -> Any:
        return self._forward_fault(request, response, 'fault/inject')

    def _on_clear_fault(self, request: Any, response: Any) -> Any:
        return self._forward_fault(request, response, 'fault/clear')

    def _forward_fault(self, request: Any, response: Any, verb: str) -> Any:
        problem = request_problem(request)
        if problem:
            response.accepted, response.message = False, problem
            return response
        if request.component_id:
            station = self._stations.owner(request.component_id)
            if station is None:
                known = ', '.join(self._stations.known_components()) or 'none yet'
                response.accepted = False
                response.message = (
                    f'unknown component {quote(request.component_id)}; known: {known}'
                )
                return response
            targets = [station]
        else:
            targets = list(self._stations.stations)
        replies = [self._stations.forward_fault(station, verb, request) for station in targets]
        response.accepted = all(accepted for accepted, _ in replies)
        response.message = '; '.join(message for _, message in replies)
        return response


def _time_msg(moment: datetime | None) -> Any:
    if moment is None:
        return Time()
    if moment.tzinfo is None:  # SQLite hands back naive UTC
        moment = moment.replace(tzinfo=timezone.utc)
    nanoseconds = round(moment.timestamp() * 1e9)
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def command_msg(record: CommandRecord) -> Any:
    """A command record as the CommandStatus message (the only converter)."""
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
        step_index=record.step_index,
        step_count=record.step_count,
        location=record.location,
        message=record.message,
        created=_time_msg(record.created_at),
        started=_time_msg(record.started_at),
        finished=_time_msg(record.finished_at),
    )


NODE_CLASS = SchedulerNode


def main(args: list[str] | None = None) -> int:
    return runtime.run_node(SchedulerNode, args)


if __name__ == '__main__':
    exit_process(main())
