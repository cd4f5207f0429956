"""``engine.history``: the metrics history part, reached as ``engine.history``.

Every node records its attempts in memory (:class:`~engine.history.cells.Recorder`)
and, once a minute, adds the minutes that ended to the store in one transaction
(one read and one multi-row write; a store that refuses keeps them for the next
try). The node holding the ``history`` lease (one per store) also records each
queue's backlog, rolls minutes into hours and hours into days, and deletes rows
past ``history_minutes`` / ``history_hours`` / ``history_days``. Reads
(:meth:`History.trends`, :meth:`History.stats`) merge the finest rows not yet
rolled up with the rolled-up ones, so a trend is complete up to the last whole
minute whatever the resolution.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

from engine.events import EventBus
from engine.history import hist
from engine.history.cells import DAY, HOUR, MINUTE, STEPS, Cell, Recorder, floor
from engine.history.writes import add, forget, roll_up
from engine.services import Service
from engine.settings import Settings
from engine.store import history as sql
from engine.store.base import Store

LEASE = "history"
LEASE_TTL = 150.0  # seconds: a leader that stops writing is replaced after this
GRACE = 120.0  # seconds after a period ends before it is rolled up (late nodes)
UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31_536_000.0}
STEP_NAMES = {"1m": MINUTE, "1h": HOUR, "1d": DAY}


def parse_span(text: str | float, what: str = "--since") -> float:
    """``"90m"``, ``"24h"``, ``"7d"``, ``"2w"`` or seconds -> seconds (ValueError)."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        raw = str(text).strip().lower()
        unit = UNITS.get(raw[-1:])
        try:
            seconds = float(raw[:-1] if unit else raw) * (unit or 1.0)
        except ValueError:
            seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(
            f"{what} must be a positive duration such as 90m, 24h, 7d or 1y (units s, m, "
            f"h, d, w, y); got {text!r}"
        )
    return seconds


def parse_step(text: str | int) -> int:
    """``"1m"``, ``"1h"``, ``"1d"`` or 60, 3600, 86400 -> seconds (ValueError)."""
    step = STEP_NAMES.get(str(text).strip().lower())
    if step is None and str(text).strip().isdigit() and int(str(text)) in STEPS:
        step = int(str(text))
    if step is None:
        raise ValueError(f"--step must be 1m, 1h or 1d (60, 3600 or 86400 s); got {text!r}")
    return step


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """One period of a trend. Times in seconds; ``t`` is the period's start (Unix
    time); ``backlog`` the most tasks waiting in the period (None: not recorded)."""

    t: int
    step: int
    runs: int
    successes: int
    failures: int
    retries: int
    timeouts: int
    run_mean: float | None
    run_p50: float | None
    run_p95: float | None
    wait_p50: float | None
    wait_p95: float | None
    backlog: int | None

    @property
    def success_rate(self) -> float | None:
        """Successes over final outcomes (0..1); None when nothing finished."""
        done = self.successes + self.failures
        return self.successes / done if done else None

    @property
    def throughput(self) -> float:
        """Tasks finished (succeeded or failed) per minute."""
        return (self.successes + self.failures) / (self.step / 60.0)


@dataclass(frozen=True, slots=True)
class HistoryStats:
    """A handler (or everything) over a range: ``per_minute`` is tasks finished per
    minute of the range."""

    handler: str | None
    queue: str | None
    since: float
    until: float
    runs: int
    successes: int
    failures: int
    retries: int
    timeouts: int
    success_rate: float | None
    run_mean: float | None
    run_p50: float | None
    run_p95: float | None
    wait_p95: float | None
    per_minute: float


def _point(t: int, step: int, cell: Cell, backlog: int | None) -> TrendPoint:
    return TrendPoint(
        t, step, cell.runs, cell.successes, cell.failures, cell.retries, cell.timeouts,
        cell.run_sum / cell.runs if cell.runs else None,
        hist.percentile(cell.run_hist, 0.5), hist.percentile(cell.run_hist, 0.95),
        hist.percentile(cell.wait_hist, 0.5), hist.percentile(cell.wait_hist, 0.95), backlog,
    )  # fmt: skip


