"""Interpreter for the ROS 2 launch XML subset the project uses; pure, no processes.

Elements: ``<launch>``, ``<arg name default description>`` (with ``<choice value>``),
``<let>``, ``<node>`` with ``<param name value>``, ``<param from>``, ``<remap>``, ``<env>``,
``<include file>`` with ``<arg name value>``, ``<group scoped>``, ``<push_ros_namespace>`` (or
``push-ros-namespace``), ``<set_env>``; ``if``/``unless`` on every element. Anything else is
a :class:`LaunchError` naming the file and line, so typos never pass silently.

Scoping follows ROS 2: a ``<group>`` (scoped by default) and an ``<include>`` see the enclosing
launch configurations, namespace and environment, and what they set does not leak out. An
``<arg>`` takes an already set configuration (command line or include argument) first, then its
default. Relative paths are relative to the working directory, as in ``ros2 launch``; use
``$(dirname)`` or ``$(find-pkg-share ...)`` for paths next to a launch file. ``output`` is
validated and kept in :class:`NodeSpec`, but ``stf launch`` prints every node's output
(prefixed) whatever it says; there are no per-node log files.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from xml.parsers import expat

import yaml

from stf_nodes.launcher.model import ArgDecl, LaunchDescription, LaunchError, NodeSpec, ParamValue
from stf_nodes.launcher.substitutions import Context, substitute

_CONDITIONS = frozenset({'if', 'unless'})
# Attributes each element accepts (besides if/unless), required ones, and allowed children.
_ATTRIBUTES = {
    'launch': {'version'},
    'arg': {'name', 'default', 'description'},
    'choice': {'value', 'description'},
    'let': {'name', 'value'},
    'node': {'pkg', 'exec', 'name', 'namespace', 'output', 'respawn', 'respawn_delay', 'args'},
    'param': {'name', 'value', 'from'},
    'remap': {'from', 'to'},
    'env': {'name', 'value'},
    'include': {'file'},
    'include/arg': {'name', 'value'},
    'group': {'scoped'},
    'push_ros_namespace': {'namespace'},
    'push-ros-namespace': {'namespace'},
    'set_env': {'name', 'value'},
}
_ACTIONS = (
    'arg',
    'let',
    'node',
    'include',
    'group',
    'push_ros_namespace',
    'push-ros-namespace',
    'set_env',
)
_CHILDREN = {
    'launch': _ACTIONS,
    'group': _ACTIONS,
    'node': ('param', 'remap', 'env'),
    'include': ('arg',),
    'arg': ('choice',),
}
_REQUIRED = {
    'arg': ('name',),
    'include/arg': ('name', 'value'),
    'choice': ('value',),
    'let': ('name', 'value'),
    'node': ('pkg', 'exec'),
    'remap': ('from', 'to'),
    'env': ('name', 'value'),
    'set_env': ('name', 'value'),
    'include': ('file',),
    'push_ros_namespace': ('namespace',),
    'push-ros-namespace': ('namespace',),
}
_NAME_TOKEN = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')
_OUTPUTS = ('screen', 'log', 'both')
#: Deepest element nesting accepted (the tree is walked recursively).
MAX_DEPTH = 64


@dataclass(frozen=True, kw_only=True)
class _Element:
    """A parsed XML element with the line it starts on."""

    tag: str
    attrib: dict[str, str]
    children: list[_Element]
    line: int


@dataclass(kw_only=True)
class _Scope:
    """Mutable interpretation state; copied when a group or include opens a scope."""

    configs: dict[str, str]
    namespace: str
    env: dict[str, str]

    def copy(self) -> _Scope:
        return _Scope(configs=dict(self.configs), namespace=self.namespace, env=dict(self.env))


def to_bool(text: str, what: str) -> bool:
    """Launch truth value: ``true``/``1`` or ``false``/``0`` (any case); anything else fails."""
    value = text.strip().lower()
    if value in ('true', '1'):
        return True
    if value in ('false', '0'):
        return False
    raise LaunchError(f'{what}: expected true/false/1/0, got {text!r}')


def load_launch(path: Path, arguments: Mapping[str, str] | None = None) -> LaunchDescription:
    """Interpret the launch file at ``path`` with command-line ``arguments`` (name → value)."""
    interpreter = _Interpreter()
    arguments = dict(arguments or {})
    scope = _Scope(configs=dict(arguments), namespace='/', env={})
    interpreter.run_file(Path(path), scope)
    top = declared_arguments(path)
    unknown = sorted(set(arguments) - interpreter.declared)
    if unknown:
        raise LaunchError(
            f'{path}: unknown launch argument(s) {", ".join(unknown)}\n{format_arguments(top)}'
        )
    return LaunchDescription(nodes=tuple(interpreter.nodes), arguments=top)


def declared_arguments(path: Path) -> tuple[ArgDecl, ...]:
    """The ``<arg>`` declarations of a launch file (also inside groups), defaults unsubstituted."""
    found: list[ArgDecl] = []

    def visit(element: _Element) -> None:
        for child in element.children:
            if child.tag == 'arg':
                found.append(
                    ArgDecl(
                        name=child.attrib.get('name', ''),
                        default=child.attrib.get('default'),
                        description=child.attrib.get('description', ''),
                        choices=tuple(c.attrib.get('value', '') for c in child.children),
                    )
                )
            elif child.tag == 'group':
                visit(child)

    visit(_read_xml(Path(path)))
    return tuple(found)


def format_arguments(arguments: tuple[ArgDecl, ...]) -> str:
    """Describe declared arguments the way ``ros2 launch --show-args`` does."""
    if not arguments:
        return 'No arguments.'
    lines = ["Arguments (pass arguments as '<name>:=<value>'):", '']
    for arg in arguments:
        lines.append(f"    '{arg.name}':")
        lines.append(f'        {arg.description or "no description given"}')
        if arg.choices:
            lines.append(f'        Valid choices are: {list(arg.choices)}')
        default = '(argument must be set)' if arg.required else f"(default: '{arg.default}')"
        lines.extend((f'        {default}', ''))
    return '\n'.join(lines).rstrip('\n')


def _read_xml(path: Path) -> _Element:
    """Parse a file with expat, keeping line numbers for error messages."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise LaunchError(f'{path}: cannot read launch file: {error.strerror}') from None
    parser = expat.ParserCreate()
    stack: list[_Element] = []
    roots: list[_Element] = []

    def start(tag: str, attrib: dict[str, str]) -> None:
        if len(stack) >= MAX_DEPTH:
            raise LaunchError(
                f'{path}:{parser.CurrentLineNumber}: elements nested deeper than {MAX_DEPTH}'
            )
        element = _Element(tag=tag, attrib=attrib, children=[], line=parser.CurrentLineNumber)
        (stack[-1].children if stack else roots).append(element)
        stack.append(element)

    parser.StartElementHandler = start
    parser.EndElementHandler = lambda _tag: stack.pop()
    try:
        parser.Parse(data, True)
    except expat.ExpatError as error:
        message = expat.ErrorString(error.code)
        raise LaunchError(
            f'{path}:{error.lineno}: invalid XML: {message} (column {error.offset + 1})'
        ) from None
    if roots[0].tag != 'launch':
        raise LaunchError(
            f'{path}:{roots[0].line}: root element must be <launch>, not <{roots[0].tag}>'
        )
    _validate(roots[0], path)
    return roots[0]


