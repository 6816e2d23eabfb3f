"""STF Digital Twin: node runtime, simulation models, nodes, bridges, storage and CLI."""
