"""The bridge's pure decisions: duplicates, the rate limit, the order life cycle, mirror state."""

from __future__ import annotations

import re

import pytest

from stf_nodes.bridges import fischertechnik as ft
from stf_nodes.bridges.mqtt_core import (
    COMMAND_FAILED,
    COMPLETED,
    IN_PROGRESS,
    PENDING,
    Delivery,
    Incidents,
    MirrorCommands,
    OrderBook,
    TokenBucket,
    conveyor_from,
    conveyor_statuses,
    request_key,
    station_status,
)

RED = ft.Order(colour='RED', flavor='STRAWBERRY', ts='2024-01-01T00:00:00.000Z')
BLUE = ft.Order(colour='BLUE', flavor='CHOCO', ts='')


def book(**kwargs: float) -> OrderBook:
    settings = {'dedup_window_s': 60.0, 'rate': 100.0, 'burst': 100, **kwargs}
    return OrderBook(**settings)  # type: ignore[arg-type]


def states(updates: list[ft.OrderUpdate]) -> list[str]:
    return [update.state for update in updates]


def test_order_is_acknowledged_when_the_scheduler_answers() -> None:
    orders = book()
    first = Delivery(1, 10, 1)
    admission = orders.admit(RED, first, dup=False, now_s=0.0)
    assert admission.status == 'new' and admission.ack_now == ()
    assert orders.open_orders == 1 and orders.waiting == [admission.order]
    deliveries, updates = orders.accepted(admission.order, 42)
    assert deliveries == (first,)
    assert updates == [ft.OrderUpdate(ft.ORDERED, 'RED', command_id=42)]
    assert states(orders.on_command(42, IN_PROGRESS, '')) == [ft.IN_PROCESS]
    assert orders.on_command(42, IN_PROGRESS, 'next step') == []  # same state: nothing new
    assert states(orders.on_command(42, COMPLETED, 'done')) == [ft.SHIPPED, ft.WAITING_FOR_ORDER]
    assert orders.open_orders == 0


def test_redelivery_joins_a_waiting_order_and_is_acked_with_it() -> None:
    orders = book()
    admission = orders.admit(BLUE, Delivery(1, 7, 1), dup=False, now_s=0.0)
    orders.lost_connection()  # the first delivery cannot be acknowledged any more
    again = orders.admit(BLUE, Delivery(2, 7, 1), dup=True, now_s=1.0)
    assert again.status == 'duplicate' and again.order is admission.order and again.ack_now == ()
    deliveries, _ = orders.accepted(admission.order, 1)
    assert deliveries == (Delivery(2, 7, 1),)
    late = orders.admit(BLUE, Delivery(2, 7, 1), dup=True, now_s=2.0)
    assert late.status == 'duplicate' and late.ack_now == (Delivery(2, 7, 1),)
    assert orders.counts['duplicates'] == 2 and orders.counts['admitted'] == 1


def test_packet_id_only_matches_redeliveries() -> None:
    orders = book()
    orders.admit(BLUE, Delivery(1, 7, 1), dup=False, now_s=0.0)
    # A new message that reuses the packet id (not flagged dup) is a new order.
    assert orders.admit(BLUE, Delivery(1, 7, 1), dup=False, now_s=1.0).status == 'new'


def test_same_ts_and_colour_within_the_window_is_a_duplicate() -> None:
    orders = book(dedup_window_s=10.0)
    orders.admit(RED, None, dup=False, now_s=0.0)
    assert orders.admit(RED, None, dup=False, now_s=5.0).status == 'duplicate'
    other = ft.Order(colour='BLUE', flavor='CHOCO', ts=RED.ts)
    assert orders.admit(other, None, dup=False, now_s=5.0).status == 'new'
    assert orders.admit(RED, None, dup=False, now_s=10.5).status == 'new'  # window over
    assert orders.admit(BLUE, None, dup=False, now_s=11.0).status == 'new'  # no ts: no key


def test_flood_is_rate_limited_with_a_clear_refusal() -> None:
    orders = book(rate=2.0, burst=3)
    verdicts = [orders.admit(BLUE, Delivery(1, i, 1), dup=False, now_s=0.0) for i in range(10)]
    assert [v.status for v in verdicts] == ['new'] * 3 + ['refused'] * 7
    refused = verdicts[-1]
    assert refused.ack_now == (Delivery(1, 9, 1),)  # a refusal is an answer: acknowledged
    assert refused.refusal is not None and refused.refusal.state == ft.REFUSED
    assert (
        'rate limit' in refused.refusal.message and '2 orders per second' in refused.refusal.message
    )
    assert orders.admit(BLUE, None, dup=False, now_s=0.5).status == 'new'  # one token back


def test_status_before_the_reply_is_applied_later() -> None:
    orders = book()
    admission = orders.admit(BLUE, None, dup=False, now_s=0.0)
    assert orders.on_command(5, PENDING, 'queued') == []
    assert orders.on_command(5, IN_PROGRESS, 'started') == []
    _, updates = orders.accepted(admission.order, 5)
    assert states(updates) == [ft.ORDERED, ft.IN_PROCESS]


