"""The MQTT bridge's decisions, pure: orders in, order life cycle out, mirror state, incidents.

Nothing here imports a transport; the node (`stf_nodes.mqtt_bridge_node`) feeds messages in
and carries the results out. Times are plain floats (seconds of a monotonic clock) or
nanoseconds since the epoch, passed in by the caller.

**Orders** (:class:`OrderBook`). An ``f/o/order`` is admitted once: a QoS 1 redelivery
(``dup`` set, same packet id) or a repeat with the same ``ts`` and colour within
``dedup_window_s`` is a duplicate. It joins the original's deliveries and is acknowledged
together with it, so an order is acknowledged to the broker only once the scheduler has
answered (accepted: committed as a command; or refused). An order with a ``ts`` goes to the
scheduler with a request key made of the topic, ``ts`` and colour (:func:`request_key`): the
scheduler answers a known key with the command it made, so an order it took while the bridge
died before acknowledging it, delivered again by the broker, does not make a second one. New
orders pass a token bucket (``rate`` per second, ``burst``); over it they are refused with a
reason. Once the scheduler has given a command id, the command's ``stf/commands`` statuses map
to ``f/i/order``: IN_PROGRESS → ``IN_PROCESS``, COMPLETED → ``SHIPPED``, FAILED/CANCELLED →
``FAILED``/``CANCELLED`` (with the reason); when no order is open any more,
``WAITING_FOR_ORDER`` follows. A status that arrives before the service reply (the scheduler
announces PENDING first) is kept and applied when the id is known.

**Incidents** (:class:`Incidents`): bad input of each kind is counted; the first of a kind is
logged and alerted, then at most one summary alert per ``alert_interval_s``.

**Mirror** (:class:`MirrorCommands`, :func:`conveyor_from`): a physical factory's ``f/i/order``
life cycle becomes CommandStatus-shaped events, its ``sld`` and ``mpo`` states one conveyor
(with oven) state.
"""

from __future__ import annotations

import hashlib
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from stf_nodes.bridges.fischertechnik import (
    CANCELLED,
    CODE_BUSY,
    CODE_CALIBRATING,
    CODE_ERROR,
    CODE_NAMES,
    CODE_READY,
    CODE_WAIT_ERROR,
    FAILED,
    IN_PROCESS,
    ORDERED,
    REFUSED,
    SHIPPED,
    WAITING_FOR_ORDER,
    Order,
    OrderUpdate,
    StationStatus,
)

# CommandStatus constants (stf_msgs/msg/CommandStatus), repeated here to keep the core pure.
PENDING, IN_PROGRESS, COMPLETED, COMMAND_FAILED, COMMAND_CANCELLED = 0, 1, 2, 3, 4
_ORDER_STATE_OF = {
    IN_PROGRESS: IN_PROCESS,
    COMPLETED: SHIPPED,
    COMMAND_FAILED: FAILED,
    COMMAND_CANCELLED: CANCELLED,
}
_FINISHED = {COMPLETED, COMMAND_FAILED, COMMAND_CANCELLED}
#: Command statuses kept for ids not (yet) known, e.g. published before the service reply.
KEPT_EARLY_STATUSES = 1024


@dataclass(frozen=True)
class Delivery:
    """One MQTT delivery to acknowledge: the connection it came on and its packet id."""

    generation: int
    mid: int
    qos: int


@dataclass(eq=False)
class OpenOrder:
    """An admitted order: waiting for the scheduler's answer, then following its command."""

    order: Order
    received_s: float
    deliveries: list[Delivery] = field(default_factory=list)
    command_id: int = 0
    answered: bool = False
    in_flight: bool = False  # a ProcessOrder call is under way
    shown: str = ''  # the f/i/order state published last for it


def request_key(topic: str, order: Order) -> str:
    """The ProcessOrder ``request_key`` of ``order`` received on ``topic``: '' without a ``ts``
    (nothing tells a repeat from a new order then), else a digest (the ``ts`` is the sender's
    text: it never reaches the database as it is)."""
    if not order.ts:
        return ''
    digest = hashlib.sha256(f'{topic}\n{order.ts}\n{order.colour}'.encode()).hexdigest()
    return f'mqtt:{digest[:40]}'


