"""The fischertechnik dialect: payloads exactly as FACTORY.md shows them, both ways."""

from __future__ import annotations

import json

import pytest

from stf_nodes.bridges import fischertechnik as ft

TS_NS = 1_656_673_185_758_000_000  # 2022-07-01T10:59:45.758Z
DIALECT = ft.Dialect()


def test_ts_is_iso8601_utc_with_milliseconds() -> None:
    assert ft.format_ts(TS_NS) == '2022-07-01T10:59:45.758Z'
    assert ft.format_ts(TS_NS + 999_999) == '2022-07-01T10:59:45.758Z'  # truncated, not rounded
    assert ft.parse_ts('2022-07-01T10:59:45.758Z') == TS_NS
    assert ft.parse_ts('2022-07-01T12:59:45.758+02:00') == TS_NS
    assert ft.parse_ts('2022-07-01T10:59:45.758') == TS_NS  # naive is UTC


def test_state_payload() -> None:
    status = ft.StationStatus('hbw', ft.CODE_BUSY, 'retrieve', 1, '')
    assert json.loads(status.payload(TS_NS)) == {
        'ts': '2022-07-01T10:59:45.758Z',
        'station': 'hbw',
        'code': 2,
        'description': 'retrieve',
        'active': 1,
        'target': '',
    }
    assert list(json.loads(status.payload(TS_NS))) == [
        'ts', 'station', 'code', 'description', 'active', 'target'
    ]  # fmt: skip


def test_stock_payload_maps_flavors_and_statuses() -> None:
    items = [
        ft.StockItem('A1', 'WP1', 'STRAWBERRY', 'RAW_DOUGH'),
        ft.StockItem('A2', 'WP2', 'CHOCO', 'BAKED'),
        ft.StockItem('A3', 'WP3', 'VANILLA', 'PACKAGED'),  # no dialect state: shown by name
        ft.StockItem('B1'),
    ]
    assert json.loads(DIALECT.stock_payload(items, TS_NS)) == {
        'ts': '2022-07-01T10:59:45.758Z',
        'stockItems': [
            {'workpiece': {'id': 'WP1', 'type': 'RED', 'state': 'RAW'}, 'location': 'A1'},
            {'workpiece': {'id': 'WP2', 'type': 'BLUE', 'state': 'PROCESSED'}, 'location': 'A2'},
            {'workpiece': {'id': 'WP3', 'type': 'WHITE', 'state': 'PACKAGED'}, 'location': 'A3'},
            {'workpiece': None, 'location': 'B1'},
        ],
    }


def test_order_payload() -> None:
    update = ft.OrderUpdate(ft.ORDERED, 'RED', command_id=7)
    assert json.loads(DIALECT.order_payload(update, TS_NS)) == {
        'ts': '2022-07-01T10:59:45.758Z', 'state': 'ORDERED', 'type': 'RED', 'commandId': 7
    }  # fmt: skip
    refused = json.loads(DIALECT.order_payload(ft.OrderUpdate(ft.REFUSED, message='no'), TS_NS))
    assert refused == {
        'ts': '2022-07-01T10:59:45.758Z',
        'state': 'REFUSED',
        'type': '',
        'message': 'no',
    }


def test_non_finite_numbers_become_null() -> None:
    assert json.loads(ft.dumps({'a': float('nan'), 'b': [float('inf'), 1.5]})) == {
        'a': None, 'b': [None, 1.5]
    }  # fmt: skip


@pytest.mark.parametrize(
    ('payload', 'colour', 'flavor', 'ts'),
    [
        (b'{"type":"RED"}', 'RED', 'STRAWBERRY', ''),
        (
            b'{"ts":"2022-07-01T10:59:45.758Z","type":"white"}',
            'WHITE',
            'VANILLA',
            '2022-07-01T10:59:45.758Z',
        ),
        (b'{"type":"BLUE","extra":1}', 'BLUE', 'CHOCO', ''),
    ],
)
def test_parse_order(payload: bytes, colour: str, flavor: str, ts: str) -> None:
    assert DIALECT.parse_order(payload) == ft.Order(colour=colour, flavor=flavor, ts=ts)


