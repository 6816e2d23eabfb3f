"""The shipped launch files: valid against the ROS 2 launch XSD and interpreted as intended."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from stf_nodes.launcher.model import LaunchError
from stf_nodes.launcher.parser import load_launch

REPO_ROOT = Path(__file__).resolve().parents[2]
XSD = Path(__file__).resolve().parents[2] / '..' / 'shared' / 'testdata' / 'ros2_launch.xsd'
LAUNCH_FILES = sorted((REPO_ROOT / 'launch').glob('*.launch.xml'))
STATIONS = [
    'hbw',
    'vgr',
    'conveyor',
    'scheduler',
    'foxglove_bridge',
    'mqtt_bridge',
    'recorder',
    'maintenance',
]


@pytest.fixture
def params_file(tmp_path: Path) -> Path:
    path = tmp_path / 'factory.yaml'
    path.write_text('/**:\n  ros__parameters:\n    publish_rate: 10.0\n')
    return path


def test_launch_files_exist() -> None:
    assert {path.name for path in LAUNCH_FILES} >= {'factory.launch.xml', 'fleet.launch.xml'}


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda path: path.name)
def test_validates_against_ros2_launch_xsd(path: Path) -> None:
    if not XSD.is_file():
        pytest.fail(f'launch schema not found at {XSD}')
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    document = etree.parse(str(path))
    assert schema.validate(document), schema.error_log


def test_factory_defaults(params_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv('DATABASE_URL', raising=False)
    description = load_launch(
        REPO_ROOT / 'launch' / 'factory.launch.xml', {'params_file': str(params_file)}
    )
    assert [node.label for node in description.nodes] == STATIONS
    for node in description.nodes:
        assert node.package == 'stf_digital_twin'
        assert node.executable == f'{node.name}_node'
        assert node.namespace == '/'
        assert (node.respawn, node.respawn_delay) == (True, 1.0)
        inline: dict[str, object] = {'use_sim_time': False}
        if node.name == 'recorder':
            inline['db_url'] = 'sqlite:///./stf_digital_twin.db'
        if node.name == 'scheduler':
            inline['db_url'] = 'sqlite:///./stf_digital_twin.db'
            scheduler_yaml = REPO_ROOT / 'config' / 'scheduler.yaml'
            assert node.parameters == (scheduler_yaml, inline)
            continue
        if node.name == 'foxglove_bridge':
            inline['port'] = 8765
        if node.name == 'mqtt_bridge':
            inline['topic_prefix'] = ''  # the root factory speaks the plain f/i/... scheme
        assert node.parameters == (params_file, inline)
    assert [arg.name for arg in description.arguments] == [
        'namespace',
        'use_sim_time',
        'time_scale',
        'params_file',
        'scheduler_params_file',
        'db_url',
        'recorder_db_url',
        'foxglove_port',
        'enable_mqtt',
        'enable_foxglove',
        'enable_recorder',
        'enable_maintenance',
        'enable_scheduler',
        'scheduler_replicas',
        'mqtt_topic_prefix',
        'enable_dds',
        'enable_bag_recorder',
        'bag_output',
    ]
    assert all(arg.description for arg in description.arguments)
    assert description.arguments[3].default == (
        '$(find-pkg-share stf_digital_twin)/config/factory.yaml'
    )


def test_bag_recorder_when_enabled(params_file: Path) -> None:
    description = load_launch(
        REPO_ROOT / 'launch' / 'factory.launch.xml',
        {
            'params_file': str(params_file),
            'enable_bag_recorder': 'true',
            'bag_output': 'bags/run1',
            'use_sim_time': 'true',
        },
    )
    recorder = next(node for node in description.nodes if node.name == 'bag_recorder')
    assert recorder.executable == 'bag_recorder_node'
    assert recorder.respawn is False  # a respawned recorder would refuse its existing bag
    assert recorder.parameters == (params_file, {'use_sim_time': True, 'output': 'bags/run1'})


def test_dds_bridge_when_enabled(params_file: Path) -> None:
    description = load_launch(
        REPO_ROOT / 'launch' / 'factory.launch.xml',
        {'params_file': str(params_file), 'enable_dds': 'true', 'namespace': 'factory_2'},
    )
    bridge = next(node for node in description.nodes if node.name == 'dds_bridge')
    assert (bridge.executable, bridge.namespace, bridge.respawn) == (
        'dds_bridge_node',
        '/factory_2',
        True,
    )


def test_database_url_from_environment_and_per_fleet_factory(
    params_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv('DATABASE_URL', 'postgresql://127.0.0.1/stf')
    factory = load_launch(
        REPO_ROOT / 'launch' / 'factory.launch.xml', {'params_file': str(params_file)}
    )
    scheduler = next(node for node in factory.nodes if node.name == 'scheduler')
    assert scheduler.parameters[1]['db_url'] == 'postgresql://127.0.0.1/stf'
    recorder = next(node for node in factory.nodes if node.name == 'recorder')
    assert recorder.parameters[1]['db_url'] == 'postgresql://127.0.0.1/stf'
    apart = load_launch(
        REPO_ROOT / 'launch' / 'factory.launch.xml',
        {'params_file': str(params_file), 'recorder_db_url': 'sqlite:////data/history.db'},
    )
    urls = {node.name: node.parameters[1].get('db_url') for node in apart.nodes}
    assert (urls['scheduler'], urls['recorder']) == (
        'postgresql://127.0.0.1/stf',
        'sqlite:////data/history.db',
    )
    fleet = load_launch(
        REPO_ROOT / 'launch' / 'fleet.launch.xml', {'params_file': str(params_file), 'count': '3'}
    )
    urls = {
        node.namespace: node.parameters[1]['db_url']
        for node in fleet.nodes
        if node.name == 'scheduler'
    }
    assert urls == {f'/factory_{k}': f'sqlite:///./stf_factory_{k}.db' for k in (1, 2, 3)}


def test_factory_namespace_and_sim_time(params_file: Path) -> None:
    description = load_launch(
        REPO_ROOT / 'launch' / 'factory.launch.xml',
        {
            'params_file': str(params_file),
            'namespace': 'factory_7',
            'use_sim_time': 'true',
            'time_scale': '10',
        },
    )
    labels = [node.label for node in description.nodes]
    assert labels == [f'factory_7/{name}' for name in ['clock', *STATIONS]]
    clock, hbw = description.nodes[:2]
    assert clock.parameters == (params_file, {'time_scale': 10})
    assert hbw.parameters == (params_file, {'use_sim_time': True})


def test_factory_default_params_file_is_in_the_package_share() -> None:
    # config/factory.yaml is written separately; until it exists the default must fail cleanly.
    default = REPO_ROOT / 'config' / 'factory.yaml'
    if default.is_file():
        assert load_launch(REPO_ROOT / 'launch' / 'factory.launch.xml').nodes
    else:
        with pytest.raises(LaunchError, match=r'parameters file not found: .*config/factory\.yaml'):
            load_launch(REPO_ROOT / 'launch' / 'factory.launch.xml')


@pytest.mark.parametrize('count', [1, 3, 10])
def test_fleet_starts_count_factories(params_file: Path, count: int) -> None:
    description = load_launch(
        REPO_ROOT / 'launch' / 'fleet.launch.xml',
        {'count': str(count), 'params_file': str(params_file)},
    )
    expected = [f'factory_{k}/{name}' for k in range(1, count + 1) for name in STATIONS]
    assert [node.label for node in description.nodes] == expected


def test_fleet_count_is_limited(params_file: Path) -> None:
    with pytest.raises(LaunchError, match="'count' is '11', expected one of 1, 2"):
        load_launch(
            REPO_ROOT / 'launch' / 'fleet.launch.xml',
            {'count': '11', 'params_file': str(params_file)},
        )


def test_fleet_factories_publish_mqtt_under_their_namespace(params_file: Path) -> None:
    fleet = load_launch(
        REPO_ROOT / 'launch' / 'fleet.launch.xml', {'params_file': str(params_file), 'count': '2'}
    )
    prefixes = {
        node.namespace: node.parameters[1]['topic_prefix']
        for node in fleet.nodes
        if node.name == 'mqtt_bridge'
    }
    assert prefixes == {'/factory_1': 'factory_1', '/factory_2': 'factory_2'}


def test_factory_without_mqtt(params_file: Path) -> None:
    description = load_launch(
        REPO_ROOT / 'launch' / 'factory.launch.xml',
        {'params_file': str(params_file), 'enable_mqtt': 'false'},
    )
    assert 'mqtt_bridge' not in [node.name for node in description.nodes]


def test_mirror_runs_the_bridge_in_mirror_mode_without_stations(
    params_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv('MQTT_BROKER', raising=False)
    monkeypatch.setenv('MQTT_PORT', '18830')
    description = load_launch(
        REPO_ROOT / 'launch' / 'mirror.launch.xml',
        {'params_file': str(params_file), 'namespace': 'line_1'},
    )
    (bridge,) = description.nodes
    assert (bridge.label, bridge.executable) == ('line_1/mqtt_bridge', 'mqtt_bridge_node')
    assert bridge.parameters == (
        params_file,
        {'mode': 'mirror', 'broker_host': '127.0.0.1', 'broker_port': 18830, 'topic_prefix': ''},
    )
