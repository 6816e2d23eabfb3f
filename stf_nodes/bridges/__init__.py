"""Bridges between the graph and other systems: MQTT (the fischertechnik dialect)."""
