"""Exit statuses shared by the node executables, `stf launch` and `stf` (no imports, so the
launcher can read them without loading the node runtime)."""

from __future__ import annotations

#: A node could not start (no router, a crash): `stf launch` may respawn it.
FAILURE = 1
#: Bad command-line usage.
USAGE = 2
#: The node's configuration is wrong (a parameter file that is not valid YAML, a value of the
#: wrong type, an invalid name): respawning cannot help, so `stf launch` stops with the
#: node's message instead. The value is `EX_CONFIG` of BSD's sysexits.h.
CONFIG = 78
