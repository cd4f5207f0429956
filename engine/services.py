"""Background maintenance, one small service each (as River and SAQ do it).

Each service has an interval and a ``run_once()`` that tests can call directly;
``run()`` loops forever, logging (never propagating) failures so one bad cycle
cannot stop the engine.

- :class:`LeaseKeeper` renews this node's leases and stops tasks it lost.
- :class:`Rescuer` requeues tasks whose lease expired (a crashed worker's).
- :class:`Promoter` moves due scheduled tasks to the queue, on a timer.
- :class:`Cleaner` purges finished tasks past their TTL and calls ``on_expire``.
- :class:`ProgressReporter` saves and broadcasts handler progress.
- :class:`LogFlusher` writes the task log lines captured since its last run.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from engine.aio import wait_event
from engine.codec import Codec
from engine.events import EventBus, EventKind
from engine.model import TaskState
from engine.pool import WorkerPool
from engine.settings import Settings
from engine.store.base import Expired, Rescued, Store
from engine.tasklog import TaskLogs

log = logging.getLogger(__name__)

ExpireHook = Callable[[list[Expired]], Awaitable[None] | None]


class Service:
    name = "service"

    def __init__(self, store: Store, settings: Callable[[], Settings], bus: EventBus) -> None:
        self.store = store
        self.settings = settings
        self.bus = bus
        self.runs = 0
        self.errors = 0

    def interval(self) -> float:
        raise NotImplementedError

    async def run_once(self) -> None:
        raise NotImplementedError

    async def sleep(self) -> None:
        await asyncio.sleep(self.interval())

    async def run(self) -> None:
        while True:
            try:
                await self.run_once()
                self.runs += 1
            except Exception as exc:
                self.errors += 1
                log.error("%s failed: %s", self.name, exc)
                self.bus.emit(EventKind.STORE_ERROR, message=f"{self.name} failed: {exc}")
            await self.sleep()


class PoolService(Service):
    """A service that works on this node's running tasks."""

    def __init__(
        self,
        store: Store,
        settings: Callable[[], Settings],
        bus: EventBus,
        pool: WorkerPool,
        node: str,
    ) -> None:
        super().__init__(store, settings, bus)
        self.pool = pool
        self.node = node


class LeaseKeeper(PoolService):
    name = "lease renewal"
    lost = 0

    def interval(self) -> float:
        return self.settings().lease_renew_interval

    async def run_once(self) -> None:
        if not self.pool.running and not self.pool.buffered:
            return
        gen = self.pool.claim_gen
        live = await self.store.renew_leases(self.node, self.settings().lease_ttl)
        for task_id in self.pool.leases_renewed(live, gen):
            self.lost += 1
            log.warning("task %s is no longer leased to this engine; stopped it", task_id)
            self.bus.emit(
                EventKind.STALE_COMPLETION,
                task_id=str(task_id),
                message="lease taken over elsewhere (cancelled or rescued); stopped here",
            )


class Rescuer(Service):
    name = "rescue"

    def __init__(
        self,
        store: Store,
        settings: Callable[[], Settings],
        bus: EventBus,
        node: str,
        on_rescued: Callable[[list[Rescued]], None],
    ) -> None:
        super().__init__(store, settings, bus)
        self.node = node
        self.on_rescued = on_rescued
        self.rescued = 0

    def interval(self) -> float:
        return self.settings().rescue_interval

    async def run_once(self) -> None:
        rescued = await self.store.rescue(self.node)
        if rescued:
            self.rescued += len(rescued)
            self.on_rescued(rescued)


class TimedService(Service):
    """A service that sleeps until its next due time (woken early by :meth:`wake`),
    and looks at least every ``poll_interval × 4`` for what other processes changed."""

    def __init__(
        self,
        store: Store,
        settings: Callable[[], Settings],
        bus: EventBus,
        clock: Callable[[], float],
    ) -> None:
        super().__init__(store, settings, bus)
        self.clock = clock
        self.next_due: float | None = None
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def interval(self) -> float:
        horizon = self.settings().poll_interval * 4
        if self.next_due is None:
            return horizon
        return max(0.0, min(horizon, self.next_due - self.clock()))

    async def sleep(self) -> None:
        self._wake.clear()
        await wait_event(self._wake, self.interval())


