"""`stf doctor`: check what the twin needs, each finding with a hint (like `ros2 doctor`).

Checks, in order:

- **router**: a Zenoh router answers on `ZENOH_ROUTER` (the diagnosis every command prints:
  nothing listens, or something that is not a router holds the port);
- **nodes**: the graph has nodes, and no two share a fully qualified name;
- **clock skew**: for every node that publishes within `--listen` seconds, how far its wall
  clock (the source timestamp rmw_zenoh puts on every sample) is from this machine's; more
  than `--max-skew` is a warning (stamps, `topic delay` and the recorder go wrong);
- **database**: `DATABASE_URL` (default SQLite in the working directory) connects and answers
  `SELECT 1`; for SQLite, that its directory is writable;
- **mqtt broker**: `MQTT_BROKER`/`MQTT_PORT` completes an MQTT handshake (nothing on a loopback
  port is fine: `stf launch` starts its embedded broker there);
- **foxglove port**: `--foxglove-port` (8765) is free, or held by the graph's
  `foxglove_bridge`.

Prints `[ OK ]`, `[WARN]` or `[FAIL]` per check and a summary; exits 1 if a check failed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stf_nodes.cli.common import cli_node, graph_nodes, verb
from stf_nodes.exit_codes import FAILURE

OK, WARN, FAIL = ' OK ', 'WARN', 'FAIL'


@dataclass(frozen=True)
class Finding:
    check: str
    level: str
    text: str
    hint: str = ''


def check_router() -> Finding:
    from stf_nodes.runtime.context import router_endpoint
    from stf_nodes.runtime.router import router_problem

    endpoint = router_endpoint()
    problem = router_problem(endpoint)
    if problem is None:
        return Finding('router', OK, f'a Zenoh router answers at {endpoint}')
    hint = (
        'start one with `stf router` or `stf launch`, or point ZENOH_ROUTER at yours'
        if problem.startswith('no Zenoh router')
        else ''
    )
    return Finding('router', FAIL, problem, hint)


def check_nodes(node: Any) -> Finding:
    names = graph_nodes(node)
    if not names:
        return Finding('nodes', WARN, 'no nodes in the graph', 'is `stf launch` running?')
    shared = sorted({name for name in names if names.count(name) > 1})
    if shared:
        return Finding(
            'nodes',
            WARN,
            f'{len(names)} nodes; several share a name: {", ".join(shared)}',
            'stop the extra process, or start it with another name (--ros-args -r '
            '__node:=NAME) or namespace (-r __ns:=/NS): shared names confuse every tool',
        )
    return Finding('nodes', OK, f'{len(names)} nodes, every name unique')


def measure_skew(node: Any, listen_s: float) -> dict[str, float]:
    """Median (receive time - source time) in seconds per publishing node, from the
    attachment of every sample seen during `listen_s`."""
    import zenoh

    from stf_nodes.runtime.entities import parse_attachment
    from stf_nodes.runtime.names import PUBLISHER, gid_of

    owners = {
        gid_of(token.key): token.node_fqn
        for token in node.context.graph.tokens()
        if token.kind == PUBLISHER
    }
    offsets: dict[str, list[float]] = {}
    lock = threading.Lock()

    def on_sample(sample: zenoh.Sample) -> None:
        received = time.time_ns()
        info = parse_attachment(
            sample.attachment.to_bytes() if sample.attachment is not None else None
        )
        if info is None or info[2] not in owners:
            return
        with lock:
            offsets.setdefault(owners[info[2]], []).append((received - info[1]) / 1e9)

    subscriber = node.context.session.declare_subscriber(
        f'{node.context.domain_id}/**', zenoh.handlers.Callback(on_sample)
    )
    time.sleep(listen_s)
    subscriber.undeclare()
    with lock:
        return {name: statistics.median(values) for name, values in offsets.items()}


def check_clock_skew(node: Any, listen_s: float, max_skew_s: float) -> Finding:
    skews = measure_skew(node, listen_s)
    if not skews:
        return Finding(
            'clock skew', WARN, f'no node published within {listen_s:g} s: nothing to compare'
        )
    far = {name: skew for name, skew in skews.items() if abs(skew) > max_skew_s}
    worst = max(skews.values(), key=abs)
    if far:
        listed = ', '.join(f'{name} {skew:+.3f} s' for name, skew in sorted(far.items()))
        return Finding(
            'clock skew',
            WARN,
            f'clocks differ from this machine by more than {max_skew_s:g} s: {listed}',
            'synchronise the machines (chrony or systemd-timesyncd with NTP)',
        )
    return Finding(
        'clock skew', OK, f'{len(skews)} publishing nodes within {abs(worst):.3f} s of this clock'
    )


def check_database() -> Finding:
    from sqlalchemy import text
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from stf_nodes.storage import DEFAULT_DATABASE_URL, make_engine
    from stf_nodes.storage.db import normalize_url

    url = os.environ.get('DATABASE_URL') or DEFAULT_DATABASE_URL
    try:
        parsed = normalize_url(url)
    except ArgumentError as exc:
        return Finding('database', FAIL, f'DATABASE_URL is not a database URL: {exc}')
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == 'sqlite':
        path = Path(parsed.database or '')
        folder = path.parent if str(path) else Path.cwd()
        if not os.access(folder, os.W_OK):
            return Finding(
                'database',
                FAIL,
                f'{shown}: cannot write in {folder.resolve()}',
                'run from a writable directory or set DATABASE_URL',
            )
        state = 'exists' if path.is_file() else 'will be created on first use'
        return Finding('database', OK, f'{shown} ({state})')
    try:
        engine = make_engine(parsed)
        with engine.connect() as connection:
            connection.execute(text('SELECT 1'))
        engine.dispose()
    except (SQLAlchemyError, OSError) as exc:
        reason = str(exc).splitlines()[0][:200]
        return Finding(
            'database',
            FAIL,
            f'{shown}: {reason}',
            'start the database server, or correct DATABASE_URL (user, password, host, name)',
        )
    return Finding('database', OK, f'{shown} answers')


def mqtt_handshake(host: str, port: int, timeout_s: float = 3.0) -> str | None:
    """None when an MQTT broker accepts a connection; else why not."""
    import paho.mqtt.client as mqtt

    result: list[str] = []
    done = threading.Event()

    def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        result.append('' if not reason.is_failure else f'refused: {reason}')
        done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f'stf-doctor-{os.getpid()}')
    if os.environ.get('MQTT_USERNAME'):
        client.username_pw_set(os.environ['MQTT_USERNAME'], os.environ.get('MQTT_PASSWORD'))
    client.on_connect = on_connect
    try:
        client.connect(host, port, keepalive=10)
    except OSError as exc:
        return str(exc)
    client.loop_start()
    try:
        if not done.wait(timeout_s):
            return 'in use, but not by an MQTT broker (no CONNACK)'
        return result[0] or None
    finally:
        client.disconnect()
        client.loop_stop()


def check_broker() -> Finding:
    from stf_nodes.launcher.brokers import LOOPBACK_HOSTS
    from stf_nodes.runtime.router import is_listening

    host = os.environ.get('MQTT_BROKER', '127.0.0.1')
    try:
        port = int(os.environ.get('MQTT_PORT', '1883'))
    except ValueError:
        return Finding('mqtt broker', FAIL, f'MQTT_PORT is not a number: {os.environ["MQTT_PORT"]}')
    address = f'{host}:{port}'
    if not is_listening(f'tcp/{host}:{port}'):
        if host in LOOPBACK_HOSTS:
            return Finding(
                'mqtt broker',
                OK,
                f'nothing listens on {address}: `stf launch` starts its embedded broker there',
            )
        return Finding(
            'mqtt broker',
            FAIL,
            f'no MQTT broker reachable at {address}',
            'start the broker, or set MQTT_BROKER/MQTT_PORT (or enable_mqtt:=false)',
        )
    problem = mqtt_handshake(host, port)
    if problem is not None:
        return Finding(
            'mqtt broker',
            FAIL,
            f'{address}: {problem}',
            "check MQTT_USERNAME/MQTT_PASSWORD, or set MQTT_PORT to the broker's port",
        )
    return Finding('mqtt broker', OK, f'an MQTT broker answers at {address}')


def check_foxglove_port(node: Any | None, port: int) -> Finding:
    from stf_nodes.runtime.router import is_listening

    if not is_listening(f'tcp/127.0.0.1:{port}'):
        return Finding('foxglove port', OK, f'{port} is free for the Foxglove bridge')
    bridges = [n for n in (graph_nodes(node) if node else []) if n.endswith('/foxglove_bridge')]
    if bridges:
        return Finding('foxglove port', OK, f'{port} is served by {", ".join(bridges)}')
    return Finding(
        'foxglove port',
        WARN,
        f'{port} is in use by a program that is not in the graph',
        f'the Foxglove bridge will not start there: launch with foxglove_port:=<another port> '
        f'or stop what holds {port}',
    )


def run_checks(args: argparse.Namespace) -> list[Finding]:
    findings = [check_router()]
    if findings[0].level == OK:
        with cli_node() as node:
            findings.append(check_nodes(node))
            findings.append(check_clock_skew(node, args.listen, args.max_skew))
            findings += [check_database(), check_broker()]
            findings.append(check_foxglove_port(node, args.foxglove_port))
    else:
        findings += [
            check_database(),
            check_broker(),
            check_foxglove_port(None, args.foxglove_port),
        ]
    return findings


def cmd_doctor(args: argparse.Namespace) -> int:
    findings = run_checks(args)
    for finding in findings:
        print(f'[{finding.level}] {finding.check}: {finding.text}')
        if finding.hint and finding.level != OK:
            print(f'       hint: {finding.hint}')
    failed = sum(f.level == FAIL for f in findings)
    warned = sum(f.level == WARN for f in findings)
    print(
        f'{len(findings)} checks: {len(findings) - failed - warned} passed, {warned} '
        f'warning{"s" if warned != 1 else ""}, {failed} failed'
    )
    return FAILURE if failed else 0


def add_parser(verbs: Any) -> None:
    doctor = verb(
        verbs, 'doctor', 'check router, nodes, clocks, database, broker and ports', cmd_doctor
    )
    doctor.add_argument(
        '--listen', type=float, default=1.5, metavar='S', help='listen S seconds for clock skew'
    )
    doctor.add_argument(
        '--max-skew', type=float, default=0.5, metavar='S', help='clock skew warning (0.5 s)'
    )
    doctor.add_argument(
        '--foxglove-port', type=int, default=8765, help='port of the Foxglove bridge (8765)'
    )
