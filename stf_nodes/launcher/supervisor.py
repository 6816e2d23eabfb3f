"""Process supervisor for ``stf launch``: prefixed output, respawn, clean shutdown.

Guarantees:

- Every process runs in its own session and process group; stdout and stderr are merged and
  every line is written as ``[label] line`` (colored only on a terminal without ``NO_COLOR``).
  Children get ``PYTHONUNBUFFERED=1`` so Python nodes print line by line.
- A process with ``respawn`` is started again ``respawn_delay`` seconds after it exits,
  unless it exited with status 78 (``exit_codes.CONFIG``): a node that fails on its
  configuration would fail the same way again, so the launch stops with one message naming it
  instead of respawning it forever.
- A process without ``respawn`` that exits non-zero (or dies from a signal) is a failure: the
  launch stops everything and :meth:`Supervisor.run` returns 1. This is stricter than ROS 2
  launch, which keeps going unless ``on_exit="shutdown"``; a factory with a dead station is
  not a useful twin. A clean exit (0) just ends that process; the launch ends when no process
  is left.
- Shutdown (:meth:`Supervisor.request_shutdown`, called from the SIGINT/SIGTERM handlers)
  sends SIGINT to every process group, SIGTERM after ``sigint_timeout``, SIGKILL after a
  further ``sigterm_timeout``, and waits until no member of any group is left, grandchildren
  included; a second request (Ctrl-C again) skips the rest of the current grace period.
  When a process exits on its own, leftovers in its group are killed at once.
  Servers started by the launch (the Zenoh router, an embedded MQTT broker) are stopped
  after the nodes, the same way, in reverse order of start: the router last.
- A server started by the launch that dies is started again at once (nodes survive the
  router's absence and reconnect, their data links run peer to peer meanwhile; the MQTT
  bridge reconnects to its broker), so a crashed router never stops the factory.
  Not covered: a child that leaves its process group (``setsid``) or a SIGKILLed launcher.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TextIO

from stf_nodes import exit_codes
from stf_nodes.launcher.model import LaunchError
from stf_nodes.runtime.router import FOREIGN_LISTENER_HINT, listener_conflict

DEFAULT_ROUTER = 'tcp/127.0.0.1:7447'
_POLL_S = 0.05
_SIGKILL_WAIT_S = 2.0
_COLORS = (32, 33, 34, 35, 36, 91, 92, 93, 94, 95, 96)


@dataclass(frozen=True, kw_only=True)
class ProcessSpec:
    """A process to supervise; ``env`` is laid over the launcher's environment."""

    label: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    respawn: bool = False
    respawn_delay: float = 0.0


@dataclass(frozen=True, kw_only=True)
class RouterSpec:
    """A server the launch needs, started when nothing listens on ``endpoint``
    (``tcp/host:port``): the Zenoh router, or the embedded MQTT broker (``label`` and
    ``name`` say which in the output).

    ``probe`` checks a listener that is already there; one that fails it is an error (a
    foreign service on the port, ``conflict_hint`` says what to do), reported before any node
    starts.
    """

    argv: tuple[str, ...]
    endpoint: str = DEFAULT_ROUTER
    timeout: float = 30.0  # a router starts in about a second; a busy 2-core machine needs more
    probe: Callable[[str], bool] | None = None
    label: str = 'router'
    name: str = 'Zenoh router'
    conflict_hint: str = FOREIGN_LISTENER_HINT


@dataclass(kw_only=True)
class _Child:
    spec: ProcessSpec
    popen: subprocess.Popen[bytes]
    reader: threading.Thread
    reaped: bool = False


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """``tcp/host:port`` (host may be ``[v6]``) to ``(host, port)``."""
    protocol, _, address = endpoint.strip().partition('/')
    host, _, port = address.rpartition(':')
    if protocol != 'tcp' or not host or not port.isdigit():
        raise LaunchError(f'router endpoint must look like tcp/127.0.0.1:7447, got {endpoint!r}')
    return host.strip('[]'), int(port)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def live_groups() -> set[int] | None:
    """Process group ids with at least one live (non-zombie) process; None without ``/proc``.

    Scanning ``/proc`` rather than ``killpg(pgid, 0)``: zombies that nobody reaps (e.g. in a
    container without an init) would otherwise count as alive forever.
    """
    proc = Path('/proc')
    if not proc.is_dir():
        return None
    groups = set()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / 'stat').read_text()
        except OSError:
            continue
        fields = stat.rpartition(')')[2].split()  # after "pid (comm)": state ppid pgrp ...
        if len(fields) > 2 and fields[0] != 'Z':
            groups.add(int(fields[2]))
    return groups


