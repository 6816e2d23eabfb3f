"""`foxglove_bridge` node: the live graph in Foxglove Studio (Foxglove WebSocket protocol).

Runs the official foxglove-sdk WebSocket server (`ws://127.0.0.1:8765` by default) fed by
`stf_nodes.bridges.foxglove.GraphSource`: every graph topic as a channel (ros2msg schema, CDR
forwarded as published), subscribed in the graph only while a client watches it; graph
services callable from the Service Call panel; every node's parameters in the Parameters panel;
the connection graph (Topic Graph panel); client publishing into graph topics; `/rosout` also
as `foxglove.Log` on `/foxglove/rosout`; per factory namespace a 3D scene
(`NS/foxglove/scene`, `NS/foxglove/tf`) drawn from the station states. Under `use_sim_time`
the server time follows `/clock` (capability `time`).

Open it in Foxglove Studio or Lichtblick: Open connection → Foxglove WebSocket →
`ws://localhost:8765`, then import `config/foxglove/factory_layout.json`.

Parameters:
- `port` (8765; 0 picks a free port, logged) and `address` ('127.0.0.1': loopback only;
  '0.0.0.0' to serve other machines);
- `tls.cert_file`, `tls.key_file`: a PEM certificate and its PKCS#8 PEM key; with both set the
  server speaks TLS only (`wss://`), with neither plain `ws://` (set only on loopback);
- `topic_whitelist`, `service_whitelist`, `param_whitelist`: regular expressions (full match)
  of the topic, service and `/node.parameter` names shown (default everything);
- `message_backlog_size` (1024): messages queued per client; a slow client loses its oldest;
- `subscription_depth` (100): graph subscription queue per topic;
- `service_timeout_s` (5.0), `parameter_timeout_s` (2.0): how long a forwarded service call and
  a parameter request may take; `parameter_poll_s` (2.0): how often subscribed parameters are
  refreshed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from foxglove.websocket import Capability

from stf_nodes import runtime
from stf_nodes.bridges.foxglove.graph_source import GraphSource, Settings
from stf_nodes.bridges.foxglove.server import FoxgloveServer
from stf_nodes.process import exit_process


class FoxgloveBridgeNode(runtime.Node):
    """The bridge node: parameters, the WebSocket server and the graph source."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('foxglove_bridge', **kwargs)
        port = self.declare_parameter('port', 8765, description='WebSocket port (0: any free)')
        address = self.declare_parameter(
            'address', '127.0.0.1', description='address to listen on (loopback by default)'
        )
        whitelists = {
            kind: self.declare_parameter(
                f'{kind}_whitelist',
                ['.*'],
                description=f'regular expressions of the {kind} names shown (full match)',
            ).value
            for kind in ('topic', 'service', 'param')
        }
        backlog = self.declare_parameter(
            'message_backlog_size', 1024, description='messages queued per client'
        )
        settings = Settings(
            topic_whitelist=tuple(whitelists['topic']),
            service_whitelist=tuple(whitelists['service']),
            param_whitelist=tuple(whitelists['param']),
            subscription_depth=self.declare_parameter(
                'subscription_depth', 100, description='graph subscription queue per topic'
            ).value,
            service_timeout_s=self.declare_parameter(
                'service_timeout_s',
                5.0,
                description='timeout of a forwarded service call',
                unit='s',
                low=0,
            ).value,
            parameter_timeout_s=self.declare_parameter(
                'parameter_timeout_s',
                2.0,
                description='timeout of a parameter request',
                unit='s',
                low=0,
            ).value,
            parameter_poll_s=self.declare_parameter(
                'parameter_poll_s',
                2.0,
                description='refresh period of watched parameters',
                unit='s',
                low=0,
            ).value,
        )
        tls = self._tls(
            self.declare_parameter(
                'tls.cert_file', '', description='server certificate (PEM); set: wss:// only'
            ).value,
            self.declare_parameter(
                'tls.key_file', '', description='private key of tls.cert_file (PKCS#8 PEM)'
            ).value,
        )
        sim_time = bool(self.get_parameter('use_sim_time').value)
        capabilities = [
            Capability.ClientPublish,
            Capability.ConnectionGraph,
            Capability.Parameters,
            Capability.Services,
        ]
        if sim_time:
            capabilities.append(Capability.Time)

        self.source = GraphSource(self, settings)
        try:
            self.server = FoxgloveServer(
                self.source,
                name='stf_digital_twin',
                host=address.value,
                port=port.value,
                capabilities=capabilities,
                message_backlog_size=backlog.value,
                tls=tls,
                warn=self.get_logger().warning,
            )
        except RuntimeError as exc:  # the SDK's error for an address in use or invalid
            hint = 'the tls.* parameters' if 'TLS' in str(exc) else 'the port parameter'
            raise ValueError(
                f'cannot listen on {address.value}:{port.value}: {exc} (check {hint})'
            ) from exc
        if sim_time:
            self.get_clock().add_listener(self._on_clock)
        self.source.start(self.server)
        scheme = 'wss' if tls else 'ws'
        self.get_logger().info(
            f'Foxglove WebSocket server listening on {scheme}://{address.value}:{self.server.port}'
        )

    @staticmethod
    def _tls(cert_file: str, key_file: str) -> tuple[bytes, bytes] | None:
        """The PEM certificate and key to serve wss:// with, or None for ws://."""
        if not cert_file and not key_file:
            return None
        if not (cert_file and key_file):
            raise ValueError('tls.cert_file and tls.key_file go together: set both or neither')
        pems = []
        for name, path in (('tls.cert_file', cert_file), ('tls.key_file', key_file)):
            try:
                pems.append(Path(path).read_bytes())
            except OSError as exc:
                raise ValueError(f'{name}: cannot read {path}: {exc.strerror}') from exc
        return pems[0], pems[1]

    def _on_clock(self) -> None:
        self.server.broadcast_time(self.get_clock().now().nanoseconds)

    def destroy_node(self) -> None:
        if not self.destroyed:
            self.source.stop()
            self.server.stop()
        super().destroy_node()


NODE_CLASS = FoxgloveBridgeNode


def main(args: list[str] | None = None) -> int:
    return runtime.run_node(FoxgloveBridgeNode, args)


if __name__ == '__main__':
    exit_process(main())
