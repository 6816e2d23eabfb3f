"""Composition: a callback that calls a service of a node on the same executor gets its answer
at once (the executor is lent while it waits), and a node's own callbacks still never
interleave."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from stf_nodes import interfaces, runtime

Trigger = interfaces.get_service('std_srvs/srv/Trigger')


@pytest.fixture
def composed(router: str) -> Iterator[dict[str, Any]]:
    """Two nodes in one process on one spinning executor: `station` and `facade`, whose
    service forwards to the station's (like the scheduler's fault facade)."""
    context = runtime.Context([])
    station = runtime.Node('station', namespace='lend', context=context)
    facade = runtime.Node('facade', namespace='lend', context=context)
    state: dict[str, Any] = {'in_facade': False, 'facade_ticks_inside': 0, 'station_ticks': 0}

    def on_station(request: Any, response: Any) -> Any:
        response.success, response.message = True, 'station answered'
        return response

    def on_remote(request: Any, response: Any) -> Any:
        time.sleep(0.3)  # a window in which the composed nodes' timers are due
        response.success, response.message = True, 'remote answered'
        return response

    def forwarding_to(service: str) -> Any:
        client = facade.create_client(Trigger, service)

        def on_facade(request: Any, response: Any) -> Any:
            state['in_facade'] = True
            try:
                reply = client.call(Trigger.Request(), timeout_sec=5.0)
                response.success, response.message = reply.success, f'via: {reply.message}'
            except (runtime.ServiceError, TimeoutError) as exc:
                response.success, response.message = False, f'forward failed: {exc}'
            finally:
                state['in_facade'] = False
            return response

        return on_facade

    def on_self_call(request: Any, response: Any) -> Any:
        own = facade.create_client(Trigger, '/lend/facade/forward')
        try:
            own.call(Trigger.Request(), timeout_sec=0.5)
            response.success = True
        except (runtime.ServiceError, TimeoutError) as exc:
            response.message = f'{type(exc).__name__}: {exc}'
        return response

    def on_facade_tick() -> None:
        if state['in_facade']:
            state['facade_ticks_inside'] += 1

    def on_station_tick() -> None:
        state['station_ticks'] += 1

    station.create_service(Trigger, '/lend/station/do', on_station)
    facade.create_service(Trigger, '/lend/facade/forward', forwarding_to('/lend/station/do'))
    facade.create_service(Trigger, '/lend/facade/forward_remote', forwarding_to('/lend/remote/do'))
    facade.create_service(Trigger, '/lend/facade/self_call', on_self_call)
    facade.create_timer(0.02, on_facade_tick)
    station.create_timer(0.02, on_station_tick)
    executor = runtime.SingleThreadedExecutor(context=context)
    executor.add_node(station)
    executor.add_node(facade)
    # Another process, as far as the composed nodes can tell: its own context and executor.
    remote_context = runtime.Context([])
    remote = runtime.Node('remote', namespace='lend', context=remote_context)
    remote.create_service(Trigger, '/lend/remote/do', on_remote)
    remote_executor = runtime.SingleThreadedExecutor(context=remote_context)
    remote_executor.add_node(remote)
    spinners = [threading.Thread(target=e.spin, daemon=True) for e in (executor, remote_executor)]
    for spinner in spinners:
        spinner.start()
    yield state
    for each, each_context in ((executor, context), (remote_executor, remote_context)):
        each.shutdown()
        each_context.shutdown()
    for spinner in spinners:
        spinner.join(timeout=5)


def test_forwarded_call_is_answered_by_a_node_of_the_same_executor(
    composed: dict[str, Any], node: runtime.Node
) -> None:
    client = node.create_client(Trigger, '/lend/facade/forward')
    assert client.wait_for_service(10)
    for _ in range(3):
        response = client.call(Trigger.Request(), timeout_sec=8.0)
        assert response.success, response.message
        assert response.message == 'via: station answered'


def test_other_nodes_run_while_a_callback_waits_but_not_the_waiting_node(
    composed: dict[str, Any], node: runtime.Node
) -> None:
    client = node.create_client(Trigger, '/lend/facade/forward_remote')
    assert client.wait_for_service(10)
    ticks_before = composed['station_ticks']
    response = client.call(Trigger.Request(), timeout_sec=8.0)
    assert response.success, response.message
    # The station's timer kept running while the facade waited 0.3 s for the remote ...
    assert composed['station_ticks'] > ticks_before
    # ... but the facade's own timer never ran inside its waiting callback.
    assert composed['facade_ticks_inside'] == 0


def test_a_node_calling_its_own_service_from_a_callback_is_not_reentered(
    composed: dict[str, Any], node: runtime.Node
) -> None:
    """As with a node alone in its process: the call cannot be served while the node is busy,
    so it times out instead of running the node's callbacks re-entrantly."""
    client = node.create_client(Trigger, '/lend/facade/self_call')
    assert client.wait_for_service(10)
    response = client.call(Trigger.Request(), timeout_sec=8.0)
    assert not response.success
    assert response.message.startswith('TimeoutError')
    # The facade is free again and answers forwarded calls.
    forward = node.create_client(Trigger, '/lend/facade/forward')
    assert forward.call(Trigger.Request(), timeout_sec=8.0).success


def test_a_service_answering_with_a_future_replies_when_it_finishes(
    node: runtime.Node,
) -> None:
    """A callback may return a Future: the executor takes the next request meanwhile, and the
    replies go out as the futures finish, in any order and from any thread (group commit)."""
    held: list[tuple[Any, runtime.Future]] = []
    arrived = threading.Semaphore(0)

    def deferred(request: Any, response: Any) -> Any:
        future = runtime.Future()
        held.append((response, future))
        arrived.release()
        return future

    node.create_service(Trigger, '/deferred/do', deferred)
    threading.Thread(target=node.executor.spin, daemon=True).start()
    client = node.create_client(Trigger, '/deferred/do')
    assert client.wait_for_service(10)
    calls = [client.call_async(Trigger.Request(), timeout_sec=20) for _ in range(3)]
    for _ in calls:
        assert arrived.acquire(timeout=10)  # all three taken while none was answered
    assert not any(call.done() for call in calls)
    (first, first_future), (second, second_future), (_, third_future) = held
    second.success, second.message = True, 'second'
    threading.Thread(target=second_future.set_result, args=(second,)).start()
    assert calls[1].wait(10) and calls[1].result().message == 'second'
    first.message = 'first'
    first_future.set_result(first)
    third_future.set_exception(RuntimeError('the commit failed'))
    assert calls[0].wait(10) and calls[0].result().message == 'first'
    assert calls[2].wait(10)
    with pytest.raises(runtime.ServiceError, match='the commit failed'):
        calls[2].result()
