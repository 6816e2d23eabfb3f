"""The history generator: determinism, the physics it inherits from the station models, the
rows it writes, and `stf history generate` (refusals, append, replace, bag)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from stf_nodes.history.generator import HistoryGenerator, HistoryOptions
from stf_nodes.history.scenario import parse_scenario
from stf_nodes.history.simulation import FactorySettings, SimFactory
from tests.conftest import stf

REPO = Path(__file__).resolve().parents[2]
SETTINGS = FactorySettings.from_parameter_file(REPO / 'config' / 'factory.yaml')
COMPONENTS = SimFactory(SETTINGS, seed=0).components
START = datetime(2024, 3, 1, tzinfo=timezone.utc)
SCENARIO = """\
name: test
events:
  - {day: 1, hour: 6, component: CONV_M1, fault: OVERCURRENT, magnitude: 4.5, duration_h: 16}
  - {day: 1, hour: 6, component: HBW_M2_Y, fault: VIBRATION, magnitude: 2, duration_h: 0,
     onset_h: 4}
  - {day: 2, hour: 1, component: CONV_M1, fault: MOTOR_FAILURE, magnitude: 4.5, duration_h: 0}
  - {day: 2, hour: 6, component: VGR_M1_ARM, fault: BEARING_WEAR, magnitude: 1.0, duration_h: 0,
     onset_h: 20}
  - {day: 1, hour: 0, component: CONV_L2_PROCESS, fault: GHOST_READINGS, magnitude: 0.02,
     duration_h: 12}
maintenance:
  - {day: 2, hour: 12, component: CONV_M1}
