"""Bridges between the ROS graph and other worlds (Foxglove WebSocket; MQTT to come)."""
