"""`vgr` node: the vacuum gripper robot (rail arm, lift, compressor and valve).

Publishes `stf/vgr/state` (VgrState) and everything a station node publishes (see
`stf_nodes.station_node`). Task verbs on `stf/vgr/task`: `pick POSITION` (with the workpiece
lying there), `place POSITION` (the TaskStatus carries the placed workpiece), `move
POSITION|x,z`, `calibrate`; positions `home`, `conveyor`, `oven`, `output`. Parameters: the
`vgr` section of `config/factory.yaml`.
"""

from __future__ import annotations

from typing import Any

from stf_nodes import interfaces, runtime
from stf_nodes.messages import workpiece_to_msg
from stf_nodes.process import exit_process
from stf_nodes.sim import Vgr, VgrConfig, VgrSnapshot
from stf_nodes.station_node import StationNode


class VgrNode(StationNode):
    station = 'vgr'
    model_class = Vgr
    config_class = VgrConfig
    state_class = interfaces.get_message_class('stf_msgs/msg/VgrState')
    default_mount_xyz_m = (0.385, -0.175, 0.175)

    def state_message(self, snapshot: VgrSnapshot) -> Any:
        message = self.state_class(
            vacuum_on=snapshot.vacuum_on,
            pressure_bar=snapshot.pressure_bar,
            holding=snapshot.holding,
            workpiece=workpiece_to_msg(snapshot.workpiece),
        )
        message.position.x, message.position.y, message.position.z = (
            v / 1000.0 for v in snapshot.position
        )
        return message


NODE_CLASS = VgrNode


def main(args: list[str] | None = None) -> int:
    return runtime.run_node(VgrNode, args)


if __name__ == '__main__':
    exit_process(main())
