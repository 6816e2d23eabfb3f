"""Message classes of stf_msgs, generated from the .msg files beside this module.

`from stf_msgs.msg import MotorState` works as with rclpy-generated packages.
"""

from __future__ import annotations

from typing import Any

from stf_nodes.interfaces import get_message_class, list_interfaces

_PREFIX = 'stf_msgs/msg/'


def __getattr__(name: str) -> Any:
    if f'{_PREFIX}{name}' not in list_interfaces():
        raise AttributeError(f'module stf_msgs.msg has no message {name!r}')
    return get_message_class(f'{_PREFIX}{name}')


def __dir__() -> list[str]:
    return [n.removeprefix(_PREFIX) for n in list_interfaces() if n.startswith(_PREFIX)]
