"""What each worker process has done: tasks run, memory (RSS) at each task boundary,
the handlers it ran, and when to replace it (``max_tasks_per_child``,
``max_memory_per_child``).

A child's RSS is measured by the child itself after every task and sent with the
result, so no /proc read happens on the event loop. The growth per task is the
least-squares slope over the last :data:`LEAK_WINDOW` task boundaries. Each point is
the RSS *after* a task, so what the first task imported is already in the first
point, and a warm-up that ends soon falls out of the window.
Children replaced while growing are remembered for :data:`REMEMBER_REPLACED` seconds
so the leak finding still names their handlers after the replacement.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence

from engine.snapshot import ProcessChild

#: Task boundaries the growth slope is fitted over.
LEAK_WINDOW = 8
#: Fewest boundaries before a growth is computed.
LEAK_MIN_POINTS = 4
#: How long a replaced child that was growing stays in the leak finding (seconds).
REMEMBER_REPLACED = 600.0
#: Most replaced children remembered.
REMEMBER_MAX = 16


def slope(values: Sequence[float]) -> float:
    """Least-squares slope of ``values`` against 0, 1, 2, … (per step)."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x = (n - 1) / 2
    mean_y = sum(values) / n
    num = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values))
    den = sum((x - mean_x) ** 2 for x in range(n))
    return num / den


class ChildRecord:
    """The running tally of one worker process."""

    __slots__ = ("handlers", "pid", "rss", "samples", "tasks")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.tasks = 0
        self.rss: int | None = None
        self.samples: deque[int] = deque(maxlen=LEAK_WINDOW)
        self.handlers: dict[str, None] = {}  # in the order first run

    def finished(self, handler: str, rss: int | None) -> None:
        """A task of ``handler`` ended in this child, leaving it at ``rss`` bytes."""
        self.tasks += 1
        self.handlers[handler] = None
        if rss is not None:
            self.rss = rss
            self.samples.append(rss)

    @property
    def growth(self) -> float | None:
        if len(self.samples) < LEAK_MIN_POINTS:
            return None
        return slope(self.samples)

    def recycle_reason(self, max_tasks: int, max_memory: int) -> str | None:
        """Why this child should be replaced now, or None to keep it."""
        if max_tasks and self.tasks >= max_tasks:
            return f"it ran {self.tasks} tasks (max_tasks_per_child {max_tasks})"
        if max_memory and self.rss is not None and self.rss > max_memory:
            return (
                f"its memory {self.rss / 2**20:,.0f} MB is over max_memory_per_child "
                f"{max_memory / 2**20:,.0f} MB"
            )
        return None

    def info(self, alive: bool = True) -> ProcessChild:
        return ProcessChild(
            self.pid, self.tasks, self.rss, tuple(self.handlers), self.growth, alive
        )


class Replaced:
    """Children replaced while their memory grew, kept a while (see the module doc)."""

    def __init__(self) -> None:
        self._clock = time.monotonic
        self._items: deque[tuple[float, ProcessChild]] = deque(maxlen=REMEMBER_MAX)

    def add(self, record: ChildRecord) -> None:
        growth = record.growth
        if growth is not None and growth > 0:
            self._items.append((self._clock(), record.info(alive=False)))

    def recent(self) -> tuple[ProcessChild, ...]:
        horizon = self._clock() - REMEMBER_REPLACED
        return tuple(child for at, child in self._items if at >= horizon)
