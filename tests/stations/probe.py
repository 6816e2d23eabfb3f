"""A test-side view of the three station nodes: what the scheduler will do, done by hand.

`FactoryProbe` is a node of its own (own `runtime.Context`, executor spinning on a thread) that
records everything the stations publish (state, task status, alerts, diagnostics, tf) and
calls their services. `run_task` starts a station task and waits for its end on
`/stf/<station>/task_status`; `process_cycle` is the PROCESS command as station tasks, the same
sequence as `tests/sim/harness.py`. Used by the station tests and by `bench/stations_bench.py`.
"""

from __future__ import annotations

import collections
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from stf_nodes import interfaces, runtime
from stf_nodes.messages import STATE_TYPES

REPO_ROOT = Path(__file__).resolve().parents[2]
FACTORY_YAML = REPO_ROOT / 'config' / 'factory.yaml'
STATIONS = ('hbw', 'vgr', 'conveyor')

StationTask = interfaces.get_service('stf_msgs/srv/StationTask')
RestoreStation = interfaces.get_service('stf_msgs/srv/RestoreStation')
InjectFault = interfaces.get_service('stf_msgs/srv/InjectFault')
ClearFault = interfaces.get_service('stf_msgs/srv/ClearFault')
Trigger = interfaces.get_service('std_srvs/srv/Trigger')
TaskStatus = interfaces.get_message_class('stf_msgs/msg/TaskStatus')
Workpiece = interfaces.get_message_class('stf_msgs/msg/Workpiece')
Alert = interfaces.get_message_class('stf_msgs/msg/Alert')
DiagnosticArray = interfaces.get_message_class('diagnostic_msgs/msg/DiagnosticArray')
TFMessage = interfaces.get_message_class('tf2_msgs/msg/TFMessage')
STATE_CLASSES = {s: interfaces.get_message_class(t) for s, t in STATE_TYPES.items()}
FINISHED = (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.ABORTED)
#: Enough depth that a burst of events is never dropped from a subscription's queue.
EVENTS = runtime.QoSProfile(depth=1000)


def node_command(module: str, *ros_args: str, python: str = sys.executable) -> list[str]:
    """Command line of a station or clock node, as `stf launch` would build it."""
    return [python, '-m', f'stf_nodes.{module}', '--ros-args', *ros_args]


def factory_commands(time_scale: float) -> list[list[str]]:
    """The three station nodes on sim time from `config/factory.yaml`, and the sim clock."""
    station_args = ('--params-file', str(FACTORY_YAML), '-p', 'use_sim_time:=true')
    return [
        *(node_command(f'{s}_node', *station_args) for s in STATIONS),
        node_command('clock_node', '-p', f'time_scale:={time_scale}'),
    ]


def start_factory(time_scale: float) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT
        )
        for command in factory_commands(time_scale)
    ]


def workpiece(wp_id: str, flavor: str = 'VANILLA', status: int = Workpiece.RAW_DOUGH) -> Any:
    return Workpiece(id=wp_id, flavor=flavor, status=status)


class Recording:
    """The last ``maxlen`` messages of a topic and the count of all ever received, so a test
    can mark a moment (``mark = rec.count``) and look at what came after (``rec.since(mark)``)."""

    def __init__(self, maxlen: int = 5000) -> None:
        self._messages: collections.deque[Any] = collections.deque(maxlen=maxlen)
        self.count = 0

    def append(self, message: Any) -> None:
        self._messages.append(message)
        self.count += 1

    def since(self, mark: int) -> list[Any]:
        messages = list(self._messages)
        new = min(self.count - mark, len(messages))
        return messages[len(messages) - new :] if new > 0 else []

    @property
    def last(self) -> Any:
        return self._messages[-1]

    def __bool__(self) -> bool:
        return self.count > 0


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = '') -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f'not met within {timeout} s: {what or predicate}')
        time.sleep(0.01)