def _validate(element: _Element, path: Path, parent: str | None = None) -> None:
    """Reject unknown tags and attributes and missing required attributes, in the whole tree
    (disabled branches too, so a typo never hides behind a false condition)."""
    where = f'{path}:{element.line}'
    if parent is not None and element.tag not in _CHILDREN.get(parent, ()):
        allowed = ', '.join(f'<{tag}>' for tag in _CHILDREN.get(parent, ())) or 'none'
        raise LaunchError(
            f'{where}: unknown tag <{element.tag}> in <{parent}> (allowed: {allowed})'
        )
    key = 'include/arg' if parent == 'include' else element.tag
    attributes = _ATTRIBUTES[key] | (_CONDITIONS if key not in ('launch', 'choice') else set())
    for name in element.attrib:
        if name not in attributes:
            allowed = ', '.join(sorted(attributes))
            raise LaunchError(
                f'{where}: unknown attribute {name!r} on <{element.tag}> (allowed: {allowed})'
            )
    for name in _REQUIRED.get(key, ()):
        if name not in element.attrib:
            raise LaunchError(f'{where}: <{element.tag}> needs a {name!r} attribute')
    for child in element.children:
        _validate(child, path, element.tag)


class _Interpreter:
    """Walks launch elements, collecting nodes and the names of all declared arguments."""

    def __init__(self) -> None:
        self.nodes: list[NodeSpec] = []
        self.declared: set[str] = set()
        self._include_depth = 0
        self._handlers: dict[str, Callable[[_Element, Path, _Scope], None]] = {
            'arg': self._arg,
            'let': self._let,
            'node': self._node,
            'include': self._include,
            'group': self._group,
            'push_ros_namespace': self._push_namespace,
            'push-ros-namespace': self._push_namespace,
            'set_env': self._set_env,
        }

    def run_file(self, path: Path, scope: _Scope) -> None:
        root = _read_xml(path)
        self.declared.update(arg.name for arg in declared_arguments(path))
        self._actions(root, path, scope)

    def _actions(self, parent: _Element, path: Path, scope: _Scope) -> None:
        for element in parent.children:
            if self._enabled(element, path, scope):
                self._handlers[element.tag](element, path, scope)

    def _value(
        self, element: _Element, name: str, path: Path, scope: _Scope, default: str = ''
    ) -> str:
        """Substituted attribute value; errors carry the file, line and attribute."""
        if name not in element.attrib:
            return default
        context = Context(configs=scope.configs, env={**os.environ, **scope.env}, filename=path)
        try:
            return substitute(element.attrib[name], context)
        except LaunchError as error:
            raise LaunchError(
                f'{path}:{element.line}: <{element.tag} {name}=...>: {error}'
            ) from None

    def _where(self, element: _Element, path: Path) -> str:
        return f'{path}:{element.line}'

    def _bool(self, element: _Element, name: str, path: Path, scope: _Scope, default: str) -> bool:
        text = self._value(element, name, path, scope, default)
        try:
            return to_bool(text, f'<{element.tag} {name}=...>')
        except LaunchError as error:
            raise LaunchError(f'{self._where(element, path)}: {error}') from None

    def _enabled(self, element: _Element, path: Path, scope: _Scope) -> bool:
        return self._bool(element, 'if', path, scope, 'true') and not self._bool(
            element, 'unless', path, scope, 'false'
        )

    def _arg(self, element: _Element, path: Path, scope: _Scope) -> None:
        name = self._value(element, 'name', path, scope)
        if name not in scope.configs:
            if 'default' not in element.attrib:
                raise LaunchError(
                    f'{self._where(element, path)}: launch argument {name!r} is required but '
                    f'was not given; {path.name} declares:\n'
                    f'{format_arguments(declared_arguments(path))}'
                )
            scope.configs[name] = self._value(element, 'default', path, scope)
        choices = [self._value(choice, 'value', path, scope) for choice in element.children]
        if choices and scope.configs[name] not in choices:
            raise LaunchError(
                f'{self._where(element, path)}: launch argument {name!r} is '
                f'{scope.configs[name]!r}, expected one of {", ".join(choices)}'
            )

    def _let(self, element: _Element, path: Path, scope: _Scope) -> None:
        value = self._value(element, 'value', path, scope)
        scope.configs[self._value(element, 'name', path, scope)] = value

    def _set_env(self, element: _Element, path: Path, scope: _Scope) -> None:
        value = self._value(element, 'value', path, scope)
        scope.env[self._value(element, 'name', path, scope)] = value

    def _push_namespace(self, element: _Element, path: Path, scope: _Scope) -> None:
        pushed = self._value(element, 'namespace', path, scope)
        scope.namespace = self._namespace(scope.namespace, pushed, element, path)

    def _group(self, element: _Element, path: Path, scope: _Scope) -> None:
        scoped = self._bool(element, 'scoped', path, scope, 'true')
        self._actions(element, path, scope.copy() if scoped else scope)

    def _include(self, element: _Element, path: Path, scope: _Scope) -> None:
        file = Path(self._value(element, 'file', path, scope)).absolute()
        inner = scope.copy()
        for arg in element.children:
            if self._enabled(arg, path, scope):
                inner.configs[self._value(arg, 'name', path, scope)] = self._value(
                    arg, 'value', path, scope
                )
        if self._include_depth > 20:
            raise LaunchError(f'{self._where(element, path)}: includes nested too deep (cycle?)')
        if not file.is_file():
            raise LaunchError(f'{self._where(element, path)}: included file not found: {file}')
        self._include_depth += 1
        try:
            self.run_file(file, inner)
        finally:
            self._include_depth -= 1

    def _namespace(self, base: str, pushed: str, element: _Element, path: Path) -> str:
        """Join ``pushed`` onto ``base`` like launch_ros: absolute replaces, relative appends."""
        joined = pushed if pushed.startswith('/') else f'{base.rstrip("/")}/{pushed}'
        tokens = [token for token in joined.split('/') if token]
        for token in tokens:
            if not _NAME_TOKEN.fullmatch(token):
                raise LaunchError(f'{self._where(element, path)}: invalid namespace {pushed!r}')
        return '/' + '/'.join(tokens)

    def _node(self, element: _Element, path: Path, scope: _Scope) -> None:
        where = self._where(element, path)
        name = self._value(element, 'name', path, scope) or None
        if name is not None and not _NAME_TOKEN.fullmatch(name):
            raise LaunchError(f'{where}: invalid node name {name!r}')
        namespace = self._namespace(
            scope.namespace, self._value(element, 'namespace', path, scope), element, path
        )
        output = self._value(element, 'output', path, scope, 'screen')
        if output not in _OUTPUTS:
            raise LaunchError(f'{where}: output must be one of {", ".join(_OUTPUTS)}')
        delay_text = self._value(element, 'respawn_delay', path, scope, '0')
        try:
            delay = float(delay_text)
        except ValueError:
            delay = -1.0
        if delay < 0:
            raise LaunchError(f'{where}: respawn_delay must be seconds >= 0, got {delay_text!r}')
        parameters: list[Path | dict[str, ParamValue]] = []
        remaps: list[tuple[str, str]] = []
        env = dict(scope.env)
        for child in element.children:
            if not self._enabled(child, path, scope):
                continue
            if child.tag == 'param':
                self._param(child, path, scope, parameters)
            elif child.tag == 'remap':
                remaps.append(
                    (self._value(child, 'from', path, scope), self._value(child, 'to', path, scope))
                )
            else:
                env[self._value(child, 'name', path, scope)] = self._value(
                    child, 'value', path, scope
                )
        self.nodes.append(
            NodeSpec(
                package=self._value(element, 'pkg', path, scope),
                executable=self._value(element, 'exec', path, scope),
                name=name,
                namespace=namespace,
                parameters=tuple(parameters),
                remaps=tuple(remaps),
                env=env,
                respawn=self._bool(element, 'respawn', path, scope, 'false'),
                respawn_delay=delay,
                output=output,
                args=tuple(shlex.split(self._value(element, 'args', path, scope))),
                source=where,
            )
        )

    def _param(
        self,
        element: _Element,
        path: Path,
        scope: _Scope,
        parameters: list[Path | dict[str, ParamValue]],
    ) -> None:
        where = self._where(element, path)
        if 'from' in element.attrib:
            if {'name', 'value'} & element.attrib.keys():
                raise LaunchError(f'{where}: <param> takes either from= or name= and value=')
            file = Path(self._value(element, 'from', path, scope)).absolute()
            if not file.is_file():
                raise LaunchError(f'{where}: parameters file not found: {file}')
            parameters.append(file)
            return
        if not {'name', 'value'} <= element.attrib.keys():
            raise LaunchError(f'{where}: <param> needs from= or both name= and value=')
        name = self._value(element, 'name', path, scope)
        value = _typed(self._value(element, 'value', path, scope))
        last = parameters[-1] if parameters else None
        if not isinstance(last, dict):
            last = {}
            parameters.append(last)
        last[name] = value


def _typed(text: str) -> ParamValue:
    """Type a parameter value like launch_ros: YAML scalars (or lists of them), else the string."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    scalar = (bool, int, float, str)
    if isinstance(value, scalar):
        return value
    if isinstance(value, list) and value and all(isinstance(v, scalar) for v in value):
        return value
    return text
