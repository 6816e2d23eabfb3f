"""An MQTT broker out of the box: amqtt (pure Python) on a loopback port.

``stf launch`` starts it when the launch runs an ``mqtt_bridge_node`` whose broker is on this
machine and nothing listens on that port (see ``stf_nodes.launcher.cli``), and stops it after
the nodes, so a new user needs no broker installed. By hand::

    python -m stf_nodes.bridges.embedded_broker --port 1883

It is a convenience, not a production broker: MQTT 3.1.1 only (amqtt does not speak MQTT 5),
anonymous clients, no TLS, sessions and retained messages in memory. For anything else run a
real broker (Mosquitto) and point the bridge at it with ``MQTT_BROKER``/``MQTT_PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from importlib import metadata

from amqtt.broker import Broker
from amqtt.errors import BrokerError

LOOPBACK = ('127.0.0.1', 'localhost', '::1')


def broker_config(host: str, port: int) -> dict[str, object]:
    """An amqtt configuration: one TCP listener, anonymous clients, no $SYS or packet logs."""
    return {
        'listeners': {'default': {'type': 'tcp', 'bind': f'{host}:{port}'}},
        'plugins': {
            'amqtt.plugins.authentication.AnonymousAuthPlugin': {'allow_anonymous': True},
        },
    }


async def serve(host: str, port: int) -> None:
    """Run the broker until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    broker = Broker(broker_config(host, port))
    await broker.start()
    version = metadata.version('amqtt')
    print(f'stf mqtt broker: listening on {host}:{port} (amqtt {version}, MQTT 3.1.1)', flush=True)
    await stop.wait()
    with contextlib.suppress(BrokerError, asyncio.CancelledError):
        await broker.shutdown()
    print('stf mqtt broker: stopped', flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog='python -m stf_nodes.bridges.embedded_broker',
        description='A small MQTT 3.1.1 broker (amqtt) for trying the twin without one.',
    )
    parser.add_argument('--host', default='127.0.0.1', help='address to bind (127.0.0.1)')
    parser.add_argument('--port', type=int, default=1883, help='TCP port (1883)')
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')
    # amqtt logs every connection and disconnection at INFO; its warnings are worth seeing.
    logging.getLogger('transitions').setLevel(logging.ERROR)
    try:
        asyncio.run(serve(options.host, options.port))
    except (BrokerError, OSError) as exc:
        print(
            f'stf mqtt broker: cannot listen on {options.host}:{options.port}: {exc}',
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