class Promoter(TimedService):
    """Scheduled → queued when due, on a timer set for the earliest due time (reset
    by :meth:`notify` when this process schedules something sooner), so a delayed
    task starts on time without polling every few milliseconds."""

    name = "scheduler"

    def __init__(
        self,
        store: Store,
        settings: Callable[[], Settings],
        bus: EventBus,
        clock: Callable[[], float],
        on_promoted: Callable[[list[tuple[int, str]]], None],
    ) -> None:
        super().__init__(store, settings, bus, clock)
        self.on_promoted = on_promoted

    def notify(self, run_at: float) -> None:
        if self.next_due is None or run_at < self.next_due:
            self.next_due = run_at
            self.wake()

    async def run_once(self) -> None:
        moved, self.next_due = await self.store.promote_due()
        if moved:
            self.on_promoted(moved)


class Cleaner(Service):
    name = "cleanup"

    def __init__(
        self,
        store: Store,
        settings: Callable[[], Settings],
        bus: EventBus,
        on_expire: ExpireHook | None,
        forget_audit: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        super().__init__(store, settings, bus)
        self.on_expire = on_expire
        self.forget_audit = forget_audit  # the audit trail's retention
        self.purged = 0

    def interval(self) -> float:
        return self.settings().cleanup_interval

    async def run_once(self) -> None:
        settings = self.settings()
        if self.forget_audit is not None:
            await self.forget_audit()
        while True:
            expired = await self.store.purge_expired(
                settings.result_ttl, settings.failed_ttl, settings.cleanup_batch
            )
            if not expired:
                return
            self.purged += len(expired)
            self.bus.emit(
                EventKind.EXPIRED,
                message=f"{len(expired)} finished tasks expired",
                data={"count": len(expired)},
            )
            await self._call_hook(expired)
            if len(expired) < settings.cleanup_batch:
                return

    async def _call_hook(self, expired: list[Expired]) -> None:
        if self.on_expire is None:
            return
        try:
            outcome: Any = self.on_expire(expired)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception as exc:
            log.exception("the on_expire hook failed")
            self.bus.emit(EventKind.HOOK_ERROR, message=f"on_expire failed: {exc}")


class ProgressReporter(PoolService):
    """Saves what handlers report (the message sealed, with a key) and broadcasts it."""

    name = "progress"

    def __init__(
        self,
        store: Store,
        settings: Callable[[], Settings],
        bus: EventBus,
        pool: WorkerPool,
        node: str,
        codec: Codec,
    ) -> None:
        super().__init__(store, settings, bus, pool, node)
        self.codec = codec

    def interval(self) -> float:
        return self.settings().progress_interval

    async def run_once(self) -> None:
        changed = self.pool.progress_changes()
        if not changed:
            return
        items = [
            (rt.claimed.id, self.node, rt.ctx.progress_fraction, rt.ctx.message) for rt in changed
        ]
        seal = self.codec.seal
        sealed = [(i, n, f, None if m is None else seal(m)) for i, n, f, m in items]
        await self.store.save_progress(sealed)  # saved first: events describe stored state
        if not self.bus.has_subscribers:
            return
        for rt, (_, _, fraction, message) in zip(changed, items, strict=True):
            text = f"{(fraction or 0) * 100:.0f}% {message or ''}".strip()
            self.bus.emit(
                EventKind.PROGRESS,
                **rt.ctx.event_fields(),
                message=text,
                data={"progress": fraction},
            )


class LogFlusher(Service):
    """Writes captured task log lines on the progress clock (a running task's lines
    show while it runs; the last ones are written before its completion)."""

    name = "task logs"

    def __init__(
        self, store: Store, settings: Callable[[], Settings], bus: EventBus, logs: TaskLogs
    ) -> None:
        super().__init__(store, settings, bus)
        self.logs = logs

    def interval(self) -> float:
        return self.settings().progress_interval

    async def run_once(self) -> None:
        await self.logs.flush()


def rescued_event(bus: EventBus, rescued: Rescued) -> None:
    lost = f"worker lost during attempt {rescued.attempts}/{rescued.max_retries + 1}"
    outcome = "failed" if rescued.state == TaskState.FAILED else "requeued"
    bus.emit(
        EventKind.RESCUED,
        task_id=str(rescued.id),
        handler=rescued.handler,
        queue=rescued.queue,
        attempt=rescued.attempts,
        message=f"{lost} (lease of {rescued.owner} expired); {outcome}",
    )
