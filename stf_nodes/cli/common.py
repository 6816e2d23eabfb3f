"""What every `stf` verb shares: the hidden CLI node, YAML in and out, errors, graph look-ups.

Output follows the ros2 CLI: messages print as YAML followed by `---` (here with the name of
a constant beside the number it stands for, `state: 4  # STATE_ERROR`; `--no-enum-names`
prints the numbers alone), or with `--json` as one JSON object per line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import yaml

from stf_nodes import interfaces


class CliError(Exception):
    """A user-facing failure: printed as `stf: <message>`, exit status 1."""


class OutputClosed(Exception):  # noqa: N818 - a state, not an error
    """Whoever read our output stopped (``stf topic echo ... | head``)."""


@contextmanager
def cli_node() -> Iterator[Any]:
    """A hidden, short-lived node (name starts with `_`, like ros2cli's) on its own context."""
    from stf_nodes import runtime

    context = runtime.Context([])
    node = None
    try:
        node = runtime.Node(
            f'_stf_cli_{os.getpid()}',
            context=context,
            enable_rosout=False,
            start_parameter_services=False,
            start_parameter_event_publisher=False,
        )
        yield node
    except runtime.RouterUnavailableError as exc:
        raise CliError(str(exc)) from exc
    finally:
        if node is not None:
            node.destroy_node()
        context.shutdown()


def absolute_name(name: str) -> str:
    """`hbw` → `/hbw` (node names on the command line may omit the leading slash)."""
    return name if name.startswith('/') else '/' + name


def graph_nodes(node: Any, *, include_hidden: bool = False) -> list[str]:
    """Fully qualified names of the graph's nodes (a name twice if two nodes share it)."""
    from stf_nodes.runtime.names import NODE

    return sorted(
        token.node_fqn
        for token in node.context.graph.tokens()
        if token.kind == NODE and (include_hidden or not token.node_name.startswith('_'))
    )


# ---------------------------------------------------------------------------------------------
# parser


def verb(
    actions: Any, name: str, help_text: str, func: Any = None, **kwargs: Any
) -> argparse.ArgumentParser:
    """A sub-command with the same text as its help line and its --help description."""
    parser = actions.add_parser(name, help=help_text, description=help_text, **kwargs)
    if func is not None:
        parser.set_defaults(func=func)
    return parser


def group(verbs: Any, name: str, help_text: str) -> Any:
    """A verb with actions (`stf topic ...`)."""
    return verb(verbs, name, help_text).add_subparsers(
        dest='action', required=True, metavar='ACTION'
    )


def add_enum_names_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--enum-names',
        action=argparse.BooleanOptionalAction,
        default=True,
        help="in YAML, name the constant a number stands for ('state: 4  # STATE_ERROR'); "
        'default on, --no-enum-names prints the numbers alone, as ros2 does',
    )


def type_completer(**_: Any) -> list[str]:
    """Shell completion of interface names (argcomplete)."""
    return interfaces.list_interfaces()


# ---------------------------------------------------------------------------------------------
# input


def load_yaml(text: str, what: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise CliError(f'{what} is not valid YAML: {exc}') from exc
    except RecursionError:
        raise CliError(f'{what} is nested too deeply') from None


def build_message(type_name: str, text: str, what: str) -> Any:
    try:
        return interfaces.from_data(type_name, load_yaml(text, what))
    except interfaces.InterfaceError as exc:
        raise CliError(f'{what} does not fit {type_name}: {exc}') from exc


def message_class(name: str) -> type:
    try:
        return interfaces.get_message_class(name)
    except interfaces.InterfaceError as exc:
        raise CliError(str(exc)) from exc


def service_type(name: str) -> interfaces.ServiceType:
    try:
        return interfaces.get_service(name)
    except interfaces.InterfaceError as exc:
        raise CliError(str(exc)) from exc


# ---------------------------------------------------------------------------------------------
# output


def json_safe(data: Any) -> Any:
    """``data`` with non-finite floats as the strings ``NaN``, ``Infinity``, ``-Infinity``:
    JSON has no such numbers, and a bare ``NaN`` breaks every strict parser."""
    if isinstance(data, float) and not math.isfinite(data):
        return 'NaN' if math.isnan(data) else ('Infinity' if data > 0 else '-Infinity')
    if isinstance(data, dict):
        return {key: json_safe(value) for key, value in data.items()}
    if isinstance(data, list):
        return [json_safe(value) for value in data]
    return data


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, width=math.inf, allow_unicode=True)
    text = text.removesuffix('\n').removesuffix('\n...').rstrip('\n')
    if '\n' in text:  # a multi-line string: JSON's double-quoted form is valid YAML too
        text = json.dumps(value, ensure_ascii=False)
    return text


