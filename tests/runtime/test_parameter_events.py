"""/parameter_events: every node announces declarations, changes and deletions, as ROS 2 nodes
do (rcl_interfaces/ParameterEvent), whoever changes them (here the stf CLI, a real process)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from stf_nodes import interfaces, runtime
from tests.conftest import stf, wait_until

ParameterEvent = interfaces.get_message_class('rcl_interfaces/msg/ParameterEvent')


@pytest.fixture
def spun(router: str) -> Iterator[dict[str, Any]]:
    context = runtime.Context([])
    watcher = runtime.Node('event_watcher', namespace='pe', context=context)
    events: list[Any] = []
    watcher.create_subscription(ParameterEvent, '/parameter_events', events.append, 100)
    executor = runtime.SingleThreadedExecutor(context=context)
    executor.add_node(watcher)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    yield {'context': context, 'executor': executor, 'events': events}
    executor.shutdown()
    spinner.join(timeout=5)
    context.shutdown()


def of(events: list[Any], node: str) -> list[Any]:
    return [e for e in list(events) if e.node == node]


def test_declare_set_and_delete_are_announced(spun: dict[str, Any]) -> None:
    events = spun['events']
    node = runtime.Node('tuned', namespace='pe', context=spun['context'])
    node.declare_parameter('gain', 1.5)
    node.declare_parameter('mode', None)  # no default: dynamically typed, deletable
    spun['executor'].add_node(node)
    wait_until(lambda: len(of(events, '/pe/tuned')) >= 3)
    declared = [p.name for e in of(events, '/pe/tuned') for p in e.new_parameters]
    assert declared == ['use_sim_time', 'gain', 'mode']

    stf('param', 'set', '/pe/tuned', 'gain', '2.5')
    changed = wait_until(lambda: [e for e in of(events, '/pe/tuned') if e.changed_parameters])
    assert changed[0].changed_parameters[0].name == 'gain'
    assert changed[0].changed_parameters[0].value.double_value == 2.5
    assert changed[0].stamp.sec > 0

    stf('param', 'set', '/pe/tuned', 'mode', 'fast')
    deleted = stf('param', 'delete', '/pe/tuned', 'mode')
    assert deleted.stdout == 'Deleted parameter successfully\n'
    gone = wait_until(lambda: [e for e in of(events, '/pe/tuned') if e.deleted_parameters])
    assert [p.name for p in gone[0].deleted_parameters] == ['mode']
    assert 'mode' not in stf('param', 'list', '/pe/tuned').stdout.split()
    refused = stf('param', 'delete', '/pe/tuned', 'gain', check=False)
    assert 'cannot undeclare a statically typed parameter' in refused.stderr
    with pytest.raises(runtime.ParameterError, match='statically typed'):
        node.undeclare_parameter('gain')
    node.destroy_node()


def test_a_second_node_of_the_same_name_warns(
    spun: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    first = runtime.Node('twin', namespace='pe', context=spun['context'])
    other = runtime.Context([])
    second = runtime.Node('twin', namespace='pe', context=other)
    assert 'a node named /pe/twin is already in the graph' in capsys.readouterr().err
    listing = stf('node', 'list')
    assert 'share an exact name' in listing.stderr
    assert listing.stdout.split().count('/pe/twin') == 1
    second.destroy_node()
    other.shutdown()
    first.destroy_node()