def group_alive(pgid: int, groups: set[int] | None = None) -> bool:
    """Whether process group ``pgid`` has a live member (``groups`` from :func:`live_groups`)."""
    if groups is None:
        groups = live_groups()
    if groups is not None:
        return pgid in groups
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Supervisor:
    """Starts, watches and stops a set of processes (see the module docstring)."""

    def __init__(
        self,
        *,
        output: TextIO | None = None,
        sigint_timeout: float = 5.0,
        sigterm_timeout: float = 3.0,
        color: bool | None = None,
    ) -> None:
        self._output = output or sys.stdout
        self._sigint_timeout = sigint_timeout
        self._sigterm_timeout = sigterm_timeout
        if color is None:
            color = self._output.isatty() and 'NO_COLOR' not in os.environ
        self._color = color
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._hurry = threading.Event()  # a repeated request skips the current grace period
        self._children: list[_Child] = []

    def request_shutdown(self) -> None:
        """Ask :meth:`run` to stop everything; safe to call from a signal handler.

        Asking again while stopping (a second Ctrl-C) escalates to the next signal at once.
        """
        if self._stop.is_set():
            self._hurry.set()
        self._stop.set()

    def log(self, message: str) -> None:
        """Write a launcher message, prefixed ``[launch]``."""
        self._write('launch', message)

    def run(
        self,
        specs: Sequence[ProcessSpec],
        *,
        router: RouterSpec | None = None,
        brokers: Sequence[RouterSpec] = (),
    ) -> int:
        """Run ``specs`` until they all end, one fails, or shutdown is requested.

        ``router`` and then ``brokers`` are started first when nothing listens on their
        endpoints. Returns 0 on a clean end or requested shutdown and 1 when a process failed
        or a server could not be started.
        """
        servers: list[tuple[RouterSpec, _Child]] = []
        try:
            for spec in [s for s in (router,) if s is not None] + list(brokers):
                child = self._start_server(spec)
                if child is not None:
                    servers.append((spec, child))
                if self._stop.is_set():
                    return 0
            return self._supervise(specs, servers)
        except LaunchError as error:
            self.log(f'error: {error}')
            return 1
        finally:
            started = [child for _, child in servers]
            self._stop_children([c for c in self._children if c not in started])
            for server in reversed(started):
                self._stop_children([server])
            for child in self._children:
                child.reader.join(timeout=1.0)
            self._children.clear()

    def _supervise(
        self, specs: Sequence[ProcessSpec], servers: list[tuple[RouterSpec, _Child]]
    ) -> int:
        """``servers`` (what the launch started) is kept up to date as they are restarted."""
        running = [self._start(spec) for spec in specs]
        pending: list[tuple[float, ProcessSpec]] = []  # (restart time, spec) of respawns
        while not self._stop.wait(_POLL_S):
            for server, child in list(servers):
                if child.popen.poll() is None:
                    continue
                self.log(
                    f'{server.label} exited with code {child.popen.returncode}, starting it again'
                )
                self._reap(child)
                servers.remove((server, child))
                again = self._start_server(server)  # None: another one took the port meanwhile
                if again is not None:
                    servers.append((server, again))
            for child in list(running):
                code = child.popen.poll()
                if code is None:
                    continue
                running.remove(child)
                self._reap(child)
                spec = child.spec
                if code == exit_codes.CONFIG:
                    self.log(
                        f'{spec.label} stopped on a configuration error (its message is above); '
                        'not respawning it: correct the parameters or arguments and launch '
                        'again; shutting down'
                    )
                    return 1
                if spec.respawn:
                    self.log(
                        f'{spec.label} exited with code {code}, respawning in '
                        f'{spec.respawn_delay:g} s'
                    )
                    pending.append((time.monotonic() + spec.respawn_delay, spec))
                elif code != 0:
                    self.log(f'{spec.label} failed with code {code}, shutting down')
                    return 1
                else:
                    self.log(f'{spec.label} finished cleanly')
            now = time.monotonic()
            for due, spec in [item for item in pending if item[0] <= now]:
                pending.remove((due, spec))
                running.append(self._start(spec))
            if not running and not pending:
                return 0
        self.log('shutdown requested')
        return 0

    def _start_server(self, server: RouterSpec) -> _Child | None:
        host, port = parse_endpoint(server.endpoint)
        if port_open(host, port):
            if server.probe is not None and not server.probe(server.endpoint):
                raise LaunchError(
                    listener_conflict(server.endpoint, server.name, server.conflict_hint)
                )
            self.log(f'using the {server.name} on {server.endpoint}')
            return None
        child = self._start(ProcessSpec(label=server.label, argv=server.argv))
        deadline = time.monotonic() + server.timeout
        while not port_open(host, port, timeout=0.2):
            if child.popen.poll() is not None:
                raise LaunchError(
                    f'the {server.name} exited with code {child.popen.returncode} before '
                    f'listening on {server.endpoint}'
                )
            if time.monotonic() > deadline:
                raise LaunchError(
                    f'the {server.name} did not listen on {server.endpoint} within '
                    f'{server.timeout:g} s'
                )
            if self._stop.wait(_POLL_S):
                break
        return child

    def _start(self, spec: ProcessSpec) -> _Child:
        env = {**os.environ, **spec.env, 'PYTHONUNBUFFERED': '1'}
        try:
            popen = subprocess.Popen(
                spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        except OSError as error:
            raise LaunchError(f'cannot start {spec.label}: {error}') from None
        assert popen.stdout is not None
        reader = threading.Thread(
            target=self._pump, args=(spec.label, popen.stdout), daemon=True, name=spec.label
        )
        reader.start()
        child = _Child(spec=spec, popen=popen, reader=reader)
        self._children.append(child)
        self.log(f'{spec.label} started with pid {popen.pid}')
        return child

    def _pump(self, label: str, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b''):
            self._write(label, raw.decode('utf-8', 'replace').rstrip('\r\n'))
        stream.close()

    def _write(self, label: str, line: str) -> None:
        prefix = f'[{label}]'
        if self._color:
            prefix = f'\x1b[{_COLORS[sum(map(ord, label)) % len(_COLORS)]}m{prefix}\x1b[0m'
        with self._lock:
            self._output.write(f'{prefix} {line}\n')
            self._output.flush()

    def _reap(self, child: _Child) -> None:
        """After a process ended on its own: kill what is left of its group."""
        if group_alive(child.popen.pid):
            _signal_group(child.popen.pid, signal.SIGKILL)
        child.reaped = True

    def _stop_children(self, children: list[_Child]) -> None:
        """SIGINT, then SIGTERM, then SIGKILL to the process groups until none is left."""
        live = [c for c in children if not c.reaped]
        steps = (
            (signal.SIGINT, self._sigint_timeout),
            (signal.SIGTERM, self._sigterm_timeout),
            (signal.SIGKILL, _SIGKILL_WAIT_S),
        )
        for number, timeout in steps:
            live = self._alive(live)
            if not live:
                return
            if number != signal.SIGINT:
                names = ', '.join(c.spec.label for c in live)
                self.log(f'sending {number.name} to {names}')
            for child in live:
                _signal_group(child.popen.pid, number)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self._alive(live):
                if self._hurry.wait(_POLL_S):
                    self._hurry.clear()
                    break
        for child in self._alive(live):
            self.log(f'could not stop {child.spec.label} (pid {child.popen.pid})')

    @staticmethod
    def _alive(children: list[_Child]) -> list[_Child]:
        """The children whose process group still has a live member."""
        for child in children:
            child.popen.poll()  # reap the group leader so its zombie does not count
        groups = live_groups()
        return [c for c in children if group_alive(c.popen.pid, groups)]


def _signal_group(pgid: int, number: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, number)
