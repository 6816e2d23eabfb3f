"""The MQTT brokers a launch needs: one embedded broker per loopback endpoint of its bridges.

For every ``mqtt_bridge_node`` of the launch, the broker it will use is worked out the way the
node does it: its ``broker_host``/``broker_port`` parameters (parameter files and inline
``<param>`` in order), else the environment ``MQTT_BROKER``/``MQTT_PORT`` (the node's own
``<env>`` over the launcher's), else ``127.0.0.1:1883``. A broker on this machine (loopback)
without TLS becomes a :class:`RouterSpec` for the embedded amqtt broker
(``stf_nodes.bridges.embedded_broker``); the supervisor starts it only when nothing listens
there, and uses what listens otherwise (Mosquitto, say). A remote broker is left alone.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stf_nodes.launcher.model import LaunchError, NodeSpec
from stf_nodes.launcher.supervisor import RouterSpec

BRIDGE_EXECUTABLE = 'mqtt_bridge_node'
LOOPBACK_HOSTS = {'127.0.0.1': '127.0.0.1', 'localhost': '127.0.0.1', '::1': '[::1]'}


def _parameters(node: NodeSpec) -> dict[str, Any]:
    # Imported here: the runtime is only needed when the launch has an MQTT bridge.
    from stf_nodes.runtime.parameters import ParameterError, load_parameter_file

    fqn = node.full_name or f'{node.namespace.rstrip("/")}/mqtt_bridge'
    merged: dict[str, Any] = {}
    for parameters in node.parameters:
        if isinstance(parameters, Path):
            try:
                merged.update(load_parameter_file(parameters, fqn))
            except ParameterError as error:
                raise LaunchError(f'{node.source}: {error}') from None
        else:
            merged.update(parameters)
    return merged


def broker_endpoint(node: NodeSpec, environment: Mapping[str, str]) -> str | None:
    """``tcp/127.0.0.1:PORT`` when the bridge's broker may be embedded, else None."""
    parameters = _parameters(node)
    if parameters.get('tls.enabled') is True:
        return None
    env = {**environment, **(node.env or {})}
    host = str(parameters.get('broker_host', env.get('MQTT_BROKER', '127.0.0.1')))
    port = parameters.get('broker_port', env.get('MQTT_PORT', '1883'))
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise LaunchError(f'{node.source}: MQTT broker port is not a number: {port!r}') from None
    if host not in LOOPBACK_HOSTS:
        return None
    return f'tcp/{LOOPBACK_HOSTS[host]}:{port}'


def embedded_brokers(
    nodes: Sequence[NodeSpec], environment: Mapping[str, str] | None = None
) -> list[RouterSpec]:
    """One embedded-broker spec per distinct loopback endpoint of the launch's bridges."""
    environment = os.environ if environment is None else environment
    endpoints: list[str] = []
    for node in nodes:
        if node.executable != BRIDGE_EXECUTABLE:
            continue
        endpoint = broker_endpoint(node, environment)
        if endpoint is not None and endpoint not in endpoints:
            endpoints.append(endpoint)
    specs = []
    for endpoint in endpoints:
        address = endpoint.partition('/')[2]
        host, _, port = address.rpartition(':')
        specs.append(
            RouterSpec(
                argv=(
                    sys.executable,
                    '-m',
                    'stf_nodes.bridges.embedded_broker',
                    '--host',
                    host.strip('[]'),
                    '--port',
                    port,
                ),
                endpoint=endpoint,
                timeout=30.0,
                label='mqtt_broker',
                name='MQTT broker',
                conflict_hint='set MQTT_PORT to another port',
            )
        )
    return specs
