"""`maintenance` node: health, remaining useful life and sensor anomalies from observable signals.

Role: feeds the motors (current, temperature, running, encoder, start count; never `health`)
and the sensors of the station state messages to the estimator of
`stf_nodes.maintenance.estimator`, the same code `stf maintenance evaluate` replays stored
telemetry through, and publishes what it concludes. Times are the messages' header stamps (sim
time under `use_sim_time`), so a replay and the live node see the same history. A motor id not
seen before (a fleet mirrored over MQTT) gets an estimator of its own; it is logged once.

Topics (relative names resolve in the node's namespace):
- subscribes `stf/hbw/state`, `stf/vgr/state`, `stf/conveyor/state`;
- publishes `stf/maintenance/forecast` (HealthForecast, one per motor every
  `forecast_period_s`), `diagnostics` (one status per motor and watched sensor: OK, WARN for
  a WARNING, ERROR for a CRITICAL) and `stf/alerts` (Alert: DEGRADATION_TREND as INFO,
  MAINTENANCE_DUE as WARNING, FAILURE_IMMINENT as CRITICAL, GHOST_READINGS, SENSOR_STUCK,
  BELT_SLIP as WARNING; each raised once, and cleared once as INFO `<code>_CLEARED` when the
  reading is back past the wider clear limits).

Parameters: `forecast_period_s` (seconds of wall time between forecasts) and every field of
`EstimatorConfig` under the same name (see that class: model limits, alert limits, the belt
and barrier ids).
"""

from __future__ import annotations

import sys
from typing import Any

from stf_nodes import interfaces, runtime
from stf_nodes.maintenance.estimator import (
    Estimator,
    EstimatorConfig,
    Forecast,
    Level,
    MotorSample,
    SensorEdge,
)
from stf_nodes.messages import STATE_TYPES, log_alert
from stf_nodes.runtime.clock import Time
from stf_nodes.runtime.qos import QoSProfile

Alert = interfaces.get_message_class('stf_msgs/msg/Alert')
HealthForecast = interfaces.get_message_class('stf_msgs/msg/HealthForecast')
Header = interfaces.get_message_class('std_msgs/msg/Header')
DiagnosticArray = interfaces.get_message_class('diagnostic_msgs/msg/DiagnosticArray')
DiagnosticStatus = interfaces.get_message_class('diagnostic_msgs/msg/DiagnosticStatus')
KeyValue = interfaces.get_message_class('diagnostic_msgs/msg/KeyValue')

STATE_TOPICS = {f'stf/{station}/state': type_name for station, type_name in STATE_TYPES.items()}
NO_SEVERITY = 255
RELIABLE_EVENTS = QoSProfile(depth=100)
_DIAGNOSTIC_LEVEL = {
    Level.NONE: DiagnosticStatus.OK,
    Level.INFO: DiagnosticStatus.OK,
    Level.WARNING: DiagnosticStatus.WARN,
    Level.CRITICAL: DiagnosticStatus.ERROR,
}


