"""One cell of history (a handler in a queue over one period) and the in-memory
recorder that gathers this node's cells until the next write.

Recording is a few dictionary updates per attempt on the engine's loop; nothing
touches the store until :class:`~engine.history.part.History` writes the closed
minutes (one small batch a minute).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.history import hist

MINUTE, HOUR, DAY = 60, 3600, 86400
STEPS = (MINUTE, HOUR, DAY)

Key = tuple[int, str, str]  # (period start, handler, queue)


@dataclass(slots=True)
class Cell:
    """The counts of one handler in one queue over one period. ``runs`` counts
    finished attempts: ``successes`` + ``failures`` (final) + ``retries`` (failed
    attempts that will run again); ``timeouts`` those that hit their timeout.
    ``backlog`` (queue rows, handler ``""``): the most tasks waiting in the period."""

    runs: int = 0
    successes: int = 0
    failures: int = 0
    retries: int = 0
    timeouts: int = 0
    run_sum: float = 0.0
    run_hist: hist.Counts = field(default_factory=hist.empty)
    wait_hist: hist.Counts = field(default_factory=hist.empty)
    backlog: int | None = None

    def merge(self, other: Cell) -> Cell:
        self.runs += other.runs
        self.successes += other.successes
        self.failures += other.failures
        self.retries += other.retries
        self.timeouts += other.timeouts
        self.run_sum += other.run_sum
        hist.merge(self.run_hist, other.run_hist)
        hist.merge(self.wait_hist, other.wait_hist)
        if other.backlog is not None:
            self.backlog = max(self.backlog or 0, other.backlog)
        return self

    def columns(self) -> tuple[object, ...]:
        """The stored columns after the key, in :data:`COLUMNS` order."""
        return (
            self.runs, self.successes, self.failures, self.retries, self.timeouts,
            self.run_sum, hist.encode(self.run_hist), hist.encode(self.wait_hist), self.backlog,
        )  # fmt: skip

    def add_row(self, v: Sequence[Any]) -> Cell:
        """Add the stored columns (as :meth:`columns` gives them), without building a
        cell for them (the reads' hot path)."""
        self.runs += int(v[0])
        self.successes += int(v[1])
        self.failures += int(v[2])
        self.retries += int(v[3])
        self.timeouts += int(v[4])
        self.run_sum += float(v[5])
        hist.add_text(self.run_hist, v[6])
        hist.add_text(self.wait_hist, v[7])
        if v[8] is not None:
            self.backlog = max(self.backlog or 0, int(v[8]))
        return self

    @classmethod
    def of(cls, v: Sequence[Any]) -> Cell:
        """From the stored columns (as :meth:`columns` gives them)."""
        return cls().add_row(v)


COLUMNS = "runs, successes, failures, retries, timeouts, run_sum, run_hist, wait_hist, backlog"


def floor(t: float, step: int) -> int:
    return int(t // step) * step


class Recorder:
    """This node's minute cells not yet written (only touched on the engine's loop)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.cells: dict[Key, Cell] = {}

    def _cell(self, handler: str, queue: str) -> Cell:
        key = (floor(self._clock(), MINUTE), handler, queue)
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = Cell()
        return cell

    def started(self, handler: str, queue: str, wait: float) -> None:
        hist.add(self._cell(handler, queue).wait_hist, wait)

    def finished(self, handler: str, queue: str, run_time: float, outcome: str,
                 timeout: bool) -> None:  # fmt: skip
        """One attempt: ``outcome`` succeeded, failed or retry (an interrupted attempt
        is not a run and is not counted)."""
        if outcome not in ("succeeded", "failed", "retry"):
            return
        cell = self._cell(handler, queue)
        cell.runs += 1
        cell.run_sum += run_time
        hist.add(cell.run_hist, run_time)
        if outcome == "succeeded":
            cell.successes += 1
        elif outcome == "failed":
            cell.failures += 1
        else:
            cell.retries += 1
        if timeout:
            cell.timeouts += 1

    def backlog(self, queue: str, depth: int) -> None:
        """Tasks waiting in ``queue`` now (a minute keeps its most)."""
        cell = self._cell("", queue)
        cell.backlog = max(cell.backlog or 0, depth)

    def take_closed(self, now: float) -> dict[Key, Cell]:
        """Remove and return the cells of minutes that have ended by ``now``."""
        current = floor(now, MINUTE)
        closed = {k: c for k, c in self.cells.items() if k[0] < current}
        for key in closed:
            del self.cells[key]
        return closed

    def give_back(self, cells: dict[Key, Cell]) -> None:
        """Cells a write failed to store: kept (merged) for the next write."""
        for key, cell in cells.items():
            mine = self.cells.get(key)
            self.cells[key] = cell if mine is None else mine.merge(cell)
