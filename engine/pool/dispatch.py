"""The worker pool: a dispatcher that claims work for idle slots and starts it.

The dispatcher claims exactly as many tasks as there are idle slots — no hidden
prefetch, so priorities and reprioritisation apply to everything not yet running
— and starts each on its own asyncio task (:class:`~engine.pool.attempt.AttemptRunner`).
An enqueue may also hand its task straight to a slot it reserved
(:meth:`WorkerPool.reserve`). Slots themselves are :class:`~engine.pool.slots.SlotTable`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from functools import partial

from engine.aio import wait_event
from engine.codec import Codec
from engine.completions import Completer
from engine.events import EventBus, EventKind
from engine.limits import FlowLimits
from engine.metrics import Metrics
from engine.model import TaskState
from engine.pool.attempt import AttemptRunner
from engine.pool.executors import ProcessRunner, ThreadRunner
from engine.pool.slots import RunningTask, SlotTable
from engine.registry import Registry
from engine.settings import Settings
from engine.snapshot import WorkerInfo
from engine.store.base import ClaimedTask, Completion, Store

log = logging.getLogger(__name__)


class WorkerPool:
    """Slots that run claimed tasks, resizable while it runs."""

    def __init__(
        self,
        *,
        store: Store,
        registry: Registry,
        codec: Codec,
        bus: EventBus,
        completer: Completer,
        node: str,
        settings: Callable[[], Settings],
        clock: Callable[[], float],
        metrics: Metrics,
        rng: random.Random | None = None,
        flow: Callable[[], FlowLimits | None] = lambda: None,
    ) -> None:
        self._flow = flow
        self._split_claims = store.split_claims
        self._store = store
        self._registry = registry
        self._bus = bus
        self._completer = completer
        self._node = node
        self._settings = settings
        self._clock = clock
        self._metrics = metrics
        self._wake = asyncio.Event()
        self._slots = SlotTable(self._wake)
        self.running: dict[int, RunningTask] = self._slots.running
        self._reserved = 0  # idle slots promised to enqueue_and_claim calls in flight
        self._dispatcher: asyncio.Task[None] | None = None
        self._stopping = False
        self.claim_gen = 0
        self.threads = ThreadRunner()
        self.processes = ProcessRunner(settings().max_payload_bytes)
        attempts = AttemptRunner(
            codec=codec,
            bus=bus,
            completer=completer,
            node=node,
            settings=settings,
            clock=clock,
            metrics=metrics,
            rng=rng or random.Random(),
            threads=self.threads,
            processes=self.processes,
            free=self._slots.free,
            stopping=lambda: self._stopping,
        )
        self._run_attempt = attempts.run
        self._attempt_done = attempts.done
        self.started_total = 0
        self.started_at = 0.0  # start()'s time: no task waited here before it (queue wait)

    # -- size -------------------------------------------------------------------
    @property
    def size(self) -> int:
        return self._slots.target

    @property
    def busy(self) -> int:
        return len(self.running)

    def busy_seconds(self) -> float:
        """Worker-seconds spent busy since the pool was made (exact, not sampled)."""
        return self._slots.busy_seconds()

    def resize(self, n: int) -> None:
        """Grow at once; shrink idle slots at once and busy ones after their task."""
        self._slots.resize(n)
        self.processes.trim(n)
        self.kick()

    def kick(self) -> None:
        """Wake the dispatcher: there may be work or a free slot."""
        self._wake.set()

    # -- dispatch ---------------------------------------------------------------
    def start(self) -> None:
        self.started_at = self._clock()
        self._dispatcher = asyncio.get_running_loop().create_task(
            self._dispatch(), name="taskdeck-dispatcher"
        )

    async def _dispatch(self) -> None:
        backoff = 0.0
        while not self._stopping:
            settings = self._settings()
            # SQLite: at most half the pool per claim, so that while one half runs on
            # the loop the other half's claim is being written (loop and writer thread
            # overlap). A server store claims every free slot at once: fewer, larger
            # transactions leave the database server (on the same cores, often) more
            # room (bench/cluster_bench.py: 3 nodes 2.4× → 2.7× one node).
            free = self._slots.idle - self._reserved
            half = max(1, (self._slots.target + 1) // 2) if self._split_claims else free
            n = min(free, settings.claim_batch, half)
            if n == 0 or not self._completer.healthy or not len(self._registry):
                self._wake.clear()
                self._slots.waiting_for_slot = n == 0
                # Nothing kicks the pool when the store takes completions again: while
                # it refuses them, look again soon rather than after a long poll_interval.
                healthy = self._completer.healthy
                await wait_event(
                    self._wake,
                    settings.poll_interval if healthy else min(settings.poll_interval, 0.1),
                )
                self._slots.waiting_for_slot = False
                continue
            self._wake.clear()
            try:
                claimed = await self._store.claim(
                    self._node, n, self._registry.names(), settings.lease_ttl, self._flow()
                )
            except Exception as exc:
                backoff = min(5.0, max(0.05, backoff * 2))
                log.error("claiming tasks failed (%s); retrying in %.2f s", exc, backoff)
                self._metrics.record_store_error("claims", exc)
                self._bus.emit(EventKind.STORE_ERROR, message=f"claim failed: {exc}")
                await asyncio.sleep(backoff)
                continue
            backoff = 0.0
            self._metrics.record_store_ok("claims")
            self.claim_gen += 1
            for task in claimed:
                self._start(task)
            if len(claimed) < n and not self._stopping:
                # Out of ready work: sleep until kicked (local enqueue …) or the poll interval
                # (or until a rate limit that held tasks back has a token again).
                retry_in = claimed.retry_in
                wait = (
                    settings.poll_interval
                    if retry_in is None
                    else min(settings.poll_interval, retry_in)
                )
                await wait_event(self._wake, wait)

    def reserve(self) -> bool:
        """Promise an idle slot to a task being enqueued-and-claimed; False if none."""
        if self._stopping or self._slots.idle - self._reserved <= 0:
            return False
        self._reserved += 1
        return True

    def unreserve(self, claimed: ClaimedTask | None) -> None:
        """Give the promised slot back, starting ``claimed`` on it if the store handed
        the task over."""
        self._reserved -= 1
        if claimed is not None:
            self.claim_gen += 1
            self._start(claimed)

    def _start(self, claimed: ClaimedTask) -> None:
        handler = self._registry.find(claimed.handler)
        rt = (
            None
            if handler is None or self._stopping
            else self._slots.occupy(claimed, handler, self.claim_gen)
        )
        if rt is None:
            why = "engine stopping" if self._stopping else "no handler or free worker here"
            self._release(claimed, f"returned unstarted ({why}); attempt not counted")
            return
        self.started_total += 1
        ready = max(claimed.run_at or claimed.created_at, self.started_at)  # see started_at
        self._metrics.record_start(rt.handler.name, rt.handler.executor, claimed.started_at - ready)
        rt.task = asyncio.get_running_loop().create_task(self._run_attempt(rt))
        rt.task.add_done_callback(partial(self._attempt_done, rt))
        if self._bus.has_subscribers:
            self._bus.emit(EventKind.STARTED, **rt.ctx.event_fields(), message=f"on {rt.slot.id}")

    def _release(self, claimed: ClaimedTask, note: str) -> None:
        self._completer.add(
            Completion(
                claimed.id,
                claimed.attempts,
                self._node,
                TaskState.QUEUED,
                self._clock(),
                run_at=self._clock(),
                note=note,
                release=True,
                handler=claimed.handler,
                queue=claimed.queue,
            )
        )

    # -- operator actions on running tasks -------------------------------------
    def cancel_local(self, task_id: int) -> bool:
        """Stop a task running here (the store has already marked it cancelled)."""
        rt = self.running.get(task_id)
        if rt is None:
            return False
        rt.cancel_requested = True
        self._stop_attempt(rt)
        return True

    def _stop_attempt(self, rt: RunningTask) -> None:
        rt.ctx._mark_cancelled()
        if rt.task is not None and not rt.task.done():
            rt.task.cancel()

    def leases_renewed(self, live: set[int], gen: int) -> list[int]:
        """Stop tasks whose lease was taken away (cancelled or rescued elsewhere)."""
        lost = []
        for task_id, rt in list(self.running.items()):
            if rt.claim_gen <= gen and task_id not in live:
                rt.lease_lost = True
                self._stop_attempt(rt)
                lost.append(task_id)
        return lost

    def progress_changes(self) -> list[RunningTask]:
        """Running tasks whose progress changed since the last call."""
        changed = []
        for rt in self.running.values():
            if rt.ctx.progress_version != rt.saved_progress:
                rt.saved_progress = rt.ctx.progress_version
                changed.append(rt)
        return changed

    # -- picture ----------------------------------------------------------------
    def workers(self) -> tuple[WorkerInfo, ...]:
        """Each worker slot as the snapshot shows it."""
        return self._slots.workers()

    # -- stop -------------------------------------------------------------------
    async def stop(self, grace: float) -> int:
        """Stop claiming, give running tasks ``grace`` seconds, then interrupt the rest.

        Interrupted tasks go back to ``queued`` without using an attempt. Returns how
        many were interrupted.
        """
        self._stopping = True
        self.kick()  # the dispatcher ends; a claim it has out returns its tasks unstarted
        tasks = [rt.task for rt in self.running.values() if rt.task is not None]
        if tasks and grace > 0:
            await asyncio.wait(tasks, timeout=grace)
        if self._dispatcher is not None:  # a blocked claim gives up at the stop's deadline
            await self._dispatcher
        leftover = [rt for rt in self.running.values() if rt.task is not None]
        for rt in leftover:
            rt.interrupted = True
            self._stop_attempt(rt)
        if leftover:
            await asyncio.wait([rt.task for rt in leftover if rt.task is not None])
        self.threads.close()
        await self.processes.close()
        return len(leftover)
