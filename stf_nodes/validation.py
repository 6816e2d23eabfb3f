"""Checks every service handler applies to requests from the network before acting on them.

Anything on the graph can call a service: a CLI, a bridge, a foreign Zenoh peer. A request
that decoded as valid CDR can still hold values no handler should act on:

- non-finite numbers (NaN, ±infinity): they compare false with every limit, so a range check
  lets them through, and one NaN integrated into a motor's temperature poisons it for good;
- huge strings: a refusal that echoes a 1 MB fault name back is an amplifier.

:func:`request_problem` finds the first such field (by its path, e.g. ``magnitude``) so the
handler can refuse the whole request before any state is touched; :func:`quote` is how a
refusal cites what it refused: a short, printable prefix.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

#: Longest string accepted in a request field of the factory's services (names, slots,
#: verbs, ids); longer ones are refused unread.
MAX_TEXT = 256

#: Characters of a refused input quoted back to the caller.
QUOTED = 40


def quote(value: object, limit: int = QUOTED) -> str:
    """``repr`` of ``value``, cut to about ``limit`` characters (never megabytes of it)."""
    if isinstance(value, str) and len(value) > limit:
        shown = repr(value[:limit])
        return f'{shown[:-1]}...{shown[-1]} ({len(value)} characters)'
    text = repr(value)
    return text if len(text) <= limit + 10 else text[: limit + 7] + '...'


def request_problem(message: Any, *, max_text: int = MAX_TEXT) -> str | None:
    """Why ``message`` must be refused (a non-finite number or an over-long string, named by
    its field path), or None when every field is acceptable."""
    return _problem(message, '', max_text)


def _problem(value: Any, path: str, max_text: int) -> str | None:
    if hasattr(value, '__msgtype__'):
        for field in dataclasses.fields(value):
            name = f'{path}.{field.name}' if path else field.name
            problem = _problem(getattr(value, field.name), name, max_text)
            if problem:
                return problem
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f'{path} must be a finite number, got {value}'
    if isinstance(value, str):
        if len(value) > max_text:
            return f'{path} is too long ({len(value)} characters; at most {max_text})'
        return None
    if isinstance(value, np.ndarray):
        if value.dtype.kind == 'f' and not np.isfinite(value).all():
            return f'{path} must hold finite numbers only'
        return None
    if isinstance(value, list):
        for index, item in enumerate(value):
            problem = _problem(item, f'{path}[{index}]', max_text)
            if problem:
                return problem
    return None
