"""Screenshots of Foxglove (Lichtblick, headless) showing the live factory with the shipped layout.

Starts a router, the stations, the scheduler and the foxglove_bridge on simulated time that
this script publishes on /clock itself, so it can stop time at the moments worth a picture:

1. `1_rack.png`: the factory at rest, cookies in the rack;
2. `2_belt.png`: an order's cookie on the conveyor belt, between the light barriers;
3. `3_oven.png`: the cookie baking in the oven.

One browser session, as a user would have it: the viewer of `../shared/viewer/` (Lichtblick's
web build, served by its `shoot.py` helpers, in headless Chromium with software WebGL) opens
`config/foxglove/factory_layout.json` connected to the bridge and stays connected while the
order runs, so plots and state transitions show the history up to each picture.

Needs Debian's chromium and playwright (the `viewer` extra; no browser download):

    apt-get install -y chromium
    pip install -e '.[viewer]'
    python scripts/foxglove_screenshots.py --out screenshots

Options: `--viewer` (directory with shoot.py and the web build; default ../shared/viewer or
$STF_VIEWER), `--chromium`, `--settle` seconds before each picture, `--time-scale` of the
simulation between pictures.
"""

from __future__ import annotations

import argparse
import http.server
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

from stf_nodes import interfaces, runtime
from stf_nodes.runtime.clock import Time
from stf_nodes.runtime.router import free_port, spawn_router

REPO = Path(__file__).resolve().parents[1]
LAYOUT = REPO / 'config' / 'foxglove' / 'factory_layout.json'
BIN = Path(sys.executable).parent
Clock = interfaces.get_message_class('rosgraph_msgs/msg/Clock')
CommandStatus = interfaces.get_message_class('stf_msgs/msg/CommandStatus')
ConveyorState = interfaces.get_message_class('stf_msgs/msg/ConveyorState')
ProcessOrder = interfaces.get_service('stf_msgs/srv/ProcessOrder')


class SimClock:
    """Publishes /clock from this process; `pause()` stops time for every sim-time node."""

    def __init__(self, node: runtime.Node, scale: float) -> None:
        self._publisher = node.create_publisher(Clock, '/clock', runtime.qos_profile_sensor_data)
        self.scale = scale
        self._sim_ns = time.time_ns()
        self._running = threading.Event()
        self._running.set()
        self._stop = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop:
            time.sleep(0.01)
            now = time.monotonic()
            if self._running.is_set():
                self._sim_ns += round((now - last) * self.scale * 1e9)
            last = now
            self._publisher.publish(Clock(clock=Time(self._sim_ns).to_msg()))

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self._stop = True


