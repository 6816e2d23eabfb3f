"""Secrets never leave a node: the MQTT password and the password in a database URL are
used, but nothing the graph can read shows them (`stf param get/dump`, /parameter_events,
/rosout), and the node's own output (its log) does not print them either."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

from stf_nodes import interfaces, runtime
from tests.conftest import REPO_ROOT, Processes, stf, wait_until

MQTT_SECRET = 'MqttS3cret-17b'
DB_SECRET = 'DbS3cret-17b'
NEW_SECRET = 'Changed-S3cret-17b'
SECRETS = (MQTT_SECRET, DB_SECRET, NEW_SECRET)


class Listener:
    """A node of the test that keeps everything /parameter_events and /rosout carry."""

    def __init__(self) -> None:
        self.context = runtime.Context([])
        self.node = runtime.Node(f'secrets_test_{os.getpid()}', context=self.context,
                                 enable_rosout=False)  # fmt: skip
        self.seen: list[str] = []
        deep = runtime.QoSProfile(depth=1000)
        for type_name, topic in (
            ('rcl_interfaces/msg/ParameterEvent', '/parameter_events'),
            ('rcl_interfaces/msg/Log', '/rosout'),
        ):
            self.node.create_subscription(
                interfaces.get_message_class(type_name), topic,
                lambda msg: self.seen.append(repr(interfaces.to_data(msg))), deep,
            )  # fmt: skip
        self.executor = runtime.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.executor.shutdown()
        self.thread.join(timeout=5)
        self.node.destroy_node()
        self.context.shutdown()


def output_of(process: Any, lines: list[str]) -> threading.Thread:
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    return reader


def test_secrets_are_used_but_never_shown(
    router: str, processes: Processes, tmp_path: Path
) -> None:
    namespace = f'/secrets{os.getpid()}'
    listener = Listener()
    try:
        bin_dir = Path(sys.executable).parent
        # Neither server exists (port 1): both nodes run on, retrying and logging the failure.
        recorder = processes.start(
            str(bin_dir / 'recorder_node'), '--ros-args', '-r', f'__ns:={namespace}',
            '-p', f'db_url:=postgresql://stf:{DB_SECRET}@127.0.0.1:1/test',
        )  # fmt: skip
        bridge = processes.start(
            sys.executable, '-m', 'stf_nodes.mqtt_bridge_node', '--ros-args',
            '--params-file', str(REPO_ROOT / 'config' / 'factory.yaml'), '-r', f'__ns:={namespace}',
            '-p', 'broker_port:=1', '-p', 'username:=factory', '-p', f'password:={MQTT_SECRET}',
            cwd=tmp_path,
        )  # fmt: skip
        lines: list[str] = []
        readers = [output_of(recorder, lines), output_of(bridge, lines)]
        wait_until(
            lambda: (
                any('recording' in line for line in lines)
                and any('bridge to' in line for line in lines)
            ),
            timeout=60,
        )
        shown = stf('param', 'get', f'{namespace}/recorder', 'db_url').stdout
        assert 'postgresql' in shown and '***' in shown and DB_SECRET not in shown
        shown = stf('param', 'get', f'{namespace}/mqtt_bridge', 'password').stdout
        assert '***' in shown and MQTT_SECRET not in shown
        dumps = [
            stf('param', 'dump', f'{namespace}/{n}').stdout for n in ('recorder', 'mqtt_bridge')
        ]
        assert 'username' in dumps[1]
        # A secret set at run time is accepted, and announced hidden.
        result = stf('param', 'set', f'{namespace}/mqtt_bridge', 'password', NEW_SECRET)
        assert 'successful' in result.stdout.lower(), result.stdout
        wait_until(lambda: any('password' in seen for seen in listener.seen), timeout=10)
        assert any("'***'" in seen for seen in listener.seen if 'password' in seen)
        processes.stop_all()
        for reader in readers:
            reader.join(timeout=10)
        everything = '\n'.join([*lines, *dumps, *listener.seen])
        assert 'cannot' in everything.lower() or 'refused' in everything.lower()  # the logs ran
        for secret in SECRETS:
            assert secret not in everything, secret
    finally:
        listener.close()
