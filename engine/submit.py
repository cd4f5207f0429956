"""Enqueueing as a part: single tasks (handed straight to an idle worker when one
waits), batches and workflows, and what follows a durable enqueue (metrics, waking
the pool or the promoter, events). Checking what is enqueued is :mod:`engine.enqueue`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from engine import tracing
from engine.audit import Audit
from engine.checks import parse_task_id
from engine.enqueue import Preparer
from engine.errors import StoreError
from engine.events import EventBus, EventKind
from engine.metrics import Metrics
from engine.model import TaskId, WorkflowRecord
from engine.state import EngineState
from engine.store.base import NewTask, Store
from engine.workflow import Workflow


class Submitter:
    """Stores new tasks and tells the running engine about them."""

    def __init__(
        self,
        state: EngineState,
        store: Store,
        bus: EventBus,
        metrics: Metrics,
        preparer: Preparer,
        node: str,
        clock: Callable[[], float],
        audit: Audit,
    ) -> None:
        self._state = state
        self._audit = audit
        self._store = store
        self._bus = bus
        self._metrics = metrics
        self._preparer = preparer
        self._node = node
        self._clock = clock
        self._tracer = tracing.tracer()

    async def enqueue(
        self, handler: str, payload: Mapping[str, Any] | None, *options: Any
    ) -> TaskId:
        """Enqueue one task (checked by :meth:`Preparer.prepare`); returns its id once
        the task is durably stored. An operator's (see :mod:`engine.audit`) is recorded."""
        if not self._audit.operator_enqueue:
            return await self._enqueue(handler, payload, *options)
        try:
            task_id = await self._enqueue(handler, payload, *options)
        except (TypeError, ValueError, LookupError, StoreError):
            raise  # bad input (checked before anything is written), or a store refusing
            # writes (recording would wait for it again): no action was taken
        except Exception as exc:
            name = handler if isinstance(handler, str) else repr(handler)
            what = f"{type(exc).__name__}: {exc}"
            await self._audit.record("enqueue", f"handler {name}", what, ok=False)
            raise
        outcome = f"duplicate of task {task_id} (unique key)" if task_id.deduplicated else "queued"
        await self._audit.record(
            "enqueue", f"task {task_id} ({handler})", outcome, task_id=int(task_id)
        )
        return task_id

    async def _enqueue(
        self,
        handler: str,
        payload: Mapping[str, Any] | None,
        priority: int | str | None,
        queue: str | None,
        delay: float | None,
        run_at: Any,
        unique_key: str | None,
        webhook: str | None,
    ) -> TaskId:
        new = self._preparer.prepare(
            handler,
            payload,
            priority=priority,
            queue=queue,
            delay=delay,
            run_at=run_at,
            unique_key=unique_key,
            webhook=webhook,
        )
        self._state.require_writable("enqueue")
        if self._tracer is None:
            return await self._store_one(new)
        with tracing.producing(self._tracer, [new]) as span:
            task_id = await self._store_one(new)
            tracing.enqueued(span, [task_id])
        return task_id

    async def _store_one(self, new: NewTask) -> TaskId:
        state = self._state
        pool = state.pool
        flow = state.flow_limits()
        handoff = (
            new.run_at is None
            and new.plain
            and new.handler in state.registry
            and not (flow and flow.holds(new.queue, new.handler))  # limits apply at claim
        )
        if pool is None or not handoff or not pool.reserve():
            ids = await self._store.enqueue([new])
            self.after_enqueue([new], ids)
            return ids[0]
        # An idle worker is waiting: the store may hand the task straight to it.
        try:
            task_id, claimed = await self._store.enqueue_and_claim(
                new, self._node, state.settings.lease_ttl
            )
        except BaseException:
            pool.unreserve(None)
            raise
        self.after_enqueue([new], [task_id], started=claimed is not None)
        pool.unreserve(claimed)
        return task_id

    async def enqueue_many(self, items: Iterable[Any]) -> list[TaskId]:
        """Enqueue many tasks in one transaction: all of them or none."""
        tasks = self._preparer.prepare_many(items)
        self._state.require_writable("enqueue")
        if self._tracer is None or not tasks:
            ids = await self._store.enqueue(tasks)
        else:
            with tracing.producing(self._tracer, tasks) as span:
                ids = await self._store.enqueue(tasks)
                tracing.enqueued(span, ids)
        self.after_enqueue(tasks, ids)
        return ids

    async def enqueue_workflow(self, flow: Workflow) -> WorkflowRecord:
        """Store a chain or group and all its steps in one transaction."""
        tasks = self._preparer.prepare_workflow(flow)
        self._state.require_writable("enqueue a workflow")
        if self._tracer is None:
            workflow_id, ids = await self._store.enqueue_workflow(flow.kind, tasks)
        else:
            with tracing.producing(self._tracer, tasks) as span:
                workflow_id, ids = await self._store.enqueue_workflow(flow.kind, tasks)
                tracing.enqueued(span, ids)
        self.after_enqueue(tasks, ids)
        steps = " → ".join(t.handler for t in tasks)
        self._bus.emit(
            EventKind.WORKFLOW_ENQUEUED,
            task_id=ids[0],
            message=f"{flow.kind} {workflow_id}: {steps}",
            data={"workflow_id": str(workflow_id), "task_ids": list(ids)},
        )
        return await self._store.workflow(workflow_id)

    async def workflow(self, workflow_id: str | int) -> WorkflowRecord:
        """A chain or group with each step's task and state; ``LookupError`` if none."""
        wid = parse_task_id(workflow_id, "workflow")
        self._state.require_running()
        return await self._store.workflow(wid)

    def after_enqueue(
        self, tasks: Sequence[NewTask], ids: Sequence[TaskId], started: bool = False
    ) -> None:
        """Count, wake the pool or the promoter, and announce what was stored."""
        ready = False
        per_queue: dict[str, int] = {}
        for task, task_id in zip(tasks, ids, strict=True):
            if task_id.deduplicated:
                self._bus.emit(
                    EventKind.DEDUPLICATED,
                    task_id=task_id,
                    handler=task.handler,
                    queue=task.queue,
                    message=f"unique key {task.unique_key!r} is held by task {task_id}",
                )
                continue
            if task.waiting:
                continue
            per_queue[task.queue] = per_queue.get(task.queue, 0) + 1
            if task.run_at is not None and task.run_at > self._clock():
                if self._state.promoter is not None:
                    self._state.promoter.notify(task.run_at)
            else:
                ready = True
        for queue, n in per_queue.items():
            self._metrics.record_enqueued(queue, n)
        if ready and not started:
            self._state.kick()
        if self._bus.has_subscribers:
            for task, task_id in zip(tasks, ids, strict=True):
                if task.waiting or task_id.deduplicated:
                    continue  # a waiting step is announced when it is queued
                self._bus.emit(
                    EventKind.ENQUEUED,
                    task_id=task_id,
                    handler=task.handler,
                    queue=task.queue,
                    message=f"priority {task.priority}",
                )
