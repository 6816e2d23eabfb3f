"""A small node used by the runtime tests: publishes, latches, serves, logs, has parameters.

Run as `python -m tests.runtime.demo_node [--ros-args ...]`.
"""

from __future__ import annotations

import sys

from stf_msgs.msg import MotorState
from stf_nodes import interfaces, runtime


class DemoNode(runtime.Node):
    def __init__(self) -> None:
        super().__init__('demo')
        self.declare_parameter('rate', 20.0)
        self.declare_parameter('label', 'demo')
        self.declare_parameter('limits', [1, 2, 3])
        string = interfaces.get_message_class('std_msgs/msg/String')
        self._motor = self.create_publisher(MotorState, 'motor', 10)
        latched = self.create_publisher(string, 'latched', runtime.qos_profile_latched)
        latched.publish(string(data=f'latched by {self.get_parameter("label").value}'))
        history = self.create_publisher(
            string,
            'history',
            runtime.QoSProfile(depth=10, durability=runtime.qos_profile_latched.durability),
        )
        for index in range(10):
            history.publish(string(data=f'old {index}'))
        self._odd = self.create_publisher(MotorState, 'odd', 10)
        self._echo = self.create_publisher(string, 'echo_out', 10)
        self.create_subscription(string, 'echo_in', self._on_echo_in, 10)
        add = interfaces.get_service('example_interfaces/srv/AddTwoInts')
        self.create_service(add, 'add_two_ints', self._on_add)
        self._count = 0
        self.create_timer(1.0 / self.get_parameter('rate').value, self._on_tick)
        self.get_logger().info('demo ready')

    def _on_tick(self) -> None:
        self._count += 1
        self._motor.publish(MotorState(motor_id='CONV_M1', current_a=1.2, start_count=self._count))
        self._odd.publish(MotorState(motor_id='ODD', current_a=float('nan'), power_w=float('-inf')))

    def _on_echo_in(self, message: object) -> None:
        self._echo.publish(message)

    def _on_add(self, request: object, response: object) -> object:
        response.sum = request.a + request.b
        return response


if __name__ == '__main__':
    sys.exit(runtime.run_node(DemoNode))
