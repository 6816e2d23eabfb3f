"""`stf dds setup` caching and the bridge without `.venv-dds` (no rclpy needed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stf_nodes import exit_codes
from stf_nodes.bridges.dds import environment
from tests.conftest import REPO_ROOT

BIN = Path(sys.executable).parent


def test_interfaces_digest_follows_the_interface_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / 'stf_msgs'
    shutil.copytree(REPO_ROOT / 'stf_msgs', copy)
    monkeypatch.setattr(environment, 'PROJECT_INTERFACES_DIR', copy)
    before = environment.interfaces_digest()
    (copy / 'msg' / 'README.txt').write_text('not an interface')
    assert environment.interfaces_digest() == before
    alert = copy / 'msg' / 'Alert.msg'
    alert.write_text(alert.read_text() + '\nstring extra\n')
    changed = environment.interfaces_digest()
    assert changed != before
    (copy / 'srv' / 'ProcessOrder.srv').rename(copy / 'srv' / 'ProcessOrder2.srv')
    assert environment.interfaces_digest() != changed


def test_setup_does_nothing_when_the_stamp_matches(tmp_path: Path) -> None:
    venv = tmp_path / 'venv'
    (venv / 'bin').mkdir(parents=True)
    (venv / 'bin' / 'python').write_text('')  # never run: nothing is out of date
    environment._write_stamp(venv, environment.wanted_stamp())
    said: list[str] = []
    assert environment.setup(venv, progress=said.append) == {}
    assert said == [f'{venv} is up to date']


def test_setup_failure_names_the_step_and_the_log(tmp_path: Path) -> None:
    venv = tmp_path / 'venv'
    (venv / 'bin').mkdir(parents=True)
    python = venv / 'bin' / 'python'
    python.write_text('#!/bin/sh\necho "no wheels here" >&2\nexit 3\n')
    python.chmod(0o755)
    stamp = environment.wanted_stamp()
    del stamp['wheels']
    environment._write_stamp(venv, stamp)
    with pytest.raises(environment.SetupError, match=r'pip failed \(exit 3\)') as failure:
        environment.setup(venv, progress=lambda _: None)
    assert 'no wheels here' in str(failure.value)
    assert str(venv / 'setup.log') in str(failure.value)
    assert 'wheels' not in environment.read_stamp(venv)  # retried next time


def test_bridge_without_dds_venv_is_a_configuration_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / 'dds_bridge_node')],
        capture_output=True,
        text=True,
        env={**os.environ, 'STF_DDS_VENV': str(tmp_path / 'missing')},
        timeout=60,
    )
    assert result.returncode == exit_codes.CONFIG
    assert 'make dds' in result.stderr
