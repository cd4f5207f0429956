"""The periodic-task half of the Engine's API: ``@engine.periodic``, schedules and
their operator commands. A mixin of :class:`engine.core.Engine`, kept apart so each
file reads in one go; it uses the engine's store, bus, preparer and pool."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from engine.checks import check_schedule_name
from engine.codec import Codec, to_json
from engine.events import EventBus, EventKind
from engine.handle import TaskHandle
from engine.metrics import Metrics
from engine.model import ScheduleInfo
from engine.schedule import (
    Scheduler,
    ScheduleSpec,
    check_cron,
    check_every,
    check_tz,
    make_spec,
    next_run,
)
from engine.store.base import Store, StoredSchedule

if TYPE_CHECKING:
    from engine.enqueue import Preparer
    from engine.pool import WorkerPool


class PeriodicCommands:
    """``periodic``, ``add_schedule``, ``schedules``, ``pause_schedule``,
    ``resume_schedule`` and ``trigger_schedule``."""

    _preparer: Preparer
    _codec: Codec
    _store: Store
    _bus: EventBus
    _metrics: Metrics
    _clock: Callable[[], float]
    _pool: WorkerPool | None
    _running: bool
    _schedules: dict[str, ScheduleSpec]
    _scheduler: Scheduler | None
    _background: set[asyncio.Task[Any]]

    def task(self, fn: Any = None, /, **options: Any) -> Any:
        raise NotImplementedError

    def _require_running(self) -> None:
        raise NotImplementedError

    def _require_writable(self, verb: str) -> None:
        raise NotImplementedError

    def periodic(
        self,
        every: float | None = None,
        *,
        cron: str | None = None,
        tz: str = "UTC",
        schedule_name: str | None = None,
        payload: Mapping[str, Any] | None = None,
        **task_options: Any,
    ) -> Callable[[Callable[..., Any] | TaskHandle], TaskHandle]:
        """Register a handler that runs on a schedule: ``@engine.periodic(every=300)`` or
        ``@engine.periodic(cron="0 2 * * *", tz="Europe/Berlin")``.

        The schedule is stored, so a restart neither skips nor doubles a run, and with
        several engine processes on one store each run is enqueued exactly once.
        ``payload`` gives the handler's arguments; other keyword arguments are the
        ``@engine.task`` options (name, queue, priority, retries, …). The schedule is
        named after the handler unless ``schedule_name`` says otherwise.
        """
        if (every is None) == (cron is None):
            raise TypeError(
                "a periodic task needs every=<seconds> or cron='<expression>' (exactly one)"
            )
        if every is not None:
            check_every(every)
        if cron is not None:
            check_cron(cron)
        check_tz(tz)

        def register(fn: Callable[..., Any] | TaskHandle) -> TaskHandle:
            handle = fn if isinstance(fn, TaskHandle) else self.task(**task_options)(fn)
            self.add_schedule(
                handle.name,
                every=every,
                cron=cron,
                tz=tz,
                name=schedule_name,
                payload=payload,
                queue=task_options.get("queue"),
                priority=task_options.get("priority"),
            )
            return handle

        return register

    def add_schedule(
        self,
        handler: str,
        *,
        every: float | None = None,
        cron: str | None = None,
        tz: str = "UTC",
        name: str | None = None,
        payload: Mapping[str, Any] | None = None,
        queue: str | None = None,
        priority: int | str | None = None,
    ) -> ScheduleSpec:
        """Define a periodic run of ``handler`` (see :meth:`periodic`); the store learns
        of it when the engine starts (at once if it is running)."""
        new = self._preparer.prepare(handler, payload, priority=priority, queue=queue)
        spec = make_spec(
            handler,
            every=every,
            cron=cron,
            tz=tz,
            name=name,
            payload=dict(payload or {}),
            queue=new.queue,
            priority=new.priority,
            retries=new.retries,
        )
        self._schedules[spec.name] = spec
        if self._running:
            task = asyncio.get_running_loop().create_task(self._sync_schedules([spec]))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return spec

    async def _sync_schedules(self, specs: Iterable[ScheduleSpec]) -> None:
        now = self._clock()
        stored = [
            StoredSchedule(
                s.name,
                s.handler,
                self._codec.seal(to_json(s.payload, "payload")),
                to_json(s.payload, "payload"),
                s.queue,
                s.priority,
                s.retries,
                s.every,
                s.cron,
                s.tz,
                s.first_run(now),
            )
            for s in specs
        ]
        if not stored:
            return
        changed = await self._store.sync_schedules(stored)
        for name in changed:
            self._bus.emit(
                EventKind.SCHEDULE_CHANGED,
                message=f"schedule {name}: {self._schedules[name].rule}",
            )
        if self._scheduler is not None:
            self._scheduler.wake()

    async def schedules(self) -> list[ScheduleInfo]:
        """Every stored schedule: rule, next run, last run and its task's state, paused."""
        self._require_running()
        return await self._store.schedules()

    async def pause_schedule(self, name: str) -> bool:
        """Stop a schedule's runs; returns False if it was already paused."""
        return await self._set_schedule_paused(name, True)

    async def resume_schedule(self, name: str) -> bool:
        """Start a paused schedule again from its next time after now (missed runs are
        not made up); returns False if it was not paused."""
        return await self._set_schedule_paused(name, False)

    async def _set_schedule_paused(self, name: str, paused: bool) -> bool:
        check_schedule_name(name)
        self._require_writable("pause a schedule" if paused else "resume a schedule")
        changed = await self._store.set_schedule_paused(name, paused, next_run)
        if changed:
            verb = "paused" if paused else "resumed"
            self._bus.emit(EventKind.SCHEDULE_CHANGED, message=f"schedule {name} {verb}")
            if self._scheduler is not None:
                self._scheduler.wake()
        return changed

    async def trigger_schedule(self, name: str) -> str:
        """Enqueue one run of a schedule now (its next scheduled run stays); returns the
        task id."""
        check_schedule_name(name)
        self._require_writable("trigger a schedule")
        task_id = await self._store.trigger_schedule(name, "operator")
        self._on_fired([(name, task_id, "")], by="operator")
        return task_id

    def _on_fired(self, fired: list[tuple[str, str, str]], by: str = "schedule") -> None:
        for name, task_id, queue in fired:
            if queue:
                self._metrics.record_enqueued(queue, 1)
            self._bus.emit(
                EventKind.SCHEDULE_FIRED,
                task_id=task_id,
                queue=queue or None,
                message=f"{name}: run enqueued" + (" by operator" if by == "operator" else ""),
            )
        if self._pool is not None:
            self._pool.kick()
