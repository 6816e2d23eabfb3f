"""The DDS side of the graph: real rclpy (ROS 2 Kilted wheels from PyPI) in `.venv-dds`.

`environment` builds that venv (`stf dds setup`, `make dds`); `mirror` is the work of the
`dds_bridge` node, which runs under the venv's Python.
"""
