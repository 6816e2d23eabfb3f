"""ROS 2 command-line arguments (`--ros-args ...`), as `ros2 run` and `ros2 launch` pass them.

Supported: `-r from:=to` / `--remap` (including `__node:=` and `__ns:=`), `-p name:=value` /
`--param`, `--params-file FILE`, `--log-level LEVEL`, `--enclave NAME`, and `--` or
`--ros-args` blocks mixed with the program's own arguments. Parameter values are YAML, as in
rcl (`-p rate:=10.0`, `-p names:="[a, b]"`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ArgumentError(ValueError):
    """A malformed `--ros-args` block."""


@dataclass
class RosArguments:
    """The parsed `--ros-args` of one process; applied to every node it creates."""

    remaps: dict[str, str] = field(default_factory=dict)
    node_name: str | None = None
    namespace: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    params_files: list[Path] = field(default_factory=list)
    log_level: str | None = None
    enclave: str = ''
    unparsed: list[str] = field(default_factory=list)


def _split_assignment(text: str, flag: str) -> tuple[str, str]:
    name, sep, value = text.partition(':=')
    if not sep or not name:
        raise ArgumentError(f'{flag} expects NAME:=VALUE, got {text!r}')
    return name, value


def parse_ros_args(argv: list[str]) -> RosArguments:
    """Parse the `--ros-args` blocks of a command line; other arguments stay in `unparsed`."""
    result = RosArguments()
    index = 0
    in_ros_args = False
    while index < len(argv):
        arg = argv[index]
        index += 1
        if arg == '--ros-args':
            in_ros_args = True
            continue
        if not in_ros_args:
            result.unparsed.append(arg)
            continue
        if arg == '--':
            in_ros_args = False
            continue
        if arg in (
            '-r',
            '--remap',
            '-p',
            '--param',
            '--params-file',
            '--log-level',
            '-e',
            '--enclave',
        ):
            if index >= len(argv):
                raise ArgumentError(f'{arg} needs a value')
            value = argv[index]
            index += 1
            if arg in ('-r', '--remap'):
                source, target = _split_assignment(value, arg)
                node_prefix, colon, source_name = source.rpartition(':')
                if colon and node_prefix:
                    source = source_name  # node-specific remap `node:from:=to`; applied to all
                if source == '__node':
                    result.node_name = target
                elif source == '__ns':
                    result.namespace = target
                else:
                    result.remaps[source] = target
            elif arg in ('-p', '--param'):
                name, raw = _split_assignment(value, arg)
                try:
                    result.parameters[name] = yaml.safe_load(raw) if raw else ''
                except yaml.YAMLError as exc:
                    raise ArgumentError(f'-p {value!r}: value is not valid YAML: {exc}') from exc
            elif arg == '--params-file':
                path = Path(value)
                if not path.is_file():
                    raise ArgumentError(f'--params-file {value}: no such file')
                result.params_files.append(path)
            elif arg == '--log-level':
                result.log_level = value.rpartition(':=')[2] or value
            else:
                result.enclave = value
            continue
        raise ArgumentError(f'unknown ROS argument {arg!r}')
    return result