@dataclass(frozen=True)
class Admission:
    """The verdict on an incoming order.

    ``order`` is the open order it belongs to (new or the original of a duplicate), None when
    refused; ``ack_now`` lists deliveries to acknowledge at once (a duplicate of an order that
    was already answered, or a refused one); ``refusal`` is the f/i/order update to publish.
    """

    status: str  # 'new', 'duplicate' or 'refused'
    order: OpenOrder | None = None
    ack_now: tuple[Delivery, ...] = ()
    refusal: OrderUpdate | None = None


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; each admitted order takes one."""

    def __init__(self, *, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f'order rate must be > 0 and burst >= 1 (got {rate}, {burst})')
        self.rate, self.burst = rate, burst
        self._tokens = float(burst)
        self._last_s: float | None = None

    def take(self, now_s: float) -> bool:
        if self._last_s is not None:
            self._tokens = min(self.burst, self._tokens + (now_s - self._last_s) * self.rate)
        self._last_s = now_s
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class OrderBook:
    """Orders from MQTT to scheduler commands and back (see the module docstring)."""

    def __init__(self, *, dedup_window_s: float, rate: float, burst: int) -> None:
        self.dedup_window_s = dedup_window_s
        self._bucket = TokenBucket(rate=rate, burst=burst)
        self._seen: OrderedDict[str, tuple[float, OpenOrder]] = OrderedDict()
        self._by_command: dict[int, OpenOrder] = {}
        self._early: OrderedDict[int, tuple[int, str]] = OrderedDict()
        self.waiting: list[OpenOrder] = []  # admitted, not yet answered by the scheduler
        self.counts: Counter[str] = Counter()

    @property
    def open_orders(self) -> int:
        return len(self.waiting) + len(self._by_command)

    def _expire(self, now_s: float) -> None:
        while self._seen:
            key, (expires_s, _) = next(iter(self._seen.items()))
            if expires_s > now_s:
                return
            del self._seen[key]

    def admit(
        self, order: Order, delivery: Delivery | None, *, dup: bool, now_s: float
    ) -> Admission:
        """Admit, de-duplicate or refuse an order (``delivery`` None for QoS 0)."""
        self._expire(now_s)
        keys = []
        if order.ts:
            keys.append(f'ts:{order.ts}:{order.colour}')
        if delivery is not None:
            keys.append(f'mid:{delivery.mid}')
        # Only a delivery flagged dup is matched by packet id: ids are reused for new messages.
        candidates = keys if dup else [key for key in keys if key.startswith('ts:')]
        for key in candidates:
            seen = self._seen.get(key)
            if seen is None:
                continue
            original = seen[1]
            self.counts['duplicates'] += 1
            deliveries = (delivery,) if delivery is not None else ()
            if original.answered:
                return Admission('duplicate', original, ack_now=deliveries)
            original.deliveries.extend(deliveries)
            return Admission('duplicate', original)
        if not self._bucket.take(now_s):
            self.counts['rate_limited'] += 1
            message = (
                f'rate limit: at most {self._bucket.rate:g} orders per second '
                f'(bursts of {self._bucket.burst}); order refused, send it again later'
            )
            return Admission(
                'refused',
                ack_now=(delivery,) if delivery is not None else (),
                refusal=OrderUpdate(REFUSED, order.colour, message=message),
            )
        opened = OpenOrder(order=order, received_s=now_s, deliveries=[delivery] if delivery else [])
        for key in keys:
            self._seen[key] = (now_s + self.dedup_window_s, opened)
        self.waiting.append(opened)
        self.counts['admitted'] += 1
        return Admission('new', opened)

    def _answer(self, opened: OpenOrder) -> tuple[Delivery, ...]:
        opened.answered = True
        if opened in self.waiting:
            self.waiting.remove(opened)
        deliveries, opened.deliveries = tuple(opened.deliveries), []
        return deliveries

    def accepted(
        self, opened: OpenOrder, command_id: int
    ) -> tuple[tuple[Delivery, ...], list[OrderUpdate]]:
        """The scheduler accepted: deliveries to acknowledge and f/i/order updates."""
        deliveries = self._answer(opened)
        opened.command_id = command_id
        opened.shown = ORDERED
        self._by_command[command_id] = opened
        self.counts['accepted'] += 1
        updates = [OrderUpdate(ORDERED, opened.order.colour, command_id=command_id)]
        early = self._early.pop(command_id, None)
        if early is not None:
            updates += self.on_command(command_id, *early)
        return deliveries, updates

    def refused(
        self, opened: OpenOrder, message: str, *, state: str = REFUSED
    ) -> tuple[tuple[Delivery, ...], list[OrderUpdate]]:
        """The scheduler refused (or could not be asked): acknowledge and tell why."""
        deliveries = self._answer(opened)
        self.counts['refused'] += 1
        updates = [OrderUpdate(state, opened.order.colour, message=message)]
        if not self.open_orders:
            updates.append(OrderUpdate(WAITING_FOR_ORDER))
        return deliveries, updates

    def on_command(self, command_id: int, status: int, message: str) -> list[OrderUpdate]:
        """A ``stf/commands`` status: the f/i/order updates it causes (often none)."""
        opened = self._by_command.get(command_id)
        if opened is None:
            self._early[command_id] = (status, message)
            while len(self._early) > KEPT_EARLY_STATUSES:
                self._early.popitem(last=False)
            return []
        state = _ORDER_STATE_OF.get(status)
        if state is None or state == opened.shown:  # each step of a command is a new status
            return []
        opened.shown = state
        update = OrderUpdate(
            state,
            opened.order.colour,
            command_id=command_id,
            message=message if status in (COMMAND_FAILED, COMMAND_CANCELLED) else '',
        )
        if status not in _FINISHED:
            return [update]
        del self._by_command[command_id]
        self.counts['completed' if status == COMPLETED else 'failed'] += 1
        if self.open_orders:
            return [update]
        return [update, OrderUpdate(WAITING_FOR_ORDER)]

    def lost_connection(self) -> None:
        """Deliveries of a closed connection cannot be acknowledged: the broker resends them
        (flagged dup, same packet id), and :meth:`admit` attaches them again."""
        for opened in self.waiting:
            opened.deliveries.clear()


# -- twin stations → dialect states -----------------------------------------------------------


def _status(station: str, code: int, task: str, target: str = '') -> StationStatus:
    active = 1 if code in (CODE_BUSY, CODE_CALIBRATING) else 0
    description = task if task and active else CODE_NAMES.get(code, str(code))
    return StationStatus(station, code, description, active, target)


def station_status(station: str, code: int, task: str) -> StationStatus:
    """``f/i/state/hbw`` or ``vgr`` from a station's state code and running task verb."""
    return _status(station, code, task)


