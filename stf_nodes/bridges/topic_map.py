"""Generic graph ↔ MQTT routes from a mapping file, for users with their own topic scheme.

The file (parameter ``mapping_file`` of the bridge) is YAML: a list of routes under
``routes:``. Graph names are relative (a launch namespace prefixes them) unless they start
with ``/``; MQTT topics get the bridge's ``topic_prefix``. Payloads are JSON objects with the
message's fields (``stf topic echo --json`` shows the same shape); incoming JSON may leave
fields out (they keep their defaults), but unknown fields or wrong types are refused.

```yaml
routes:
  # graph → MQTT: every message on the topic, as JSON
  - graph: stf/conveyor/state
    type: stf_msgs/msg/ConveyorState
    mqtt: plant/line1/conveyor
    qos: 0            # default 0
    retain: false     # default false
  # MQTT → graph topic
  - mqtt: plant/line1/alerts/in
    graph: stf/alerts
    type: stf_msgs/msg/Alert
    direction: in
  # MQTT → graph service (a command); the reply is published as JSON on `reply`
  - mqtt: plant/line1/store
    service: stf/order/store
    type: stf_msgs/srv/StoreWorkpiece
    reply: plant/line1/store/reply
```

Incoming commands are acknowledged (QoS 1) once the service answered, or failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stf_nodes import interfaces

_KEYS = {'graph', 'service', 'type', 'mqtt', 'direction', 'qos', 'retain', 'reply'}


@dataclass(frozen=True, kw_only=True)
class Route:
    """One mapping: ``direction`` ``out`` (graph topic → MQTT) or ``in`` (MQTT → graph topic,
    or → service when ``service`` is set)."""

    direction: str
    mqtt: str
    type_name: str
    graph: str = ''
    service: str = ''
    reply: str = ''
    qos: int = 0
    retain: bool = False


def load_routes(path: str | Path) -> tuple[Route, ...]:
    """Read and check a mapping file; ValueError names the file, the route and the problem."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ValueError(f'mapping file {path}: {exc.strerror or exc}') from None
    except yaml.YAMLError as exc:
        raise ValueError(f'mapping file {path} is not valid YAML: {exc}') from None
    if not isinstance(document, dict) or not isinstance(document.get('routes'), list):
        raise ValueError(f'mapping file {path}: expected a mapping with a list "routes"')
    routes = []
    for index, entry in enumerate(document['routes']):
        where = f'mapping file {path}, route {index + 1}'
        try:
            routes.append(_route(entry))
        except ValueError as exc:
            raise ValueError(f'{where}: {exc}') from None
    return tuple(routes)


def _route(entry: Any) -> Route:
    if not isinstance(entry, dict):
        raise ValueError('expected a mapping')
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise ValueError(
            f'unknown key(s) {", ".join(unknown)}; keys are {", ".join(sorted(_KEYS))}'
        )
    direction = entry.get('direction', 'out')
    if direction not in ('in', 'out'):
        raise ValueError(f'direction must be in or out, got {direction!r}')
    mqtt = entry.get('mqtt')
    if not isinstance(mqtt, str) or not mqtt or '#' in mqtt or '+' in mqtt:
        raise ValueError('"mqtt" must be a topic without wildcards')
    type_name = entry.get('type')
    if not isinstance(type_name, str):
        raise ValueError('"type" is missing')
    qos = entry.get('qos', 0)
    if qos not in (0, 1):
        raise ValueError(f'qos must be 0 or 1, got {qos!r}')
    retain = entry.get('retain', False)
    if not isinstance(retain, bool):
        raise ValueError(f'retain must be true or false, got {retain!r}')
    graph, service, reply = (str(entry.get(key) or '') for key in ('graph', 'service', 'reply'))
    try:
        if service:
            interfaces.get_service(type_name)
        else:
            interfaces.get_message_class(type_name)
    except interfaces.InterfaceError as exc:
        raise ValueError(str(exc)) from None
    if direction == 'out' and (service or reply or not graph):
        raise ValueError('an "out" route needs "graph" (a topic) and no "service" or "reply"')
    if direction == 'in' and bool(graph) == bool(service):
        raise ValueError('an "in" route needs either "graph" (a topic) or "service"')
    if reply and not service:
        raise ValueError('"reply" only applies to a service route')
    return Route(
        direction=direction,
        mqtt=mqtt,
        type_name=type_name,
        graph=graph,
        service=service,
        reply=reply,
        qos=qos,
        retain=retain,
    )