class History:
    """The history part (one per engine)."""

    def __init__(
        self,
        store: Store,
        settings: Callable[[], Settings],
        node: str,
        clock: Callable[[], float],
        depths: Callable[[], Mapping[str, int]],
    ) -> None:
        self._store, self._settings, self._node = store, settings, node
        self._clock, self._depths = clock, depths
        self.recorder = Recorder(clock)
        self.leading = False
        self.written = 0  #: rows this node has written (for the bench and tests)
        self.forgotten: dict[int, int] = {}  #: rows the last prune deleted, per step

    # -- writing ---------------------------------------------------------------------
    async def flush(self, everything: bool = False) -> int:
        """Add this node's ended minutes to the store (``everything``: the minute going
        on too, as the engine stops; the rest of it adds up later); returns the rows
        written."""
        now = self._clock()
        closed = self.recorder.take_closed(now + MINUTE if everything else now)
        if not closed:
            return 0
        try:
            n = await self._store.run_plan(partial(add, cells=closed))
        except BaseException:
            self.recorder.give_back(closed)
            raise
        self.written += n
        return n

    async def maintain(self) -> bool:
        """If this node holds (or takes) the history lease: record the backlog, roll up
        and prune. Returns whether it leads."""
        claim = partial(sql.claim, name=LEASE, node=self._node, ttl=LEASE_TTL)
        self.leading = await self._store.run_plan(claim)
        if not self.leading:
            return False
        now = self._clock()
        minute = floor(now, MINUTE)
        depths = {(minute, "", q): Cell(backlog=n) for q, n in self._depths().items() if n}
        await self._store.run_plan(partial(add, cells=depths))
        await self._store.run_plan(partial(roll_up, now=now, grace=GRACE))
        s = self._settings()
        keep = {MINUTE: s.history_minutes, HOUR: s.history_hours, DAY: s.history_days}
        self.forgotten = await self._store.run_plan(partial(forget, now=now, keep=keep))
        return True

    async def run_once(self) -> None:
        await self.flush()
        await self.maintain()

    async def leader(self) -> tuple[str, float] | None:
        """The node that rolls up and prunes, and until when it holds the lease."""
        return await self._store.run_plan(partial(sql.holder, name=LEASE))

    # -- reading ---------------------------------------------------------------------
    async def _cells(
        self, step: int, since: float, handler: str | None, queue: str | None
    ) -> tuple[dict[int, Cell], dict[int, int], int, int]:
        """Merged cells per period start, backlog per period, and the range."""
        now = self._clock()
        start, end = floor(now - since, step), floor(now, step) + step
        marks = await self._store.run_plan(sql.marks)
        # each resolution answers for the periods the coarser ones do not cover yet
        spans, low = [], start
        for level in (lvl for lvl in (DAY, HOUR, MINUTE) if lvl <= step):
            upto = end if level == MINUTE else min(end, marks.get(level, 0))
            if upto > low:
                spans.append((level, low, upto))
                low = upto
        cells: dict[int, Cell] = {}
        peaks: dict[tuple[int, str], int] = {}
        for level, lo, hi in spans:
            read = partial(sql.read, step=level, since=lo, until=hi,
                           handler=handler or "*", queue=queue or "*")  # fmt: skip
            for r in await self._store.run_plan(read):
                t = floor(int(r[0]), step)
                if r[1] == "":
                    if r[11] is not None:
                        peaks[(t, str(r[2]))] = max(peaks.get((t, str(r[2])), 0), int(r[11]))
                    continue
                cell = cells.get(t)
                (cell if cell is not None else cells.setdefault(t, Cell())).add_row(r[3:])
        backlog: dict[int, int] = {}
        if handler is None:
            for (t, _), n in peaks.items():
                backlog[t] = backlog.get(t, 0) + n
        return cells, backlog, start, end

    async def trends(
        self,
        handler: str | None = None,
        queue: str | None = None,
        since: float | str = 86400.0,
        step: int | str = HOUR,
    ) -> list[TrendPoint]:
        """One point per ``step`` (60, 3600, 86400 or "1m", "1h", "1d") over the last
        ``since`` (seconds or "24h"), oldest first, empty periods included; for one
        handler and/or queue, or everything (None). ValueError on a bad span or step."""
        seconds, size = parse_span(since), parse_step(step)
        if seconds / size > 100_000:
            raise ValueError(
                f"--since {since!r} at --step {step!r} is over 100,000 points; use a coarser --step"
            )
        cells, backlog, start, end = await self._cells(size, seconds, handler, queue)
        return [
            _point(t, size, cells.get(t) or Cell(), backlog.get(t, 0) if handler is None else None)
            for t in range(start, end, size)
        ]

    async def names(self, since: float | str = 86400.0) -> tuple[list[str], list[str]]:
        """The handlers and the queues with history in the last ``since``, sorted."""
        found = await self._store.run_plan(
            partial(sql.names, since=floor(self._clock() - parse_span(since), MINUTE))
        )
        handlers = sorted({str(r[0]) for r in found if r[0]})
        return handlers, sorted({str(r[1]) for r in found})

    async def stats(
        self, handler: str | None = None, since: float | str = 3600.0, queue: str | None = None
    ) -> HistoryStats:
        """Totals, success rate, mean and p95 run time and tasks per minute over the
        last ``since`` (seconds or "1h"), at the finest resolution still kept."""
        seconds = parse_span(since)
        s = self._settings()
        size = (
            MINUTE if seconds <= s.history_minutes else HOUR if seconds <= s.history_hours else DAY
        )
        cells, _, start, _ = await self._cells(size, seconds, handler, queue)
        total = Cell()
        for cell in cells.values():
            total.merge(cell)
        p = _point(start, size, total, None)
        now, minutes = self._clock(), seconds / 60.0
        return HistoryStats(
            handler, queue, now - seconds, now, p.runs, p.successes, p.failures, p.retries,
            p.timeouts, p.success_rate, p.run_mean, p.run_p50, p.run_p95, p.wait_p95,
            (p.successes + p.failures) / minutes,
        )  # fmt: skip


class HistoryService(Service):
    """Writes the history once a minute, just after each minute ends."""

    name = "history"

    def __init__(
        self, store: Store, settings: Callable[[], Settings], bus: EventBus, history: History,
        clock: Callable[[], float],
    ) -> None:  # fmt: skip
        super().__init__(store, settings, bus)
        self.history, self.clock = history, clock

    def interval(self) -> float:
        left = MINUTE - (self.clock() % MINUTE) + 1.0
        return min(float(MINUTE), max(1.0, left))

    async def run_once(self) -> None:
        await self.history.run_once()
