"""`stf bag record | play | info | recover`: rosbag2 MCAP bags, shaped like `ros2 bag`.

```sh
stf bag record -a -o run1 --compression zstd --max-bag-size 100000000
stf bag record /stf/hbw/state /stf/inventory --duration 60
stf bag info run1
stf bag play run1 --rate 2 --clock --topics /stf/hbw/state
stf bag play run1 --foxglove --port 8765      # Foxglove Studio: timeline, seek, 3D scene
stf bag recover broken_bag -o fixed_bag        # everything readable, re-indexed
```

`record` runs the `bag_recorder` node in this process (stop it with Ctrl-C: the bag is closed
and `metadata.yaml` written); `play` replays into the graph (`stf_nodes/bag/player.py`) or, with
`--foxglove`, serves the bag to Foxglove (`stf_nodes/bridges/foxglove/bag_source.py`). Problems
found in a damaged bag are printed as warnings; what is readable is used.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any

from stf_nodes.bag.metadata import BagError, format_info, from_bag_qos
from stf_nodes.bag.reader import BagReader
from stf_nodes.cli.main import CliError

#: `ros2 bag play --clock` without a value publishes at 40 Hz.
DEFAULT_CLOCK_HZ = 40.0


def _warn(text: str) -> None:
    print(f'stf: warning: {text}', file=sys.stderr, flush=True)


def _open(path: str) -> BagReader:
    try:
        reader = BagReader(path)
    except BagError as exc:
        raise CliError(str(exc)) from exc
    except OSError as exc:
        raise CliError(f'{path}: {exc}') from exc
    for problem in reader.problems:
        _warn(problem)
    return reader


# -- record -------------------------------------------------------------------------------------


def cmd_record(args: argparse.Namespace) -> int:
    from stf_nodes import runtime
    from stf_nodes.bag_recorder_node import BagRecorderNode
    from stf_nodes.runtime import Parameter

    if not args.all and not args.topics:
        raise CliError('nothing to record: name topics, or -a for every topic')
    overrides = [
        Parameter('output', args.output or ''),
        Parameter('topics', list(args.topics) or ['']),
        Parameter('all', bool(args.all)),
        Parameter('exclude', args.exclude or ''),
        Parameter('include_hidden', bool(args.include_hidden_topics)),
        Parameter('max_bag_size', int(args.max_bag_size)),
        Parameter('max_bag_duration_s', float(args.max_bag_duration)),
        Parameter('compression', args.compression),
        Parameter('chunk_size', int(args.chunk_size)),
        Parameter('duration_s', float(args.duration)),
        Parameter('use_sim_time', bool(args.use_sim_time)),
    ]
    context = runtime.Context([])
    node = None
    try:
        node = BagRecorderNode(context=context, parameter_overrides=overrides)
        executor = runtime.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        while context.ok and not node.done.is_set():
            executor.spin_once(timeout_sec=0.1)
    except (ValueError, runtime.RouterUnavailableError) as exc:
        raise CliError(str(exc)) from exc
    except KeyboardInterrupt:
        pass
    finally:
        if node is not None:
            node.destroy_node()
        context.shutdown()
    if node is None:  # interrupted while starting
        return 130
    metadata = node.recorder.stop()
    print(
        f'recorded {metadata.message_count} messages on {len(metadata.topics)} topics '
        f'to {node.recorder.path}',
        flush=True,
    )
    if node.recorder.failure:
        raise CliError(node.recorder.failure)
    return 0


# -- play ---------------------------------------------------------------------------------------


def cmd_play(args: argparse.Namespace) -> int:
    reader = _open(args.bag)
    try:
        if args.foxglove:
            return _serve_foxglove(reader, args)
        return _play_into_graph(reader, args)
    except BagError as exc:
        raise CliError(str(exc)) from exc
    finally:
        reader.close()


def _play_into_graph(reader: BagReader, args: argparse.Namespace) -> int:
    from stf_nodes import runtime
    from stf_nodes.bag.player import GraphPlayer, PlayOptions, selected_topics

    options = PlayOptions(
        rate=args.rate,
        loop=args.loop,
        start_offset_s=args.start_offset,
        topics=tuple(args.topics or ()),
        clock_hz=args.clock or 0.0,
        wait_s=args.wait,
    )
    selected_topics(reader, options)  # bad topic names fail before connecting to the graph
    context = runtime.Context([])
    stop = threading.Event()
    try:
        node = runtime.Node('rosbag2_player', context=context, start_parameter_services=False)
        player = GraphPlayer(node, reader, options, log=_warn)
        stats = player.play(stop)
        time.sleep(0.2)  # let reliable samples leave before the session closes
    except runtime.RouterUnavailableError as exc:
        raise CliError(str(exc)) from exc
    except KeyboardInterrupt:
        stop.set()
        return 130
    finally:
        context.shutdown()
    print(
        f'played {stats.published} messages: {stats.bag_span_ns / 1e9:.3f} s of the bag in '
        f'{stats.wall_span_ns / 1e9:.3f} s (rate {stats.achieved_rate:.3f}); late by '
        f'{stats.lateness_ms(0.5):.2f} ms median, {stats.lateness_ms(0.99):.2f} ms p99',
        flush=True,
    )
    return 0


def _geometry(params_file: str | None) -> Any:
    from stf_nodes.bridges.foxglove.derived import STATIONS
    from stf_nodes.bridges.foxglove.scene import FactoryGeometry
    from stf_nodes.launcher.substitutions import LaunchError, find_pkg_share
    from stf_nodes.runtime.parameters import ParameterError, load_parameter_file

    if params_file:
        path = Path(params_file)
    else:
        try:
            path = find_pkg_share('stf_digital_twin') / 'config' / 'factory.yaml'
        except LaunchError:
            return FactoryGeometry()
    try:
        return FactoryGeometry.from_parameters(
            **{station: load_parameter_file(path, f'/{station}') for station in STATIONS}
        )
    except (OSError, ParameterError, ValueError) as exc:
        raise CliError(f'{path}: cannot read the factory geometry ({exc})') from exc


def _serve_foxglove(reader: BagReader, args: argparse.Namespace) -> int:
    from foxglove.websocket import Capability

    from stf_nodes.bridges.foxglove.bag_source import BagSource
    from stf_nodes.bridges.foxglove.server import FoxgloveServer

    source = BagSource(
        reader,
        geometry=_geometry(args.params_file),
        rate=args.rate,
        loop=args.loop,
        paused=args.start_paused,
        topics=args.topics or None,
        start_offset_s=args.start_offset,
        warn=_warn,
    )
    try:
        server = FoxgloveServer(
            source,
            name=f'stf bag play {reader.path.name}',
            host=args.address,
            port=args.port,
            capabilities=[Capability.Time],
            playback_time_range=source.time_range,
            warn=_warn,
        )
    except RuntimeError as exc:
        raise CliError(f'cannot listen on {args.address}:{args.port}: {exc}') from exc
    source.start(server)
    print(
        f'Foxglove WebSocket server listening on ws://{args.address}:{server.port} '
        f'({len(source.topics)} topics, {(source.time_range[1] - source.time_range[0]) / 1e9:.1f}'
        ' s); Ctrl-C to stop',
        flush=True,
    )
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        source.stop()
        server.stop()
    return 0


# -- info and recover ---------------------------------------------------------------------------


def cmd_info(args: argparse.Namespace) -> int:
    reader = _open(args.bag)
    try:
        print(format_info(reader.info(), reader.size), flush=True)
    finally:
        reader.close()
    return 0


def cmd_recover(args: argparse.Namespace) -> int:
    from stf_nodes.bag.player import type_hash_of
    from stf_nodes.bag.writer import BagWriter, StorageOptions

    reader = _open(args.bag)
    try:
        with BagWriter(args.output, StorageOptions(compression=args.compression)) as writer:
            wanted = []
            for topic in reader.topics.values():
                if topic.definition_encoding != 'ros2msg':
                    _warn(f'{topic.name}: no .msg definition in the bag; not copied')
                    continue
                writer.add_topic(
                    topic.name,
                    topic.type,
                    qos=[from_bag_qos(q) for q in topic.offered_qos_profiles],
                    type_hash=type_hash_of(topic),
                    definition=topic.definition,
                    serialization_format=topic.serialization_format,
                )
                wanted.append(topic.name)
            for message in reader.messages(wanted):
                writer.write(message.topic, message.data, message.timestamp_ns)
            count = writer.message_count
    except BagError as exc:
        raise CliError(str(exc)) from exc
    finally:
        reader.close()
    print(f'recovered {count} messages into {args.output}', flush=True)
    return 0


# -- parser -------------------------------------------------------------------------------------


def add_parser(verbs: Any) -> None:
    bag = verbs.add_parser('bag', help='rosbag2 MCAP bags: record, play, info, recover')
    actions = bag.add_subparsers(dest='action', required=True)

    record = actions.add_parser('record', help='record topics into a new bag')
    record.add_argument('topics', nargs='*', metavar='TOPIC', help='topics to record')
    record.add_argument('-a', '--all', action='store_true', help='record every topic')
    record.add_argument('-o', '--output', help='bag directory (default rosbag2_<date>-<time>)')
    record.add_argument('-x', '--exclude', help='regular expression of topics not to record')
    record.add_argument('--include-hidden-topics', action='store_true')
    record.add_argument(
        '-b', '--max-bag-size', type=int, default=0, metavar='BYTES', help='split files at'
    )
    record.add_argument(
        '-d', '--max-bag-duration', type=float, default=0.0, metavar='S', help='split files at'
    )
    record.add_argument(
        '--compression',
        choices=['none', 'zstd', 'lz4'],
        default='none',
        help='MCAP chunk compression (files stay readable by every MCAP tool)',
    )
    record.add_argument('--chunk-size', type=int, default=1024 * 1024, metavar='BYTES')
    record.add_argument(
        '--duration', type=float, default=0.0, metavar='S', help='stop after S seconds'
    )
    record.add_argument(
        '--use-sim-time', action='store_true', help='stamp messages with /clock time'
    )
    record.set_defaults(func=cmd_record)

    play = actions.add_parser('play', help='replay a bag into the graph or into Foxglove')
    play.add_argument('bag')
    play.add_argument('-r', '--rate', type=float, default=1.0, help='playback speed factor')
    play.add_argument('-l', '--loop', action='store_true')
    play.add_argument('--start-offset', type=float, default=0.0, metavar='S')
    play.add_argument('--topics', nargs='+', metavar='TOPIC', help='only these topics')
    play.add_argument(
        '--clock',
        type=float,
        nargs='?',
        const=DEFAULT_CLOCK_HZ,
        metavar='HZ',
        help=f'publish /clock from the bag time (default {DEFAULT_CLOCK_HZ:g} Hz)',
    )
    play.add_argument(
        '--wait',
        type=float,
        default=2.0,
        metavar='S',
        help='wait up to S seconds for routes to existing subscribers before playing',
    )
    play.add_argument(
        '--foxglove', action='store_true', help='serve the bag to Foxglove instead of the graph'
    )
    play.add_argument('--port', type=int, default=8765, help='Foxglove WebSocket port')
    play.add_argument('--address', default='127.0.0.1', help='Foxglove address to listen on')
    play.add_argument(
        '--start-paused', action='store_true', help='Foxglove: wait for the Play button'
    )
    play.add_argument(
        '--params-file',
        help='Foxglove: parameter file with the station dimensions (default config/factory.yaml)',
    )
    play.set_defaults(func=cmd_play)

    info = actions.add_parser('info', help='what ros2 bag info prints')
    info.add_argument('bag')
    info.set_defaults(func=cmd_info)

    recover = actions.add_parser(
        'recover', help='copy everything readable of a damaged bag into a new, indexed bag'
    )
    recover.add_argument('bag')
    recover.add_argument('-o', '--output', required=True)
    recover.add_argument('--compression', choices=['none', 'zstd', 'lz4'], default='none')
    recover.set_defaults(func=cmd_recover)
