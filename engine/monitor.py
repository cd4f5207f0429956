"""The monitor: once a second, sample resources, close the metrics second, look for
bottlenecks, and (when enabled) let the autoscaler decide.

Everything it produces is cached for ``engine.snapshot()`` to read without I/O,
and every autoscaler decision that changes something — or that wanted to and was
held back — is published as an event with its reason.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import Awaitable, Callable

from engine.autoscale import Autoscaler, ScaleDecision
from engine.bottleneck import Inputs, find_bottlenecks
from engine.errors import StoreError
from engine.events import EventBus, EventKind
from engine.metrics import Metrics, MetricsView
from engine.model import TaskState
from engine.pool import WorkerPool
from engine.resources import (
    LoopLagMonitor,
    PsutilSampler,
    ResourceHistory,
    ResourceSample,
    Sampler,
)
from engine.services import Service
from engine.settings import Settings
from engine.snapshot import Finding
from engine.stacks import StackTrace
from engine.store.base import Store
from engine.stuck import Running, StuckTask, StuckWatch

OLDEST_EVERY = 5.0  # seconds between reads of the oldest queued task per queue (and schedules)


class Monitor(Service):
    name = "monitor"

    def __init__(
        self,
        store: Store,
        settings: Callable[[], Settings],
        bus: EventBus,
        *,
        metrics: Metrics,
        pool: WorkerPool,
        set_workers: Callable[[int], Awaitable[int]],
        handler_queues: Callable[[], dict[str, str]],
        sampler: Sampler | None = None,
        stack: Callable[[int], Awaitable[StackTrace | None]] | None = None,
    ) -> None:
        super().__init__(store, settings, bus)
        self.metrics = metrics
        self.pool = pool
        self._set_workers = set_workers
        self._handler_queues = handler_queues
        self.sampler: Sampler = sampler or PsutilSampler()
        self.history = ResourceHistory()
        self.lag = LoopLagMonitor()
        self.scaler = Autoscaler()
        self.view: MetricsView | None = None
        self.findings: tuple[Finding, ...] = ()
        self.sample_cost = 0.0  # CPU seconds spent in psutil sampling, in total
        self.tick_cost = 0.0  # CPU seconds spent on the loop summarising, in total
        self._oldest: dict[str, float] = {}
        self._periodic: frozenset[str] = frozenset()  # handlers of the stored schedules
        self._schedules_read = float("-inf")
        self._oldest_read = float("-inf")
        self._idle_ticks = 0  # ticks in a row with idle workers and a ready backlog
        self._unclaimable: dict[str, int] = {}
        self._last_decision = float("-inf")
        self._worked = False  # had workers: a producer (0 from the start) is never scaled
        self._last_reason = ""
        self.stuck = None if stack is None else StuckWatch(stack)

    def interval(self) -> float:
        return 1.0

    async def run(self) -> None:
        self.lag.start()
        try:
            await super().run()
        finally:
            self.lag.stop()

    async def run_once(self) -> None:
        sample = await asyncio.to_thread(self._sample)
        tick_start = time.thread_time()
        sample = dataclasses.replace(sample, loop_lag=self.lag.take())
        self.history.add(sample)
        # Read afresh: other processes on the store (nodes, CLI) change the counts too.
        try:
            counts = await self.store.counts()
            self.metrics.record_store_ok("reads")
        except StoreError as exc:  # e.g. the store file was deleted: a finding says so
            self.metrics.record_store_error("reads", exc)
            counts = self.store.last_counts
        depths = {q: per.get(TaskState.QUEUED, 0) for q, per in counts.by_queue.items()}
        for queue, held in self.pool.buffered_per_queue().items():  # waiting here, claimed
            depths[queue] = depths.get(queue, 0) + held
        depth = sum(depths.values())
        self.metrics.tick(depth, self.pool.busy_seconds(), self.pool.size, depths)
        now = time.monotonic()
        readable = "reads" not in self.metrics.store_errors
        if readable and now - self._oldest_read >= OLDEST_EVERY:
            self._oldest_read = now
            self._oldest = await self.store.oldest_queued()
        if readable:
            await self._look_for_unclaimable(depths, counts.paused)
        wall = time.time()
        queues = [
            (
                q,
                depths.get(q, 0),
                q in counts.paused,
                wall - self._oldest[q] if q in self._oldest else None,
            )
            for q in sorted(set(depths) | set(counts.paused))
        ]
        if now - self._schedules_read >= OLDEST_EVERY:
            self._schedules_read = now
            self._periodic = frozenset(s.handler for s in await self.store.schedules())
        view = self.metrics.view(
            worker_count=self.pool.size,
            busy=self.pool.busy,
            depth=depth,
            queues=queues,
            store_latency_p99=self.store.latency_p99(),
        )
        self.view = view
        settings = self.settings()
        stuck = await self._look_for_stuck(view, settings)
        lags = self.history.series["loop_lag"].values(60)
        found = find_bottlenecks(
            Inputs(
                view,
                sample,
                max(lags, default=0.0),
                settings,
                self.metrics.utilization_window,
                self._handler_queues(),
                tuple(
                    (what, now - since, error)
                    for what, (since, error) in sorted(self.metrics.store_errors.items())
                ),
                self._unclaimable,
                {q: per.get(TaskState.RUNNING, 0) for q, per in counts.by_queue.items()},
                self._periodic,
                stuck,
                self.pool.processes.children(),
            )
        )
        self._announce(found)
        self.findings = found
        self.tick_cost += time.thread_time() - tick_start
        # never given workers (a producer, an attached console): it takes no work
        self._worked = self._worked or self.pool.size > 0
        due = now - self._last_decision >= settings.scale_interval
        if settings.autoscale and self._worked and due:
            self._last_decision = now
            await self._autoscale(view, settings, now)

    async def _look_for_unclaimable(self, depths: dict[str, int], paused: frozenset[str]) -> None:
        """Idle workers next to a ready backlog, twice in a row, usually means tasks for
        handlers this engine lacks (claims skip them): find which. Only then, so the
        query never scans a backlog the workers are busy with."""
        idle = self.pool.size > self.pool.busy and any(
            n for q, n in depths.items() if q not in paused
        )
        self._idle_ticks = self._idle_ticks + 1 if idle else 0
        if self._idle_ticks >= 2 and not self.metrics.store_errors:
            self._unclaimable = await self.store.unclaimable(list(self._handler_queues()))
        elif not idle:
            self._unclaimable = {}

    async def _look_for_stuck(self, view: MetricsView, settings: Settings) -> tuple[StuckTask, ...]:
        """Sample the tasks running past ``stuck_factor`` × their handler's p95."""
        if self.stuck is None or settings.stuck_factor <= 0 or not self.pool.running:
            return ()
        now = time.monotonic()
        running = [
            Running(rt.claimed.id, rt.handler.name, now - rt.started)
            for rt in self.pool.running.values()
        ]
        p95 = {name: (h.run_p95, h.runs) for name, h in view.handlers.items()}
        return await self.stuck.sample(
            running, p95, settings.stuck_factor, settings.stuck_samples, now
        )

    def _sample(self) -> ResourceSample:
        """Runs on a worker thread: psutil reads /proc, which blocks."""
        start = time.thread_time()
        sample = self.sampler.sample(self.pool.processes.pids())
        self.sample_cost += time.thread_time() - start
        return sample

    def _announce(self, found: tuple[Finding, ...]) -> None:
        """An event for each finding that was not there a second ago."""
        before = {(f.rule, f.title) for f in self.findings}
        for f in found:
            if (f.rule, f.title) not in before:
                self.bus.emit(
                    EventKind.FINDING,
                    message=f"{f.severity}: {f.title}",
                    data={"rule": f.rule, "evidence": f.evidence},
                )

    async def _autoscale(self, view: MetricsView, settings: Settings, now: float) -> None:
        decision = self.scaler.decide(view, self.history.latest, settings, now)
        if decision.changed:
            await self._set_workers(decision.target)
            self.scaler.note_change(now)
        gist = re.sub(r"[\d.,]+", "#", decision.reason)  # the reason without its numbers
        if decision.changed or (_held_back(decision) and gist != self._last_reason):
            self._last_reason = gist
            self.bus.emit(
                EventKind.AUTOSCALED,
                message=decision.reason,
                data={
                    "level": decision.level.value,
                    "current": decision.current,
                    "target": decision.target,
                    "need": decision.need,
                },
            )

    def note_manual_change(self) -> None:
        """An operator set the worker count: give it a cooldown before scaling again."""
        self.scaler.note_change(time.monotonic())


def _held_back(decision: ScaleDecision) -> bool:
    return not decision.reason.startswith("steady")
