"""Strings from the network (command fields, failure reasons, alert and log text, topic
names, publisher ids) reach the databases only as bound parameters and never become file
paths: after a round of hostile input every table is still there, each string is stored
exactly as it came (made storable: no NUL), and a bag keeps its files in its directory.

Shell commands are out of reach by construction: the project runs no shell (ruff's S602/S605
keep `shell=True` and `os.system` out), and SQL text is never built from data (S608; the
one INSERT assembled from names in `storage/writer.py` takes them from the schema)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, select

from stf_nodes import interfaces
from stf_nodes.bag.reader import BagReader
from stf_nodes.bag.writer import open_bag
from stf_nodes.recorder.core import Received, RecorderCore, Source
from stf_nodes.recorder.database import RecorderDatabase
from stf_nodes.scheduler import CommandQueue, CommandStatus, Rejected
from stf_nodes.scheduler.validation import clean_text
from stf_nodes.storage.models import Base
from tests.scheduler.conftest import lead, queue, queue_engine  # noqa: F401
from tests.storage.conftest import (  # noqa: F401
    BACKENDS,
    database_url,
    engine,
    own_database,
    scratch_databases,
)

HOSTILE = [
    "'; DROP TABLE commands;--",
    "x' OR '1'='1",
    '"; DROP TABLE alerts; --',
    '$(touch /tmp/stf-pwned-17b) `id` | rm -rf ~ &',
    '../../etc/passwd',
    'a\x00b',
    '\\x00%00%s%n{0}',
]
Alert = interfaces.get_message_class('stf_msgs/msg/Alert')
Log = interfaces.get_message_class('rcl_interfaces/msg/Log')
MotorState = interfaces.get_message_class('stf_msgs/msg/MotorState')


def tables(db: Engine) -> set[str]:
    return set(inspect(db).get_table_names())


def test_scheduler_refuses_or_stores_hostile_strings_verbatim(
    queue: CommandQueue,  # noqa: F811 - the fixture imported above
) -> None:
    db = queue_engine(queue)
    before = tables(db)
    for text in HOSTILE:
        for submit in (
            lambda text=text: queue.submit_process(source_slot=text),
            lambda text=text: queue.submit_process(flavor=text),
            lambda text=text: queue.submit_store(flavor='CHOCO', slot=text),
            lambda text=text: queue.submit_store(flavor='CHOCO', workpiece_id=text),
            lambda text=text: queue.list(status=text),
            lambda text=text: queue.get(text),  # type: ignore[arg-type]
        ):
            with pytest.raises(Rejected):
                submit()
    fence = lead(queue)
    for text in HOSTILE:
        command = queue.submit_process(flavor='CHOCO')
        assert queue.start(command.id, fence, step_count=1, location='rack/A1')
        done = queue.finish(command.id, fence, status=CommandStatus.FAILED, reason=text)
        stored = queue.get(done.id)
        assert stored is not None
        assert clean_text(text, 512) in stored.message
        assert '\x00' not in stored.message
        queue.returned(command.id, fence, workpiece=stored.workpiece) if stored.stranded else None
    assert tables(db) == before
    assert len(queue.list()) == len(HOSTILE)


@pytest.mark.parametrize('backend', BACKENDS)
def test_recorder_stores_hostile_network_text_as_data(backend: str, tmp_path: Path) -> None:
    with own_database(backend, tmp_path) as url:
        recorded(url if isinstance(url, str) else url.render_as_string(hide_password=False))


def recorded(url: str) -> None:
    database = RecorderDatabase(url)
    database.prepare()
    before = tables(database.engine)
    core = RecorderCore(known_components=frozenset({'CONV_M1'}))
    items = []
    for index, text in enumerate(HOSTILE, start=1):
        # Graph names and publisher ids are validated ROS names and hex on the wire (no NUL
        # there); message fields can hold anything.
        name = text.replace('\x00', '')
        source = Source(f'/stf/{name}', 'stf_msgs/msg/Alert', name)
        alert = Alert(component_id='CONV_M1', code=text, message=text, severity=2)
        items.append(Received(source, interfaces.serialize(alert), index, name, 10**9 * index))
        log = Log(name=text, msg=text, file=text, function=text, level=40)
        items.append(
            Received(
                Source('/rosout', 'rcl_interfaces/msg/Log', name),
                interfaces.serialize(log),
                index,
                f'gid-{index}',
                10**9 * index,
            )
        )
        motor = MotorState(motor_id=text, current_a=1.0)
        items.append(
            Received(
                Source('/stf/motors', 'stf_msgs/msg/MotorState', ''),
                interfaces.serialize(motor),
                index,
                f'm-{index}',
                10**9 * index,
            )
        )
    batch = core.process(items, [])
    database.write(batch)
    core.committed(batch)
    assert tables(database.engine) == before
    alerts, logs = Base.metadata.tables['alerts'], Base.metadata.tables['logs']
    with database.engine.connect() as connection:
        stored_alerts = connection.execute(select(alerts.c.factory, alerts.c.code)).all()
        stored_logs = set(connection.execute(select(logs.c.message)).scalars())
    # NUL is the one character PostgreSQL refuses: the writer replaces it everywhere.
    expected = {text.replace('\x00', '\N{REPLACEMENT CHARACTER}') for text in HOSTILE}
    assert {code for _, code in stored_alerts} == expected
    assert {factory for factory, _ in stored_alerts} == {t.replace('\x00', '') for t in HOSTILE}
    assert stored_logs == expected
    database.engine.dispose()


def test_bag_files_stay_in_the_bag_whatever_the_topic_names(tmp_path: Path) -> None:
    path = tmp_path / 'bag'
    data = interfaces.serialize(MotorState(motor_id='M1'))
    names = [f'/stf/{text}' for text in HOSTILE]
    with open_bag(path) as bag:
        for stamp, name in enumerate(names, start=1):
            bag.add_topic(name, 'stf_msgs/msg/MotorState')
            bag.write(name, data, stamp)
    assert {p.parent for p in tmp_path.rglob('*') if p.is_file()} == {path}
    with BagReader(path) as reader:
        assert sorted(reader.topics) == sorted(names)
        assert sorted(m.topic for m in reader.messages()) == sorted(names)
