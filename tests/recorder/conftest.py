"""Recorder test helpers: a publisher node in the test process, the recorder as a process, a
TCP proxy the test can cut, and reading what the database holds."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError

from stf_nodes import interfaces, runtime
from stf_nodes.storage import normalize_url
from tests.conftest import Processes, unavailable, wait_until
from tests.storage.conftest import BACKENDS, own_database  # noqa: F401

BIN = Path(sys.executable).parent
MotorState = interfaces.get_message_class('stf_msgs/msg/MotorState')
Alert = interfaces.get_message_class('stf_msgs/msg/Alert')
DiagnosticArray = interfaces.get_message_class('diagnostic_msgs/msg/DiagnosticArray')


class Peer:
    """A node of the test: publishes, and listens to the recorder's alerts and diagnostics."""

    def __init__(self, name: str) -> None:
        self.context = runtime.Context([])
        self.node = runtime.Node(name, context=self.context, enable_rosout=False)
        self.alerts: list[Any] = []
        self.diagnostics: list[Any] = []
        events = runtime.QoSProfile(depth=1000)
        self.node.create_subscription(Alert, '/stf/alerts', self.alerts.append, events)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, events)
        self.executor = runtime.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spinner = threading.Thread(target=self.executor.spin, daemon=True)
        self._spinner.start()

    def _on_diagnostics(self, array: Any) -> None:
        for status in array.status:
            if status.name == 'recorder: database':
                self.diagnostics.append(status)

    def recorder_status(self) -> dict[str, str]:
        if not self.diagnostics:
            return {}
        status = self.diagnostics[-1]
        return {'level': str(status.level), **{kv.key: kv.value for kv in status.values}}

    def codes(self) -> list[str]:
        return [a.code for a in self.alerts if a.component_id == 'recorder']

    def close(self) -> None:
        self.executor.shutdown()
        self._spinner.join(timeout=5)
        self.node.destroy_node()
        self.context.shutdown()


@pytest.fixture
def peer(router: str) -> Iterator[Peer]:
    made = Peer(f'recorder_test_{os.getpid()}')
    yield made
    made.close()


@contextmanager
def small_disk(mount: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (mount's syntax: 1m, 64m) at ``mount``, a new directory; needs the
    right to mount (root on this machine and in CI), else the test is skipped with the reason."""
    mount.mkdir()
    made = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(mount)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if made.returncode != 0:
        unavailable(f'cannot mount a tmpfs here: {made.stderr.strip()}')
    try:
        yield mount
    finally:
        subprocess.run(['umount', '-l', str(mount)], check=False)


def start_recorder(
    processes: Processes, url: URL | str, *params: str, namespace: str = ''
) -> subprocess.Popen[str]:
    rendered = url if isinstance(url, str) else url.render_as_string(hide_password=False)
    args = [str(BIN / 'recorder_node'), '--ros-args', '-p', f'db_url:={rendered}']
    if namespace:
        args += ['-r', f'__ns:=/{namespace}']
    for param in params:
        args += ['-p', param]
    return processes.start(*args)


def wait_recording(process: subprocess.Popen[str], lines: list[str], timeout: float = 30) -> None:
    """Collect the recorder's output in ``lines``; wait for its start message."""
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    wait_until(lambda: any('recording' in line for line in lines) or process.poll() is not None,
               timeout=timeout)  # fmt: skip
    assert process.poll() is None, ''.join(lines)


def stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)


def query(url: URL | str, sql: str) -> list[tuple[Any, ...]]:
    """Rows of ``sql``; an empty list while the recorder has not created its tables yet."""
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql))]
    except OperationalError as exc:
        if 'no such table' in str(exc):
            return []
        raise
    finally:
        engine.dispose()


def publish_motors(
    publisher: Any, count: int, *, rate_hz: float, first: int = 0, motor_id: str = 'CONV_M1'
) -> None:
    """``count`` MotorState messages; message n carries current 1 + n µA (n from ``first``)."""
    period = 1.0 / rate_hz
    start = time.monotonic()
    for k in range(count):
        current = 1.0 + (first + k) * 1e-6
        publisher.publish(MotorState(motor_id=motor_id, current_a=current, running=True))
        delay = start + (k + 1) * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class CuttableProxy:
    """A TCP proxy on a free loopback port to ``target``; ``cut()`` closes every connection
    and refuses new ones (the database is unreachable), ``restore()`` accepts again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(('127.0.0.1', 0))
        self.port = self._listener.getsockname()[1]
        self._open = True
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self._open = False
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for s in sockets:
            try:
                s.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b'\x01\x00\x00\x00\x00\x00\x00\x00'
                )
                s.close()
            except OSError:
                pass

    def restore(self) -> None:
        self._open = True

    def close(self) -> None:
        self._stop = True
        self.cut()
        self._listener.close()
