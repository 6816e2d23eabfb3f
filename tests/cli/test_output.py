"""Pure parts of the CLI output: constant names beside numbers, the watch's lines, alerts
logged at their severity."""

from __future__ import annotations

from typing import Any

import yaml

from stf_nodes import interfaces
from stf_nodes.cli.common import message_yaml
from stf_nodes.cli.watch import CommandView
from stf_nodes.messages import log_alert

CommandStatus = interfaces.get_message_class('stf_msgs/msg/CommandStatus')
Alert = interfaces.get_message_class('stf_msgs/msg/Alert')


def test_constants_are_matched_to_their_fields() -> None:
    assert interfaces.field_constants('stf_msgs/msg/CommandStatus') == {
        'kind': {1: 'PROCESS', 2: 'STORE', 3: 'RETRIEVE'},
        'status': {0: 'PENDING', 1: 'IN_PROGRESS', 2: 'COMPLETED', 3: 'FAILED', 4: 'CANCELLED'},
    }
    assert interfaces.field_constants('stf_msgs/msg/HbwState')['state'][4] == 'STATE_ERROR'
    assert interfaces.field_constants('rcl_interfaces/msg/Log')['level'][40] == 'ERROR'
    assert interfaces.field_constants('std_msgs/msg/Header') == {}


def test_yaml_names_constants_as_comments_and_stays_yaml() -> None:
    message = CommandStatus(command_id=7, kind=1, status=3, message='a: b\nc', step_index=2)
    text = message_yaml(message)
    assert 'kind: 1  # PROCESS' in text.splitlines()
    assert 'status: 3  # FAILED' in text.splitlines()
    assert 'step_index: 2' in text.splitlines()  # not an enumeration
    assert 'priority: 0' in text.splitlines()
    assert yaml.safe_load(text) == interfaces.to_data(message)
    assert '#' not in message_yaml(message, enum_names=False)
    assert yaml.safe_load(message_yaml(message, enum_names=False)) == interfaces.to_data(message)
    nested = interfaces.get_message_class('stf_msgs/msg/Inventory')(
        slots=[interfaces.get_message_class('stf_msgs/msg/InventorySlot')(slot='A1')]
    )
    text = message_yaml(nested)
    assert '- slot: A1' in text.splitlines()
    assert '    status: 0  # STATUS_UNKNOWN' in text.splitlines()


def status(**fields: Any) -> Any:
    base = {'command_id': 3, 'kind': 1, 'source_slot': 'B2', 'flavor': 'CHOCO', 'step_count': 2}
    return CommandStatus(**{**base, **fields})


def test_watch_prints_one_line_per_step_and_the_end() -> None:
    view = CommandView(only=3)
    lines = view.update(status(status=0, message='queued: bake'), now=100.0)
    assert lines == ['command 3 PROCESS B2 CHOCO: PENDING: queued: bake']
    running = status(
        status=1, step='hbw retrieve B2', message='hbw retrieve B2 started (attempt 1)'
    )
    assert view.update(running, now=101.0) == []
    assert view.running() == ('command 3: hbw retrieve B2 (attempt 1)', 0, 2)
    done = status(
        status=1,
        step='hbw retrieve B2',
        step_index=1,
        location='hbw handoff',
        message='hbw retrieve B2 succeeded; at hbw handoff',
    )
    [line] = view.update(done, now=105.5)
    assert line.startswith('  ✓ [1/2] hbw retrieve B2 ')
    assert line.endswith('  4.5 s  at hbw handoff')
    second = status(
        status=1,
        step='conveyor load entry',
        step_index=1,
        message='conveyor load entry started (attempt 2)',
    )
    view.update(second, now=106.0)
    failed = status(
        status=3,
        step_index=1,
        location='hbw handoff',
        message='conveyor load entry failed 3 times: stalled; at hbw handoff',
    )
    lines = view.update(failed, now=110.0)
    assert lines[0].startswith('  ✗ [2/2] conveyor load entry ')
    assert lines[0].endswith('  4.0 s  failed (attempt 2); at hbw handoff')
    assert lines[1] == (
        'command 3 FAILED: conveyor load entry failed 3 times: stalled; at hbw handoff'
    )
    assert view.finished() == 1
    assert view.update(status(command_id=4, status=0), now=111.0) == []  # not watched


def test_watch_of_every_command_prefixes_ids() -> None:
    view = CommandView(prefix_ids=True)
    assert view.update(status(status=2, step_index=2), now=1.0)[-1].startswith(
        '#3 command 3 COMPLETED'
    )
    assert view.finished() is None  # without an id it never ends by itself


class Recorder:
    def __init__(self) -> None:
        self.logged: list[tuple[str, str]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda text: self.logged.append((level, text))


def test_alerts_are_logged_at_their_severity() -> None:
    logger = Recorder()
    for severity in (Alert.INFO, Alert.WARNING, Alert.ERROR, Alert.CRITICAL):
        log_alert(
            logger, Alert(severity=severity, code='OVERCURRENT', component_id='M1', message='x')
        )
    assert [level for level, _ in logger.logged] == ['info', 'warning', 'error', 'error']
    assert logger.logged[2][1] == 'alert OVERCURRENT on M1: x'
    assert logger.logged[3][1] == 'alert CRITICAL OVERCURRENT on M1: x'


def test_shell_completion_of_verbs_and_interface_names() -> None:
    """What bash asks after `eval "$(register-python-argcomplete stf)"` (argcomplete)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    def complete(line: str) -> list[str]:
        stf = Path(sys.executable).parent / 'stf'
        result = subprocess.run(
            # argcomplete answers on file descriptor 8, as bash's completion hook reads it.
            ['bash', '-c', f'"{stf}" 8>&1 9>/dev/null'],
            env={
                **os.environ,
                '_ARGCOMPLETE': '1',
                '_ARGCOMPLETE_IFS': '\n',
                'COMP_LINE': line,
                'COMP_POINT': str(len(line)),
            },
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
        return result.stdout.split()

    assert 'echo' in complete('stf topic e')
    assert complete('stf interface show stf_msgs/msg/HbwSt') == ['stf_msgs/msg/HbwState']
