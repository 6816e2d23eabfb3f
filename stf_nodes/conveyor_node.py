"""`conveyor` node: the conveyor belt with its light barriers and the oven/process station.

Publishes `stf/conveyor/state` (ConveyorState) and everything a station node publishes (see
`stf_nodes.station_node`). Task verbs on `stf/conveyor/task`: `load entry|process|exit|
overflow` (with the workpiece put there), `transport POSITION`, `unload` (the TaskStatus
carries the workpiece), `bake` (with the workpiece; `value` = seconds, 0 = configured time).
Parameters: the `conveyor` section of `config/factory.yaml`.
"""

from __future__ import annotations

from typing import Any

from stf_nodes import interfaces, runtime
from stf_nodes.messages import workpiece_to_msg
from stf_nodes.process import exit_process
from stf_nodes.sim import Conveyor, ConveyorConfig, ConveyorSnapshot
from stf_nodes.station_node import StationNode


class ConveyorNode(StationNode):
    station = 'conveyor'
    model_class = Conveyor
    config_class = ConveyorConfig
    state_class = interfaces.get_message_class('stf_msgs/msg/ConveyorState')
    default_mount_xyz_m = (0.39, -0.025, 0.1)

    def state_message(self, snapshot: ConveyorSnapshot) -> Any:
        return self.state_class(
            position=snapshot.belt_position_mm / 1000.0,
            belt_speed=snapshot.belt_speed_mm_s / 1000.0,
            has_workpiece=snapshot.workpiece is not None,
            workpiece_position=snapshot.workpiece_position_mm / 1000.0,
            workpiece=workpiece_to_msg(snapshot.workpiece),
            oven_busy=snapshot.oven_busy,
            oven_temperature_c=snapshot.oven_temperature_c,
            oven_workpiece=workpiece_to_msg(snapshot.oven_workpiece),
        )


NODE_CLASS = ConveyorNode


def main(args: list[str] | None = None) -> int:
    return runtime.run_node(ConveyorNode, args)


if __name__ == '__main__':
    exit_process(main())