class MaintenanceNode(runtime.Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__('maintenance', **kwargs)
        period = self.declare_parameter(
            'forecast_period_s',
            1.0,
            description='wall time between forecasts and alert checks',
            unit='s',
            low=0.001,
        ).value
        values = {}
        docs = EstimatorConfig.parameter_docs()
        for name, default in EstimatorConfig().to_parameters().items():
            doc = docs[name]
            values[name] = self.declare_parameter(
                name,
                default,
                description=doc.description,
                unit=doc.unit,
                low=doc.low,
                high=doc.high,
                read_only=True,
            ).value
        if period <= 0:
            raise ValueError(f'forecast_period_s must be > 0, got {period}')
        self.estimator = Estimator(EstimatorConfig.from_parameters(values))
        self._sensors: dict[str, bool] = {}
        self._latest_s: float | None = None
        self._forecast_pub = self.create_publisher(HealthForecast, 'stf/maintenance/forecast', 10)
        self._alert_pub = self.create_publisher(Alert, 'stf/alerts', RELIABLE_EVENTS)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, 'diagnostics', 10)
        for topic, type_name in STATE_TOPICS.items():
            self.create_subscription(
                interfaces.get_message_class(type_name), topic, self._on_state, 10
            )
        self.create_timer(period, self._on_tick)
        self.get_logger().info(
            f'estimating {len(STATE_TOPICS)} stations every {period:g} s (method: friction '
            'trend and damage rate; see stf_nodes.maintenance.estimator)'
        )

    def _on_state(self, message: Any) -> None:
        stamp = message.header.stamp
        time_s = stamp.sec + stamp.nanosec * 1e-9
        if time_s <= 0:
            return
        self._latest_s = max(time_s, self._latest_s or time_s)
        for s in message.sensors:
            triggered = bool(s.triggered)
            if self._sensors.get(s.sensor_id) != triggered:
                self._sensors[s.sensor_id] = triggered
                self.estimator.on_edge(SensorEdge(time_s, s.sensor_id, triggered))
        for m in message.motors:
            self.estimator.on_motor(
                MotorSample(
                    time_s,
                    m.motor_id,
                    bool(m.running),
                    float(m.current_a),
                    float(m.temperature_c),
                    int(m.encoder_pulses),
                    int(m.start_count),
                )
            )
        for motor_id in self.estimator.new_motors:
            self.get_logger().info(f'new motor {motor_id}: estimating it from its first sample')
        self.estimator.new_motors.clear()

    def _on_tick(self) -> None:
        if self._latest_s is None:
            return
        now = self._latest_s
        header = Header(stamp=Time(round(now * 1e9)).to_msg())
        forecasts = self.estimator.forecasts(now)
        for f in forecasts:
            self._forecast_pub.publish(_forecast_msg(header, f))
        for event in self.estimator.check(now, forecasts):
            alert = Alert(
                header=header,
                severity=event.severity,
                component_id=event.component_id,
                code=event.code,
                message=event.message,
                value=event.value,
                threshold=event.threshold,
            )
            self._alert_pub.publish(alert)
            log_alert(self.get_logger(), alert)
        self._diagnostics_pub.publish(
            DiagnosticArray(header=header, status=self._statuses(forecasts))
        )

    def _statuses(self, forecasts: list[Forecast]) -> list[Any]:
        statuses = []
        for f in forecasts:
            statuses.append(
                DiagnosticStatus(
                    level=_DIAGNOSTIC_LEVEL[f.level],
                    name=f'maintenance: {f.component_id}',
                    message=f.recommendation,
                    hardware_id=f.component_id,
                    values=[
                        KeyValue(key='health', value=f'{f.health:.3f}'),
                        KeyValue(key='rul_h', value=f'{f.rul_h:.1f}'),
                        KeyValue(key='method', value=f.method),
                        KeyValue(key='confidence', value=f'{f.confidence:.2f}'),
                        KeyValue(
                            key='excess_current_a', value=f'{f.estimate.excess_current_a:.3f}'
                        ),
                    ],
                )
            )
        for (component_id, kind), latch in sorted(self.estimator.latches.items()):
            if kind == 'motor':
                continue
            statuses.append(
                DiagnosticStatus(
                    level=_DIAGNOSTIC_LEVEL[latch.level],
                    name=f'maintenance: {component_id} {kind}',
                    message=latch.code if latch.level is not Level.NONE else 'ok',
                    hardware_id=component_id,
                    values=[],
                )
            )
        return statuses


def _forecast_msg(header: Any, f: Forecast) -> Any:
    return HealthForecast(
        header=header,
        component_id=f.component_id,
        health=f.health,
        degradation_per_h=f.degradation_per_h,
        remaining_useful_life_h=f.rul_h,
        rul_lower_h=f.rul_lower_h,
        rul_upper_h=f.rul_upper_h,
        confidence=f.confidence,
        method=f.method,
        severity=NO_SEVERITY if f.level is Level.NONE else int(f.level),
        recommendation=f.recommendation,
    )


NODE_CLASS = MaintenanceNode


def main(args: list[str] | None = None) -> int:
    return runtime.run_node(MaintenanceNode, args)


if __name__ == '__main__':
    sys.exit(main())
