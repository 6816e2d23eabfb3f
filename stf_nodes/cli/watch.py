"""`stf command watch [ID]`: an order's progress, one line per step, with a progress bar.

The scheduler publishes a CommandStatus on `stf/commands` at every transition of a command
and at the start and the end of every step (`step`, `step_index`/`step_count`, `location`,
and a message "<step> started (attempt N)" or "<station> <verb> <target> succeeded; at
<place>"). This verb asks `stf/command/list` where the command stands (the leader or its
standby answer), then follows the topic:

    command 7 PROCESS A1 STRAWBERRY: queued: ...
      ✓ [1/8] hbw retrieve A1          10:02:11  4.1 s  at hbw_handoff
      ✗ [3/8] conveyor transport exit  10:02:20  9.8 s  failed (attempt 1); at conveyor_entry
    command 7 COMPLETED after 42.3 s

On a terminal a progress bar (rich) shows the running step below the lines; without one
(a pipe, a log file) only the lines are printed. With an ID the verb ends when that command
ends: status 0 if it COMPLETED, 1 otherwise (FAILED, CANCELLED: the last line says where its
workpiece is). Without an ID it follows every command until Ctrl-C or `--timeout`.

The same view without this verb: `stf topic echo /stf/commands` (YAML with the status and kind
named, `status: 1  # IN_PROGRESS`).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stf_nodes import interfaces
from stf_nodes.cli.common import CliError, cli_node, group, spin_for, verb, warn

CommandStatus = interfaces.get_message_class('stf_msgs/msg/CommandStatus')
KINDS = interfaces.field_constants('stf_msgs/msg/CommandStatus')['kind']
STATUSES = interfaces.field_constants('stf_msgs/msg/CommandStatus')['status']
FINISHED = {CommandStatus.COMPLETED, CommandStatus.FAILED, CommandStatus.CANCELLED}


@dataclass
class _Progress:
    """What is known of one command."""

    status: int = -1
    step: str = ''
    step_started: float | None = None
    attempt: str = ''
    done: int = 0
    total: int = 0
    first_seen: float = 0.0


@dataclass
class CommandView:
    """Turns CommandStatus messages into the lines of the watch (pure: no transport, no I/O).

    `update()` returns the lines to print for one message; `running()` says what the bar
    shows. `now` is injectable for tests.
    """

    only: int | None = None
    prefix_ids: bool = False
    commands: dict[int, _Progress] = field(default_factory=dict)

    def wants(self, message: Any) -> bool:
        return self.only is None or message.command_id == self.only

    def _label(self, message: Any) -> str:
        kind = KINDS.get(message.kind, str(message.kind))
        what = ' '.join(
            p for p in (message.source_slot or message.target_slot, message.flavor) if p
        )
        return f'command {message.command_id} {kind}' + (f' {what}' if what else '')

    def update(self, message: Any, now: float) -> list[str]:
        if not self.wants(message):
            return []
        progress = self.commands.get(message.command_id)
        lines = []
        if progress is None:
            progress = self.commands[message.command_id] = _Progress(first_seen=now)
            lines.append(f'{self._label(message)}: {STATUSES.get(message.status, "?")}')
            if message.message:
                lines[-1] += f': {message.message}'
        progress.total = message.step_count
        text = message.message
        if message.status == CommandStatus.IN_PROGRESS:
            if text.endswith(')') and ' started (attempt ' in text:
                progress.step = message.step
                progress.step_started = now
                progress.attempt = text.rpartition('(')[2].rstrip(')').removeprefix('attempt ')
                progress.done = message.step_index
            elif '; at ' in text and progress.step_started is not None:
                lines.append(self._step_line(message, progress, now))
                progress.step, progress.step_started = '', None
                progress.done = message.step_index
        if message.status in FINISHED and progress.status not in FINISHED:
            if progress.step_started is not None and '; at ' in text:
                lines.append(self._step_line(message, progress, now))
            started = _seconds(message.started) or progress.first_seen
            finished = _seconds(message.finished) or now
            status = STATUSES[message.status]
            summary = f'command {message.command_id} {status}'
            if message.status == CommandStatus.COMPLETED:
                summary += f' after {finished - started:.1f} s'
                if message.location:
                    summary += f'; at {message.location}'
            else:
                summary += f': {message.message}'
            lines.append(summary)
            progress.done = message.step_index
            progress.step, progress.step_started = '', None
        progress.status = message.status
        if self.prefix_ids:
            return [f'#{message.command_id} {line.strip()}' for line in lines]
        return lines

    def _step_line(self, message: Any, progress: _Progress, now: float) -> str:
        succeeded = ' succeeded; at ' in message.message
        index = message.step_index if succeeded else message.step_index + 1
        started = progress.step_started or now
        clock = datetime.fromtimestamp(started).strftime('%H:%M:%S')
        outcome = (
            f'at {message.location}'
            if succeeded
            else f'failed (attempt {progress.attempt}); at {message.location}'
        )
        return (
            f'  {"✓" if succeeded else "✗"} [{index}/{message.step_count}] '
            f'{progress.step:<28} {clock}  {now - started:5.1f} s  {outcome}'
        )

    def running(self) -> tuple[str, int, int] | None:
        """(description, steps done, steps) of the command in progress, if any."""
        for command_id, progress in self.commands.items():
            if progress.status == CommandStatus.IN_PROGRESS:
                step = f': {progress.step} (attempt {progress.attempt})' if progress.step else ''
                return f'command {command_id}{step}', progress.done, max(progress.total, 1)
        return None

    def finished(self) -> int | None:
        """With a command id: its exit status once it ended (0 COMPLETED, 1 otherwise)."""
        progress = self.commands.get(self.only) if self.only is not None else None
        if progress is None or progress.status not in FINISHED:
            return None
        return 0 if progress.status == CommandStatus.COMPLETED else 1


def _seconds(stamp: Any) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class _Output:
    """Lines to stdout; on a terminal a rich progress bar below them."""

    def __init__(self, bar: bool) -> None:
        self._progress: Any = None
        self._task: Any = None
        if not bar:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        console = Console()
        if not console.is_terminal:
            return
        self._progress = Progress(
            TextColumn('{task.description}'),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
            transient=True,
        )
        self._progress.start()

    def lines(self, lines: list[str]) -> None:
        for line in lines:
            if self._progress is None:
                print(line, flush=True)
            else:
                self._progress.console.print(line, markup=False, highlight=False)

    def bar(self, running: tuple[str, int, int] | None) -> None:
        if self._progress is None:
            return
        if running is None:
            if self._task is not None:
                self._progress.update(self._task, visible=False)
            return
        description, done, total = running
        if self._task is None:
            self._task = self._progress.add_task(description, total=total)
        self._progress.update(
            self._task, description=description, completed=done, total=total, visible=True
        )

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def _current(node: Any, namespace: str, only: int | None) -> list[Any]:
    """The commands as the scheduler has them now (most recent last), or [] if none answers."""
    from stf_nodes.runtime import ServiceError

    srv = interfaces.get_service('stf_msgs/srv/ListCommands')
    client = node.create_client(srv, f'{namespace}/stf/command/list')
    if not client.wait_for_service(3.0):
        warn(f'no scheduler answers {namespace}/stf/command/list; following the topic only')
        return []
    try:
        response = client.call(srv.Request(limit=0 if only is not None else 20), timeout_sec=5.0)
    except (ServiceError, TimeoutError) as exc:
        warn(f'{namespace}/stf/command/list failed ({exc}); following the topic only')
        return []
    commands = sorted(response.commands, key=lambda c: c.command_id)
    if only is not None:
        return [c for c in commands if c.command_id == only]
    return [c for c in commands if c.status not in FINISHED]


def cmd_watch(args: argparse.Namespace) -> int:
    namespace = '/' + args.namespace.strip('/') if args.namespace.strip('/') else ''
    view = CommandView(only=args.id, prefix_ids=args.id is None)
    output = _Output(bar=not args.no_bar)
    received: list[Any] = []
    try:
        with cli_node() as node:
            node.create_subscription(
                CommandStatus, f'{namespace}/stf/commands', received.append, 100
            )
            known = _current(node, namespace, args.id)
            if args.id is not None and not known:
                warn(f'command {args.id} is not known (yet); waiting for it')
            for message in known:
                output.lines(view.update(message, time.time()))
            output.bar(view.running())
            deadline = None if args.timeout is None else time.monotonic() + args.timeout
            while view.finished() is None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    if args.id is None:
                        return 0  # followed every command for as long as asked
                    raise CliError(f'command {args.id} did not end within {args.timeout:g} s')
                spin_for(
                    node, 0.1 if remaining is None else min(remaining, 0.1), lambda: bool(received)
                )
                while received:
                    output.lines(view.update(received.pop(0), time.time()))
                output.bar(view.running())
    finally:
        output.close()
    return view.finished() or 0


def add_parser(verbs: Any) -> None:
    command = group(verbs, 'command', "the scheduler's commands (orders)")
    watch = verb(command, 'watch', "follow a command's steps live, with a progress bar", cmd_watch)
    watch.add_argument(
        'id', type=int, nargs='?', help='the command id (default: every command, until Ctrl-C)'
    )
    watch.add_argument(
        '-n', '--namespace', default='', help='the factory namespace, e.g. factory_2'
    )
    watch.add_argument('--timeout', type=float, help='give up after S seconds (exit 1)')
    watch.add_argument('--no-bar', action='store_true', help='no progress bar even on a terminal')
