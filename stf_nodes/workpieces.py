"""Names the whole factory shares: cookie flavors and statuses, and how rack slots are named.

One definition for the station models (``stf_nodes.sim``) and the scheduler
(``stf_nodes.scheduler``); the values are those of the ``stf_msgs/msg/Workpiece`` constants
(``tests/test_workpieces.py`` checks they agree with the ``.msg`` file).

Rack slots are ``<row><column>``: rows ``A``, ``B``, ... bottom to top, columns ``1``, ``2``,
... along the rack, so a 3x3 rack has ``A1`` ... ``C3``. The scheduler scans them row-major
(``A1, A2, A3, B1, ...``), the order :func:`slot_order` sorts by.
"""

from __future__ import annotations

import re
from enum import Enum, IntEnum


class Flavor(str, Enum):
    """Cookie flavor (``stf_msgs/Workpiece`` ``FLAVOR_*``)."""

    CHOCO = 'CHOCO'  # fischertechnik BLUE
    VANILLA = 'VANILLA'  # fischertechnik WHITE
    STRAWBERRY = 'STRAWBERRY'  # fischertechnik RED


#: Flavor names in definition order.
FLAVORS: tuple[str, ...] = tuple(flavor.value for flavor in Flavor)


class WorkpieceStatus(IntEnum):
    """Cookie life cycle; the values are the ``stf_msgs/Workpiece`` status constants."""

    UNKNOWN = 0  # no workpiece, or its state is not known
    RAW_DOUGH = 1  # fresh dough, ready to be baked
    BAKED = 2  # through the oven
    PACKAGED = 3  # packed (outside the modelled stations)
    STORED = 4  # stored as finished goods (outside the modelled stations)
    SHIPPED = 5  # left the factory


_SLOT = re.compile(r'([A-Z])([1-9])')


def rack_slots(rows: int, columns: int) -> tuple[str, ...]:
    """The slot names of a ``rows`` x ``columns`` rack in scan order (``A1, A2, ..., C3``)."""
    if not (1 <= rows <= 26 and 1 <= columns <= 9):
        raise ValueError(f'a rack has 1..26 rows and 1..9 columns, got {rows}x{columns}')
    names = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'[:rows]
    return tuple(f'{row}{column}' for row in names for column in range(1, columns + 1))


def slot_order(slot: str) -> tuple[int, int]:
    """Sort key of a slot name in scan order (row, then column); ValueError for a non-slot."""
    match = _SLOT.fullmatch(slot)
    if match is None:
        raise ValueError(f'not a slot name: {slot[:8]!r}')
    return ord(match[1]) - ord('A'), int(match[2])
