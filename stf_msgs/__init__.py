"""The project's ROS 2 interfaces. Definitions live in `msg/*.msg` and `srv/*.srv`; the Python
classes are generated from them at import (see `stf_nodes.interfaces`)."""
