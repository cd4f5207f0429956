"""Completion fan-out: what happens here after a task's outcome is stored.

The completer reports each batch it wrote; this part wakes ``engine.wait`` callers,
runs the handler's ``on_success`` / ``on_failure`` hook, tells the promoter and the
pool about retries and follow-ups, counts and emits events. The rescuer and the
promoter report here too."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

from engine.events import EventBus, EventKind
from engine.metrics import Metrics
from engine.model import TERMINAL_STATES, TaskState
from engine.registry import Registry
from engine.services import rescued_event
from engine.state import EngineState
from engine.store.base import CompletionReport, Rescued, Store
from engine.waiters import Waiters

log = logging.getLogger(__name__)

_TASK_EVENT = {
    TaskState.SUCCEEDED: EventKind.SUCCEEDED,
    TaskState.FAILED: EventKind.FAILED,
    TaskState.SCHEDULED: EventKind.RETRY_SCHEDULED,
    TaskState.QUEUED: EventKind.RETRY_SCHEDULED,
}


class Outcomes:
    """Callbacks for the completer, the rescuer and the promoter."""

    def __init__(
        self,
        state: EngineState,
        store: Store,
        registry: Registry,
        bus: EventBus,
        metrics: Metrics,
        waiters: Waiters,
    ) -> None:
        self._state = state
        self._store = store
        self._registry = registry
        self._bus = bus
        self._metrics = metrics
        self._waiters = waiters

    def on_report(self, report: CompletionReport) -> None:
        """A batch of completions was written (``applied``) or dropped (``stale``)."""
        state, stats = self._state, self._state.stats
        self._metrics.record_store_ok("completions")
        emit = self._bus.has_subscribers
        for c in report.applied:
            if c.unstarted:  # held ready, given back unstarted: nothing to announce
                stats["given_back"] += 1
                continue
            if c.release:
                stats["interrupted"] += 1
                kind = EventKind.INTERRUPTED
            else:
                kind = _TASK_EVENT[c.state]
                if c.state == TaskState.SCHEDULED and state.promoter is not None:
                    assert c.run_at is not None
                    state.promoter.notify(c.run_at)
                elif c.state == TaskState.QUEUED and state.pool is not None:
                    state.pool.kick()
                if c.state in (TaskState.SCHEDULED, TaskState.QUEUED):
                    stats["retries"] += 1
            if c.state in TERMINAL_STATES:
                self._waiters.finished(c.task_id)
                self.call_hook(c.handler, c.state, c.task_id)
                if (c.workflow_id is not None or c.webhook is not None) and state.pool:
                    state.pool.kick()  # the next step or a webhook task may be queued
            if emit:
                self._bus.emit(
                    kind,
                    task_id=str(c.task_id),
                    handler=c.handler,
                    queue=c.queue,
                    attempt=c.attempt,
                    message=c.note or "",
                )
        for c in report.stale:
            stats["stale_completions"] += 1
            log.warning(
                "dropped a late completion of task %s (attempt %s): its lease was taken over",
                c.task_id,
                c.attempt,
            )
            self._bus.emit(
                EventKind.STALE_COMPLETION,
                task_id=str(c.task_id),
                handler=c.handler,
                attempt=c.attempt,
                message="late result dropped: lease lost",
            )
        if state.progress is not None:
            state.progress.set()

    def call_hook(self, handler_name: str, state: TaskState, task_id: int) -> None:
        """Run the handler's on_success / on_failure hook, off the completion path."""
        handler = self._registry.find(handler_name)
        if handler is None:
            return
        hook = handler.on_success if state == TaskState.SUCCEEDED else None
        if state == TaskState.FAILED:
            hook = handler.on_failure
        if hook is None:
            return
        self._state.spawn(self._run_hook(hook, handler_name, task_id))

    async def _run_hook(self, hook: Callable[[Any], Any], handler: str, task_id: int) -> None:
        try:
            outcome = hook(await self._store.get(task_id))
            if inspect.isawaitable(outcome):
                await outcome
        except Exception as exc:
            log.exception("the %s hook of %s failed for task %s", hook.__name__, handler, task_id)
            self._bus.emit(
                EventKind.HOOK_ERROR,
                task_id=str(task_id),
                handler=handler,
                message=f"{getattr(hook, '__name__', 'hook')} failed: {exc}",
            )

    def on_store_error(self, exc: Exception) -> None:
        """The completer could not write a batch (it retries)."""
        self._metrics.record_store_error("completions", exc)
        self._bus.emit(EventKind.STORE_ERROR, message=str(exc))

    def on_rescued(self, rescued: list[Rescued]) -> None:
        """Tasks whose lease expired went back to the queue (or failed for good)."""
        self._state.stats["rescued"] += len(rescued)
        for r in rescued:
            log.warning(
                "rescued task %s from %s (attempt %d/%d): %s",
                r.id,
                r.owner,
                r.attempts,
                r.max_retries + 1,
                r.state,
            )
            rescued_event(self._bus, r)
            if r.state == TaskState.FAILED:
                self._metrics.failed.add()
                self._metrics.done.add()
                self._waiters.finished(r.id)
                self.call_hook(r.handler, r.state, r.id)
        self._state.kick()

    def on_promoted(self, moved: list[tuple[int, str]]) -> None:
        """Scheduled tasks came due and were queued."""
        self._state.kick()
        if self._state.progress is not None:
            self._state.progress.set()
        if self._bus.has_subscribers:
            for task_id, queue in moved:
                self._bus.emit(
                    EventKind.PROMOTED, task_id=str(task_id), queue=queue, message="due: queued"
                )
