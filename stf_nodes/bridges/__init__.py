"""Bridges between the graph and other systems: Foxglove (WebSocket) and MQTT (the
fischertechnik dialect)."""