def conveyor_statuses(code: int, task: str, oven_busy: bool) -> tuple[StationStatus, ...]:
    """``sld`` (the belt) and ``mpo`` (the oven/process station) from one ConveyorState."""
    baking = task == 'bake' or oven_busy
    if code in (CODE_ERROR, CODE_WAIT_ERROR):
        belt_code = oven_code = code
    else:
        belt_code = code if task and task != 'bake' else CODE_READY
        oven_code = CODE_BUSY if baking else CODE_READY
    return (
        _status('sld', belt_code, task if task != 'bake' else ''),
        _status('mpo', oven_code, 'bake' if baking else ''),
    )


# -- mirror: a physical factory's messages → twin state -------------------------------------


def conveyor_from(sld: StationStatus | None, mpo: StationStatus | None) -> tuple[int, str, bool]:
    """(state code, task, oven busy) of the twin's conveyor from the belt and oven states."""
    codes = [s.code for s in (sld, mpo) if s is not None]
    if not codes:
        return CODE_READY, '', False
    errors = [c for c in codes if c in (CODE_ERROR, CODE_WAIT_ERROR)]
    busy = [s for s in (sld, mpo) if s is not None and s.code in (CODE_BUSY, CODE_CALIBRATING)]
    code = errors[0] if errors else (busy[0].code if busy else codes[0])
    oven_busy = mpo is not None and mpo.code == CODE_BUSY
    task = ''
    if busy:
        task = busy[0].description or ('bake' if busy[0] is mpo else 'transport')
    return code, task, oven_busy


@dataclass(frozen=True)
class CommandEvent:
    """A mirrored command transition (the fields of CommandStatus the mirror knows)."""

    command_id: int
    status: int
    colour: str
    message: str
    created_ns: int
    started_ns: int = 0
    finished_ns: int = 0


class MirrorCommands:
    """A physical factory's ``f/i/order`` life cycle as PROCESS commands.

    ORDERED opens a command whose id is the order's ``ts`` in milliseconds (stable when the
    same message is received again, distinct across runs); IN_PROCESS → IN_PROGRESS,
    SHIPPED → COMPLETED, FAILED/CANCELLED likewise. A repeated state is not an event.
    """

    def __init__(self) -> None:
        self._current: CommandEvent | None = None

    def update(self, update: OrderUpdate, now_ns: int) -> CommandEvent | None:
        at_ns = update.ts_ns if update.ts_ns is not None else now_ns
        current = self._current
        if update.state == ORDERED:
            command_id = max(at_ns // 1_000_000, 1)
            if current is not None and current.command_id == command_id:
                return None
            self._current = CommandEvent(command_id, PENDING, update.colour, 'ordered', at_ns)
            return self._current
        status = {
            IN_PROCESS: IN_PROGRESS,
            SHIPPED: COMPLETED,
            FAILED: COMMAND_FAILED,
            CANCELLED: COMMAND_CANCELLED,
        }.get(update.state)
        if current is None or status is None or current.status in _FINISHED:
            return None
        if status == current.status:
            return None
        self._current = CommandEvent(
            current.command_id,
            status,
            current.colour or update.colour,
            update.message or update.state.lower().replace('_', ' '),
            current.created_ns,
            started_ns=at_ns if status == IN_PROGRESS else current.started_ns or at_ns,
            finished_ns=at_ns if status in _FINISHED else 0,
        )
        return self._current


# -- incidents --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    """What to report about an incident: ``first`` → log and alert; else a summary alert."""

    kind: str
    first: bool
    count: int  # total of this kind so far
    since_last: int  # incidents since the previous notice of this kind
    detail: str


class Incidents:
    """Counts bad input by kind and decides when to report it (see the module docstring)."""

    def __init__(self, *, alert_interval_s: float) -> None:
        self.alert_interval_s = alert_interval_s
        self.counts: Counter[str] = Counter()
        self._last_notice: dict[str, tuple[float, int]] = {}

    def record(self, kind: str, detail: str, now_s: float) -> Notice | None:
        self.counts[kind] += 1
        count = self.counts[kind]
        last = self._last_notice.get(kind)
        if last is None:
            self._last_notice[kind] = (now_s, count)
            return Notice(kind, True, count, 1, detail)
        if now_s - last[0] < self.alert_interval_s:
            return None
        self._last_notice[kind] = (now_s, count)
        return Notice(kind, False, count, count - last[1], detail)
