"""A tiny stand-in for the scheduler: runs station tasks to completion in lockstep."""

from __future__ import annotations

from stf_nodes.sim import Conveyor, Hbw, Station, TaskReport, TaskStatus, Vgr, Workpiece

DT = 0.02


def run(station: Station, seconds: float, dt: float = DT) -> None:
    """Step ``station`` for ``seconds`` of sim time."""
    for _ in range(round(seconds / dt)):
        station.step(dt)


def finish(
    station: Station, *others: Station, dt: float = DT, limit_s: float = 120.0
) -> TaskReport:
    """Step ``station`` (and ``others`` alongside) until its task ends; return the report."""
    for _ in range(round(limit_s / dt)):
        for s in (station, *others):
            s.step(dt)
        report = station.task
        assert report is not None
        if report.status is not TaskStatus.RUNNING:
            return report
    raise AssertionError(f'{station.name} task did not finish within {limit_s} s')


class Factory:
    """Three stations stepped together; ``do`` runs one task and returns its workpiece."""

    def __init__(self, seed: int = 0) -> None:
        self.hbw = Hbw(seed=seed)
        self.vgr = Vgr(seed=seed + 1)
        self.conveyor = Conveyor(seed=seed + 2)

    def do(
        self, station: Station, task: str, *, target: str = '', workpiece: Workpiece | None = None,
        value: float = 0.0,
    ) -> Workpiece | None:  # fmt: skip
        station.start_task(task, target=target, workpiece=workpiece, value=value)
        others = [s for s in (self.hbw, self.vgr, self.conveyor) if s is not station]
        report = finish(station, *others)
        assert report.status is TaskStatus.SUCCEEDED, report.message
        return report.workpiece

    def process(self, slot: str, back_to: str) -> None:
        """The PROCESS command: retrieve, convey, oven, back, store."""
        wp = self.do(self.hbw, 'retrieve', target=slot)
        self.do(self.conveyor, 'load', target='entry', workpiece=wp)
        self.do(self.conveyor, 'transport', target='exit')
        wp = self.do(self.conveyor, 'unload')
        self.do(self.vgr, 'pick', target='conveyor', workpiece=wp)
        wp = self.do(self.vgr, 'place', target='oven')
        wp = self.do(self.conveyor, 'bake', workpiece=wp, value=3.0)
        self.do(self.vgr, 'pick', target='oven', workpiece=wp)
        wp = self.do(self.vgr, 'place', target='conveyor')
        self.do(self.conveyor, 'load', target='exit', workpiece=wp)
        self.do(self.conveyor, 'transport', target='entry')
        wp = self.do(self.conveyor, 'unload')
        self.do(self.hbw, 'store', target=back_to, workpiece=wp)
