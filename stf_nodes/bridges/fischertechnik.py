"""The fischertechnik Training Factory MQTT dialect: payloads in and out, pure (no transport).

What real factories and their dashboards speak (fischertechnik ``txt_training_factory``,
``TxtSmartFactoryLib/doc/MqttInterface.md``; see ``FACTORY.md``). Every payload is a JSON
object with ``"ts"``, ISO-8601 UTC with milliseconds (``2022-07-01T10:59:45.758Z``):

- ``f/i/state/<station>``: ``{"ts","station","code","description","active","target"}``, codes
  0 off, 1 ready, 2 busy, 3 wait-ready, 4 error, 6 wait-error, 7 calibrating (the station
  state constants of ``HbwState`` & co. use the same numbers).
- ``f/i/stock``: ``{"ts","stockItems":[{"workpiece":{"id","type","state"}|null,"location"}]}``;
  some firmware writes an empty slot as ``{"id":"0","type":"","state":""}``.
- ``f/i/order``: ``{"ts","state","type"}``, state ``WAITING_FOR_ORDER|ORDERED|IN_PROCESS|
  SHIPPED``. The twin adds ``FAILED``, ``CANCELLED`` and ``REFUSED`` (with ``"message"``),
  and ``"commandId"``: extra fields that dashboards ignore.
- ``f/o/order`` ``{"ts","type"}`` (``ts`` optional: ``mosquitto_pub -m '{"type":"RED"}'``
  works) and ``f/o/state/ack`` ``{"ts"}``, into the factory.

Colours and states map to the twin's flavors and workpiece statuses through a
:class:`Dialect` (defaults ``STRAWBERRY``↔``RED``, ``VANILLA``↔``WHITE``, ``CHOCO``↔``BLUE``,
``RAW_DOUGH``↔``RAW``, ``BAKED``↔``PROCESSED``; configurable). Parsing raises
:class:`BadInputError` with a *kind* (``MALFORMED_JSON``, ``INVALID_FIELD``, ``UNKNOWN_COLOUR``,
...) that the bridge counts and reports; nothing here logs or publishes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

#: Station state codes of the dialect (and of HbwState/VgrState/ConveyorState).
CODE_OFF, CODE_READY, CODE_BUSY, CODE_WAIT_READY, CODE_ERROR = 0, 1, 2, 3, 4
CODE_WAIT_ERROR, CODE_CALIBRATING = 6, 7
CODE_NAMES = {
    CODE_OFF: 'off',
    CODE_READY: 'ready',
    CODE_BUSY: 'busy',
    CODE_WAIT_READY: 'wait ready',
    CODE_ERROR: 'error',
    CODE_WAIT_ERROR: 'wait error',
    CODE_CALIBRATING: 'calibrating',
}
#: Order states of the dialect, then the twin's additions.
WAITING_FOR_ORDER, ORDERED, IN_PROCESS, SHIPPED = (
    'WAITING_FOR_ORDER',
    'ORDERED',
    'IN_PROCESS',
    'SHIPPED',
)
FAILED, CANCELLED, REFUSED = 'FAILED', 'CANCELLED', 'REFUSED'
ORDER_STATES = (WAITING_FOR_ORDER, ORDERED, IN_PROCESS, SHIPPED, FAILED, CANCELLED, REFUSED)
#: Stations that publish ``f/i/state/<station>`` on a real factory.
STATIONS = ('hbw', 'vgr', 'mpo', 'sld', 'dsi', 'dso')

# Kinds of bad input (counted, logged once, reported as alerts by the bridge).
MALFORMED_JSON = 'MALFORMED_JSON'
INVALID_FIELD = 'INVALID_FIELD'
UNKNOWN_COLOUR = 'UNKNOWN_COLOUR'
OVERSIZED = 'OVERSIZED'
UNEXPECTED_TOPIC = 'UNEXPECTED_TOPIC'
RETAINED_ORDER = 'RETAINED_ORDER'
RATE_LIMITED = 'RATE_LIMITED'


class BadInputError(ValueError):
    """A payload the dialect cannot accept; ``kind`` names the class of mistake."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def format_ts(unix_ns: int) -> str:
    """``2022-07-01T10:59:45.758Z`` (UTC, milliseconds) for nanoseconds since the epoch."""
    moment = datetime.fromtimestamp(unix_ns // 1_000_000 / 1000, timezone.utc)
    return moment.strftime('%Y-%m-%dT%H:%M:%S.') + f'{moment.microsecond // 1000:03d}Z'


def parse_ts(text: Any) -> int:
    """Nanoseconds since the epoch of an ISO-8601 time (``Z`` or an offset; naive = UTC)."""
    if not isinstance(text, str) or not text:
        raise BadInputError(
            INVALID_FIELD, f'"ts" must be an ISO-8601 time string, got {text!r:.60}'
        )
    try:
        moment = datetime.fromisoformat(text.replace('Z', '+00:00').replace('z', '+00:00'))
    except ValueError:
        raise BadInputError(INVALID_FIELD, f'"ts" is not an ISO-8601 time: {text!r:.60}') from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    whole = moment.replace(microsecond=0)
    return round(whole.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def dumps(payload: Mapping[str, Any]) -> bytes:
    """Compact JSON; non-finite numbers become null (JSON has no NaN)."""
    return json.dumps(_finite(payload), separators=(',', ':'), ensure_ascii=False).encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def loads_object(payload: bytes) -> dict[str, Any]:
    """The JSON object of a payload, or BadInputError(MALFORMED_JSON / INVALID_FIELD)."""
    try:
        data = json.loads(payload.decode('utf-8'))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadInputError(MALFORMED_JSON, f'not valid JSON: {exc}'[:200]) from None
    if not isinstance(data, dict):
        raise BadInputError(INVALID_FIELD, f'expected a JSON object, got {type(data).__name__}')
    return data


def _string(data: Mapping[str, Any], key: str, *, required: bool = True) -> str:
    value = data.get(key)
    if value is None and not required:
        return ''
    if not isinstance(value, str):
        shown = 'missing' if key not in data else f'{type(value).__name__} {value!r:.40}'
        raise BadInputError(INVALID_FIELD, f'"{key}" must be a string, got {shown}')
    return value


def _code(data: Mapping[str, Any]) -> int:
    value = data.get('code')
    if isinstance(value, bool) or not isinstance(value, int) or value not in CODE_NAMES:
        raise BadInputError(
            INVALID_FIELD, f'"code" must be one of {sorted(CODE_NAMES)}, got {value!r:.40}'
        )
    return value


def _optional_ts(data: Mapping[str, Any]) -> int | None:
    return None if data.get('ts') is None else parse_ts(data['ts'])


@dataclass(frozen=True)
class StationStatus:
    """The content of an ``f/i/state/<station>`` message (without its ``ts``)."""

    station: str
    code: int
    description: str = ''
    active: int = 0
    target: str = ''

    def payload(self, unix_ns: int) -> bytes:
        return dumps(
            {
                'ts': format_ts(unix_ns),
                'station': self.station,
                'code': self.code,
                'description': self.description,
                'active': self.active,
                'target': self.target,
            }
        )


@dataclass(frozen=True)
class StockItem:
    """One rack location; ``workpiece_id`` empty means no workpiece."""

    location: str
    workpiece_id: str = ''
    flavor: str = ''
    status: str = ''  # the twin's status name, e.g. RAW_DOUGH


@dataclass(frozen=True)
class OrderUpdate:
    """An ``f/i/order`` message: the order life cycle as the dialect shows it."""

    state: str
    colour: str = ''
    command_id: int = 0
    message: str = ''
    ts_ns: int | None = None


@dataclass(frozen=True)
class Order:
    """An ``f/o/order`` request: one workpiece of ``colour`` (= ``flavor`` in the twin)."""

    colour: str
    flavor: str
    ts: str  # as sent (the duplicate key), '' when absent


@dataclass(frozen=True, kw_only=True)
class Dialect:
    """Colour and state names of the dialect, both ways (see the module docstring).

    ``colours`` maps twin flavors to colours, ``states`` twin workpiece statuses to dialect
    states; each mapping must be one to one. Statuses without a mapping are shown by name.
    """

    colours: Mapping[str, str] = field(
        default_factory=lambda: {'STRAWBERRY': 'RED', 'VANILLA': 'WHITE', 'CHOCO': 'BLUE'}
    )
    states: Mapping[str, str] = field(
        default_factory=lambda: {'RAW_DOUGH': 'RAW', 'BAKED': 'PROCESSED'}
    )

    def __post_init__(self) -> None:
        for name, mapping in (('colours', self.colours), ('states', self.states)):
            if len(set(mapping.values())) != len(mapping) or not all(
                key and value for key, value in mapping.items()
            ):
                raise ValueError(f'{name} mapping must be one to one and non-empty: {mapping}')

    @classmethod
    def from_pairs(cls, colours: Sequence[str], states: Sequence[str]) -> Dialect:
        """From parameter lists of ``TWIN:DIALECT`` pairs (``'STRAWBERRY:RED'``)."""
        return cls(colours=_pairs(colours, 'colours'), states=_pairs(states, 'states'))

    # -- twin → dialect ---------------------------------------------------------------------

    def colour_of(self, flavor: str) -> str:
        return self.colours.get(flavor, flavor)

    def state_of(self, status: str) -> str:
        return self.states.get(status, status)

    def stock_payload(self, items: Sequence[StockItem], unix_ns: int) -> bytes:
        return dumps(
            {
                'ts': format_ts(unix_ns),
                'stockItems': [
                    {
                        'workpiece': {
                            'id': item.workpiece_id,
                            'type': self.colour_of(item.flavor),
                            'state': self.state_of(item.status),
                        }
                        if item.workpiece_id
                        else None,
                        'location': item.location,
                    }
                    for item in items
                ],
            }
        )

    def order_payload(self, update: OrderUpdate, unix_ns: int) -> bytes:
        payload: dict[str, Any] = {
            'ts': format_ts(unix_ns),
            'state': update.state,
            'type': update.colour,
        }
        if update.command_id:
            payload['commandId'] = update.command_id
        if update.message:
            payload['message'] = update.message
        return dumps(payload)

    # -- dialect → twin ---------------------------------------------------------------------

    def flavor_of(self, colour: Any) -> str:
        """The twin flavor of a colour; BadInputError(UNKNOWN_COLOUR) when there is none."""
        if not isinstance(colour, str):
            raise BadInputError(
                INVALID_FIELD, f'"type" must be a colour string, got {colour!r:.40}'
            )
        for flavor, known in self.colours.items():
            if known == colour.upper():
                return flavor
        raise BadInputError(
            UNKNOWN_COLOUR,
            f'unknown colour {colour!r:.40}; known: {", ".join(self.colours.values())}',
        )

    def status_of(self, state: str) -> str:
        """The twin status name of a dialect workpiece state ('' stays '')."""
        for status, known in self.states.items():
            if known == state.upper():
                return status
        return state.upper()

    def parse_order(self, payload: bytes) -> Order:
        data = loads_object(payload)
        ts = data.get('ts')
        if ts is not None:
            parse_ts(ts)  # validated, kept as sent: it is the order's duplicate key
        colour = data.get('type')
        flavor = self.flavor_of(colour)
        return Order(colour=str(colour).upper(), flavor=flavor, ts=ts or '')

    def parse_ack(self, payload: bytes) -> int | None:
        """The ``ts`` of an ``f/o/state/ack`` (None when absent)."""
        return _optional_ts(loads_object(payload))

    def parse_state(self, station: str, payload: bytes) -> tuple[StationStatus, int | None]:
        """An ``f/i/state/<station>`` message and its ``ts`` (mirror mode)."""
        data = loads_object(payload)
        active = data.get('active', 0)
        if isinstance(active, bool):
            active = int(active)
        if not isinstance(active, int):
            raise BadInputError(INVALID_FIELD, f'"active" must be 0 or 1, got {active!r:.40}')
        status = StationStatus(
            station=_string(data, 'station', required=False) or station,
            code=_code(data),
            description=_string(data, 'description', required=False),
            active=active,
            target=_string(data, 'target', required=False),
        )
        return status, _optional_ts(data)

    def parse_stock(self, payload: bytes) -> tuple[list[StockItem], int | None]:
        """The rack of an ``f/i/stock`` message and its ``ts`` (mirror mode)."""
        data = loads_object(payload)
        entries = data.get('stockItems')
        if not isinstance(entries, list):
            raise BadInputError(INVALID_FIELD, '"stockItems" must be a list')
        items = []
        for entry in entries:
            if not isinstance(entry, dict):
                raise BadInputError(INVALID_FIELD, 'each stock item must be an object')
            location = _string(entry, 'location')
            workpiece = entry.get('workpiece')
            if workpiece is None:
                items.append(StockItem(location=location))
                continue
            if not isinstance(workpiece, dict):
                raise BadInputError(INVALID_FIELD, f'"workpiece" of {location} must be an object')
            workpiece_id = _string(workpiece, 'id', required=False)
            colour = _string(workpiece, 'type', required=False)
            if workpiece_id in ('', '0') and not colour:  # firmware's way to say "empty"
                items.append(StockItem(location=location))
                continue
            items.append(
                StockItem(
                    location=location,
                    workpiece_id=workpiece_id or f'{location}-{colour.lower()}',
                    flavor=self.flavor_of(colour),
                    status=self.status_of(_string(workpiece, 'state', required=False)),
                )
            )
        return items, _optional_ts(data)

    def parse_order_update(self, payload: bytes) -> OrderUpdate:
        """An ``f/i/order`` message (mirror mode)."""
        data = loads_object(payload)
        state = _string(data, 'state')
        if state not in ORDER_STATES:
            raise BadInputError(
                INVALID_FIELD, f'"state" must be one of {", ".join(ORDER_STATES)}, got {state!r}'
            )
        colour = data.get('type') or ''
        if colour:
            self.flavor_of(colour)
        return OrderUpdate(state=state, colour=str(colour).upper(), ts_ns=_optional_ts(data))


def _pairs(pairs: Sequence[str], name: str) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        twin, separator, dialect = pair.partition(':')
        if not separator or not twin.strip() or not dialect.strip():
            raise ValueError(
                f'{name}: expected TWIN:DIALECT pairs like STRAWBERRY:RED, got {pair!r}'
            )
        mapping[twin.strip().upper()] = dialect.strip().upper()
    return mapping
