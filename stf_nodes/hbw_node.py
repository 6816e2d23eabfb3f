"""`hbw` node: the high-bay warehouse station (3x3 rack, crane X/Y, fork Z).

Publishes `stf/hbw/state` (HbwState, with the rack contents it sees) and everything a
station node publishes (see `stf_nodes.station_node`). Task verbs on `stf/hbw/task`:
`retrieve SLOT` (fetch the cookie to the conveyor hand-off; the TaskStatus carries it),
`store SLOT` (take the given workpiece from the hand-off into the slot), `move SLOT|home|
handoff|x,y,z`, `calibrate`. Parameters: the `hbw` section of `config/factory.yaml`.
"""

from __future__ import annotations

from typing import Any

from stf_nodes import interfaces, runtime
from stf_nodes.messages import workpiece_to_msg
from stf_nodes.process import exit_process
from stf_nodes.sim import Hbw, HbwConfig, HbwSnapshot
from stf_nodes.station_node import StationNode

InventorySlot = interfaces.get_message_class('stf_msgs/msg/InventorySlot')


class HbwNode(StationNode):
    station = 'hbw'
    model_class = Hbw
    config_class = HbwConfig
    state_class = interfaces.get_message_class('stf_msgs/msg/HbwState')
    default_mount_rpy_deg = (90.0, 0.0, 0.0)  # the model's y axis is height

    def state_message(self, snapshot: HbwSnapshot) -> Any:
        message = self.state_class(
            holding=snapshot.holding, workpiece=workpiece_to_msg(snapshot.workpiece)
        )
        message.position.x, message.position.y, message.position.z = (
            v / 1000.0 for v in snapshot.position
        )
        message.slots = [
            InventorySlot(
                slot=s.slot, carrier_id=s.carrier_id, workpiece=workpiece_to_msg(s.workpiece)
            )
            for s in snapshot.slots
        ]
        return message


NODE_CLASS = HbwNode


def main(args: list[str] | None = None) -> int:
    return runtime.run_node(HbwNode, args)


if __name__ == '__main__':
    exit_process(main())