def test_failure_and_refusal_carry_the_reason() -> None:
    orders = book()
    first = orders.admit(BLUE, None, dup=False, now_s=0.0).order
    second = orders.admit(RED, None, dup=False, now_s=0.0).order
    orders.accepted(first, 1)
    _, updates = orders.refused(second, 'no RAW_DOUGH cookie')
    assert updates == [ft.OrderUpdate(ft.REFUSED, 'RED', message='no RAW_DOUGH cookie')]
    updates = orders.on_command(1, COMMAND_FAILED, 'emergency stop')
    assert updates[0] == ft.OrderUpdate(ft.FAILED, 'BLUE', command_id=1, message='emergency stop')
    assert updates[1].state == ft.WAITING_FOR_ORDER


def test_token_bucket_refills_up_to_the_burst() -> None:
    bucket = TokenBucket(rate=1.0, burst=2)
    assert [bucket.take(0.0) for _ in range(3)] == [True, True, False]
    assert bucket.take(100.0) and bucket.take(100.0) and not bucket.take(100.0)
    with pytest.raises(ValueError):
        TokenBucket(rate=0.0, burst=1)


def test_station_codes_and_descriptions() -> None:
    assert station_status('hbw', 2, 'retrieve') == ft.StationStatus('hbw', 2, 'retrieve', 1)
    assert station_status('vgr', 1, '') == ft.StationStatus('vgr', 1, 'ready', 0)
    assert station_status('hbw', 4, '') == ft.StationStatus('hbw', 4, 'error', 0)
    sld, mpo = conveyor_statuses(2, 'bake', True)
    assert (sld.code, mpo.code, mpo.description, mpo.active) == (1, 2, 'bake', 1)
    sld, mpo = conveyor_statuses(2, 'transport', False)
    assert (sld.code, sld.description, mpo.code) == (2, 'transport', 1)
    sld, mpo = conveyor_statuses(4, '', False)
    assert (sld.code, mpo.code) == (4, 4)


def test_mirror_conveyor_from_belt_and_oven() -> None:
    assert conveyor_from(None, None) == (1, '', False)
    oven = ft.StationStatus('mpo', 2, 'burning', 1)
    belt = ft.StationStatus('sld', 1, 'ready', 0)
    assert conveyor_from(belt, oven) == (2, 'burning', True)
    assert conveyor_from(ft.StationStatus('sld', 4, 'jam', 0), oven)[0] == 4


def test_mirror_commands_follow_the_order_life_cycle() -> None:
    commands = MirrorCommands()
    ordered = commands.update(ft.OrderUpdate(ft.ORDERED, 'RED', ts_ns=5_000_000_000), 0)
    assert ordered is not None and ordered.command_id == 5000 and ordered.status == PENDING
    assert commands.update(ft.OrderUpdate(ft.ORDERED, 'RED', ts_ns=5_000_000_000), 0) is None
    started = commands.update(ft.OrderUpdate(ft.IN_PROCESS, 'RED', ts_ns=6_000_000_000), 0)
    assert started is not None and started.status == IN_PROGRESS
    assert started.started_ns == 6_000_000_000
    assert commands.update(ft.OrderUpdate(ft.IN_PROCESS, 'RED'), 7) is None
    shipped = commands.update(ft.OrderUpdate(ft.SHIPPED, 'RED', ts_ns=9_000_000_000), 0)
    assert shipped is not None and shipped.status == COMPLETED
    assert shipped.finished_ns == 9_000_000_000 and shipped.created_ns == 5_000_000_000
    assert commands.update(ft.OrderUpdate(ft.WAITING_FOR_ORDER), 0) is None


def test_incidents_log_once_then_summarise() -> None:
    incidents = Incidents(alert_interval_s=10.0)
    first = incidents.record('MALFORMED_JSON', 'a', 0.0)
    assert first is not None and first.first and first.count == 1
    assert incidents.record('MALFORMED_JSON', 'b', 1.0) is None
    assert incidents.record('MALFORMED_JSON', 'c', 2.0) is None
    summary = incidents.record('MALFORMED_JSON', 'd', 11.0)
    assert summary is not None and not summary.first
    assert (summary.count, summary.since_last, summary.detail) == (4, 3, 'd')
    assert incidents.record('OVERSIZED', 'x', 11.0).first  # type: ignore[union-attr]


def test_request_key_names_an_order_by_topic_ts_and_colour() -> None:
    key = request_key('f/o/order', RED)
    assert key == request_key('f/o/order', RED) and re.fullmatch(r'mqtt:[0-9a-f]{40}', key)
    assert key != request_key('factory_2/f/o/order', RED)
    assert key != request_key('f/o/order', ft.Order('RED', 'STRAWBERRY', RED.ts + ' '))
    assert key != request_key('f/o/order', ft.Order('BLUE', 'CHOCO', RED.ts))
    assert request_key('f/o/order', ft.Order('RED', 'STRAWBERRY', '')) == ''  # no ts: none
    hostile = ft.Order('RED', 'STRAWBERRY', "'; DROP TABLE commands; --\x00" * 1000)
    assert re.fullmatch(r'mqtt:[0-9a-f]{40}', request_key('f/o/order', hostile))
