"""Fake node executables and a helper that runs ``stf launch`` as a subprocess."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# A node stand-in. Options come as KEY=VALUE before --ros-args (the <node args=...> attribute):
# exit_after=S code=N (exit then), ignore_sigint=1 (ignore SIGINT),
# fork=1 (start a grandchild that ignores SIGINT and SIGTERM).
FAKE_NODE = r"""
import os, signal, sys, time
options = dict(arg.split('=', 1) for arg in sys.argv[1:sys.argv.index('--ros-args')])
name = next(arg.split(':=')[1] for arg in sys.argv if arg.startswith('__node:='))


def interrupted(signum, frame):  # wherever it comes, as a node's Ctrl-C handling does
    print(f'{name} interrupted', flush=True)
    sys.exit(0)


# Before saying it is up: the test signals it then.
signal.signal(signal.SIGINT, signal.SIG_IGN if options.get('ignore_sigint') else interrupted)
print(f'{name} up pid={os.getpid()}')
print(f'{name} on stderr', file=sys.stderr)
if options.get('fork') and os.fork() == 0:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print(f'grandchild pid={os.getpid()}', flush=True)
    time.sleep(600)
    os._exit(0)
time.sleep(float(options.get('exit_after', 600)))
sys.exit(int(options.get('code', 0)))
"""

# Listens on the port of ZENOH_ROUTER until interrupted, like `stf router`.
FAKE_ROUTER = r"""
import os, socket
port = int(os.environ['ZENOH_ROUTER'].rpartition(':')[2])
server = socket.create_server(('127.0.0.1', port))
print(f'router listening on {port} pid={os.getpid()}', flush=True)
try:
    while True:
        server.accept()[0].close()
except KeyboardInterrupt:
    print('router stopped', flush=True)
"""

# `stf launch` with the fake executables: argv[1] is a JSON map exec -> argv prefix.
DRIVER = r"""
import json, sys
from stf_nodes.launcher import LaunchError, launch_main
mapping, router = json.loads(sys.argv[1]), json.loads(sys.argv[2])

def resolver(package, executable):
    if executable not in mapping:
        raise LaunchError(f'executable {executable!r} not found (node executables: fake_node)')
    return mapping[executable]

sys.exit(launch_main(sys.argv[3:], resolver=resolver, router_command=router))
"""


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f'/proc/{pid}/stat').read_text()
    except OSError:
        return False
    return stat.rpartition(')')[2].split()[0] != 'Z'


def descendants(root: int) -> set[int]:
    """Every live process below ``root`` (from the ppid links in /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / 'stat').read_text().rpartition(')')[2].split()
        except OSError:
            continue
        if fields[0] != 'Z':
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


class LaunchRun:
    """A running ``stf launch`` subprocess whose output lines are collected as they come."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
        self.process = subprocess.Popen(
            argv,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        self._stdout = threading.Thread(target=self._read, daemon=True)
        self._stdout.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip('\n'))

    def wait_for(self, pattern: str, timeout: float = 15.0, since: int = 0) -> re.Match[str]:
        """Wait for an output line matching ``pattern`` (also searching the lines seen before,
        from index ``since`` of ``lines``)."""
        regex = re.compile(pattern)
        for line in self.lines[since:]:
            if match := regex.search(line):
                return match
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            self.lines.append(line)
            if match := regex.search(line):
                return match
        raise AssertionError(f'no line matching {pattern!r} in:\n' + '\n'.join(self.lines))

    def finish(self, timeout: float = 15.0) -> tuple[int, str]:
        """Wait for the exit; returns the exit status and stderr; collects remaining output."""
        assert self.process.stderr is not None
        code = self.process.wait(timeout=timeout)
        stderr = self.process.stderr.read()  # small: only error messages go there
        self._stdout.join(timeout=5)
        self.collect()
        return code, stderr

    def collect(self) -> None:
        """Move the output lines read so far into ``lines``."""
        while not self._queue.empty():
            self.lines.append(self._queue.get())

    def kill(self) -> None:
        """Teardown: make sure nothing of this run survives a failed test."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


class Launcher:
    """Writes launch files and starts ``stf launch`` runs with fake nodes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        (directory / 'fake_node.py').write_text(FAKE_NODE)
        (directory / 'fake_router.py').write_text(FAKE_ROUTER)
        (directory / 'driver.py').write_text(DRIVER)
        self.mapping = {'fake_node': [sys.executable, str(directory / 'fake_node.py')]}
        self.router: list[str] | None = [sys.executable, str(directory / 'fake_router.py')]
        self.runs: list[LaunchRun] = []

    def write(self, body: str, name: str = 'test.launch.xml') -> Path:
        path = self.directory / name
        path.write_text(f'<launch>\n{body}\n</launch>\n')
        return path

    def start(self, *args: str, env: dict[str, str] | None = None) -> LaunchRun:
        argv = [
            sys.executable,
            str(self.directory / 'driver.py'),
            json.dumps(self.mapping),
            json.dumps(self.router),
            *args,
        ]
        run = LaunchRun(argv, {**os.environ, **(env or {})})
        self.runs.append(run)
        return run


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    helper = Launcher(tmp_path)
    yield helper
    for run in helper.runs:
        run.kill()
