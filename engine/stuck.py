"""Stuck tasks: running far longer than their handler usually takes, on the same line.

Once a second (the monitor's tick) :class:`StuckWatch` looks at the tasks running on
this node. Only one that has run longer than ``stuck_factor`` × its handler's p95 run
time (of at least :data:`MIN_RUNS` runs) is sampled: its live stack's top handler
frame (see :mod:`engine.stacks`). When that frame has been the same for
``stuck_samples`` samples in a row, the task is *stuck*; :func:`stuck_findings` turns
each into a finding naming the task, its handler, the frame and how long. A task
that moves on to another line starts counting again. Cheap: a task under its
threshold costs a dictionary look-up; a sampled one, reading its frames (a process
task: a message to its worker process).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from engine.errors import InvalidTransition
from engine.snapshot import Finding
from engine.stacks import StackTrace

MIN_RUNS = 5  # runs of a handler before its p95 is trusted
MAX_SAMPLED = 20  # tasks sampled per tick at most (the longest-running first)
MAX_FINDINGS = 5  # stuck tasks reported at most (the longest-running first)


@dataclass(frozen=True, slots=True)
class Running:
    """A task running here, as the watch looks at it."""

    task_id: int
    handler: str
    seconds: float  # how long it has run


@dataclass(frozen=True, slots=True)
class StuckTask:
    """A task that has stood on one line of its handler for ``samples`` samples."""

    task_id: int
    handler: str
    where: str  # file:line
    function: str
    source: str
    running: float  # seconds it has run
    on_line: float  # seconds it has been seen on that line
    samples: int
    p95: float  # its handler's p95 run time, seconds


@dataclass(slots=True)
class _Seen:
    where: str
    first: float  # when it was first seen there (seconds on the watch's clock)
    samples: int


class StuckWatch:
    """Samples the top frame of tasks that run too long; see the module docstring."""

    def __init__(self, stack: Callable[[int], Awaitable[StackTrace | None]]) -> None:
        self._stack = stack
        self._seen: dict[int, _Seen] = {}
        self.samples_taken = 0

    async def sample(
        self,
        running: Sequence[Running],
        p95: Mapping[str, tuple[float | None, int]],
        factor: float,
        needed: int,
        now: float,
    ) -> tuple[StuckTask, ...]:
        """One look (``p95``: handler → (p95 run time, runs)); returns the stuck tasks."""
        over = [r for r in running if factor > 0 and _over(r, p95.get(r.handler), factor)]
        over.sort(key=lambda r: -r.seconds)
        over = over[:MAX_SAMPLED]
        stuck = []
        for task in over:
            trace = await self._take(task.task_id)
            top = None if trace is None else trace.top
            if top is None:
                self._seen.pop(task.task_id, None)
                continue
            seen = self._seen.get(task.task_id)
            if seen is None or seen.where != top.where:
                seen = self._seen[task.task_id] = _Seen(top.where, now, 0)
            seen.samples += 1
            if seen.samples >= needed:
                limit = p95[task.handler][0] or 0.0
                found = StuckTask(
                    task.task_id, task.handler, top.where, top.function, top.source,
                    task.seconds, now - seen.first, seen.samples, limit,
                )  # fmt: skip
                stuck.append(found)
        sampled = {t.task_id for t in over}
        for gone in [t for t in self._seen if t not in sampled]:
            del self._seen[gone]
        return tuple(stuck)

    async def _take(self, task_id: int) -> StackTrace | None:
        self.samples_taken += 1
        try:
            return await self._stack(task_id)
        except InvalidTransition:  # it ended, or its worker process did not answer
            return None


def _over(task: Running, stats: tuple[float | None, int] | None, factor: float) -> bool:
    if stats is None:
        return False
    p95, runs = stats
    return p95 is not None and runs >= MIN_RUNS and task.seconds > factor * p95


def stuck_findings(stuck: Iterable[StuckTask], factor: float) -> Iterable[Finding]:
    """A warning for each stuck task (the longest-running first)."""
    for task in sorted(stuck, key=lambda t: -t.running)[:MAX_FINDINGS]:
        times = task.running / task.p95 if task.p95 > 0 else float("inf")
        yield Finding(
            severity="warning",
            title=f"Task {task.task_id} looks stuck in {task.handler}",
            evidence=(
                f"running {_s(task.running)}, {times:,.0f}× its handler's p95 of "
                f"{_s(task.p95)} (stuck_factor {factor:g}); at {task.where} in "
                f"{task.function} for {_s(task.on_line)} ({task.samples} samples)"
                + (f": {task.source}" if task.source else "")
            ),
            suggestion=(
                f"See what it waits for: taskdeck stack {task.task_id} (or K in its "
                "detail); cancel it if it hangs, and give the handler a timeout."
            ),
            rule="stuck",
        )


def _s(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.0f} min"
