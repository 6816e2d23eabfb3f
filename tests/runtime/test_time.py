"""Sim time: a node with `use_sim_time` takes its clock and its timers from `/clock`."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest

from stf_nodes import interfaces, runtime
from stf_nodes.runtime.clock import Time

Clock = interfaces.get_message_class('rosgraph_msgs/msg/Clock')


@pytest.fixture
def context(router: str) -> Iterator[runtime.Context]:
    context = runtime.Context([])
    yield context
    context.shutdown()


def test_sim_time_follows_clock_topic_and_drives_timers(context: runtime.Context) -> None:
    source = runtime.Node('clock_source', context=context)
    clock_pub = source.create_publisher(Clock, '/clock', runtime.qos_profile_sensor_data)
    node = runtime.Node(
        'sim_timed', context=context, parameter_overrides=[runtime.Parameter('use_sim_time', True)]
    )
    assert node.get_clock().ros_time_is_active
    assert node.get_clock().now().nanoseconds == 0
    ticks: list[int] = []
    node.create_timer(1.0, lambda: ticks.append(node.get_clock().now().nanoseconds))
    executor = runtime.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    start = 1_000 * 10**9
    # 10 simulated seconds in about 0.5 s of wall time: 20x real time.
    for step in range(101):
        clock_pub.publish(Clock(clock=Time(start + step * 10**8).to_msg()))
        deadline = time.monotonic() + 0.005
        while time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.001)
    for _ in range(20):
        executor.spin_once(timeout_sec=0.01)
    assert node.get_clock().now().nanoseconds == start + 100 * 10**8
    assert 8 <= len(ticks) <= 11, ticks  # one tick per simulated second, none per wall second
    assert all(b - a >= 10**9 for a, b in itertools.pairwise(ticks))


def test_use_sim_time_can_be_switched_at_run_time(context: runtime.Context) -> None:
    node = runtime.Node('switching', context=context)
    assert not node.get_clock().ros_time_is_active
    assert abs(node.get_clock().now().nanoseconds - time.time_ns()) < 10**9
    result = node.set_parameters([runtime.Parameter('use_sim_time', True)])[0]
    assert result.successful
    assert node.get_clock().ros_time_is_active
    assert node.get_clock().now().nanoseconds == 0


def test_publisher_refuses_oversized_message(
    context: runtime.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stf_nodes.runtime import entities

    monkeypatch.setattr(entities, 'MAX_MESSAGE_BYTES', 1000)
    node = runtime.Node('big_talker', context=context)
    string = interfaces.get_message_class('std_msgs/msg/String')
    publisher = node.create_publisher(string, '/big', 10)
    with pytest.raises(ValueError, match='exceeds the limit of 1000 bytes'):
        publisher.publish(string(data='x' * 5000))
    publisher.publish(string(data='small'))
