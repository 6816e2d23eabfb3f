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
_MAX_SIZE = 10_000  # longest string or sequence an $(eval) may build
_MAX_INT_BITS = 4096  # largest integer (about 1,200 digits) an $(eval) may build
_MAX_EXPRESSION = 10_000  # characters of an $(eval) expression
_MAX_DEPTH = 100  # nesting of an $(eval) expression


def safe_eval(expression: str) -> object:
    """Evaluate a simple Python expression: literals, arithmetic, comparisons, boolean logic.

    The tree is walked here, never passed to :func:`eval`; names, calls, attributes,
    subscripts and string formatting are rejected, and every intermediate result is bounded
    (strings and sequences, integers, nesting depth), so no expression can exhaust memory or
    the stack. Every failure is a LaunchError (the parser adds file and line).
    """
    shown = expression if len(expression) <= 60 else expression[:57] + '...'
    if len(expression) > _MAX_EXPRESSION:
        raise LaunchError(f'$(eval {shown!r}): expression longer than {_MAX_EXPRESSION} characters')
    try:
        tree = ast.parse(expression.strip(), mode='eval')
    except SyntaxError as error:
        raise LaunchError(f'$(eval) syntax error in {shown!r}: {error.msg}') from None
    except (RecursionError, MemoryError):
        raise LaunchError(f'$(eval {shown!r}): nested too deeply') from None
    try:
        return _eval_node(tree.body, shown, 0)
    except (ArithmeticError, TypeError, ValueError) as error:
        raise LaunchError(f'$(eval {shown!r}) failed: {error}') from None
    except (RecursionError, MemoryError):
        raise LaunchError(f'$(eval {shown!r}): nested too deeply') from None


def _eval_node(node: ast.expr, expression: str, depth: int) -> object:
    if depth > _MAX_DEPTH:
        raise LaunchError(f'$(eval {expression!r}): nested deeper than {_MAX_DEPTH} levels')
    depth += 1
    if isinstance(node, ast.Constant):
        return _bounded(node.value, expression)
    if isinstance(node, ast.Tuple | ast.List):
        items = [_eval_node(item, expression, depth) for item in node.elts]
        return _bounded(tuple(items) if isinstance(node, ast.Tuple) else items, expression)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval_node(node.operand, expression, depth))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left = _eval_node(node.left, expression, depth)
        right = _eval_node(node.right, expression, depth)
        _check_operands(node.op, left, right, expression)
        return _bounded(_BINARY[type(node.op)](left, right), expression)
    if isinstance(node, ast.BoolOp):
        is_and = isinstance(node.op, ast.And)
        value: object = is_and
        for item in node.values:
            value = _eval_node(item, expression, depth)
            if bool(value) != is_and:
                break
        return value
    if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        left = _eval_node(node.left, expression, depth)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _eval_node(comparator, expression, depth)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        branch = node.body if _eval_node(node.test, expression, depth) else node.orelse
        return _eval_node(branch, expression, depth)
    what = type(node.ops[0]).__name__ if isinstance(node, ast.Compare) else type(node).__name__
    raise LaunchError(
        f'$(eval {expression!r}): {what} is not allowed '
        '(only literals, arithmetic, comparisons and boolean operators)'
    )


def _check_operands(op: ast.operator, left: object, right: object, expression: str) -> None:
    """Refuse an operation whose result would be too large before it is computed."""
    if isinstance(op, ast.Mod) and isinstance(left, str | bytes):
        raise LaunchError(f'$(eval {expression!r}): string formatting is not allowed')
    huge_power = (
        isinstance(op, ast.Pow)
        and isinstance(left, int)
        and isinstance(right, int)
        and right > 0
        and max(abs(left).bit_length(), 1) * right > _MAX_INT_BITS
    )
    huge_repeat = isinstance(op, ast.Mult) and any(
        isinstance(sequence, str | bytes | list | tuple)
        and isinstance(count, int)
        and len(sequence) * max(count, 0) > _MAX_SIZE
        for sequence, count in ((left, right), (right, left))
    )
    if huge_power or huge_repeat:
        raise LaunchError(f'$(eval {expression!r}): result too large')


def _bounded(value: object, expression: str) -> object:
    too_long = isinstance(value, str | bytes | list | tuple) and len(value) > _MAX_SIZE
    too_wide = isinstance(value, int) and value.bit_length() > _MAX_INT_BITS
    if too_long or too_wide:
        raise LaunchError(f'$(eval {expression!r}): result too large')
    return value
