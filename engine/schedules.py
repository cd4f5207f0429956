"""Periodic schedules as a part: ``@engine.periodic``, ``add_schedule`` and the
operator's schedule commands. (Parsing rules and the firing loop are in
:mod:`engine.schedule`.)"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from engine.audit import Audit
from engine.checks import check_schedule_name
from engine.codec import Codec, to_json
from engine.enqueue import Preparer
from engine.events import EventBus, EventKind
from engine.handle import TaskHandle
from engine.metrics import Metrics
from engine.model import ScheduleInfo
from engine.schedule import ScheduleSpec, check_cron, check_every, check_tz, make_spec, next_run
from engine.state import EngineState
from engine.store.base import Store, StoredSchedule

#: ``engine.task(**options)``: the decorator that registers a handler
Register = Callable[..., Callable[[Callable[..., Any]], TaskHandle]]


class Schedules:
    """The schedules defined here (stored on start, or at once when running) and the
    commands on stored ones."""

    def __init__(
        self,
        state: EngineState,
        store: Store,
        codec: Codec,
        bus: EventBus,
        metrics: Metrics,
        clock: Callable[[], float],
        preparer: Preparer,
        register: Register,
        audit: Audit,
    ) -> None:
        self._state = state
        self._audit = audit
        self._store = store
        self._codec = codec
        self._bus = bus
        self._metrics = metrics
        self._clock = clock
        self._preparer = preparer
        self._register = register
        self._specs: dict[str, ScheduleSpec] = {}

    def periodic(
        self,
        every: float | None,
        cron: str | None,
        tz: str,
        schedule_name: str | None,
        payload: Mapping[str, Any] | None,
        task_options: dict[str, Any],
    ) -> Callable[[Callable[..., Any] | TaskHandle], TaskHandle]:
        """The decorator ``@engine.periodic(...)`` returns (see there)."""
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
            handle = fn if isinstance(fn, TaskHandle) else self._register(**task_options)(fn)
            queue, priority = task_options.get("queue"), task_options.get("priority")
            self.add(handle.name, every, cron, tz, schedule_name, payload, queue, priority)
            return handle

        return register

    def add(
        self,
        handler: str,
        every: float | None,
        cron: str | None,
        tz: str,
        name: str | None,
        payload: Mapping[str, Any] | None,
        queue: str | None,
        priority: int | str | None,
    ) -> ScheduleSpec:
        """Define a periodic run of ``handler``; stored on start (at once if running)."""
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
        self._specs[spec.name] = spec
        if self._state.running:
            self._state.spawn(self.sync([spec]))
        return spec

    async def sync_all(self) -> None:
        """Store every schedule defined here (on start)."""
        await self.sync(self._specs.values())

    async def sync(self, specs: Iterable[ScheduleSpec]) -> None:
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
                message=f"schedule {name}: {self._specs[name].rule}",
            )
        if self._state.scheduler is not None:
            self._state.scheduler.wake()

    async def stored(self) -> list[ScheduleInfo]:
        """Every stored schedule: rule, next run, last run and its task's state, paused."""
        self._state.require_running()
        return await self._store.schedules()

    async def set_paused(self, name: str, paused: bool) -> bool:
        """Pause or resume a schedule; False if it already was so."""
        check_schedule_name(name)
        self._state.require_writable("pause a schedule" if paused else "resume a schedule")
        verb = "pause" if paused else "resume"
        async with self._audit.action(f"{verb}_schedule", f"schedule {name}") as outcome:
            changed = await self._store.set_schedule_paused(name, paused, next_run)
            outcome.text = f"{verb}d" if changed else f"already {verb}d"
        if changed:
            verb = "paused" if paused else "resumed"
            self._bus.emit(EventKind.SCHEDULE_CHANGED, message=f"schedule {name} {verb}")
            if self._state.scheduler is not None:
                self._state.scheduler.wake()
        return changed

    async def trigger(self, name: str) -> str:
        """Enqueue one run of a schedule now; returns the task id."""
        check_schedule_name(name)
        self._state.require_writable("trigger a schedule")
        async with self._audit.action("run_schedule", f"schedule {name}") as outcome:
            task_id = await self._store.trigger_schedule(name, self._state.actor.who)
            outcome.text = f"task {task_id} enqueued"
        self.on_fired([(name, task_id, "")], by=self._state.actor.who)
        return task_id

    def on_fired(self, fired: list[tuple[str, str, str]], by: str = "schedule") -> None:
        """Schedules enqueued runs (``(schedule, task id, queue)`` each)."""
        for name, task_id, queue in fired:
            if queue:
                self._metrics.record_enqueued(queue, 1)
            self._bus.emit(
                EventKind.SCHEDULE_FIRED,
                task_id=task_id,
                queue=queue or None,
                message=f"{name}: run enqueued" + ("" if by == "schedule" else f" by {by}"),
            )
        self._state.kick()
