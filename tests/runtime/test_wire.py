"""The wire format, checked by a foreign peer written from WIRE.md with raw Zenoh only.

The peer plays a ROS 2 node on rmw_zenoh_cpp: it finds our graph through liveliness tokens,
decodes our samples and attachments, publishes to our subscription, calls our service and
serves a service we call. It uses no project code on its side: keys, tokens and attachments
are spelled out here, CDR comes from rosbags' type store, hashes from the ROS 2 oracle file.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import zenoh
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from stf_nodes import interfaces, runtime
from stf_nodes.runtime.router import free_port, is_listening
from tests.conftest import REPO_ROOT, SHARED_TESTDATA, Processes, foreign_peer_config, wait_until

ORACLE = json.loads((SHARED_TESTDATA / 'ros2_oracle.json').read_text())
STRING_HASH = next(m['rihs01'] for m in ORACLE['messages'] if m['type'] == 'std_msgs/msg/String')
ADD_HASH = ORACLE['rmw_zenoh_examples']['example_interfaces/srv/AddTwoInts']
STRING_KEY_TYPE = 'std_msgs::msg::dds_::String_'
ADD_KEY_TYPE = 'example_interfaces::srv::dds_::AddTwoInts_'


def attachment(sequence: int, gid: bytes) -> bytes:
    return struct.pack('<qqB', sequence, time.time_ns(), 16) + gid


def unpack(data: bytes) -> tuple[int, int, int, bytes]:
    assert len(data) == 33
    sequence, stamp, length = struct.unpack_from('<qqB', data)
    return sequence, stamp, length, data[17:]


@pytest.fixture
def peer(router: str) -> Iterator[zenoh.Session]:
    session = zenoh.open(foreign_peer_config(router))
    # A peer's open() returns before its router link is up (as rmw_zenoh does, wait for it).
    wait_until(lambda: list(session.info.routers_zid()))
    yield session
    session.close()


@pytest.fixture(scope='module')
def store() -> Any:
    typestore = get_typestore(Stores.ROS2_KILTED)
    motor = (REPO_ROOT / 'stf_msgs' / 'msg' / 'MotorState.msg').read_text()
    typestore.register(get_types_from_msg(motor, 'stf_msgs/msg/MotorState'))
    return typestore


def tokens(peer: zenoh.Session) -> list[str]:
    return [
        str(r.ok.key_expr)
        for r in peer.liveliness().get('@ros2_lv/0/**', timeout=3)
        if r.ok is not None
    ]


def test_peer_sees_node_and_endpoint_tokens(demo: Any, peer: zenoh.Session) -> None:
    # The node and each kind of endpoint it has.
    wanted = tuple(f'/{kind}/%/%t1/demo' for kind in ('NN', 'MP', 'SS', 'MS'))

    def complete() -> list[str]:
        keys = tokens(peer)
        return keys if all(any(w in k for k in keys) for w in wanted) else []

    keys = wait_until(complete)
    node_tokens = [k for k in keys if k.endswith('/NN/%/%t1/demo')]
    assert len(node_tokens) == 1
    _, domain, zid, nid, nid_again, _ = node_tokens[0].split('/', 5)
    assert domain == '0' and nid == nid_again and int(nid) >= 0 and len(zid) >= 16
    latched = [k for k in keys if f'/MP/%/%t1/demo/%t1%latched/{STRING_KEY_TYPE}/' in k]
    assert len(latched) == 1
    assert latched[0].split('/')[11] == STRING_HASH
    assert latched[0].split('/')[12].startswith('1:1:1,1:')  # reliable, transient local, depth 1
    service = [k for k in keys if f'/SS/%/%t1/demo/%t1%add_two_ints/{ADD_KEY_TYPE}/' in k]
    assert len(service) == 1 and service[0].split('/')[11] == ADD_HASH
    assert any(f'/MS/%/%t1/demo/%t1%echo_in/{STRING_KEY_TYPE}/{STRING_HASH}/' in k for k in keys)


def test_peer_decodes_samples_and_attachments(
    demo: Any,
    peer: zenoh.Session,
    store: Any,
) -> None:
    samples: list[tuple[bytes, bytes]] = []
    key = '0/t1/motor/stf_msgs::msg::dds_::MotorState_/*'
    subscriber = peer.declare_subscriber(
        key, lambda s: samples.append((s.payload.to_bytes(), s.attachment.to_bytes()))
    )
    wait_until(lambda: len(samples) >= 5)
    subscriber.undeclare()
    payload, first = samples[0]
    assert payload[:4] == b'\x00\x01\x00\x00'
    message = store.deserialize_cdr(payload, 'stf_msgs/msg/MotorState')
    assert message.motor_id == 'CONV_M1'
    sequences = [unpack(a)[0] for _, a in samples]
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))
    assert {unpack(a)[2] for _, a in samples} == {16}
    assert len({unpack(a)[3] for _, a in samples}) == 1  # one publisher GID
    assert abs(unpack(first)[1] - time.time_ns()) < 60e9


def test_peer_publishes_to_our_subscription(
    demo: Any,
    peer: zenoh.Session,
    store: Any,
) -> None:
    echoed: list[bytes] = []
    out = peer.declare_subscriber(
        f'0/t1/echo_out/{STRING_KEY_TYPE}/{STRING_HASH}',
        lambda s: echoed.append(s.payload.to_bytes()),
    )
    payload = bytes(
        store.serialize_cdr(
            store.types['std_msgs/msg/String'](data='from a foreign peer'), 'std_msgs/msg/String'
        )
    )
    gid = bytes(range(16))
    for sequence in range(1, 20):
        peer.put(
            f'0/t1/echo_in/{STRING_KEY_TYPE}/{STRING_HASH}',
            payload,
            attachment=attachment(sequence, gid),
        )
        if echoed:
            break
        time.sleep(0.2)
    wait_until(lambda: echoed)
    out.undeclare()
    assert store.deserialize_cdr(echoed[0], 'std_msgs/msg/String').data == 'from a foreign peer'


def test_peer_calls_our_service(demo: Any, peer: zenoh.Session, store: Any) -> None:
    request = get_types_from_msg('int64 a\nint64 b\n', 'example_interfaces/msg/AddTwoIntsReq')
    response = get_types_from_msg('int64 sum\n', 'example_interfaces/msg/AddTwoIntsResp')
    store.register({**request, **response})
    payload = bytes(
        store.serialize_cdr(
            store.types['example_interfaces/msg/AddTwoIntsReq'](a=20, b=22),
            'example_interfaces/msg/AddTwoIntsReq',
        )
    )
    gid = b'\xab' * 16

    def call() -> list[zenoh.Reply]:
        return list(
            peer.get(
                f'0/t1/add_two_ints/{ADD_KEY_TYPE}/{ADD_HASH}',
                payload=payload,
                attachment=attachment(7, gid),
                target=zenoh.QueryTarget.ALL_COMPLETE,
                consolidation=zenoh.ConsolidationMode.NONE,
                timeout=5,
            )
        )

    # Like a ROS client after wait_for_service: until gossip has linked this peer to the
    # server's, a query finds no queryable and ends with no reply; then it is tried again.
    replies = wait_until(call)
    assert len(replies) == 1 and replies[0].ok is not None
    reply = replies[0].ok
    result = store.deserialize_cdr(
        reply.payload.to_bytes(), 'example_interfaces/msg/AddTwoIntsResp'
    )
    assert result.sum == 42
    sequence, _, length, client_gid = unpack(reply.attachment.to_bytes())
    assert (sequence, length, client_gid) == (7, 16, gid)


def test_we_call_a_foreign_service(router: str, peer: zenoh.Session, node: runtime.Node) -> None:
    seen: list[bytes] = []

    def on_query(query: zenoh.Query) -> None:
        seen.append(query.attachment.to_bytes())
        a, b = struct.unpack_from('<qq', query.payload.to_bytes(), 4)
        query.reply(
            query.key_expr,
            b'\x00\x01\x00\x00' + struct.pack('<q', a * b),
            attachment=query.attachment,
        )

    key = f'0/peer/multiply/{ADD_KEY_TYPE}/{ADD_HASH}'
    queryable = peer.declare_queryable(key, on_query, complete=True)
    token = peer.liveliness().declare_token(f'@ros2_lv/0/{peer.zid()}/0/0/NN/%/%peer/foreign_node')
    service_token = peer.liveliness().declare_token(
        f'@ros2_lv/0/{peer.zid()}/0/1/SS/%/%peer/foreign_node/%peer%multiply/{ADD_KEY_TYPE}/'
        f'{ADD_HASH}/1:2:1,10:,:,:,,'
    )
    try:
        add = interfaces.get_service('example_interfaces/srv/AddTwoInts')
        client = node.create_client(add, '/peer/multiply')
        assert client.wait_for_service(10)
        assert ('foreign_node', '/peer') in node.context.graph.node_names_and_namespaces()
        assert client.call(add.Request(a=6, b=7), timeout_sec=5).sum == 42
        sequence, _, length, gid = unpack(seen[-1])
        assert sequence >= 1 and length == 16 and gid == client.gid
    finally:
        service_token.undeclare()
        token.undeclare()
        queryable.undeclare()


def test_router_restart_is_survived(processes: Processes) -> None:
    """A node outlives its router and is found again through a new router on the same port."""
    endpoint = f'tcp/127.0.0.1:{free_port()}'
    env = {**os.environ, 'ZENOH_ROUTER': endpoint}
    router_cmd = [sys.executable, '-m', 'stf_nodes.cli', 'router']

    def node_list() -> str:
        return subprocess.run(
            [sys.executable, '-m', 'stf_nodes.cli', 'node', 'list'],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
        ).stdout

    first = processes.start(*router_cmd, env=env)
    wait_until(lambda: is_listening(endpoint))
    demo_node = processes.start(
        sys.executable,
        '-m',
        'tests.runtime.demo_node',
        '--ros-args',
        '-r',
        '__node:=survivor',
        env=env,
    )
    wait_until(lambda: '/survivor' in node_list(), timeout=15)
    first.send_signal(signal.SIGINT)
    first.wait(timeout=10)
    time.sleep(1.0)
    assert demo_node.poll() is None, 'the node must not die with its router'
    processes.start(*router_cmd, env=env)
    wait_until(lambda: is_listening(endpoint))
    wait_until(lambda: '/survivor' in node_list(), timeout=30)
