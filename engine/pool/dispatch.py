"""The worker pool: a dispatcher that claims work for idle slots and a ready buffer,
and starts it.

The dispatcher claims, in one transaction, enough tasks for the idle slots plus up
to ``prefetch`` more, held in a :class:`~engine.pool.buffer.ReadyBuffer` (leased,
unstarted), and a slot that frees takes the best held task at once, without a store
round trip. Each task runs on its own asyncio task
(:class:`~engine.pool.attempt.AttemptRunner`). An enqueue may also hand its task
straight to a slot it reserved (:meth:`WorkerPool.reserve`). Slots themselves are
:class:`~engine.pool.slots.SlotTable`.

Held tasks never start against an operator's command: this process's cancel, pause
and reprioritize act on the buffer directly (:class:`~engine.pool.held.HeldCommands`),
and a held task starts only within ``prefetch_ttl`` of a claim that confirmed it
(each claim re-checks every held id), so another process's cancel or pause takes
effect on it too.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from functools import partial

from engine.aio import wait_event
from engine.codec import Codec
from engine.completions import Completer
from engine.events import EventBus, EventKind
from engine.limits import FlowLimits
from engine.metrics import Metrics
from engine.pool.attempt import AttemptRunner
from engine.pool.buffer import ReadyBuffer
from engine.pool.executors import ProcessRunner, ThreadRunner
from engine.pool.held import HeldCommands
from engine.pool.slots import RunningTask, SlotTable
from engine.registry import Registry
from engine.settings import Settings
from engine.snapshot import WorkerInfo
from engine.store.base import Claimed, ClaimedTask, Store
from engine.tasklog import TaskLogs

log = logging.getLogger(__name__)


class WorkerPool:
    """Slots that run claimed tasks, resizable while it runs, and the ready buffer."""

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
        logs: TaskLogs | None = None,
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
        self._buffer = ReadyBuffer()
        self.held = HeldCommands(self._buffer, completer, node, clock, self.kick)
        self._reserved = 0  # idle slots promised to enqueue_and_claim calls in flight
        self._dispatcher: asyncio.Task[None] | None = None
        self._stopping = False
        self._exhausted_until = 0.0  # the last claim found no more ready work: wait
        self._kicks = 0  # kicks so far: one during a claim means new work may be ready
        #: the last claim got all it asked for: work is backed up, so claim ahead (a
        #: short claim ends it: then only idle slots are claimed for, as with prefetch=0)
        self._backlog = False
        self._buffer_wait = 0.0  # how long the task being started was held
        self.claim_gen = 0
        self.claim_batches = 0  # claim transactions that leased tasks, and how many
        self.claimed_total = 0
        self.threads = ThreadRunner()
        self.processes = ProcessRunner(
            settings().max_payload_bytes,
            lambda: (settings().max_tasks_per_child, settings().max_memory_per_child),
        )
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
            free=self._slot_freed,
            stopping=lambda: self._stopping,
            logs=logs,
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

    @property
    def buffered(self) -> int:
        """Tasks claimed and held ready for a slot (leased, not started)."""
        return len(self._buffer)

    def buffered_per_queue(self) -> dict[str, int]:
        return self._buffer.per_queue()

    def holds(self, task_id: int) -> bool:
        return task_id in self._buffer

    def held_ids(self) -> list[int]:
        """The ids of the tasks held ready (leased, not started)."""
        return self._buffer.ids()

    def busy_seconds(self) -> float:
        """Worker-seconds spent busy since the pool was made (exact, not sampled)."""
        return self._slots.busy_seconds()

    def resize(self, n: int) -> None:
        """Grow at once; shrink idle slots at once and busy ones after their task."""
        self._slots.resize(n)
        self.processes.trim(n)
        if n == 0:  # no worker will start what is held: back to the queue for others
            self.held.give_back_all("no workers left here")
        self.kick()

    def kick(self) -> None:
        """Wake the dispatcher: there may be work or a free slot. A pool of no
        workers (a producer's) has nothing to claim: waking it for every enqueue
        would only cost the loop a turn."""
        self._exhausted_until = 0.0
        self._kicks += 1
        if self._slots.target or self._stopping:
            self._wake.set()

    # -- dispatch ---------------------------------------------------------------
    def start(self) -> None:
        self.started_at = self._clock()
        self._dispatcher = asyncio.get_running_loop().create_task(
            self._dispatch(), name="taskdeck-dispatcher"
        )

    def _wanted(self, settings: Settings) -> int:
        """How many tasks to claim now: for the idle slots and, while work is backed
        up, room in the buffer, once it is down to half (so claims come in batches)."""
        free = self._slots.idle - self._reserved
        held, prefetch = len(self._buffer), settings.prefetch
        if self._stopping or self.held.holds or not self._slots.target:
            return 0  # a pool of no workers (a producer) holds nothing either
        # Flow control (rate, concurrency, weights) applies at claim time: it then
        # claims only for idle slots, so limits and shares hold when tasks start.
        if prefetch == 0 or not self._backlog or self._flow() is not None:
            # SQLite: at most half the pool per claim, so that while one half runs on
            # the loop the other half's claim is being written (loop and writer thread
            # overlap). A server store claims every free slot at once: fewer, larger
            # transactions leave the database server (on the same cores, often) more
            # room (bench/cluster_bench.py: 3 nodes 2.4× → 2.7× one node). With a
            # buffer the overlap comes from the buffer itself.
            half = max(1, (self._slots.target + 1) // 2) if self._split_claims else free
            return max(0, min(free - held, settings.claim_batch, half))
        if held > prefetch // 2 and held >= free:
            return 0
        return max(0, min(free + prefetch - held, settings.claim_batch))

    def _confirm_in(self, settings: Settings) -> float | None:
        """Seconds until the held tasks are to be confirmed again (None: no need): at
        half their ``prefetch_ttl``, so that a slot that frees rarely waits for it;
        with a ``prefetch_ttl`` of 0, whenever a slot waits for one."""
        if not self._buffer:
            return None
        ttl = settings.prefetch_ttl
        if ttl == 0:
            return 0.0 if self._slots.idle > self._reserved else None
        return self._buffer.confirmed_at + ttl / 2 - time.monotonic()

    async def _dispatch(self) -> None:
        backoff = 0.0
        while not self._stopping:
            settings = self._settings()
            self._fill()  # e.g. slots added by a resize
            n = self._wanted(settings)
            confirm_in = self._confirm_in(settings)
            confirm = confirm_in is not None and confirm_in <= 0
            now = time.monotonic()
            looking = n > 0 and now >= self._exhausted_until
            if (
                not (looking or confirm)
                or self.held.holds
                or not self._completer.healthy
                or not len(self._registry)
            ):
                self._wake.clear()
                # Nothing kicks the pool when the store takes completions again: while
                # it refuses them, look again soon rather than after a long poll_interval.
                healthy = self._completer.healthy
                wait = settings.poll_interval if healthy else min(settings.poll_interval, 0.1)
                if n > 0 and self._exhausted_until > now:
                    wait = min(wait, self._exhausted_until - now)
                if confirm_in is not None and confirm_in > 0:
                    wait = min(wait, confirm_in)
                await wait_event(self._wake, wait)
                continue
            self._wake.clear()
            kicks = self._kicks
            try:
                claimed = await self._claim(settings, n)
            except Exception as exc:
                backoff = min(5.0, max(0.05, backoff * 2))
                log.error("claiming tasks failed (%s); retrying in %.2f s", exc, backoff)
                self._metrics.record_store_error("claims", exc)
                self._bus.emit(EventKind.STORE_ERROR, message=f"claim failed: {exc}")
                await asyncio.sleep(backoff)
                continue
            backoff = 0.0
            self._metrics.record_store_ok("claims")
            # A kick while the claim was out (a task enqueued after the claim's read)
            # means more may be ready now: look again rather than wait.
            if len(claimed) < n and not self._stopping and kicks == self._kicks:
                # Out of ready work: no claim for new work until kicked (local enqueue …)
                # or the poll interval (or until a rate limit that held tasks back has a
                # token again); held tasks are still confirmed on time meanwhile.
                retry_in = claimed.retry_in
                wait = (
                    settings.poll_interval
                    if retry_in is None
                    else min(settings.poll_interval, retry_in)
                )
                self._exhausted_until = time.monotonic() + wait

    async def _claim(self, settings: Settings, n: int) -> Claimed:
        """One claim transaction: up to ``n`` new tasks, and the held ones confirmed."""
        held = self._buffer.ids()
        guarded = set(self.held.paused_here)
        sent_at = time.monotonic()
        self.held.claim_out.clear()
        try:
            claimed = await self._store.claim(
                self._node,
                n,
                self._registry.names(),
                settings.lease_ttl,
                self._flow(),
                held=held,
            )
        finally:
            self.held.claim_out.set()
        self.claim_gen += 1
        if n:
            self._backlog = len(claimed) >= n
        if claimed:
            self.claim_batches += 1
            self.claimed_total += len(claimed)
        if self._stopping:
            for task in claimed:
                self.held.give_back(task, "engine stopping")
            return claimed
        for task_id in self.held.claimed(claimed, self.claim_gen, sent_at, guarded):
            rt = self.running.get(task_id)  # started from the buffer while the claim was out
            if rt is not None:
                rt.lease_lost = True
                self._stop_attempt(rt)
        self._fill(fresh=True)
        return claimed

    def _fill(self, fresh: bool = False) -> None:
        """Start held tasks on idle slots, best first, if the store confirmed them
        within ``prefetch_ttl`` (else wake the dispatcher to confirm them first)."""
        buffer = self._buffer
        if not buffer or self._stopping:
            return
        if not fresh:
            ttl = self._settings().prefetch_ttl
            if time.monotonic() - buffer.confirmed_at > ttl:
                self._wake.set()
                return
        while self._slots.idle > self._reserved:
            held = buffer.pop()
            if held is None:
                break
            self._buffer_wait = time.monotonic() - held.since
            self._start(held.claimed)
        self._buffer_wait = 0.0

    def _slot_freed(self, rt: RunningTask) -> None:
        """A slot's attempt ended: it takes the next held task at once; the dispatcher
        is woken when the buffer is down to where it claims again."""
        self._slots.free(rt)
        self._fill()
        if time.monotonic() >= self._exhausted_until and self._wanted(self._settings()):
            self._wake.set()

    def reserve(self) -> bool:
        """Promise an idle slot to a task being enqueued-and-claimed; False if none
        (held tasks come first)."""
        if self._stopping or self._buffer or self._slots.idle - self._reserved <= 0:
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
        self._fill()

    def _start(self, claimed: ClaimedTask) -> None:
        handler = self._registry.find(claimed.handler)
        rt = (
            None
            if handler is None or self._stopping
            else self._slots.occupy(claimed, handler, self.claim_gen)
        )
        if rt is None:
            why = "engine stopping" if self._stopping else "no handler or free worker here"
            self.held.release(claimed, f"returned unstarted ({why}); attempt not counted")
            return
        self.started_total += 1
        ready = max(claimed.run_at or claimed.created_at, self.started_at)  # see started_at
        wait = claimed.started_at - ready + self._buffer_wait
        self._metrics.record_start(rt.handler.name, rt.handler.executor, wait, claimed.queue)
        rt.task = asyncio.get_running_loop().create_task(self._run_attempt(rt))
        rt.task.add_done_callback(partial(self._attempt_done, rt))
        if self._bus.has_subscribers:
            self._bus.emit(EventKind.STARTED, **rt.ctx.event_fields(), message=f"on {rt.slot.id}")

    # -- operator actions on running tasks -------------------------------------
    def cancel_local(self, task_id: int) -> bool:
        """Stop a task running or held here (the store has already marked it cancelled)."""
        rt = self.running.get(task_id)
        if rt is None:
            return self.held.cancel(task_id)
        rt.cancel_requested = True
        self._stop_attempt(rt)
        return True

    def _stop_attempt(self, rt: RunningTask) -> None:
        rt.ctx._mark_cancelled()
        if rt.task is not None and not rt.task.done():
            rt.task.cancel()

    def leases_renewed(self, live: set[int], gen: int) -> list[int]:
        """Stop (or drop, if held) tasks whose lease was taken away (cancelled or
        rescued elsewhere)."""
        lost = [h.claimed.id for h in self._buffer.take_lost(live, gen)]
        self.held.dropped += len(lost)
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
        self.held.give_back_all("engine stopping")
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
