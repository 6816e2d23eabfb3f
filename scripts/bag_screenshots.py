"""Screenshots of a bag replayed to Foxglove (Lichtblick, headless): the scene after each seek.

Serves `bags/sample` with `stf bag play --foxglove --start-paused` and opens it in the viewer of
`../shared/viewer/` with the shipped layout (`config/foxglove/factory_layout.json`), as
`scripts/foxglove_screenshots.py` does for the live factory. Lichtblick's WebSocket player
follows the server's time but sends no playback requests of its own, so this script seeks
the way Foxglove Studio's timeline does, with a playback control request from a second
protocol client (`tests/bridges/foxglove_client.py`); the playback is the server's, so the
viewer jumps with it. After each seek (paused) the script waits and takes a picture:

1. `bag_1_belt.png`: the moment of the OVERCURRENT alert on the belt motor `CONV_M1`, the
   cookie on the belt;
2. `bag_2_oven.png`: the cookie baking in the oven;
3. `bag_3_start.png`: back to the start (a seek backwards), the cookie in the rack.
It also saves `bag_file.png`: the bag opened directly as a file (`ds=remote-file`), no server.

Needs Debian's chromium and playwright (the `viewer` extra):

    pip install -e '.[viewer]'
    python scripts/bag_screenshots.py --out screenshots
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stf_nodes import interfaces  # noqa: E402
from stf_nodes.bag.reader import BagReader  # noqa: E402
from stf_nodes.runtime.router import free_port  # noqa: E402
from tests.bridges.foxglove_client import FoxgloveClient  # noqa: E402

LAYOUT = REPO / 'config' / 'foxglove' / 'factory_layout.json'


def _load(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def moments(bag: Path) -> dict[str, int]:
    """Bag times worth a picture: the fault's alert, the oven, the start."""
    found: dict[str, int] = {}
    with BagReader(bag) as reader:
        found['bag_3_start.png'] = reader.start_ns + 1_000_000_000
        for message in reader.messages(['/stf/alerts', '/stf/conveyor/state']):
            if message.topic == '/stf/alerts' and 'bag_1_belt.png' not in found:
                alert = interfaces.deserialize(message.data, 'stf_msgs/msg/Alert')
                if alert.code == 'OVERCURRENT' and alert.component_id == 'CONV_M1':
                    found['bag_1_belt.png'] = message.timestamp_ns + 300_000_000
            if message.topic == '/stf/conveyor/state' and 'bag_2_oven.png' not in found:
                state = interfaces.deserialize(message.data, 'stf_msgs/msg/ConveyorState')
                if state.oven_busy and state.oven_temperature_c > 60:
                    found['bag_2_oven.png'] = message.timestamp_ns
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', type=Path, default=Path('screenshots'))
    parser.add_argument('--bag', type=Path, default=REPO / 'bags' / 'sample')
    parser.add_argument(
        '--viewer',
        type=Path,
        default=Path(os.environ.get('STF_VIEWER', REPO.parent / 'shared' / 'viewer')),
    )
    parser.add_argument('--chromium', default='/usr/lib/chromium/chromium')
    parser.add_argument('--settle', type=float, default=6.0, help='rendering time per picture')
    parser.add_argument('--size', default='1600x900')
    args = parser.parse_args()
    if not (args.viewer / 'shoot.py').is_file():
        parser.error(f'viewer not found in {args.viewer} (see ../shared/viewer/README.md)')
    args.out.mkdir(parents=True, exist_ok=True)
    live = _load(REPO / 'scripts' / 'foxglove_screenshots.py', 'foxglove_screenshots')

    # The bag as a file, as Foxglove opens it without any server.
    subprocess.run(
        [
            sys.executable,
            str(args.viewer / 'shoot.py'),
            str(args.bag),
            str(LAYOUT),
            str(args.out / 'bag_file.png'),
            '--wait',
            '15',
            '--chromium',
            args.chromium,
        ],
        check=True,
    )
    print(f'saved {args.out / "bag_file.png"}')

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            '-m',
            'stf_nodes.cli',
            'bag',
            'play',
            str(args.bag),
            '--foxglove',
            '--port',
            str(port),
            '--start-paused',
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert server.stdout is not None
    print(server.stdout.readline().strip())
    url = f'ws://127.0.0.1:{port}'
    viewer = live.Viewer(args.viewer, args.chromium, args.size)
    try:
        viewer.open(url, args.out / 'bag_console.txt')
        time.sleep(12.0)  # the app loads, connects and subscribes; software WebGL is slow
        with FoxgloveClient(url) as control:
            for name, at in sorted(moments(args.bag).items()):
                state = control.playback_control('pause', seek_ns=at)
                print(f'seeked to {(at - state.current_time) / 1e9:+.3f} s of {at}: {name}')
                time.sleep(args.settle)
                viewer.screenshot(args.out / name)
                print(f'saved {args.out / name}')
    finally:
        viewer.close()
        server.terminate()
        server.wait(10)
    return 0


if __name__ == '__main__':
    sys.exit(main())
