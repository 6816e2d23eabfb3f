"""Foxglove channels derived from ROS topics, for every source of a `FoxgloveServer` (pure).

The live graph (`graph_source.py`) and a bag (`bag_source.py`) show the same derived channels,
computed by the same code from the same ROS messages:

- `/foxglove/rosout`: `/rosout` (`rcl_interfaces/msg/Log`) as `foxglove.Log`;
- per factory namespace `NS` that has station states (`NS/stf/<station>/state`):
  `NS/foxglove/scene`, the 3D scene (`scene.SceneBuilder`), and, when `NS/tf` exists,
  `NS/foxglove/tf`, its transforms as `foxglove.FrameTransforms` with prefixed frames.

`derived_channels(topics)` says which derived channels a set of ROS topics yields, each with
the ROS topics it is computed from (`sources`: a scene lists all three station states, some
of which may be missing); `DerivedChannel.convert(source, cdr)` turns one
source message into what the channel sends (None when the scene did not change) and raises
`interfaces.SerdeError` on malformed CDR.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from foxglove import Context
from foxglove.channels import FrameTransformsChannel, LogChannel, SceneUpdateChannel

from stf_nodes import interfaces
from stf_nodes.bridges.foxglove.scene import FactoryGeometry, SceneBuilder
from stf_nodes.bridges.foxglove.schemas import log_from_rosout
from stf_nodes.messages import STATE_TYPES

ROSOUT = '/rosout'
LOG_TOPIC = '/foxglove/rosout'
SCENE_SUFFIX = '/foxglove/scene'
TF_SUFFIX = '/foxglove/tf'
STATIONS = ('hbw', 'vgr', 'conveyor')
SCENE, TF, LOG = 'scene', 'tf', 'log'


@dataclass(frozen=True)
class DerivedSpec:
    """What a derived channel is: its kind, its factory namespace and its source topics."""

    kind: str
    namespace: str
    sources: tuple[str, ...]


def derived_channels(topics: Iterable[str]) -> dict[str, DerivedSpec]:
    """Derived channel topic → spec, for the ROS topics available."""
    available = set(topics)
    specs: dict[str, DerivedSpec] = {}
    namespaces = {
        topic[: -len(f'/stf/{station}/state')]
        for topic in available
        for station in STATIONS
        if topic.endswith(f'/stf/{station}/state')
    }
    for ns in sorted(namespaces):
        states = tuple(f'{ns}/stf/{station}/state' for station in STATIONS)
        specs[ns + SCENE_SUFFIX] = DerivedSpec(SCENE, ns, states)
        if ns + '/tf' in available:
            specs[ns + TF_SUFFIX] = DerivedSpec(TF, ns, (ns + '/tf',))
    if ROSOUT in available:
        specs[LOG_TOPIC] = DerivedSpec(LOG, '', (ROSOUT,))
    return specs


@dataclass
class DerivedChannel:
    """One derived channel and the state it keeps (a scene builder for scenes and tf)."""

    topic: str
    spec: DerivedSpec
    geometry: FactoryGeometry | None = None
    builder: SceneBuilder = field(init=False)

    def __post_init__(self) -> None:
        self.builder = SceneBuilder(self.geometry, namespace=self.spec.namespace or '/')

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def sources(self) -> tuple[str, ...]:
        return self.spec.sources

    def make(self, context: Context) -> Any:
        """The SDK channel (for `FoxgloveServer.advertise`)."""
        make = {SCENE: SceneUpdateChannel, TF: FrameTransformsChannel, LOG: LogChannel}[self.kind]
        return make(self.topic, context=context)

    def convert(self, source: str, payload: bytes) -> Any | None:
        """The message to send for one source message (None: nothing changed)."""
        if self.kind == LOG:
            return log_from_rosout(interfaces.deserialize(payload, 'rcl_interfaces/msg/Log'))
        if self.kind == TF:
            return self.builder.transforms(
                interfaces.deserialize(payload, 'tf2_msgs/msg/TFMessage')
            )
        station = source.rsplit('/', 2)[-2]
        return self.builder.update(interfaces.deserialize(payload, STATE_TYPES[station]))

    def snapshot(self, *, replace: bool = False) -> Any | None:
        """The whole scene, for a client that just subscribed (scenes only); `replace` first
        deletes what clients hold (after a seek)."""
        return self.builder.snapshot(replace=replace) if self.kind == SCENE else None

    def reset(self) -> None:
        """Forget the scene (after a seek, the builder starts over from the states then)."""
        self.builder = SceneBuilder(self.builder.geometry, namespace=self.spec.namespace or '/')