@pytest.mark.parametrize(
    ('payload', 'kind'),
    [
        (b'', ft.MALFORMED_JSON),
        (b'garbage', ft.MALFORMED_JSON),
        (b'{"type":"RED"', ft.MALFORMED_JSON),
        (b'\xff\xfe{"type":"RED"}', ft.MALFORMED_JSON),
        (b'[' * 100_000, ft.MALFORMED_JSON),
        (b'NaN', ft.INVALID_FIELD),
        (b'["RED"]', ft.INVALID_FIELD),
        (b'"RED"', ft.INVALID_FIELD),
        (b'{}', ft.INVALID_FIELD),
        (b'{"type":null}', ft.INVALID_FIELD),
        (b'{"type":1}', ft.INVALID_FIELD),
        (b'{"type":["RED"]}', ft.INVALID_FIELD),
        (b'{"type":"RED","ts":12}', ft.INVALID_FIELD),
        (b'{"type":"RED","ts":"yesterday"}', ft.INVALID_FIELD),
        (b'{"type":"PURPLE"}', ft.UNKNOWN_COLOUR),
        (b'{"type":""}', ft.UNKNOWN_COLOUR),
        (b'{"type":"STRAWBERRY"}', ft.UNKNOWN_COLOUR),  # twin names are not dialect colours
    ],
)
def test_bad_orders_are_refused_by_kind(payload: bytes, kind: str) -> None:
    with pytest.raises(ft.BadInputError) as raised:
        DIALECT.parse_order(payload)
    assert raised.value.kind == kind
    assert raised.value.message


def test_configurable_mapping() -> None:
    dialect = ft.Dialect.from_pairs(['CHOCO:BROWN', 'vanilla : white'], ['RAW_DOUGH:RAW'])
    assert dialect.parse_order(b'{"type":"brown"}').flavor == 'CHOCO'
    assert dialect.colour_of('VANILLA') == 'WHITE'
    with pytest.raises(ft.BadInputError):
        dialect.parse_order(b'{"type":"RED"}')
    for bad in (['CHOCO'], ['CHOCO:'], [':RED']):
        with pytest.raises(ValueError, match='TWIN:DIALECT'):
            ft.Dialect.from_pairs(bad, [])
    with pytest.raises(ValueError, match='one to one'):
        ft.Dialect.from_pairs(['CHOCO:RED', 'VANILLA:RED'], [])


def test_parse_state_and_stock_of_a_real_factory() -> None:
    status, ts = DIALECT.parse_state(
        'vgr',
        b'{"ts":"2022-07-01T10:59:45.758Z","station":"vgr","code":2,"description":"text",'
        b'"active":1,"target":"hbw"}',
    )
    assert status == ft.StationStatus('vgr', 2, 'text', 1, 'hbw') and ts == TS_NS
    items, _ = DIALECT.parse_stock(
        b'{"ts":"2022-07-01T10:59:45.758Z","stockItems":['
        b'{"workpiece":{"id":"04a1b2","type":"RED","state":"PROCESSED"},"location":"A1"},'
        b'{"workpiece":null,"location":"A2"},'
        b'{"workpiece":{"id":"0","type":"","state":""},"location":"A3"}]}'
    )
    assert items == [
        ft.StockItem('A1', '04a1b2', 'STRAWBERRY', 'BAKED'),
        ft.StockItem('A2'),
        ft.StockItem('A3'),
    ]
    for bad in (b'{"code":9}', b'{"code":"1"}', b'{"code":true}', b'{"code":1,"active":"yes"}'):
        with pytest.raises(ft.BadInputError):
            DIALECT.parse_state('hbw', bad)
    for bad in (b'{}', b'{"stockItems":{}}', b'{"stockItems":[1]}', b'{"stockItems":[{}]}'):
        with pytest.raises(ft.BadInputError):
            DIALECT.parse_stock(bad)


def test_parse_order_update() -> None:
    update = DIALECT.parse_order_update(
        b'{"ts":"2022-07-01T10:59:45.758Z","state":"ORDERED","type":"BLUE"}'
    )
    assert update == ft.OrderUpdate(ft.ORDERED, 'BLUE', ts_ns=TS_NS)
    with pytest.raises(ft.BadInputError):
        DIALECT.parse_order_update(b'{"state":"DONE"}')
