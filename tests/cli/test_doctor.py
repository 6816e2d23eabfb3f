"""`stf doctor` against a live graph: every check, a hint for each finding."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from stf_nodes.runtime.router import free_port


def doctor(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            '-m',
            'stf_nodes.cli',
            'doctor',
            '--listen',
            '1.0',
            *env.pop('args', '').split(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
        env={**os.environ, **env},
    )


def test_doctor_passes_on_a_healthy_graph(graph: Any, tmp_path: Path) -> None:
    result = doctor(tmp_path, MQTT_PORT=str(free_port()), args=f'--foxglove-port {free_port()}')
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stdout
    assert [line.split(':')[0] for line in lines[:-1]] == [
        '[ OK ] router',
        '[ OK ] nodes',
        '[ OK ] clock skew',
        '[ OK ] database',
        '[ OK ] mqtt broker',
        '[ OK ] foxglove port',
    ]
    assert 'publishing nodes within' in lines[2]
    assert 'will be created on first use' in lines[3]
    assert 'embedded broker' in lines[4]
    assert lines[-1] == '6 checks: 6 passed, 0 warnings, 0 failed'


def test_doctor_fails_with_hints(graph: Any, tmp_path: Path) -> None:
    holder = socket.socket()
    holder.bind(('127.0.0.1', 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        result = doctor(
            tmp_path,
            DATABASE_URL='postgresql://postgres@127.0.0.1:5432/stf_doctor_no_such_db',
            MQTT_PORT=str(port),
            args=f'--foxglove-port {port}',
        )
    finally:
        holder.close()
    lines = result.stdout.splitlines()
    assert result.returncode == 1
    database = next(i for i, line in enumerate(lines) if line.startswith('[FAIL] database'))
    assert 'stf_doctor_no_such_db' in lines[database]
    assert lines[database + 1].startswith('       hint: start the database server, or correct')
    assert any(line.startswith(f'[FAIL] mqtt broker: 127.0.0.1:{port}: ') for line in lines)
    assert any(line.startswith(f'[WARN] foxglove port: {port} is in use') for line in lines)
    assert lines[-1] == '6 checks: 3 passed, 1 warning, 2 failed'
