"""`clock` node: the `/clock` source for simulated time.

Publishes `rosgraph_msgs/Clock` on `clock` (relative, so each namespaced factory has its own)
at `publish_rate` Hz of wall time, advancing `time_scale` simulated seconds per wall second
from the wall time at start. Nodes started with `use_sim_time:=true` follow it; at
`time_scale:=20` a full order cycle takes a few wall seconds. The clock itself always runs on
wall time, whatever its own `use_sim_time` says.
"""

from __future__ import annotations

import time

from stf_nodes import interfaces, runtime
from stf_nodes.process import exit_process
from stf_nodes.runtime.clock import Time

Clock = interfaces.get_message_class('rosgraph_msgs/msg/Clock')


class ClockNode(runtime.Node):
    def __init__(self, **kwargs: object) -> None:
        super().__init__('clock', **kwargs)
        if self.get_parameter('use_sim_time').value:
            self.set_parameters([runtime.Parameter('use_sim_time', False)])
        self.time_scale = self.declare_parameter(
            'time_scale', 1.0, description='simulated seconds per wall second'
        ).value
        rate = self.declare_parameter(
            'publish_rate', 100.0, description='/clock messages per wall second'
        ).value
        if self.time_scale <= 0 or rate <= 0:
            raise ValueError('time_scale and publish_rate must be > 0')
        self._publisher = self.create_publisher(Clock, 'clock', runtime.qos_profile_sensor_data)
        self._start_wall = time.monotonic()
        self._start_sim_ns = time.time_ns()
        self.create_timer(1.0 / rate, self._on_tick)
        self.get_logger().info(f'sim clock at {self.time_scale:g}x real time, {rate:g} Hz')

    def _on_tick(self) -> None:
        elapsed = time.monotonic() - self._start_wall
        now = Time(self._start_sim_ns + round(elapsed * self.time_scale * 1e9))
        self._publisher.publish(Clock(clock=now.to_msg()))


NODE_CLASS = ClockNode


def main(args: list[str] | None = None) -> int:
    return runtime.run_node(ClockNode, args)


if __name__ == '__main__':
    exit_process(main())
