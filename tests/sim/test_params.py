"""config/factory.yaml and the config dataclasses agree; parameters round-trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from stf_nodes.runtime.parameters import load_parameter_file
from stf_nodes.sim import ConveyorConfig, Hbw, HbwConfig, VgrConfig
from stf_nodes.sim.params import ParameterConfig

FACTORY_YAML = Path(__file__).resolve().parents[2] / 'config' / 'factory.yaml'
SECTIONS = [('hbw', HbwConfig), ('vgr', VgrConfig), ('conveyor', ConveyorConfig)]
#: Parameters of the station node itself (where its frame sits), not of the model's config.
NODE_PARAMETERS = {'mount_xyz_m', 'mount_rpy_deg'}


@pytest.mark.parametrize(('node', 'config_type'), SECTIONS)
def test_yaml_holds_every_parameter_with_default_values(
    node: str, config_type: type[ParameterConfig]
) -> None:
    section = load_parameter_file(FACTORY_YAML, f'/{node}')
    # rcl's matching: the same sections reach the station in a fleet's namespace.
    assert load_parameter_file(FACTORY_YAML, f'/factory_7/{node}') == section
    assert set(section) >= NODE_PARAMETERS
    parameters = {name: v for name, v in section.items() if name not in NODE_PARAMETERS}
    defaults = config_type()
    assert set(parameters) == set(defaults.to_parameters())
    assert config_type.from_parameters(parameters) == defaults
    assert parameters['publish_rate'] == 10.0 and isinstance(parameters['seed'], int)
    for value in parameters.values():  # ROS parameters: scalars or flat lists
        assert isinstance(value, bool | int | float | str | list)
        assert not isinstance(value, list) or all(not isinstance(v, list | dict) for v in value)


def test_from_parameters_overrides_and_converts() -> None:
    config = HbwConfig.from_parameters(
        {'axis.max_speed_mm_s': 50, 'stock': [], 'seed': 9, 'use_sim_time': True}
    )
    assert config.axis.max_speed_mm_s == 50.0 and isinstance(config.axis.max_speed_mm_s, float)
    assert config.stock == () and config.seed == 9
    assert config.motor == HbwConfig().motor
    assert all(wp is None for wp in Hbw(config=config).slots.values())
    assert HbwConfig.from_parameters(config.to_parameters()) == config


@pytest.mark.parametrize(
    'parameters',
    [{'axis.warp_speed': 1.0}, {'colour': 'red'}, {'motor': 1.0}, {'rows.x': 1}, {'max_mm': 3.0}],
)
def test_unknown_or_malformed_parameters_rejected(parameters: dict[str, object]) -> None:
    with pytest.raises(ValueError, match='parameter'):
        HbwConfig.from_parameters(parameters)  # type: ignore[arg-type]


@pytest.mark.parametrize(('node', 'config_type'), SECTIONS)
def test_every_parameter_is_described_and_its_default_is_in_range(
    node: str, config_type: type[ParameterConfig]
) -> None:
    docs = config_type.parameter_docs()
    defaults = config_type().to_parameters()
    assert set(docs) == set(defaults)
    for name, doc in docs.items():
        assert doc.description, name
        value = defaults[name]
        if doc.low is not None:
            assert isinstance(value, int | float) and value >= doc.low, name
        if doc.high is not None:
            assert isinstance(value, int | float) and value <= doc.high, name
