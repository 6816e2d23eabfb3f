"""Mapping files of generic graph <-> MQTT routes: accepted and refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from stf_nodes.bridges.topic_map import Route, load_routes

GOOD = """
routes:
  - graph: stf/conveyor/state
    type: stf_msgs/msg/ConveyorState
    mqtt: plant/conveyor
    qos: 1
    retain: true
  - mqtt: plant/chatter
    graph: chatter
    type: std_msgs/msg/String
    direction: in
  - mqtt: plant/store
    service: stf/order/store
    type: stf_msgs/srv/StoreWorkpiece
    reply: plant/store/reply
    direction: in
"""


def test_routes(tmp_path: Path) -> None:
    path = tmp_path / 'map.yaml'
    path.write_text(GOOD)
    assert load_routes(path) == (
        Route(
            direction='out',
            mqtt='plant/conveyor',
            type_name='stf_msgs/msg/ConveyorState',
            graph='stf/conveyor/state',
            qos=1,
            retain=True,
        ),
        Route(
            direction='in', mqtt='plant/chatter', type_name='std_msgs/msg/String', graph='chatter'
        ),
        Route(
            direction='in',
            mqtt='plant/store',
            type_name='stf_msgs/srv/StoreWorkpiece',
            service='stf/order/store',
            reply='plant/store/reply',
        ),
    )


@pytest.mark.parametrize(
    ('text', 'error'),
    [
        ('routes: [', 'not valid YAML'),
        ('[]', 'list "routes"'),
        ('routes: [1]', 'route 1: expected a mapping'),
        ('routes: [{mqtt: a, graph: b, type: std_msgs/msg/Nope}]', 'route 1: '),
        ('routes: [{mqtt: a/#, graph: b, type: std_msgs/msg/String}]', 'without wildcards'),
        ('routes: [{mqtt: a, graph: b, type: std_msgs/msg/String, qos: 2}]', 'qos must be 0 or 1'),
        ('routes: [{mqtt: a, graph: b, type: std_msgs/msg/String, topic: c}]', 'unknown key'),
        ('routes: [{mqtt: a, type: std_msgs/msg/String}]', 'needs "graph"'),
        ('routes: [{mqtt: a, direction: in, type: std_msgs/msg/String}]', 'either "graph"'),
        (
            'routes: [{mqtt: a, direction: sideways, graph: b, type: std_msgs/msg/String}]',
            'in or out',
        ),
    ],
)
def test_bad_mapping_files_are_refused_with_the_route(
    tmp_path: Path, text: str, error: str
) -> None:
    path = tmp_path / 'map.yaml'
    path.write_text(text)
    with pytest.raises(ValueError, match=error):
        load_routes(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r'mapping file .*missing\.yaml'):
        load_routes(tmp_path / 'missing.yaml')