class Viewer:
    """Lichtblick in headless Chromium with the layout, through `shoot.py`'s web server."""

    def __init__(self, directory: Path, chromium: str, size: str) -> None:
        spec = importlib.util.spec_from_file_location('shoot', directory / 'shoot.py')
        assert spec is not None and spec.loader is not None
        self._shoot = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self._shoot)
        self._chromium = chromium
        self._size = [int(v) for v in size.lower().split('x')]
        self._browser: Any = None
        self._playwright: Any = None
        self._httpd: Any = None
        self._console: list[str] = []

    def open(self, ws_url: str, console: Path) -> None:
        from playwright.sync_api import sync_playwright

        shoot = self._shoot
        dist = shoot.default_dist()
        layout = LAYOUT.read_bytes()
        index = (Path(dist) / 'index.html').read_text(encoding='utf-8')
        index = index.replace(
            shoot.PLACEHOLDER, json.dumps(json.loads(layout)).replace('</', '<\\/')
        )
        self._httpd = http.server.ThreadingHTTPServer(
            ('127.0.0.1', 0), shoot.make_handler(dist, index.encode(), layout, LAYOUT.name)
        )
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        query = urllib.parse.urlencode({'ds': 'foxglove-websocket', 'ds.url': ws_url})
        self._console_path = console
        self._playwright = sync_playwright().start()
        self._browser = self._playwright.chromium.launch(
            executable_path=self._chromium,
            headless=True,
            args=[
                '--use-angle=swiftshader',
                '--enable-unsafe-swiftshader',
                '--ignore-gpu-blocklist',
                '--no-sandbox',
                '--disable-dev-shm-usage',
            ],
        )
        width, height = self._size
        page = self._browser.new_context(
            viewport={'width': width, 'height': height}, color_scheme='dark'
        ).new_page()
        page.on('console', lambda m: self._console.append(f'[{m.type}] {m.text}'))
        page.on('pageerror', lambda e: self._console.append(f'[pageerror] {e}'))
        page.goto(f'http://127.0.0.1:{self._httpd.server_address[1]}/?{query}', timeout=60_000)
        self._page = page

    def screenshot(self, path: Path) -> None:
        self._page.screenshot(path=str(path))

    def close(self) -> None:
        if self._browser is not None:
            self._browser.close()
            self._playwright.stop()
            self._console_path.write_text('\n'.join(self._console) + '\n')
        if self._httpd is not None:
            self._httpd.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', type=Path, default=Path('screenshots'))
    parser.add_argument(
        '--viewer',
        type=Path,
        default=Path(os.environ.get('STF_VIEWER', REPO.parent / 'shared' / 'viewer')),
    )
    parser.add_argument('--chromium', default='/usr/lib/chromium/chromium')
    parser.add_argument('--settle', type=float, default=3.0, help='rendering time per picture')
    parser.add_argument('--time-scale', type=float, default=3.0)
    parser.add_argument('--size', default='1600x900')
    args = parser.parse_args()
    if not (args.viewer / 'shoot.py').is_file():
        parser.error(f'viewer not found in {args.viewer} (see ../shared/viewer/README.md)')
    args.out.mkdir(parents=True, exist_ok=True)

    router, router_process = spawn_router()
    os.environ['ZENOH_ROUTER'] = router
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix='stf-screenshots-'))
    common = ['--params-file', str(REPO / 'config' / 'factory.yaml'), '-p', 'use_sim_time:=true']
    commands = [
        [str(BIN / f'{station}_node'), '--ros-args', *common]
        for station in ('hbw', 'vgr', 'conveyor')
    ]
    commands.append(
        [
            str(BIN / 'scheduler_node'),
            '--ros-args',
            *common,
            '-p',
            f'db_url:=sqlite:///{workdir / "stf.db"}',
        ]
    )
    commands.append(
        [str(BIN / 'foxglove_bridge_node'), '--ros-args', *common, '-p', f'port:={port}']
    )
    logs = (workdir / 'nodes.log').open('w')
    processes = [subprocess.Popen(c, stdout=logs, stderr=subprocess.STDOUT) for c in commands]
    context = runtime.Context([])
    node = runtime.Node('screenshots', context=context)
    executor = runtime.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    clock = SimClock(node, args.time_scale)
    latest: dict[str, Any] = {}
    node.create_subscription(
        CommandStatus, '/stf/commands', lambda m: latest.__setitem__('command', m), 100
    )
    node.create_subscription(
        ConveyorState, '/stf/conveyor/state', lambda m: latest.__setitem__('conveyor', m), 10
    )
    url = f'ws://127.0.0.1:{port}'
    print(f'factory and bridge starting (logs: {workdir / "nodes.log"}); bridge at {url}')

    def shoot(name: str) -> None:
        clock.pause()  # every sim-time node stops where it is
        time.sleep(args.settle)
        viewer.screenshot(args.out / name)
        print(f'saved {args.out / name}')
        clock.resume()

    def wait_for(what: str, predicate: Any, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise SystemExit(f'timed out waiting for {what}')
            time.sleep(0.02)

    viewer = Viewer(args.viewer, args.chromium, args.size)
    try:
        client = node.create_client(ProcessOrder, '/stf/order/process')
        wait_for('the scheduler', lambda: client.wait_for_service(1.0), 60)
        wait_for('station states', lambda: 'conveyor' in latest, 60)
        viewer.open(url, args.out / 'console.txt')
        time.sleep(12.0)  # the app loads, connects, subscribes; software WebGL is slow
        shoot('1_rack.png')

        response = client.call(ProcessOrder.Request(), timeout_sec=10)
        if not response.accepted:
            raise SystemExit(f'order refused: {response.message}')
        print(f'order {response.command_id} accepted')

        def on_belt() -> bool:
            conveyor = latest.get('conveyor')
            return bool(
                conveyor is not None
                and conveyor.has_workpiece
                and conveyor.workpiece_position > 0.04
            )

        wait_for('the cookie on the belt', on_belt)
        shoot('2_belt.png')

        def in_oven() -> bool:
            conveyor = latest.get('conveyor')
            return bool(conveyor is not None and conveyor.oven_busy)

        wait_for('the cookie in the oven', in_oven)
        time.sleep(4.0 / args.time_scale)  # let the oven heat up a little
        shoot('3_oven.png')
    finally:
        viewer.close()
        clock.stop()
        time.sleep(0.1)
        executor.shutdown()
        context.shutdown()
        for process in processes:
            process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        router_process.send_signal(signal.SIGINT)
        router_process.wait(10)
    return 0


if __name__ == '__main__':
    sys.exit(main())