"""


def generate(seed: int = 3, days: int = 2, orders: int = 10) -> dict[str, dict[str, list]]:
    scenario = parse_scenario(SCENARIO, 'test.yaml', COMPONENTS)
    options = HistoryOptions(days=days, orders_per_day=orders, start=START, seed=seed)
    tables: dict[str, dict[str, list]] = {}
    for _, batch in HistoryGenerator(SETTINGS, scenario, options).days():
        for name, columns in batch.items():
            target = tables.setdefault(name, {c: [] for c in columns})
            for column, values in columns.items():
                target[column].extend(np.asarray(values).tolist())
    return tables


@pytest.fixture(scope='module')
def history() -> dict[str, dict[str, list]]:
    return generate()


def digest(tables: dict[str, dict[str, list]]) -> str:
    return hashlib.sha256(json.dumps(tables, sort_keys=True, default=str).encode()).hexdigest()


def test_same_seed_same_rows_other_seed_other_rows(history: dict) -> None:
    assert digest(generate()) == digest(history)
    assert digest(generate(seed=4)) != digest(history)


def rows(history: dict, table: str, **where: object) -> list[dict]:
    columns = history[table]
    out = []
    for index in range(len(columns['time'] if 'time' in columns else columns['factory'])):
        row = {name: values[index] for name, values in columns.items()}
        if all(row[k] == v for k, v in where.items()):
            out.append(row)
    return out


def test_physics_of_the_scenario(history: dict) -> None:
    day1_end = START.timestamp() * 1e6 + 24 * 3600e6
    conveyor = rows(history, 'motor_samples', motor_id='CONV_M1')
    running_day1 = [r['current_a'] for r in conveyor if r['running'] and r['time'] < day1_end]
    assert running_day1 and max(running_day1) == pytest.approx(4.5, abs=0.05)
    truth = rows(history, 'ground_truth_health', motor_id='CONV_M1')
    failed = [r['health'] for r in truth if r['fault'] == 'MOTOR_FAILURE']
    assert failed and min(failed) == pytest.approx(0.4, abs=0.01)  # collapsed toward 40 %
    after = [r['health'] for r in truth if r['time'] > day1_end + 12 * 3600e6]
    assert after and min(after) > 0.99  # maintenance restored it
    vibrating = [r['current_a'] for r in rows(history, 'motor_samples', motor_id='HBW_M2_Y',
                                              fault='VIBRATION') if r['running']]  # fmt: skip
    # The ripple shows in the samples (reused pieces repeat their phases: compare the range).
    assert max(vibrating) - min(vibrating) > 0.1
    failures = {r['message'] for r in rows(history, 'command_transitions', status=3)}
    assert any('motor failed: CONV_M1' in m for m in failures)
    codes = {(r['component_id'], r['code']) for r in rows(history, 'alerts')}
    assert {('CONV_M1', 'OVERCURRENT'), ('CONV_M1', 'LOW_HEALTH')} <= codes
    ghosts = rows(history, 'sensor_edges', sensor_id='CONV_L2_PROCESS', fault='GHOST_READINGS')
    assert len(ghosts) > 100  # 0.02 Hz for 12 h, two edges each


def test_rows_and_ground_truth(history: dict) -> None:
    minutes = 2 * 24 * 60 + 1
    assert len(history['ground_truth_health']['time']) == 7 * minutes
    assert len(set(history['motor_samples']['motor_id'])) == 7
    faults = history['ground_truth_faults']
    assert sorted(zip(faults['component_id'], faults['kind'], faults['ended_by'], strict=True)) == [
        ('CONV_L2_PROCESS', 'GHOST_READINGS', 'duration'),
        ('CONV_M1', 'MOTOR_FAILURE', 'maintenance'),
        ('CONV_M1', 'OVERCURRENT', 'duration'),
        ('HBW_M2_Y', 'VIBRATION', 'end_of_history'),
        ('VGR_M1_ARM', 'BEARING_WEAR', 'end_of_history'),
    ]
    completed = rows(history, 'command_transitions', status=2)
    assert len(completed) > 30
    statuses = [r['status'] for r in rows(history, 'command_transitions', command_id=1)]
    assert statuses[0] == 0 and statuses[-1] in (2, 3) and set(statuses[1:-1]) <= {1}
    samples = sorted(rows(history, 'motor_samples', motor_id='VGR_M1_ARM'), key=lambda r: r['time'])
    energy = [r['energy_wh'] for r in samples]
    assert energy == sorted(energy) and energy[-1] > 0  # integrated, never reset


def run_cli(*args: str, check: bool = True):
    return stf('history', 'generate', '--days', '1', '--orders-per-day', '4', '--start',
               '2024-01-01', *args, timeout=120, check=check)  # fmt: skip


def count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as connection:
        return connection.execute(f'SELECT COUNT(*) FROM {table}').fetchone()[0]


def test_refuses_appends_replaces(tmp_path: Path) -> None:
    from stf_nodes.history.run import HistoryError, generate_history
    from stf_nodes.storage import make_engine

    db = tmp_path / 'h.db'
    engine = make_engine(f'sqlite:///{db}')
    scenario = parse_scenario('name: healthy\nevents: []\n', 'inline', COMPONENTS)

    def run(mode: str, day: int) -> None:
        start = datetime(2024, 1, day, tzinfo=timezone.utc)
        options = HistoryOptions(days=1, orders_per_day=3, start=start, seed=2)
        generate_history(engine, settings=SETTINGS, scenario=scenario, options=options, mode=mode)

    run('new', 1)
    samples = count(db, 'motor_samples')
    assert samples > 10_000 and count(db, 'history_runs') == 1
    with pytest.raises(HistoryError, match='already holds history'):
        run('new', 1)
    with pytest.raises(HistoryError, match='overlaps the history already there'):
        run('append', 1)
    assert count(db, 'motor_samples') == samples  # nothing written
    run('append', 2)
    assert count(db, 'motor_samples') > 1.9 * samples and count(db, 'history_runs') == 2
    with sqlite3.connect(db) as connection:
        ids = [r[0] for r in connection.execute(
            'SELECT DISTINCT command_id FROM command_transitions ORDER BY command_id')]  # fmt: skip
    assert ids == list(range(1, len(ids) + 1))  # appended commands continue the numbering
    run('replace', 5)
    assert count(db, 'history_runs') == 1
    engine.dispose()


@pytest.mark.parametrize(
    ('args', 'message'),
    [
        (['--days', '0'], 'must be at least 1'),
        (['--days', '-3'], 'must be at least 1'),
        (['--orders-per-day', '-1'], 'must not be negative'),
        (['--start', '2024-13-01'], 'expected a date'),
    ],
)
def test_cli_refuses_bad_numbers(tmp_path: Path, args: list[str], message: str) -> None:
    result = stf('history', 'generate', '--db', f'sqlite:///{tmp_path / "x.db"}', *args,
                 check=False)  # fmt: skip
    assert result.returncode == 2 and message in result.stderr
    assert not (tmp_path / 'x.db').exists()


def test_cli_refuses_bad_scenario_and_database_without_writing(tmp_path: Path) -> None:
    bad = tmp_path / 'bad.yaml'
    bad.write_text('name: x\nevents:\n  - day: 40\n    component: CONV_M1\n    fault: STALL\n'
                   '    magnitude: 0\n    duration_h: 1\n')  # fmt: skip
    result = run_cli('--db', f'sqlite:///{tmp_path / "x.db"}', '--scenario', str(bad), check=False)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f'stf: {bad}:3: events[0].day: day 40 is outside the history of 1 day'
    )
    assert not (tmp_path / 'x.db').exists()
    unreachable = run_cli('--db', 'postgresql://postgres@127.0.0.1:1/x', check=False)
    assert unreachable.returncode == 1 and unreachable.stderr.count('\n') == 1
    assert 'cannot use database' in unreachable.stderr


def test_bag_reads_back_with_rosbags_and_mcap(tmp_path: Path) -> None:
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    from rosbags.highlevel import AnyReader

    bag = tmp_path / 'bag'
    db = tmp_path / 'b.db'
    first = run_cli('--db', f'sqlite:///{db}', '--orders-per-day', '2', '--bag', str(bag))
    assert 'rows/s' in first.stdout and 'motor_samples' in first.stdout
    refused = run_cli('--db', f'sqlite:///{db}', check=False)  # the default scenario, cut
    assert refused.returncode == 1 and 'already holds history' in refused.stderr
    with AnyReader([bag]) as reader:
        topics = {c.topic: c.msgtype for c in reader.connections}
        states = [c for c in reader.connections if c.topic == '/stf/conveyor/state']
        first = next(reader.messages(connections=states))
        message = reader.deserialize(first[2], states[0].msgtype)
    assert topics['/stf/commands'] == 'stf_msgs/msg/CommandStatus'
    assert topics['/stf/hbw/state'] == 'stf_msgs/msg/HbwState'
    assert message.motors[0].motor_id == 'CONV_M1'
    with open(next(bag.glob('*.mcap')), 'rb') as stream:
        mcap = make_reader(stream, decoder_factories=[DecoderFactory()])
        schema, channel, _, decoded = next(mcap.iter_decoded_messages(topics=['/stf/commands']))
    assert schema.encoding == 'ros2msg' and channel.metadata['topic_type_hash'].startswith(
        'RIHS01_'
    )
    assert decoded.command_id == 1


def test_reuse_gives_the_rows_of_simulating_every_command() -> None:
    """Reusing simulated pieces (buckets of oven, vacuum and belt phase aside) changes nothing
    a maintenance model looks at: same commands and outcomes, motor totals within 0.5 % (the
    health a worn bearing takes counted once, not per reused piece)."""
    scenario = parse_scenario(SCENARIO, 'test.yaml', COMPONENTS)
    results = []
    for reuse in (True, False):
        options = HistoryOptions(days=2, orders_per_day=5, start=START, seed=5, reuse=reuse)
        generator = HistoryGenerator(SETTINGS, scenario, options)
        for _ in generator.days():
            pass
        motors = {
            motor_id: (m.energy_wh, m.runtime_s, m.start_count, m.health)
            for motor_id, m in generator.factory.motors.items()
        }
        results.append((motors, generator.stats['commands'], dict(generator.rack)))
    (reused, commands, rack), (simulated, commands_all, rack_all) = results
    assert commands == commands_all and rack == rack_all
    for motor_id, (energy, runtime, starts, health) in simulated.items():
        r_energy, r_runtime, r_starts, r_health = reused[motor_id]
        assert r_starts == starts, motor_id
        assert r_runtime == pytest.approx(runtime, rel=5e-3), motor_id
        assert r_energy == pytest.approx(energy, rel=5e-3), motor_id
        assert 1 - r_health == pytest.approx(1 - health, rel=5e-3), motor_id
    # VGR_M1_ARM's bearing took 1.1/A x 0.3 A once; two days of use take less than 0.02 more.
    assert 0.0 < (1.0 - 1.1 * 0.3) - reused['VGR_M1_ARM'][3] < 0.02
