"""Substitutions of ROS 2 launch XML: ``$(var)``, ``$(env)``, ``$(find-pkg-share)``, ``$(eval)``.

Text is parsed into parts (plain strings and :class:`Call` objects whose arguments are parts
again, so substitutions nest: ``$(eval '$(var count) >= 3')``), then evaluated against a
:class:`Context`. Arguments are separated by blanks; single or double quotes group an
argument and may contain nested substitutions, as in the ROS 2 launch grammar.
``$(dirname)`` and ``$(filename)`` (the current launch file) are supported as well, so launch
files can include siblings the same way under ``stf launch`` and ``ros2 launch``.
"""

from __future__ import annotations

import ast
import operator
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from stf_nodes.launcher.model import LaunchError

PACKAGE = 'stf_digital_twin'

# Source checkout root (holds package.xml, launch/ and config/) for an uninstalled package.
_CHECKOUT_ROOT = Path(__file__).resolve().parents[2]

_COMMAND = re.compile(r'[A-Za-z_][\w-]*')
_BLANKS = ' \t\r\n'

# Minimum and maximum argument count of each supported substitution.
_ARITY = {
    'var': (1, 1),
    'env': (1, 2),
    'find-pkg-share': (1, 1),
    'eval': (1, 1),
    'dirname': (0, 0),
    'filename': (0, 0),
}


@dataclass(frozen=True, kw_only=True)
class Call:
    """One ``$(command arg ...)`` substitution; each argument is a tuple of parts."""

    command: str
    args: tuple[tuple[Part, ...], ...]


Part = str | Call


@dataclass(frozen=True, kw_only=True)
class Context:
    """What substitutions read: launch configurations, environment and the current file."""

    configs: Mapping[str, str]
    env: Mapping[str, str]
    filename: Path


def parse(text: str) -> tuple[Part, ...]:
    """Parse ``text`` into literal strings and substitution calls."""
    return tuple(_fragments(text, 0, '')[0])


def substitute(text: str, context: Context) -> str:
    """Parse and evaluate ``text``."""
    return evaluate(parse(text), context)


def evaluate(parts: tuple[Part, ...], context: Context) -> str:
    """Evaluate parsed parts to a string."""
    return ''.join(part if isinstance(part, str) else _call(part, context) for part in parts)


def _fragments(text: str, pos: int, stops: str) -> tuple[list[Part], int]:
    """Read literals and substitutions from ``pos`` up to one of ``stops`` (or the end)."""
    parts: list[Part] = []
    literal: list[str] = []
    while pos < len(text):
        if text.startswith('$(', pos):
            if literal:
                parts.append(''.join(literal))
                literal = []
            call, pos = _parse_call(text, pos + 2)
            parts.append(call)
        elif text[pos] in stops:
            break
        else:
            literal.append(text[pos])
            pos += 1
    if literal:
        parts.append(''.join(literal))
    return parts, pos


def _parse_call(text: str, pos: int) -> tuple[Call, int]:
    """Read ``command args...)`` after a ``$(``; returns the call and the position after ``)``."""
    match = _COMMAND.match(text, pos)
    if match is None:
        raise LaunchError(f'expected a substitution name after "$(" in {text!r}')
    pos = match.end()
    args: list[tuple[Part, ...]] = []
    while True:
        while pos < len(text) and text[pos] in _BLANKS:
            pos += 1
        if pos >= len(text):
            raise LaunchError(f'unterminated substitution "$({match.group()}" in {text!r}')
        if text[pos] == ')':
            return Call(command=match.group(), args=tuple(args)), pos + 1
        arg: list[Part] = []
        while pos < len(text) and text[pos] not in _BLANKS + ')':
            if text[pos] in '\'"':
                quote = text[pos]
                fragment, pos = _fragments(text, pos + 1, quote)
                if pos >= len(text):
                    raise LaunchError(f'unterminated {quote} quote in {text!r}')
                pos += 1
            else:
                fragment, pos = _fragments(text, pos, _BLANKS + ')\'"')
            arg.extend(fragment)
        args.append(tuple(arg))


