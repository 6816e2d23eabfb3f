"""The station node skeleton shared by `hbw`, `vgr` and `conveyor`.

A station node owns one pure simulation model (`stf_nodes.sim`) and does only transport:

- parameters: every field of the station's config (see `config/factory.yaml`), plus
  `physics_rate` (Hz, default 50), `diagnostics_rate` (Hz, default 1), `mount_xyz_m` and
  `mount_rpy_deg` (the station frame's origin and roll/pitch/yaw in the z-up `world` frame: the
  HBW model measures height along its y axis, so its frame is rolled by 90°); `publish_rate`
  and `diagnostics_rate` can be changed while the node runs (`stf param set /hbw
  publish_rate 5.0`), the rest are read-only;
- a timer on the node clock steps the model by the ROS time elapsed since the last step (in
  sub-steps of at most `1 / physics_rate`), so under `use_sim_time` the physics follows
  `/clock` at whatever `time_scale` it runs;
- publishes `stf/<station>/state` at `publish_rate`, `stf/<station>/task_status` (TaskStatus,
  on start, on finish, and progress at `publish_rate`), `tf` (every moving part),
  `diagnostics` (one status per motor and sensor) and `stf/alerts`;
- serves `stf/<station>/task` (StationTask: accepted with a task id, or refused with the
  model's reason; a repeated idempotency `key` answers with the first task, `duplicate` set,
  and publishes its final status again), `stf/<station>/restore` (RestoreStation: the
  scheduler puts back what a restarted station held), `stf/<station>/fault/inject`
  (InjectFault), `stf/<station>/fault/clear` (ClearFault), `stf/<station>/emergency_stop` and
  `stf/<station>/reset` (std_srvs/Trigger). Task and restore requests carry the scheduler's
  lease token; a stale one is refused (see `stf_nodes.sim.station`).
- requests are checked before anything is touched (`stf_nodes.validation`): a non-finite
  number or an over-long string refuses the request, and refusals quote inputs briefly.

Names are relative, so a launch namespace (`factory_2`) prefixes all of them.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from stf_nodes import interfaces, runtime
from stf_nodes.messages import log_alert, workpiece_from_msg, workpiece_to_msg
from stf_nodes.sim import (
    AlertMonitor,
    MotorSnapshot,
    Refused,
    SensorSnapshot,
    StationSnapshot,
    TaskReport,
)
from stf_nodes.sim import TaskStatus as SimTaskStatus
from stf_nodes.validation import request_problem

Trigger = interfaces.get_service('std_srvs/srv/Trigger')
StationTask = interfaces.get_service('stf_msgs/srv/StationTask')
RestoreStation = interfaces.get_service('stf_msgs/srv/RestoreStation')
InjectFault = interfaces.get_service('stf_msgs/srv/InjectFault')
ClearFault = interfaces.get_service('stf_msgs/srv/ClearFault')
MotorState = interfaces.get_message_class('stf_msgs/msg/MotorState')
SensorState = interfaces.get_message_class('stf_msgs/msg/SensorState')
TaskStatus = interfaces.get_message_class('stf_msgs/msg/TaskStatus')
Alert = interfaces.get_message_class('stf_msgs/msg/Alert')
TFMessage = interfaces.get_message_class('tf2_msgs/msg/TFMessage')
TransformStamped = interfaces.get_message_class('geometry_msgs/msg/TransformStamped')
DiagnosticArray = interfaces.get_message_class('diagnostic_msgs/msg/DiagnosticArray')
DiagnosticStatus = interfaces.get_message_class('diagnostic_msgs/msg/DiagnosticStatus')
KeyValue = interfaces.get_message_class('diagnostic_msgs/msg/KeyValue')
Header = interfaces.get_message_class('std_msgs/msg/Header')
SetParametersResult = interfaces.get_message_class('rcl_interfaces/msg/SetParametersResult')

#: Parameters that take effect while the node runs; the others are read-only.
LIVE_PARAMETERS = frozenset({'publish_rate', 'diagnostics_rate'})

#: Longest stretch of ROS time simulated in one tick. A longer gap (a paused /clock, a
#: suspended process, a clock far faster than the physics can follow) is cut to this, with a
#: warning, instead of freezing the node while it catches up.
MAX_STEP_GAP_S = 10.0
RELIABLE_EVENTS = runtime.QoSProfile(depth=100)


def _due(accumulated_s: float, period_s: float) -> tuple[bool, float]:
    """Whether a periodic output is due after ``accumulated_s`` of time, and what carries
    over: the time past the due moment, so ticks that do not divide the period keep the
    average rate (50 Hz ticks and a 10 Hz topic give 10 Hz, not one period rounded up to the
    next tick; jittered ticks at the output's own rate give that rate), but at most one period:
    after a stall the output catches up by one on the next tick, never with a burst. A tiny
    tolerance absorbs the rounding of summed tick lengths."""
    if accumulated_s < period_s - 1e-9:
        return False, accumulated_s
    return True, min(max(accumulated_s - period_s, 0.0), period_s)


class StationNode(runtime.Node):
    """Base of the station nodes; subclasses name the model and build the state message."""

    station: ClassVar[str]
    model_class: ClassVar[type]
    config_class: ClassVar[type]
    state_class: ClassVar[type]
    default_mount_xyz_m: ClassVar[tuple[float, float, float]] = (0.0, 0.0, 0.0)
    default_mount_rpy_deg: ClassVar[tuple[float, float, float]] = (0.0, 0.0, 0.0)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(self.station, **kwargs)
        defaults = self.config_class().to_parameters()
        docs = self.config_class.parameter_docs()
        for name, value in defaults.items():
            doc = docs[name]
            # The model is built once from its config; only the output rates change live.
            self.declare_parameter(
                name,
                value,
                description=doc.description,
                unit=doc.unit,
                low=doc.low,
                high=doc.high,
                read_only=name not in LIVE_PARAMETERS,
            )
        self.declare_parameter(
            'physics_rate', 50.0, description='physics steps', unit='1/s', low=1.0, high=10000.0
        )
        self.declare_parameter(
            'diagnostics_rate', 1.0, description='/diagnostics rate', unit='Hz', low=0.01
        )
        self.declare_parameter(
            'mount_xyz_m',
            list(self.default_mount_xyz_m),
            description='station origin in the world frame',
            unit='m',
        )
        self.declare_parameter(
            'mount_rpy_deg',
            list(self.default_mount_rpy_deg),
            description='station frame roll, pitch, yaw in the world frame',
            unit='°',
        )
        config = self.config_class.from_parameters(
            {name: self.get_parameter(name).value for name in defaults}
        )
        self.model = self.model_class(config=config)
        self.alerts = AlertMonitor(config=config.alert)
        self._max_step_s = 1.0 / self.get_parameter('physics_rate').value
        self._publish_period_s = 1.0 / config.publish_rate
        self._diagnostics_period_s = 1.0 / self.get_parameter('diagnostics_rate').value
        self._mount = self.get_parameter('mount_xyz_m').value
        self._mount_rotation = quaternion_from_rpy_deg(*self.get_parameter('mount_rpy_deg').value)

        prefix = f'stf/{self.station}'
        self._state_pub = self.create_publisher(self.state_class, f'{prefix}/state', 10)
        self._task_pub = self.create_publisher(TaskStatus, f'{prefix}/task_status', RELIABLE_EVENTS)
        self._tf_pub = self.create_publisher(TFMessage, 'tf', 100)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, 'diagnostics', 10)
        self._alert_pub = self.create_publisher(Alert, 'stf/alerts', RELIABLE_EVENTS)
        self.create_service(StationTask, f'{prefix}/task', self._on_task)
        self.create_service(RestoreStation, f'{prefix}/restore', self._on_restore)
        self.create_service(InjectFault, f'{prefix}/fault/inject', self._on_inject_fault)
        self.create_service(ClearFault, f'{prefix}/fault/clear', self._on_clear_fault)
        self.create_service(Trigger, f'{prefix}/emergency_stop', self._on_emergency_stop)
        self.create_service(Trigger, f'{prefix}/reset', self._on_reset)

        self._last_step_ns: int | None = None
        self._since_publish_s = self._publish_period_s
        self._since_diagnostics_s = self._diagnostics_period_s
        self.create_timer(self._max_step_s, self._on_tick)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.get_logger().info(f'{self.station} ready ({", ".join(self.model.verbs)})')

    def _on_set_parameters(self, parameters: list[runtime.Parameter]) -> Any:
        # Type and range (a rate > 0) were checked against the descriptors already.
        periods = {p.name: 1.0 / p.value for p in parameters if p.name in LIVE_PARAMETERS}
        self._publish_period_s = periods.get('publish_rate', self._publish_period_s)
        self._diagnostics_period_s = periods.get('diagnostics_rate', self._diagnostics_period_s)
        return SetParametersResult(successful=True)

    # -- the physics loop -----------------------------------------------------------------

    def _on_tick(self) -> None:
        now_ns = self.get_clock().now().nanoseconds
        if self._last_step_ns is None or now_ns < self._last_step_ns:
            self._last_step_ns = now_ns  # first tick, or time jumped back (sim time restart)
            return
        elapsed = (now_ns - self._last_step_ns) / 1e9
        if elapsed > MAX_STEP_GAP_S:
            self.get_logger().warning(
                f'{elapsed:.1f} s of ROS time passed in one tick; simulating '
                f'{MAX_STEP_GAP_S:g} s of it',
                throttle_duration_sec=10.0,
            )
            elapsed = MAX_STEP_GAP_S
        self._last_step_ns = now_ns
        remaining = elapsed
        while remaining > 1e-9:
            step = min(remaining, self._max_step_s)
            self.model.step(step)
            remaining -= step
        for report in self.model.pop_events():
            self._publish_task(report)
        due, self._since_publish_s = _due(self._since_publish_s + elapsed, self._publish_period_s)
        if due:
            self._publish_state(self.model.snapshot())
        due, self._since_diagnostics_s = _due(
            self._since_diagnostics_s + elapsed, self._diagnostics_period_s
        )
        if due:
            self._publish_diagnostics(self.model.snapshot())

    def _publish_state(self, snapshot: StationSnapshot) -> None:
        header = self._header(self.station)
        message = self.state_message(snapshot)
        message.header = header
        message.state = int(snapshot.state)
        message.restored = snapshot.restored
        running = snapshot.task is not None and snapshot.task.status == SimTaskStatus.RUNNING
        message.task = snapshot.task.task if running else ''
        message.task_id = snapshot.task.task_id if running else 0
        message.motors = [_motor_msg(m) for m in snapshot.motors]
        message.sensors = [_sensor_msg(s) for s in snapshot.sensors]
        self._state_pub.publish(message)
        if running:
            self._publish_task(snapshot.task)
        self._publish_tf(snapshot)
        for alert in self.alerts.update(snapshot):
            message = Alert(
                header=header,
                severity=int(alert.severity),
                component_id=alert.component_id,
                code=alert.code,
                message=alert.message,
                value=alert.value,
                threshold=alert.threshold,
            )
            self._alert_pub.publish(message)
            log_alert(self.get_logger(), message)

    def state_message(self, snapshot: StationSnapshot) -> Any:
        """The station-specific fields of the state message (header etc. are filled here)."""
        raise NotImplementedError

    def _header(self, frame_id: str) -> Any:
        return Header(stamp=self.get_clock().now().to_msg(), frame_id=frame_id)

    def _publish_task(self, report: TaskReport) -> None:
        self._task_pub.publish(
            TaskStatus(
                header=self._header(self.station),
                station=self.station,
                task_id=report.task_id,
                task=report.task,
                status=int(report.status),
                progress=report.progress,
                message=report.message,
                workpiece=workpiece_to_msg(report.workpiece),
            )
        )

    def _publish_tf(self, snapshot: StationSnapshot) -> None:
        stamp = self.get_clock().now().to_msg()
        mount = TransformStamped(child_frame_id=self.station)
        mount.header.stamp, mount.header.frame_id = stamp, 'world'
        (
            mount.transform.translation.x,
            mount.transform.translation.y,
            mount.transform.translation.z,
        ) = self._mount
        rotation = mount.transform.rotation
        rotation.x, rotation.y, rotation.z, rotation.w = self._mount_rotation
        transforms = [mount]
        for pose in snapshot.poses:
            transform = TransformStamped(child_frame_id=pose.frame_id)
            transform.header.stamp, transform.header.frame_id = stamp, pose.parent_id
            translation = transform.transform.translation
            translation.x, translation.y, translation.z = (
                pose.x / 1000.0,
                pose.y / 1000.0,
                pose.z / 1000.0,
            )
            transform.transform.rotation.w = 1.0
            transforms.append(transform)
        self._tf_pub.publish(TFMessage(transforms=transforms))

    def _publish_diagnostics(self, snapshot: StationSnapshot) -> None:
        statuses = [_motor_diagnostic(self.station, m, self.alerts) for m in snapshot.motors]
        statuses += [_sensor_diagnostic(self.station, s) for s in snapshot.sensors]
        self._diagnostics_pub.publish(DiagnosticArray(header=self._header(''), status=statuses))

    # -- services -------------------------------------------------------------------------

    def _on_task(self, request: Any, response: Any) -> Any:
        try:
            self._screen(request)
            earlier = self.model.task_for_key(request.key)
            if earlier is not None:
                response.accepted, response.duplicate = True, True
                response.task_id = earlier.task_id
                self.get_logger().info(
                    f'task key {request.key} repeated: task {earlier.task_id} '
                    f'({earlier.status.name.lower()})'
                )
                self._publish_task(earlier)
                return response
            response.task_id = self.model.start_task(
                request.task,
                target=request.target,
                workpiece=workpiece_from_msg(request.workpiece),
                value=request.value,
                key=request.key,
            )
        except (Refused, ValueError) as exc:
            response.accepted, response.message = False, str(exc)
            self.get_logger().info(f'refused task: {exc}')
            return response
        response.accepted = True
        self.get_logger().info(
            f'task {response.task_id} started: {request.task} {request.target}'
            + (f' (key {request.key})' if request.key else '')
        )
        report = self.model.task
        if report is not None:
            self._publish_task(report)
        return response

    def _on_restore(self, request: Any, response: Any) -> Any:
        try:
            self._screen(request)
            slots = {entry.slot: workpiece_from_msg(entry.workpiece) for entry in request.slots}
            if len(slots) != len(request.slots):
                raise Refused('a slot is listed twice')
            self.model.restore(
                workpiece=workpiece_from_msg(request.workpiece), place=request.place, slots=slots
            )
        except (Refused, ValueError) as exc:
            response.accepted, response.message = False, str(exc)
            self.get_logger().warning(f'refused restore: {exc}')
            return response
        held = request.workpiece.id or 'nothing'
        response.accepted = True
        response.message = f'{self.station} restored: holds {held}' + (
            f', rack of {len(request.slots)} slots' if request.slots else ''
        )
        self.get_logger().info(response.message)
        self._publish_state(self.model.snapshot())
        return response

    def _screen(self, request: Any) -> None:
        """Refuse what no handler should act on, then a deposed scheduler's request."""
        problem = request_problem(request)
        if problem:
            raise Refused(problem)
        token = getattr(request, 'fencing_token', 0)
        self.model.fence(token)

    def _on_inject_fault(self, request: Any, response: Any) -> Any:
        try:
            self._screen(request)
            self.model.inject_fault(
                request.component_id, request.fault.upper(), request.magnitude, request.duration_s
            )
        except Refused as exc:
            response.accepted, response.message = False, str(exc)
            return response
        response.accepted = True
        response.message = f'{request.fault.upper()} injected into {request.component_id}'
        self.get_logger().warning(response.message)
        return response

    def _on_clear_fault(self, request: Any, response: Any) -> Any:
        try:
            self._screen(request)
            self.model.clear_fault(request.component_id)
        except Refused as exc:
            response.accepted, response.message = False, str(exc)
            return response
        response.accepted = True
        response.message = f'faults cleared on {request.component_id or self.station}'
        return response

    def _on_emergency_stop(self, request: Any, response: Any) -> Any:
        self.model.emergency_stop()
        for report in self.model.pop_events():
            self._publish_task(report)
        self._publish_state(self.model.snapshot())
        response.success, response.message = True, f'{self.station} stopped'
        self.get_logger().warning('emergency stop')
        return response

    def _on_reset(self, request: Any, response: Any) -> Any:
        self.model.reset()
        self._publish_state(self.model.snapshot())
        response.success, response.message = True, f'{self.station} reset'
        return response


def quaternion_from_rpy_deg(roll: float, pitch: float, yaw: float) -> tuple[float, ...]:
    """(x, y, z, w) of the rotation roll about x, then pitch about y, then yaw about z (as
    tf2's `setRPY`, fixed axes)."""
    half = [math.radians(angle) / 2.0 for angle in (roll, pitch, yaw)]
    (cr, cp, cy), (sr, sp, sy) = [math.cos(a) for a in half], [math.sin(a) for a in half]
    return (
        sr * cp * cy - cr * sp * sy,
        cr * sp * cy + sr * cp * sy,
        cr * cp * sy - sr * sp * cy,
        cr * cp * cy + sr * sp * sy,
    )


def _motor_msg(motor: MotorSnapshot) -> Any:
    return MotorState(**{name: getattr(motor, name) for name in MotorSnapshot.__dataclass_fields__})


def _sensor_msg(sensor: SensorSnapshot) -> Any:
    return SensorState(
        **{name: getattr(sensor, name) for name in SensorSnapshot.__dataclass_fields__}
    )


def _motor_diagnostic(station: str, motor: MotorSnapshot, alerts: AlertMonitor) -> Any:
    raised = [a for a in alerts.active_alerts if a.component_id == motor.motor_id]
    level = (
        DiagnosticStatus.ERROR
        if motor.fault or any(a.severity >= 2 for a in raised)
        else (DiagnosticStatus.WARN if raised else DiagnosticStatus.OK)
    )
    message = motor.fault or ', '.join(a.code for a in raised) or 'ok'
    return DiagnosticStatus(
        level=level,
        name=f'{station}: {motor.motor_id}',
        message=message,
        hardware_id=motor.motor_id,
        values=[
            KeyValue(
                key=key,
                value=f'{getattr(motor, key):.4g}'
                if isinstance(getattr(motor, key), float)
                else str(getattr(motor, key)),
            )
            for key in (
                'current_a',
                'power_w',
                'energy_wh',
                'temperature_c',
                'health',
                'encoder_pulses',
                'start_count',
                'runtime_h',
            )
        ],
    )


def _sensor_diagnostic(station: str, sensor: SensorSnapshot) -> Any:
    level = DiagnosticStatus.WARN if sensor.fault else DiagnosticStatus.OK
    return DiagnosticStatus(
        level=level,
        name=f'{station}: {sensor.sensor_id}',
        message=sensor.fault or 'ok',
        hardware_id=sensor.sensor_id,
        values=[
            KeyValue(key='triggered', value=str(sensor.triggered)),
            KeyValue(key='value', value=f'{sensor.value:.3f}'),
        ],
    )
