"""Test helpers for the MQTT bridge: own Mosquitto instances, an MQTT probe, a graph probe and
node processes whose output is read as it comes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from stf_nodes import interfaces, runtime
from stf_nodes.runtime.router import free_port
from tests.conftest import REPO_ROOT, unavailable, wait_until
from tests.security.certs import Authority

SHARED_BROKER = ('127.0.0.1', 1883)
FACTORY_YAML = REPO_ROOT / 'config' / 'factory.yaml'
MOSQUITTO = shutil.which('mosquitto') or '/usr/sbin/mosquitto'


def unique(prefix: str) -> str:
    """A topic prefix / client id nobody else on the shared broker uses."""
    return f'{prefix}-{uuid.uuid4().hex[:10]}'


def listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def require_shared_broker() -> None:
    """The machine's Mosquitto on 127.0.0.1:1883: skipped locally without it, failed in CI."""
    if listening(*SHARED_BROKER):
        return
    unavailable('Mosquitto is not listening on 127.0.0.1:1883')


def require_mosquitto_binary() -> None:
    if not Path(MOSQUITTO).is_file():
        unavailable('mosquitto is not installed (apt-get install mosquitto)')


class OutputProcess:
    """A child process with stdout and stderr merged, read line by line in the background."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip('\n'))

    @property
    def output(self) -> str:
        return '\n'.join(self.lines)

    def wait_for(self, text: str, timeout: float = 20.0, after: int = 0) -> int:
        """Index of the first line from ``after`` on that contains ``text``."""

        def found() -> int | None:
            for index in range(after, len(self.lines)):
                if text in self.lines[index]:
                    return index + 1
            if self.process.poll() is not None:
                raise AssertionError(f'{self.argv[:3]} exited:\n{self.output}')
            return None

        try:
            return wait_until(found, timeout=timeout) - 1
        except AssertionError as error:
            raise AssertionError(f'{text!r} not seen in:\n{self.output}') from error

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


class ProcessGroup:
    """Every OutputProcess a test starts; all are stopped at its end."""

    def __init__(self) -> None:
        self.started: list[OutputProcess] = []

    def start(self, argv: list[str], env: dict[str, str] | None = None) -> OutputProcess:
        process = OutputProcess(argv, env)
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.started):
            process.stop()


def bridge_argv(namespace: str, *parameters: str, params_file: Path = FACTORY_YAML) -> list[str]:
    """The mqtt_bridge executable in ``namespace`` with ``name:=value`` parameters."""
    argv = [
        sys.executable,
        '-m',
        'stf_nodes.mqtt_bridge_node',
        '--ros-args',
        '--params-file',
        str(params_file),
        '-r',
        f'__ns:={namespace}',
    ]
    for parameter in parameters:
        argv += ['-p', parameter]
    return argv


class Mosquitto:
    """A Mosquitto of the test's own on a free port, configured in ``directory``.

    ``persistence`` keeps sessions and retained messages across a restart, as a production
    broker does; ``passwords`` (user → password) requires them; ``tls`` serves TLS with a
    CA made here (tests.security.certs; ``ca_file`` for clients).
    """

    def __init__(
        self,
        directory: Path,
        *,
        persistence: bool = False,
        passwords: dict[str, str] | None = None,
        tls: bool = False,
    ) -> None:
        require_mosquitto_binary()
        self.directory = directory
        self.port = free_port()
        lines = [
            f'listener {self.port} 127.0.0.1',
            'allow_anonymous false' if passwords else 'allow_anonymous true',
        ]
        if os.geteuid() == 0:  # started as root, mosquitto would switch to its own user
            lines.append('user root')
        if persistence:
            lines += ['persistence true', f'persistence_location {directory}/']
        if passwords:
            password_file = directory / 'passwords'
            password_file.touch()
            for user, password in passwords.items():
                subprocess.run(
                    ['mosquitto_passwd', '-b', str(password_file), user, password], check=True
                )
            lines.append(f'password_file {password_file}')
        if tls:
            authority = Authority(directory)
            server = authority.issue('localhost')
            self.ca_file = authority.ca.cert
            lines += [f'cafile {self.ca_file}', f'certfile {server.cert}', f'keyfile {server.key}']
        self.config = directory / 'mosquitto.conf'
        self.config.write_text('\n'.join(lines) + '\n')
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        log = self.directory / 'mosquitto.log'  # a file: an unread pipe would stall the broker
        with log.open('ab') as output:
            self.process = subprocess.Popen(
                [MOSQUITTO, '-c', str(self.config)], stdout=output, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 10
        while not listening('127.0.0.1', self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                self.process.wait()
                said = log.read_text(errors='replace')
                raise RuntimeError(f'mosquitto did not start: {said}')
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: a clean stop that saves the persistence file
            self.process.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """Starts brokers of the test's own (``Mosquitto`` options) and stops each at its end,
    passed or failed."""
    started: list[Mosquitto] = []

    def start(**options: Any) -> Mosquitto:
        directory = tmp_path / f'mosquitto_{len(started)}'
        directory.mkdir()
        started.append(Mosquitto(directory, **options))
        return started[-1]

    yield start
    for broker in started:
        broker.stop()


class MqttProbe:
    """A paho client that records what it receives on ``topics`` and publishes test input."""

    def __init__(
        self,
        port: int,
        topics: list[str],
        *,
        client_id: str = '',
        persistent: bool = False,
        ca_file: Path | None = None,
        username: str = '',
        password: str = '',
    ) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or unique('probe'),
            protocol=MQTTProtocolVersion.MQTTv311,
            clean_session=not persistent,
        )
        if username:
            self.client.username_pw_set(username, password)
        if ca_file is not None:
            self.client.tls_set(ca_certs=str(ca_file))
        self.client.reconnect_delay_set(1, 1)
        self.client.on_message = self._on_message

        subscribed = threading.Semaphore(0)

        def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            for topic in topics:
                client.subscribe(topic, qos=1)
            self._connected.set()

        def on_subscribe(client: Any, userdata: Any, mid: Any, codes: Any, props: Any) -> None:
            subscribed.release()

        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.connect('127.0.0.1', port)
        self.client.loop_start()
        if not self._connected.wait(10):
            raise AssertionError(f'probe could not connect to port {port}')
        for topic in topics:  # every SUBACK, so nothing published from now on is missed
            if not subscribed.acquire(timeout=10):
                raise AssertionError(f'the broker on port {port} did not acknowledge {topic}')

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, message.payload, bool(message.retain)))

    def received(self, topic: str) -> list[dict[str, Any]]:
        """JSON payloads received on ``topic``, oldest first."""
        with self._lock:
            return [json.loads(payload) for name, payload, _ in self.messages if name == topic]

    def wait_for(
        self, topic: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20.0
    ) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((data for data in self.received(topic) if predicate(data)), None)

        try:
            return wait_until(found, timeout=timeout)
        except AssertionError as error:
            raise AssertionError(
                f'nothing matching on {topic}; got {self.received(topic)}'
            ) from error

    def publish(
        self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False
    ) -> None:
        # After a broker restart the probe reconnects on its own (within a second or two).
        wait_until(self.client.is_connected, timeout=30, interval=0.1)
        self.client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class GraphProbe:
    """A test-side node in ``namespace``: records topics and calls services."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.context = runtime.Context([])
        self.node = runtime.Node(unique('probe').replace('-', '_'), context=self.context)
        self.received: dict[str, list[Any]] = {}
        self.executor = runtime.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()

    def subscribe(self, type_name: str, topic: str, qos: Any = 100) -> list[Any]:
        messages: list[Any] = self.received.setdefault(topic, [])
        self.node.create_subscription(
            interfaces.get_message_class(type_name),
            f'{self.namespace}/{topic}',
            messages.append,
            qos,
        )
        return messages

    def call(self, srv_name: str, service: str, timeout: float = 10.0, **fields: Any) -> Any:
        srv = interfaces.get_service(srv_name)
        client = self.node.create_client(srv, f'{self.namespace}/{service}')
        return client.call(srv.Request(**fields), timeout_sec=timeout)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.shutdown()


@pytest.fixture
def group() -> Iterator[ProcessGroup]:
    started = ProcessGroup()
    yield started
    started.stop_all()


class FakeScheduler:
    """Serves ``stf/order/process`` in ``namespace`` for tests that count the bridge's calls:
    accepts every order with the next command id and announces it COMPLETED."""

    def __init__(self, probe: GraphProbe) -> None:
        self.requests: list[Any] = []
        srv = interfaces.get_service('stf_msgs/srv/ProcessOrder')
        command = interfaces.get_message_class('stf_msgs/msg/CommandStatus')
        publisher = probe.node.create_publisher(command, f'{probe.namespace}/stf/commands', 100)

        def serve(request: Any, response: Any) -> Any:
            self.requests.append(request)
            response.accepted, response.command_id = True, len(self.requests)
            publisher.publish(
                command(command_id=response.command_id, kind=1, status=2, flavor=request.flavor)
            )
            return response

        self.service = probe.node.create_service(srv, f'{probe.namespace}/stf/order/process', serve)