def _call(call: Call, context: Context) -> str:
    if call.command not in _ARITY:
        raise LaunchError(
            f'unsupported substitution $({call.command} ...) (supported: {", ".join(_ARITY)})'
        )
    low, high = _ARITY[call.command]
    if not low <= len(call.args) <= high:
        raise LaunchError(f'$({call.command}) takes {low}..{high} arguments, got {len(call.args)}')
    args = [evaluate(arg, context) for arg in call.args]
    if call.command == 'var':
        if args[0] not in context.configs:
            known = ', '.join(sorted(context.configs)) or 'none'
            raise LaunchError(f'undefined launch configuration $(var {args[0]}) (known: {known})')
        return context.configs[args[0]]
    if call.command == 'env':
        if args[0] in context.env:
            return context.env[args[0]]
        if len(args) == 2:
            return args[1]
        raise LaunchError(f'environment variable {args[0]} is not set and has no default')
    if call.command == 'find-pkg-share':
        return str(find_pkg_share(args[0]))
    if call.command == 'eval':
        return str(safe_eval(args[0]))
    if call.command == 'dirname':
        return str(context.filename.parent)
    return str(context.filename)


def find_pkg_share(package: str) -> Path:
    """The share directory of ``package``, looked up in the ament resource index like ament does.

    Prefixes searched: ``AMENT_PREFIX_PATH``, then ``sys.prefix``. For ``stf_digital_twin``
    without an installed index entry (e.g. an editable install), the source checkout root,
    which holds ``launch/`` and ``config/``.
    """
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    for prefix in (*prefixes, sys.prefix):
        marker = Path(prefix) / 'share' / 'ament_index' / 'resource_index' / 'packages' / package
        share = Path(prefix) / 'share' / package
        if marker.is_file() and share.is_dir():
            return share
    if package == PACKAGE and (_CHECKOUT_ROOT / 'package.xml').is_file():
        return _CHECKOUT_ROOT
    raise LaunchError(f'package {package!r} not found in the ament index')


_BINARY: dict[type[ast.operator], Callable[[object, object], object]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[object], object]] = {
    ast.Not: operator.not_,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_COMPARE: dict[type[ast.cmpop], Callable[[object, object], object]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: operator.contains(b, a),
    ast.NotIn: lambda a, b: not operator.contains(b, a),
}
_MAX_SIZE = 10_000  # bound on exponents and sequence repetition: no memory bombs from eval


def safe_eval(expression: str) -> object:
    """Evaluate a simple Python expression: literals, arithmetic, comparisons, boolean logic.

    The tree is walked here, never passed to :func:`eval`; names, calls, attributes and
    subscripts are rejected.
    """
    try:
        tree = ast.parse(expression.strip(), mode='eval')
    except SyntaxError as error:
        raise LaunchError(f'$(eval) syntax error in {expression!r}: {error.msg}') from None
    try:
        return _eval_node(tree.body, expression)
    except (ArithmeticError, TypeError, ValueError) as error:
        raise LaunchError(f'$(eval {expression!r}) failed: {error}') from None


def _eval_node(node: ast.expr, expression: str) -> object:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Tuple | ast.List):
        items = [_eval_node(item, expression) for item in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval_node(node.operand, expression))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval_node(node.left, expression), _eval_node(node.right, expression)
        _check_size(node.op, left, right, expression)
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.BoolOp):
        is_and = isinstance(node.op, ast.And)
        value: object = is_and
        for item in node.values:
            value = _eval_node(item, expression)
            if bool(value) != is_and:
                break
        return value
    if isinstance(node, ast.Compare):
        left = _eval_node(node.left, expression)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _eval_node(comparator, expression)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        branch = node.body if _eval_node(node.test, expression) else node.orelse
        return _eval_node(branch, expression)
    raise LaunchError(
        f'$(eval {expression!r}): {type(node).__name__} is not allowed '
        '(only literals, arithmetic, comparisons and boolean operators)'
    )


def _check_size(op: ast.operator, left: object, right: object, expression: str) -> None:
    numbers = [v for v in (left, right) if isinstance(v, int) and not isinstance(v, bool)]
    too_big = (isinstance(op, ast.Pow) and isinstance(right, int | float) and abs(right) > 64) or (
        isinstance(op, ast.Mult)
        and any(isinstance(v, str | list | tuple) for v in (left, right))
        and any(abs(n) > _MAX_SIZE for n in numbers)
    )
    if too_big:
        raise LaunchError(f'$(eval {expression!r}): result too large')
