"""Validation of what clients send the scheduler (pure; raises :class:`Rejected`).

Slot and flavor names are case-insensitive and surrounding whitespace is ignored (``' a1 '`` is
``A1``, ``'choco'`` is ``CHOCO``); anything else that is not exactly one of the allowed names in
ASCII is refused, and the refusal quotes at most a few dozen characters of the input
(:func:`stf_nodes.validation.quote`). Priorities are int32. Free text coming from the node
(step names, failure reasons) is never refused: :func:`clean_text` makes it storable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from stf_nodes.scheduler.records import CommandStatus, Rejected
from stf_nodes.storage.models import ID_LEN, KEY_LEN
from stf_nodes.validation import QUOTED, quote
from stf_nodes.workpieces import FLAVORS

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
_ID_PATTERN = re.compile(rf'[A-Za-z0-9][A-Za-z0-9_.:-]{{0,{ID_LEN - 1}}}')
_CONTROL = re.compile(r'[\x00-\x1f\x7f]')


def parse_name(value: object, allowed: Sequence[str], what: str, *, required: bool) -> str:
    """One of ``allowed`` (any case, surrounding whitespace ignored); '' if not ``required``."""
    if not isinstance(value, str):
        raise Rejected(f'{what} must be a string, got {type(value).__name__}')
    # Long inputs are refused unread: nothing below should ever work on megabytes.
    text = value.strip() if len(value) <= QUOTED else None
    if text == '':
        if not required:
            return ''
        raise Rejected(f'a {what} is required: one of {", ".join(allowed)}')
    if text is not None and text.isascii() and text.upper() in allowed:
        return text.upper()
    raise Rejected(f'unknown {what} {quote(value)}: expected one of {", ".join(allowed)}')


_REQUEST_KEY = re.compile(rf'[A-Za-z0-9:._/-]{{0,{KEY_LEN}}}')


def parse_request_key(value: object) -> str:
    """A client's key of a request: empty, or up to KEY_LEN letters, digits and ``:._/-``
    (nothing a database could compare loosely: no spaces, case kept)."""
    if not isinstance(value, str):
        raise Rejected(f'request_key must be a string, got {type(value).__name__}')
    if not _REQUEST_KEY.fullmatch(value):
        raise Rejected(
            f'invalid request_key {quote(value)}: up to {KEY_LEN} letters, digits and :._/-'
        )
    return value


def parse_slot(value: object, slots: Sequence[str], *, required: bool) -> str:
    """Normalise a slot name of the rack (``' a1 '`` -> ``'A1'``); empty allowed unless
    ``required``. ``slots``: the rack's slots (empty: the inventory is not initialised)."""
    if not slots:
        raise Rejected('the inventory is not initialised yet')
    return parse_name(value, slots, 'slot', required=required)


def parse_flavor(value: object, *, required: bool) -> str:
    """Normalise a flavor name (``'choco'`` -> ``'CHOCO'``); empty allowed unless required."""
    return parse_name(value, FLAVORS, 'flavor', required=required)


def parse_priority(value: object) -> int:
    """An int32 priority (higher runs first)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise Rejected(f'priority must be an integer, got {quote(value)}')
    if not INT32_MIN <= value <= INT32_MAX:
        raise Rejected(f'priority {value} is outside the int32 range')
    return value


def parse_command_id(value: object) -> int:
    """A positive command id."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise Rejected(f'command id must be a positive integer, got {quote(value)}')
    return value


def parse_workpiece_id(value: object) -> str:
    """A workpiece/carrier id: empty, or 1..32 ASCII letters, digits and ``_.:-``."""
    if not isinstance(value, str):
        raise Rejected(f'workpiece id must be a string, got {type(value).__name__}')
    if value and not _ID_PATTERN.fullmatch(value):
        raise Rejected(
            f'invalid id {quote(value)}: up to {ID_LEN} ASCII letters, digits, "_", ".", ":", "-"'
        )
    return value


def parse_status(value: object) -> CommandStatus | None:
    """A CommandStatus, its name (any case), or empty/None for "any"."""
    if value is None or value == '':
        return None
    if isinstance(value, CommandStatus):
        return value
    names = [status.name for status in CommandStatus]
    return CommandStatus[parse_name(value, names, 'status', required=True)]


def parse_limit(value: object) -> int:
    """A non-negative list limit (0: no limit)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise Rejected(f'limit must be a non-negative integer, got {quote(value)}')
    return value


def clean_text(value: object, limit: int) -> str:
    """Free text made storable everywhere: control characters (PostgreSQL refuses NUL) and lone
    surrogates replaced, cut to ``limit`` characters."""
    text = str(value)[: limit * 2]
    text = text.encode('utf-8', 'replace').decode('utf-8')
    text = _CONTROL.sub(' ', text)
    return text if len(text) <= limit else text[: limit - 3] + '...'
