"""Hosts for tests: Linux network namespaces on a bridge of the documentation network.

:class:`TestNetwork` creates one bridge (``198.51.100.254/24`` in the root namespace) and a
namespace per host (``198.51.100.1``, ``.2``, ...), each with a veth pair into the bridge and its
own loopback, and deletes all of it on exit, also after a failure: the processes still inside a
namespace are killed by their ids first (``ip netns pids``). No address leaves the machine.

:class:`TcpForwarder` relays a port of the bridge address to a loopback service of the root
namespace. The machine's PostgreSQL listens on 127.0.0.1 only; relaying it onto the test network
is what a database host on a LAN looks like to the other hosts (they use a network URL, the
server sees local clients), and changes nothing in the server's configuration.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
from types import TracebackType

SUBNET = '198.51.100'
BRIDGE_ADDRESS = f'{SUBNET}.254'


def ip(*args: str) -> str:
    result = subprocess.run(['ip', *args], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f'ip {" ".join(args)}: {result.stderr.strip()}')
    return result.stdout


def netns_problem() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if shutil.which('ip') is None:
        return 'the ip command (iproute2) is not installed'
    if os.geteuid() != 0:
        return 'creating network namespaces needs root'
    return None


class TestNetwork:
    """A bridge and ``hosts`` namespaces; use as a context manager."""

    __test__ = False  # not a pytest test class

    def __init__(self, hosts: int) -> None:
        tag = f'{os.getpid() % 100000}'
        self.bridge = f'stfbr{tag}'
        self.namespaces = [f'stf{tag}h{index}' for index in range(1, hosts + 1)]
        self.addresses = [f'{SUBNET}.{index}' for index in range(1, hosts + 1)]

    def __enter__(self) -> TestNetwork:
        if f'inet {BRIDGE_ADDRESS}/' in ip('-o', 'addr', 'show'):
            raise RuntimeError(f'{BRIDGE_ADDRESS} is already up: another test network runs here')
        try:
            ip('link', 'add', self.bridge, 'type', 'bridge')
            ip('addr', 'add', f'{BRIDGE_ADDRESS}/24', 'dev', self.bridge)
            ip('link', 'set', self.bridge, 'up')
            for index, (namespace, address) in enumerate(
                zip(self.namespaces, self.addresses, strict=True), start=1
            ):
                veth = f'{self.bridge}v{index}'
                ip('netns', 'add', namespace)
                ip('link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', namespace)
                ip('link', 'set', veth, 'master', self.bridge, 'up')
                ip('-n', namespace, 'addr', 'add', f'{address}/24', 'dev', 'eth0')
                ip('-n', namespace, 'link', 'set', 'eth0', 'up')
                ip('-n', namespace, 'link', 'set', 'lo', 'up')
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def run_in(self, host: int) -> list[str]:
        """The argv prefix that runs a command on host ``host`` (0-based)."""
        return ['ip', 'netns', 'exec', self.namespaces[host]]

    def close(self) -> None:
        existing = set(ip('netns', 'list').split())
        for namespace in self.namespaces:
            if namespace not in existing:
                continue
            for pid in ip('netns', 'pids', namespace).split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            with contextlib.suppress(RuntimeError):
                ip('netns', 'del', namespace)
        with contextlib.suppress(RuntimeError):  # deleting the bridge frees its veth ends too
            ip('link', 'del', self.bridge)


class TcpForwarder:
    """Relays connections to ``listen`` (host, port) to ``target`` until closed."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server(listen)
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self.connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        with contextlib.suppress(OSError):  # wakes accept(): close() alone leaves it listening
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        self.thread.join(timeout=5)
        for connection in self.connections:
            with contextlib.suppress(OSError):
                connection.close()
