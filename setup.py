"""Installs stf_digital_twin: the `stf` CLI, every node executable and the ROS 2 share files."""

from __future__ import annotations

from glob import glob

from setuptools import setup

PACKAGE = 'stf_digital_twin'

NODE_SCRIPTS = [
    f'{name}_node = stf_nodes.process:{name}_node'
    for name in (
        'hbw',
        'vgr',
        'conveyor',
        'clock',
        'scheduler',
        'foxglove_bridge',
        'mqtt_bridge',
        'recorder',
        'bag_recorder',
        'dds_bridge',
        'maintenance',
    )
]

setup(
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/launch', glob('launch/*.launch.xml')),
        (f'share/{PACKAGE}/config', glob('config/*.yaml')),
        (f'share/{PACKAGE}/config/foxglove', glob('config/foxglove/*.json')),
        (f'share/{PACKAGE}/config/scenarios', glob('config/scenarios/*.yaml')),
    ],
    entry_points={
        'console_scripts': ['stf = stf_nodes.process:stf', *NODE_SCRIPTS],
    },
)