class FactoryProbe:
    """Records the stations' topics and calls their services (see module docstring)."""

    def __init__(self, name: str = 'station_probe') -> None:
        self.context = runtime.Context([])
        self.node = runtime.Node(name, context=self.context)
        self.states = {s: Recording() for s in STATIONS}
        self.task_status: list[Any] = []
        self.alerts: list[Any] = []
        self.diagnostics = Recording(2000)
        self.tf = Recording(20000)
        self.clients: dict[tuple[str, str], runtime.Client] = {}
        for station in STATIONS:
            self.node.create_subscription(
                STATE_CLASSES[station], f'/stf/{station}/state', self.states[station].append, EVENTS
            )
            self.node.create_subscription(
                TaskStatus, f'/stf/{station}/task_status', self.task_status.append, EVENTS
            )
            for service, srv_type in (
                ('task', StationTask),
                ('restore', RestoreStation),
                ('fault/inject', InjectFault),
                ('fault/clear', ClearFault),
                ('emergency_stop', Trigger),
                ('reset', Trigger),
            ):
                self.clients[station, service] = self.node.create_client(
                    srv_type, f'/stf/{station}/{service}'
                )
        self.node.create_subscription(Alert, '/stf/alerts', self.alerts.append, EVENTS)
        self.node.create_subscription(
            DiagnosticArray, '/diagnostics', self.diagnostics.append, EVENTS
        )
        self.node.create_subscription(TFMessage, '/tf', self.tf.append, EVENTS)
        self.executor = runtime.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spinner = threading.Thread(target=self.executor.spin, daemon=True)
        self._spinner.start()

    def close(self) -> None:
        self.executor.shutdown()
        self._spinner.join(timeout=5)
        self.node.destroy_node()
        self.context.shutdown()

    # -- waiting --------------------------------------------------------------------------

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Every station serves its services and publishes state (so /clock runs)."""
        for client in self.clients.values():
            assert client.wait_for_service(timeout), f'{client.name} not served'
        for station in STATIONS:
            wait_for(lambda s=station: self.states[s].count, timeout, f'{station} state')

    def fresh_state(self, station: str, timeout: float = 10.0) -> Any:
        """A state of ``station`` published after this call."""
        mark = self.states[station].count
        wait_for(lambda: self.states[station].count > mark, timeout, f'fresh {station} state')
        return self.states[station].last

    def task_end(self, station: str, task_id: int, timeout: float = 30.0) -> Any:
        def ended() -> Any:
            for status in reversed(self.task_status):
                if (status.station, status.task_id) == (station, task_id) and (
                    status.status in FINISHED
                ):
                    return status
            return None

        return wait_for(ended, timeout, f'end of {station} task {task_id}')

    # -- services -------------------------------------------------------------------------

    def call(self, station: str, service: str, request: Any, timeout: float = 30.0) -> Any:
        # 30 s: a station stepping its physics at a high time scale beside the whole suite on
        # two cores once left a task request unanswered for 10 s.
        return self.clients[station, service].call(request, timeout_sec=timeout)

    def start_task(
        self,
        station: str,
        task: str,
        target: str = '',
        wp: Any = None,
        value: float = 0.0,
    ) -> Any:
        """The StationTask response (accepted or refused with a reason)."""
        request = StationTask.Request(
            task=task, target=target, workpiece=wp if wp is not None else Workpiece(), value=value
        )
        return self.call(station, 'task', request)

    def run_task(
        self,
        station: str,
        task: str,
        target: str = '',
        wp: Any = None,
        value: float = 0.0,
        *,
        timeout: float = 30.0,
    ) -> Any:
        """Start a task, wait for its end and return its final TaskStatus (any outcome)."""
        response = self.start_task(station, task, target, wp, value)
        assert response.accepted, f'{station} {task} {target}: {response.message}'
        return self.task_end(station, response.task_id, timeout)

    def do(self, station: str, task: str, target: str = '', wp: Any = None, value: float = 0.0):
        """Run a task that must succeed; return the workpiece it ended with."""
        end = self.run_task(station, task, target, wp, value)
        assert end.status == TaskStatus.SUCCEEDED, f'{station} {task} {target}: {end.message}'
        return end.workpiece

    def process_cycle(self, slot: str, back_to: str, bake_s: float = 3.0) -> Any:
        """The PROCESS command as station tasks (as `tests/sim/harness.py`); the stored
        workpiece."""
        wp = self.do('hbw', 'retrieve', slot)
        self.do('conveyor', 'load', 'entry', wp)
        self.do('conveyor', 'transport', 'exit')
        wp = self.do('conveyor', 'unload')
        self.do('vgr', 'pick', 'conveyor', wp)
        wp = self.do('vgr', 'place', 'oven')
        wp = self.do('conveyor', 'bake', wp=wp, value=bake_s)
        self.do('vgr', 'pick', 'oven', wp)
        wp = self.do('vgr', 'place', 'conveyor')
        self.do('conveyor', 'load', 'exit', wp)
        self.do('conveyor', 'transport', 'entry')
        wp = self.do('conveyor', 'unload')
        return self.do('hbw', 'store', back_to, wp)

    def inject(
        self, station: str, component: str, fault: str, magnitude: float = 0.0, duration_s=0.0
    ) -> Any:
        request = InjectFault.Request(
            component_id=component, fault=fault, magnitude=magnitude, duration_s=duration_s
        )
        return self.call(station, 'fault/inject', request)

    def clear(self, station: str, component: str = '') -> Any:
        return self.call(station, 'fault/clear', ClearFault.Request(component_id=component))

    def trigger(self, station: str, service: str) -> Any:
        return self.call(station, service, Trigger.Request())

    # -- reading telemetry ----------------------------------------------------------------

    def alerts_for(self, component: str, code: str = '') -> list[Any]:
        return [
            a for a in list(self.alerts) if a.component_id == component and code in (a.code, '')
        ]

    def diagnostic(self, name: str, *, since: int = 0) -> Iterator[Any]:
        """Statuses named ``name`` (e.g. ``'conveyor: CONV_M1'``) in arrays after ``since``."""
        for array in self.diagnostics.since(since):
            for status in array.status:
                if status.name == name:
                    yield status

    def frames(self, since: int = 0) -> dict[str, list[Any]]:
        """Transforms seen on /tf after ``since``, by child frame, oldest first."""
        frames: dict[str, list[Any]] = collections.defaultdict(list)
        for message in self.tf.since(since):
            for transform in message.transforms:
                frames[transform.child_frame_id].append(transform)
        return frames


def motor(state: Any, motor_id: str) -> Any:
    return next(m for m in state.motors if m.motor_id == motor_id)


def sensor(state: Any, sensor_id: str) -> Any:
    return next(s for s in state.sensors if s.sensor_id == sensor_id)


def slot_contents(state: Any) -> dict[str, tuple[str, str, int]]:
    return {s.slot: (s.workpiece.id, s.workpiece.flavor, s.workpiece.status) for s in state.slots}


def stop_all(nodes: list[subprocess.Popen[str]]) -> None:
    """SIGINT to every node still running, then wait for each (kill after 10 s)."""
    for process in nodes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    for process in nodes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
