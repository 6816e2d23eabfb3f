"""Installing the project: the wheel carries every interface file and building it prints no
setuptools warnings (`make run` printed about a hundred on first use)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from stf_nodes import exit_codes
from stf_nodes.launcher.commands import console_scripts, resolve_executable
from stf_nodes.launcher.substitutions import PACKAGE

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_wheel_builds_without_warnings_and_carries_the_interfaces(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', '--no-deps', '-w', str(tmp_path), str(REPO_ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    build_output = '\n'.join(
        line
        for line in (result.stdout + result.stderr).splitlines()
        if 'Location' not in line  # pip's notes about index locations of this machine
    )
    assert 'Warning' not in build_output and 'would be ignored' not in build_output, build_output
    [wheel] = tmp_path.glob('*.whl')
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {
        path.relative_to(REPO_ROOT).as_posix()
        for pattern in ('stf_msgs/*/*.msg', 'stf_msgs/*/*.srv', 'stf_nodes/std_interfaces/**/*.srv')
        for path in REPO_ROOT.glob(pattern)
    }
    assert sources and sources <= names


def test_console_scripts_end_with_their_status_and_flushed_output() -> None:
    """The scripts leave through `stf_nodes.process.exit_process` (no interpreter teardown that
    a Zenoh thread could abort): the status and everything printed still arrive."""
    node = console_scripts()['hbw_node']
    assert (node.module, node.attr) == ('stf_nodes.process', 'hbw_node')
    refused = subprocess.run(
        [*resolve_executable(PACKAGE, 'hbw_node'), '--bogus'],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == exit_codes.USAGE
    assert 'unrecognized arguments: --bogus' in refused.stderr
    listed = subprocess.run(
        [*resolve_executable(PACKAGE, 'stf'), 'interface', 'list'],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.splitlines()) > 20 and 'stf_msgs/msg/HbwState' in listed.stdout
