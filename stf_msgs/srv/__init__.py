"""Service types of stf_msgs, generated from the .srv files beside this module.

`from stf_msgs.srv import ProcessOrder` gives a type with `Request` and `Response`, as with
rclpy-generated packages.
"""

from __future__ import annotations

from typing import Any

from stf_nodes.interfaces import get_service, list_interfaces

_PREFIX = 'stf_msgs/srv/'


def __getattr__(name: str) -> Any:
    if f'{_PREFIX}{name}' not in list_interfaces():
        raise AttributeError(f'module stf_msgs.srv has no service {name!r}')
    return get_service(f'{_PREFIX}{name}')


def __dir__() -> list[str]:
    return [n.removeprefix(_PREFIX) for n in list_interfaces() if n.startswith(_PREFIX)]
