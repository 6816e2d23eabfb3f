"""A callback that raises: logged with its traceback and counted, the same whether it ran
inline on a Zenoh thread or from the executor's queue; the work queued behind it still runs;
`STF_CALLBACK_ERRORS=raise` ends the spin instead. A service queue is bounded: beyond it a
request is refused at once as busy."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from stf_nodes import interfaces, runtime
from stf_nodes.runtime import entities
from tests.conftest import wait_until

String = interfaces.get_message_class('std_msgs/msg/String')
Trigger = interfaces.get_service('std_srvs/srv/Trigger')


class Graph:
    """One node spinning in a thread, and a second context to talk to it."""

    def __init__(self, name: str) -> None:
        self.context = runtime.Context([])
        self.node = runtime.Node(name, namespace='errors', context=self.context)
        self.executor = runtime.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.failure: list[BaseException] = []
        self.peer_context = runtime.Context([])
        self.peer = runtime.Node(f'{name}_peer', namespace='errors', context=self.peer_context)
        self._spinner = threading.Thread(target=self._spin, daemon=True)

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception as exc:
            self.failure.append(exc)

    def start(self) -> None:
        self._spinner.start()

    def close(self) -> None:
        self.executor.shutdown()
        self._spinner.join(timeout=5)
        self.context.shutdown()
        self.peer_context.shutdown()


@pytest.fixture
def graph(router: str, request: pytest.FixtureRequest) -> Iterator[Graph]:
    made = Graph(request.node.name.split('[')[0][-40:].strip('_'))
    yield made
    made.close()


def raising_subscription(graph: Graph) -> list[str]:
    received: list[str] = []

    def on_message(message: Any) -> None:
        if message.data.startswith('boom'):
            raise ValueError(f'cannot digest {message.data}')
        received.append(message.data)

    graph.node.create_subscription(String, 'words', on_message, 10)
    return received


@pytest.mark.parametrize('queued', [False, True], ids=['inline', 'queued'])
def test_a_raising_callback_is_logged_counted_and_the_rest_runs(
    graph: Graph, queued: bool, capfd: pytest.CaptureFixture[str]
) -> None:
    received = raising_subscription(graph)
    release = threading.Event()
    if queued:  # the node is busy in a timer callback while the words arrive: they queue
        busy = graph.node.create_timer(0.01, lambda: release.wait(10))
    graph.start()
    publisher = graph.peer.create_publisher(String, '/errors/words', 10)
    wait_until(lambda: publisher.get_subscription_count() == 1)
    for word in ('one', 'boom 1', 'two', 'boom 2', 'three'):
        publisher.publish(String(data=word))
    if queued:
        busy.cancel()
        release.set()
    wait_until(lambda: received == ['one', 'two', 'three'])
    assert graph.node.callback_errors == 2 and not graph.failure
    log = capfd.readouterr().err
    assert log.count('callback of /errors/words raised:') == 2
    assert 'ValueError: cannot digest boom 2' in log and 'Traceback' in log


def test_raise_policy_ends_the_spin(graph: Graph, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('STF_CALLBACK_ERRORS', 'raise')
    raising_subscription(graph)
    graph.start()
    publisher = graph.peer.create_publisher(String, '/errors/words', 10)
    wait_until(lambda: publisher.get_subscription_count() == 1)
    publisher.publish(String(data='boom'))
    wait_until(lambda: graph.failure)
    assert isinstance(graph.failure[0], ValueError)


def test_a_full_service_queue_refuses_at_once(
    graph: Graph, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(entities, 'SERVICE_QUEUE_LIMIT', 2)
    busy_now, release = threading.Event(), threading.Event()

    def hold() -> None:  # the node is busy in a timer callback: requests queue meanwhile
        busy_now.set()
        release.wait(10)

    def on_request(request: Any, response: Any) -> Any:
        response.success = True
        return response

    service = graph.node.create_service(Trigger, 'slow', on_request)
    graph.start()
    client = graph.peer.create_client(Trigger, '/errors/slow')
    assert client.wait_for_service(timeout_sec=10)
    busy = graph.node.create_timer(0.01, hold)
    assert busy_now.wait(10)
    waiting = [client.call_async(Trigger.Request()) for _ in range(2)]
    wait_until(lambda: len(service._inbox) == 2)
    refused = client.call_async(Trigger.Request())
    wait_until(refused.done)
    with pytest.raises(runtime.ServiceError, match='service busy: 2 requests waiting'):
        refused.result()
    busy.cancel()
    release.set()
    wait_until(lambda: all(f.done() for f in waiting))
    assert all(f.result().success for f in waiting) and service.dropped == 1
