"""The plain data a launch file is interpreted into; no processes, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ParamValue = bool | int | float | str | list[bool] | list[int] | list[float] | list[str]


class LaunchError(Exception):
    """Bad launch input: invalid XML, unknown tag or argument, missing file or executable."""


@dataclass(frozen=True, kw_only=True)
class ArgDecl:
    """A declared launch argument (``<arg>``); ``default`` is the raw, unsubstituted text."""

    name: str
    default: str | None
    description: str
    choices: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        """An argument without a default must be given."""
        return self.default is None


@dataclass(frozen=True, kw_only=True)
class NodeSpec:
    """One ``<node>`` with every substitution resolved.

    ``namespace`` is absolute (``/`` for the root). ``parameters`` keeps the XML order: a
    ``Path`` per ``<param from>``, a dict per run of consecutive ``<param name value>``.
    """

    package: str
    executable: str
    name: str | None
    namespace: str
    parameters: tuple[Path | Mapping[str, ParamValue], ...] = ()
    remaps: tuple[tuple[str, str], ...] = ()
    env: Mapping[str, str] | None = None
    respawn: bool = False
    respawn_delay: float = 0.0
    output: str = 'screen'
    args: tuple[str, ...] = ()
    source: str = ''

    @property
    def full_name(self) -> str | None:
        """``/ns/name``, or None when the node name is left to the executable."""
        if self.name is None:
            return None
        return f'{self.namespace.rstrip("/")}/{self.name}'

    @property
    def label(self) -> str:
        """Output prefix: the node name below its namespace, e.g. ``factory_2/hbw``."""
        return (self.full_name or f'{self.namespace.rstrip("/")}/{self.executable}').lstrip('/')


@dataclass(frozen=True, kw_only=True)
class LaunchDescription:
    """Result of interpreting a launch file: the nodes to run and the top file's arguments."""

    nodes: tuple[NodeSpec, ...]
    arguments: tuple[ArgDecl, ...]