def _yaml_lines(data: dict[str, Any], type_name: str | None, indent: int) -> list[str]:
    pad = ' ' * indent
    names = interfaces.field_constants(type_name) if type_name else {}
    nested = interfaces.nested_types(type_name) if type_name else {}
    lines = []
    for key, value in data.items():
        inner = nested.get(key)
        if isinstance(value, dict):
            lines.append(f'{pad}{key}:')
            lines += _yaml_lines(value, inner, indent + 2)
        elif isinstance(value, list):
            if not value:
                lines.append(f'{pad}{key}: []')
                continue
            lines.append(f'{pad}{key}:')
            for item in value:
                if isinstance(item, dict):
                    item_lines = _yaml_lines(item, inner, indent + 2) or [f'{pad}  {{}}']
                    lines.append(f'{pad}- {item_lines[0][indent + 2 :]}')
                    lines += item_lines[1:]
                else:
                    lines.append(f'{pad}- {_scalar(item)}')
        else:
            line = f'{pad}{key}: {_scalar(value)}'
            name = names.get(key, {}).get(value) if isinstance(value, int) else None
            lines.append(f'{line}  # {name}' if name else line)
    return lines


def message_yaml(message: Any, *, enum_names: bool = True) -> str:
    """A message as ros2 prints it (block YAML), with constant names as comments."""
    data = interfaces.to_data(message)
    if not data:
        return '{}'
    return '\n'.join(_yaml_lines(data, message.__msgtype__ if enum_names else None, 0))


def print_message(message: Any, as_json: bool, *, enum_names: bool = True) -> None:
    """One message as YAML (``---`` after it) or one line of JSON; raises OutputClosed when
    stdout was closed by the reader."""
    if as_json:
        data = interfaces.to_data(message)
        text = json.dumps(json_safe(data), ensure_ascii=False, allow_nan=False)
    else:
        text = message_yaml(message, enum_names=enum_names) + '\n---'
    write(text)


def write(text: str) -> None:
    """Print a line now; raises OutputClosed when the reader went away."""
    try:
        print(text, flush=True)
    except BrokenPipeError as exc:
        raise OutputClosed from exc


def warn(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# graph


def spin_for(node: Any, seconds: float | None, until: Callable[[], bool]) -> bool:
    """Spin the CLI node until `until()` holds; False on timeout."""
    from stf_nodes import runtime

    executor = runtime.SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    deadline = None if seconds is None else time.monotonic() + seconds
    while not until():
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return False
        executor.spin_once(timeout_sec=0.1 if remaining is None else min(remaining, 0.1))
    return True


def topic_types(node: Any, topic: str, kind: str | None = None) -> list[str]:
    """Types of `topic` in the graph: of its publishers (`kind='MP'`), or of every endpoint."""
    from stf_nodes.runtime import names

    kinds = (kind,) if kind else (names.PUBLISHER, names.SUBSCRIPTION)
    graph = node.context.graph
    return sorted({t.type_name for k in kinds for t in graph.endpoints(topic, k)})


def service_types(node: Any, service: str) -> list[str]:
    graph = node.context.graph
    return next((types for name, types in graph.service_names_and_types() if name == service), [])


def topic_type(node: Any, topic: str, given: str | None, timeout_s: float | None) -> str:
    """The type to subscribe `topic` with, as `ros2 topic echo|hz|bw` find it.

    A topic nobody publishes yet gets ros2's warning, then the wait (for its type to appear,
    unless given). A given type that differs from the graph's is an error naming both: the
    subscription would never match.
    """
    from stf_nodes.runtime import names

    wanted = message_class(given).__msgtype__ if given else None
    if not topic_types(node, topic, names.PUBLISHER):
        warn(f'WARNING: topic [{topic}] does not appear to be published yet')
        if wanted is None:
            node.context.graph.wait_for(lambda _: bool(topic_types(node, topic)), timeout_s)
    found = topic_types(node, topic, names.PUBLISHER) or topic_types(node, topic)
    if wanted is not None:
        if found and wanted not in found:
            raise CliError(
                f'topic {topic} has type {", ".join(found)}, not {wanted}: a subscription of '
                f"{wanted} would never receive anything (omit the type to use the graph's)"
            )
        return wanted
    if not found:
        raise CliError(f'topic {topic} is not published; give its type to wait for it')
    if len(found) > 1:
        raise CliError(f'topic {topic} has several types ({", ".join(found)}); give one')
    return found[0]


def echo_qos(node: Any, topic: str) -> Any:
    """Transient-local when any publisher latches, so `echo` shows latched state."""
    from stf_nodes.runtime import names
    from stf_nodes.runtime.qos import DurabilityPolicy, QoSProfile

    publishers = node.context.graph.endpoints(topic, names.PUBLISHER)
    durable = any(
        QoSProfile.from_keyexpr(p.qos).durability == DurabilityPolicy.TRANSIENT_LOCAL
        for p in publishers
    )
    return QoSProfile(
        depth=100,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if durable else DurabilityPolicy.VOLATILE,
    )


def call(client: Any, request: Any, timeout_s: float = 10.0) -> Any:
    """A service call whose failure (no server, an error reply, a timeout) is a CliError."""
    from stf_nodes.runtime import ServiceError

    try:
        return client.call(request, timeout_sec=timeout_s)
    except (ServiceError, TimeoutError) as exc:
        raise CliError(str(exc)) from exc
