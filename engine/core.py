"""The Engine: wires store, pool and services together; every operator command lives here."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, overload

from engine import webhook
from engine.aio import wait_event
from engine.checks import check_queue_name, check_seconds, parse_task_id, storable_id
from engine.client import ClientSession, open_mode, read_only_refusal
from engine.cluster import NodeKeeper
from engine.cluster_commands import ClusterCommands
from engine.codec import Codec
from engine.completions import Completer
from engine.enqueue import Preparer
from engine.errors import EngineNotRunning
from engine.events import EventBus, EventKind, Subscription
from engine.faults import FaultPlan
from engine.lifecycle import StopWatch
from engine.limits import FlowLimits, flow_limits
from engine.metrics import Metrics
from engine.model import (
    TERMINAL_STATES,
    TaskId,
    TaskRecord,
    TaskState,
    WorkflowRecord,
    parse_priority,
)
from engine.monitor import Monitor
from engine.periodic_commands import PeriodicCommands
from engine.pool import WorkerPool
from engine.registry import Handler, Registry, TaskHandle, build_handler
from engine.resources import Sampler
from engine.schedule import (
    Scheduler,
    ScheduleSpec,
)
from engine.services import (
    Cleaner,
    ExpireHook,
    LeaseKeeper,
    ProgressReporter,
    Promoter,
    Rescuer,
    Service,
    rescued_event,
)
from engine.settings import Settings
from engine.shutdown import StopReport, left, mark_stopped, save_completions, stop_deadline
from engine.snapshot import EngineSnapshot, QueueInfo
from engine.store import DEFAULT_URL, open_store
from engine.store.base import (
    CompletionReport,
    NewTask,
    OpenMode,
    Rescued,
    Store,
    TaskFilter,
)
from engine.workers import check_workers
from engine.workflow import Workflow

log = logging.getLogger(__name__)

_TASK_EVENT = {
    TaskState.SUCCEEDED: EventKind.SUCCEEDED,
    TaskState.FAILED: EventKind.FAILED,
    TaskState.SCHEDULED: EventKind.RETRY_SCHEDULED,
    TaskState.QUEUED: EventKind.RETRY_SCHEDULED,
}


class TaskPage(list[TaskRecord]):
    """A window of tasks; ``total`` is how many match (when cheaply known)."""

    def __init__(self, items: Iterable[TaskRecord], total: int | None, offset: int, limit: int):
        super().__init__(items)
        self.total = total
        self.offset = offset
        self.limit = limit


def _node_name() -> str:
    host = socket.gethostname().split(".")[0][:24] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(2)}"


class Engine(PeriodicCommands, ClusterCommands):
    """A durable task engine. Use ``async with engine:`` to run it.

    ``store``: ``sqlite:///path.db`` (default ``sqlite:///taskdeck.db``) or a path.
    ``workers``: concurrent tasks (0 = enqueue only). ``encryption_key`` or
    ``keys=[new, old]``: Fernet keys for payloads, results and errors at rest.
    ``strict_handlers=False`` lets a producer enqueue handler names it has not
    registered. ``resource_sampler`` replaces the psutil sampler (tests script CPU
    spikes with it). ``faults`` (crash tests only) makes the process die at a named
    point (see :mod:`engine.faults`). Other keyword arguments are settings (see
    :class:`Settings`).
    """

    def __init__(
        self,
        store: str | Path = DEFAULT_URL,
        workers: int = 4,
        *,
        encryption_key: str | bytes | None = None,
        keys: Sequence[str | bytes] | None = None,
        strict_handlers: bool = True,
        settings: Settings | Mapping[str, Any] | None = None,
        on_expire: ExpireHook | None = None,
        clock: Callable[[], float] = time.time,
        name: str | None = None,
        resource_sampler: Sampler | None = None,
        faults: FaultPlan | None = None,
        **overrides: Any,
    ) -> None:
        if encryption_key is not None and keys is not None:
            raise TypeError("give encryption_key= or keys=[new, old], not both")
        base = settings if isinstance(settings, Settings) else Settings(**(settings or {}))
        self._settings = base.replace(**overrides) if overrides else base
        self._workers = check_workers(workers, self._settings.max_workers)
        self._codec = Codec(
            keys if keys is not None else [encryption_key] if encryption_key else None
        )
        self.node = name or _node_name()
        self._clock = clock
        self._store: Store = open_store(store, self._codec, clock, by=self.node, faults=faults)
        self._registry = Registry()
        self._bus = EventBus(self._settings.event_buffer)
        self._preparer = Preparer(
            self._registry,
            self._codec,
            strict_handlers,
            lambda: self._settings,
            clock,
        )
        self._on_expire = on_expire
        self._pool: WorkerPool | None = None
        self._completer: Completer | None = None
        self._promoter: Promoter | None = None
        self._services: list[Service] = []
        self._service_tasks: list[asyncio.Task[None]] = []
        self._waiters: dict[int, set[asyncio.Future[None]]] = {}
        self._progress: asyncio.Event | None = None
        self._running = False
        self._unstopped = StopWatch()  # warns if a started engine is never stopped
        self._read_only = False
        self._metrics = Metrics()
        self._sampler = resource_sampler
        self._monitor: Monitor | None = None
        self._schedules: dict[str, ScheduleSpec] = {}
        self._flow: FlowLimits | None = None
        self._flow_settings: Settings | None = None
        self._flow_handlers = 0
        self._scheduler: Scheduler | None = None
        self._node_keeper: NodeKeeper | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._stats = {"stale_completions": 0, "rescued": 0, "interrupted": 0, "retries": 0}
        self._stats["left_running"] = 0  # completions a stop could not save
        self.task(
            name=webhook.WEBHOOK_HANDLER,
            queue=webhook.WEBHOOK_QUEUE,
            retries=webhook.WEBHOOK_RETRIES,
            retry=webhook.RETRY,
        )(webhook.make_handler(self.get, lambda: self._settings))

    # -- registration -----------------------------------------------------------
    @overload
    def task(self, fn: Callable[..., Any], /) -> TaskHandle: ...

    @overload
    def task(
        self, fn: None = None, /, **options: Any
    ) -> Callable[[Callable[..., Any]], TaskHandle]: ...

    def task(
        self, fn: Callable[..., Any] | None = None, /, **options: Any
    ) -> TaskHandle | Callable[[Callable[..., Any]], TaskHandle]:
        """Register a handler: ``@engine.task`` or ``@engine.task(name=…, retries=…)``."""

        def register(func: Callable[..., Any]) -> TaskHandle:
            handler = self._registry.add(build_handler(func, options))
            if self._pool is not None:
                self._pool.kick()
            return TaskHandle(handler, self.enqueue, self)

        return register if fn is None else register(fn)

    @property
    def handlers(self) -> list[Handler]:
        """The handlers registered here (not the built-in ``taskdeck.*`` ones)."""
        return [self._registry.get(n) for n in self._registry.names() if not _builtin(n)]

    @property
    def registry(self) -> Registry:
        return self._registry

    # -- lifecycle --------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._running

    @property
    def store_url(self) -> str:
        return self._store.url

    @property
    def encrypted(self) -> bool:
        return self._codec.encrypted

    @property
    def settings(self) -> Settings:
        return self._settings

    def flow_limits(self) -> FlowLimits | None:
        """The rate limits, concurrency limits and weights in force (None: none), from
        the settings and the handlers' ``rate_limit`` options (settings win)."""
        s = self._settings  # replaced on update, never changed: identity says "same"
        if self._flow_settings is not s or self._flow_handlers != len(self._registry):
            handler_rates = {h.name: h.rate_limit for h in self._registry if h.rate_limit}
            handler_rates.update(s.handler_rate_limits)
            limits = flow_limits(
                s.queue_rate_limits, handler_rates, s.queue_concurrency, s.queue_weights
            )
            self._flow = limits or None
            self._flow_settings, self._flow_handlers = s, len(self._registry)
        return self._flow

    def _current_settings(self) -> Settings:
        """For the parts, which read settings each cycle (so runtime changes apply)."""
        return self._settings

    async def start(self) -> None:
        """Open the store and start the workers and services."""
        if self._running:
            return
        self._configure_store()  # the open waits for locks within lock_timeout
        await self._store.open()
        try:
            await self._start_on_open_store()
        except BaseException:
            await self._abort_start()
            raise

    async def _start_on_open_store(self) -> None:
        self._started_at = self._clock()
        self._configure_store()
        self._progress = asyncio.Event()
        self._completer = Completer(self._store, self._on_report, self._on_store_error)
        self._completer.start()
        pool = WorkerPool(
            store=self._store,
            registry=self._registry,
            codec=self._codec,
            bus=self._bus,
            completer=self._completer,
            node=self.node,
            settings=self._current_settings,
            clock=self._clock,
            metrics=self._metrics,
            flow=self.flow_limits,
        )
        self._pool = pool
        # A store shared by several processes (PostgreSQL) wakes the pool when another
        # node makes tasks ready; one that cannot tell (SQLite) is polled.
        self._store.set_wakeup(pool.kick)
        settings = self._current_settings
        self._promoter = Promoter(self._store, settings, self._bus, self._clock, self._on_promoted)
        self._node_keeper = NodeKeeper(
            self._store, settings, self._bus, self._describe_node, self._apply_command, self._clock
        )
        await self._sync_schedules(self._schedules.values())
        self._scheduler = Scheduler(self._store, settings, self._bus, self._clock, self._on_fired)
        self._services = [
            self._scheduler,
            LeaseKeeper(self._store, settings, self._bus, pool, self.node),
            Rescuer(self._store, settings, self._bus, self.node, self._on_rescued),
            self._promoter,
            Cleaner(self._store, settings, self._bus, self._on_expire),
            ProgressReporter(self._store, settings, self._bus, pool, self.node, codec=self._codec),
            self._node_keeper,
        ]
        self._monitor = Monitor(
            self._store,
            settings,
            self._bus,
            metrics=self._metrics,
            pool=pool,
            set_workers=self.set_workers,
            handler_queues=lambda: {h.name: h.queue for h in self._registry},
            sampler=self._sampler,
        )
        self._services.append(self._monitor)
        loop = asyncio.get_running_loop()
        self._service_tasks = [
            loop.create_task(s.run(), name=f"taskdeck-{s.name}") for s in self._services
        ]
        pool.resize(self._workers)
        pool.start()
        self._running = True
        self._unstopped.started(self, self.store_url)
        self._bus.emit(
            EventKind.ENGINE_STARTED,
            message=f"{self.node} on {self.store_url}, {self._workers} workers",
        )

    async def _abort_start(self) -> None:
        """Undo a start that failed after the store opened: nothing keeps running and
        the store is closed, so the engine can be started again (or dropped)."""
        if self._pool is not None:
            await self._pool.stop(0)
        if self._completer is not None:
            await self._completer.stop()
        for task in self._service_tasks:
            task.cancel()
        await asyncio.gather(*self._service_tasks, return_exceptions=True)
        self._service_tasks = []
        self._pool = self._completer = None
        try:
            await self._store.close()
        except Exception as exc:  # the store may be what failed
            log.warning("could not close the store after a failed start: %s", exc)

    async def stop(self, grace: float | None = None) -> StopReport:
        """Graceful stop: finish or requeue running tasks (no attempt used), then close;
        done within grace + a small bound even when the store takes no writes (see
        :mod:`engine.shutdown`). Returns what it saved and what it could not."""
        if not self._running or self._pool is None or self._completer is None:
            return StopReport()
        wait = self._settings.shutdown_grace if grace is None else check_seconds("grace", grace)
        self._bus.emit(EventKind.ENGINE_STOPPING, message=f"grace {wait:g} s")
        self._workers = self._pool.size
        deadline = stop_deadline(wait, self._settings.lock_timeout)
        self._store.give_up_at(deadline)  # writes blocked by another process end in time
        returned = self._stats["interrupted"]
        try:
            await self._pool.stop(wait)
            await save_completions(self._completer, deadline)
            if self._background:  # completion hooks still running
                await asyncio.wait(self._background, timeout=max(left(deadline), 0.1))
        finally:
            await self._completer.stop()
            for task in [*self._service_tasks, *self._background]:
                task.cancel()
            await asyncio.gather(*self._service_tasks, *self._background, return_exceptions=True)
            self._service_tasks = []
            if self._node_keeper is not None and self._node_keeper.joined:
                await mark_stopped(self._store, self.node, deadline)
            await self._store.close()
            self._running = False
            self._unstopped.stopped()
            for futures in self._waiters.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(EngineNotRunning("the engine stopped"))
            self._bus.emit(EventKind.ENGINE_STOPPED, message=self.node)
        unsaved = self._stats["left_running"] = self._completer.pending
        reason = self._completer.last_error if unsaved else None
        return StopReport(self._stats["interrupted"] - returned, unsaved, reason)

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _require_running(self) -> None:
        if not self._running:
            raise EngineNotRunning(
                "the engine is not running: use `async with engine:` or `await engine.start()`"
            )

    def _require_writable(self, verb: str) -> None:
        self._require_running()
        if self._read_only:
            raise read_only_refusal(verb)

    def client(self, read_only: bool = False, create: bool = True) -> ClientSession[Engine]:
        """``async with engine.client(read_only=False, create=True) as e:`` opens the store
        for commands only: no workers, no background services (see :mod:`engine.client`)."""
        mode = open_mode(read_only, create)
        return ClientSession(self, self._store, mode, self._configure_store, self._client_mode)

    def _client_mode(self, mode: OpenMode | None) -> None:
        self._running, self._read_only = mode is not None, mode is not None and mode.read_only
        if mode is None:
            self._unstopped.stopped()
        else:
            self._unstopped.started(self, self.store_url)

    def _configure_store(self) -> None:
        s = self._settings
        self._store.configure(
            durability=s.durability, busy_timeout=s.busy_timeout, lock_timeout=s.lock_timeout
        )

    # -- enqueue ----------------------------------------------------------------
    async def enqueue(
        self,
        handler: str,
        payload: Mapping[str, Any] | None = None,
        *,
        priority: int | str | None = None,
        queue: str | None = None,
        delay: float | None = None,
        run_at: Any = None,
        unique_key: str | None = None,
        webhook: str | None = None,
    ) -> TaskId:
        """Enqueue one task; returns its id once the task is durably stored.

        ``run_at``: a timezone-aware datetime (or ``delay`` seconds from now).
        ``unique_key``: at most one active (queued, scheduled or running) task holds a
        key; enqueueing a held key adds nothing and returns the holder's id with
        ``.deduplicated == True``. ``webhook``: an http(s) URL that receives the final
        task record as JSON (POSTed by a task of its own, with retries).
        """
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
        self._require_writable("enqueue")
        pool = self._pool
        flow = self.flow_limits()
        handoff = (
            new.run_at is None
            and new.plain
            and new.handler in self._registry
            and not (flow and flow.holds(new.queue, new.handler))  # limits apply at claim
        )
        if pool is None or not handoff or not pool.reserve():
            ids = await self._store.enqueue([new])
            self._after_enqueue([new], ids)
            return ids[0]
        # An idle worker is waiting: the store may hand the task straight to it.
        try:
            task_id, claimed = await self._store.enqueue_and_claim(
                new, self.node, self._settings.lease_ttl
            )
        except BaseException:
            pool.unreserve(None)
            raise
        self._after_enqueue([new], [task_id], started=claimed is not None)
        pool.unreserve(claimed)
        return task_id

    async def enqueue_many(self, items: Iterable[Any]) -> list[TaskId]:
        """Enqueue many tasks in one transaction: all of them or none.

        Each item is ``(handler, payload)`` or ``(handler, payload, {options})``.
        """
        tasks = self._preparer.prepare_many(items)
        self._require_writable("enqueue")
        ids = await self._store.enqueue(tasks)
        self._after_enqueue(tasks, ids)
        return ids

    async def enqueue_workflow(self, flow: Workflow) -> WorkflowRecord:
        """Store a ``chain(...)`` or ``group(...)`` and all its steps in one transaction.

        Every step is checked first (handler, arguments, where the previous result
        goes); an error names the step. Returns the workflow with its task ids.
        """
        tasks = self._preparer.prepare_workflow(flow)
        self._require_writable("enqueue a workflow")
        workflow_id, ids = await self._store.enqueue_workflow(flow.kind, tasks)
        self._after_enqueue(tasks, ids)
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
        self._require_running()
        return await self._store.workflow(wid)

    def _after_enqueue(
        self, tasks: Sequence[NewTask], ids: Sequence[TaskId], started: bool = False
    ) -> None:
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
                if self._promoter is not None:
                    self._promoter.notify(task.run_at)
            else:
                ready = True
        for queue, n in per_queue.items():
            self._metrics.record_enqueued(queue, n)
        if ready and not started and self._pool is not None:
            self._pool.kick()
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

    # -- reading ------------------------------------------------------------------
    async def counts(self, queue: str | None = None) -> dict[TaskState, int]:
        """Tasks per state now, read from the store (every process's work included),
        for one queue or all."""
        if queue is not None:
            check_queue_name(queue)
        self._require_running()
        counts = await self._store.counts()
        if queue is None:
            return counts.totals()
        return {s: counts.by_queue.get(queue, {}).get(s, 0) for s in TaskState}

    async def get(self, task_id: str | int) -> TaskRecord:
        """The task's record (with its timeline); ``LookupError`` if there is none."""
        tid = parse_task_id(task_id)
        self._require_running()
        return await self._store.get(tid)

    async def tasks(
        self,
        state: TaskState | str | None = None,
        queue: str | None = None,
        limit: int = 100,
        offset: int = 0,
        *,
        handler: str | None = None,
        id_prefix: str | None = None,
        text: str | None = None,
    ) -> TaskPage:
        """A page of tasks: queued by priority, finished newest first, others by id."""
        st = _parse_state(state)
        if queue is not None:
            check_queue_name(queue)
        for name, value, top in (("limit", limit, 10_000), ("offset", offset, 10**9)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
                raise ValueError(f"{name} must be a whole number from 0 to {top:,}; got {value!r}")
        self._require_running()
        flt = TaskFilter(st, queue, handler, id_prefix, limit, offset, text or None)
        items = await self._store.tasks(flt)
        return TaskPage(items, self._list_total(flt), offset, limit)

    def _list_total(self, flt: TaskFilter) -> int | None:
        """How many tasks the list holds, from the counts (None under a filter the
        counts cannot answer)."""
        if flt.handler is not None or flt.id_prefix or flt.text:
            return None
        counts = self._store.last_counts
        if flt.queue is not None:
            per = counts.by_queue.get(flt.queue, {})
            return per.get(flt.state, 0) if flt.state else sum(per.values())
        totals = counts.totals()
        return totals[flt.state] if flt.state else sum(totals.values())

    async def position(
        self,
        task_id: str | int,
        state: TaskState | str | None = None,
        queue: str | None = None,
        *,
        handler: str | None = None,
    ) -> int | None:
        """Where the task is in ``tasks(state, queue, handler=...)``: its offset (0 is
        first), or None when it is not in that list (another state, queue or handler).

        The console uses it to keep the cursor on a task that a new priority moved far
        away in a long list; it counts through the same indexes as ``tasks()``.
        """
        tid = storable_id(task_id) or 0  # too big for a store: in no list
        st = _parse_state(state)
        if queue is not None:
            check_queue_name(queue)
        self._require_running()
        return await self._store.position(tid, TaskFilter(st, queue, handler))

    async def tasks_around(
        self,
        task_id: str | int,
        state: TaskState | str | None = None,
        queue: str | None = None,
        limit: int = 100,
        before: int = 0,
        *,
        handler: str | None = None,
    ) -> TaskPage | None:
        """The page of ``tasks(state, queue, handler=...)`` that holds the task, with up
        to ``before`` tasks ahead of it (at most ``limit - 1``); ``page.offset`` says
        where it starts. None when the task is not in that list.

        Unlike ``tasks(offset=...)``, it reads by the task's key, so it is as fast a
        million rows down as at the top: the console uses it to follow a task that a
        new priority moved far away.
        """
        tid = storable_id(task_id) or 0  # too big for a store: in no list
        st = _parse_state(state)
        if queue is not None:
            check_queue_name(queue)
        for name, value, low, top in (("limit", limit, 1, 10_000), ("before", before, 0, 10_000)):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= top:
                raise ValueError(
                    f"{name} must be a whole number from {low} to {top:,}; got {value!r}"
                )
        self._require_running()
        flt = TaskFilter(st, queue, handler, limit=limit)
        found = await self._store.around(tid, flt, before)
        if found is None:
            return None
        offset, items = found
        return TaskPage(items, self._list_total(flt), offset, limit)

    async def wait(self, task_id: str | int, timeout: float | None = None) -> TaskRecord:
        """Wait until the task is finished; returns its record (TimeoutError after timeout s)."""
        tid = parse_task_id(task_id)
        limit = None if timeout is None else check_seconds("timeout", timeout)
        self._require_running()
        deadline = None if limit is None else time.monotonic() + limit
        pause = 0.05
        while True:
            record = await self._store.get(tid)
            if record.is_terminal:
                return record
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"task {tid} is still {record.state} after {limit:g} s")
            future = asyncio.get_running_loop().create_future()
            waiters = self._waiters.setdefault(tid, set())
            waiters.add(future)
            try:
                await asyncio.wait_for(
                    future, pause if remaining is None else min(pause, remaining)
                )
            except TimeoutError:
                pause = min(pause * 2, 1.0)
            finally:
                waiters.discard(future)
                if not waiters:
                    self._waiters.pop(tid, None)

    def _finished(self, task_id: int) -> None:
        for future in self._waiters.pop(task_id, ()):
            if not future.done():
                future.set_result(None)

    def events(
        self, kinds: Iterable[EventKind | str] | None = None, maxsize: int | None = None
    ) -> Subscription:
        """Subscribe to events (``async for event in engine.events(): …``).

        The subscription's queue is bounded; when it is full, new events are dropped
        for this subscriber and counted, so a slow reader never slows the engine.
        """
        return self._bus.subscribe(kinds, maxsize)

    # -- operator commands ----------------------------------------------------------
    async def cancel(self, task_id: str | int, reason: str | None = None) -> TaskState:
        """Cancel a queued, scheduled or running task; returns its previous state.

        A running async task is cancelled at once; a thread task gets
        ``current_task().cancelled`` and its late result is dropped; a process task's
        worker process is stopped.
        """
        tid = parse_task_id(task_id)
        self._require_writable("cancel")
        note = reason or "cancelled by operator"
        previous = await self._store.cancel(tid, by="operator", note=self._codec.seal(note))
        local = self._pool is not None and self._pool.cancel_local(tid)
        if previous == TaskState.RUNNING and not local:
            await self._stop_elsewhere(tid)
        self._finished(tid)
        self._bus.emit(EventKind.CANCELLED, task_id=str(tid), message=f"was {previous}: {note}")
        return previous

    async def _stop_elsewhere(self, task_id: int) -> None:
        """A cancelled task running on another node: tell that node to stop it now
        (its lease renewal would notice too, but later)."""
        worker = (await self._store.get(task_id)).worker or ""
        owner = worker.split("/", 1)[0]
        if owner and owner != self.node:
            await self.send_command("stop_task", {"task_id": task_id}, node=owner)

    async def reprioritize(self, task_id: str | int, priority: int | str) -> int:
        """Change a queued or scheduled task's priority (applies on the next claim);
        returns the old priority."""
        tid = parse_task_id(task_id)
        new = parse_priority(priority)
        self._require_writable("reprioritize")
        old = await self._store.reprioritize(tid, new, by="operator")
        self._bus.emit(EventKind.REPRIORITIZED, task_id=str(tid), message=f"priority {old} → {new}")
        return old

    async def retry(self, task_id: str | int) -> TaskState:
        """Queue a failed or cancelled task again (with a fresh retry budget)."""
        tid = parse_task_id(task_id)
        self._require_writable("retry")
        previous = await self._store.retry(tid, by="operator", retries=None)
        if self._pool is not None:
            self._pool.kick()
        self._bus.emit(EventKind.RETRIED, task_id=str(tid), message=f"was {previous}")
        return previous

    async def retry_all(
        self,
        state: TaskState | str | Sequence[TaskState | str] = TaskState.FAILED,
        *,
        queue: str | None = None,
        handler: str | None = None,
    ) -> int:
        """Queue every failed (or cancelled) task matching the filter again; returns how many."""
        raw = [state] if isinstance(state, str | TaskState) else list(state)
        states = [s for s in (_parse_state(r) for r in raw) if s is not None]
        wrong = [s for s in states if s not in (TaskState.FAILED, TaskState.CANCELLED)]
        if wrong or not states:
            raise ValueError(
                "only failed or cancelled tasks can be retried; "
                f"got {', '.join(map(str, wrong)) or 'nothing'}"
            )
        if queue is not None:
            check_queue_name(queue)
        self._require_writable("retry")
        count = await self._store.retry_where(states, queue, handler, "operator")
        if count and self._pool is not None:
            self._pool.kick()
        self._bus.emit(EventKind.RETRIED, message=f"{count} tasks retried", data={"count": count})
        return count

    async def purge(
        self,
        state: TaskState | str | Sequence[TaskState | str] = TaskState.FAILED,
        *,
        queue: str | None = None,
        handler: str | None = None,
        ids: Sequence[str | int] | None = None,
    ) -> int:
        """Delete finished tasks (succeeded, failed or cancelled); returns how many."""
        raw = [state] if isinstance(state, str | TaskState) else list(state)
        states = [s for s in (_parse_state(r) for r in raw) if s is not None]
        active = [s for s in states if s not in TERMINAL_STATES]
        if active or not states:
            raise ValueError(
                "only finished tasks can be purged (succeeded, failed, cancelled); "
                f"got {', '.join(map(str, active)) or 'nothing'} — cancel active tasks first"
            )
        if queue is not None:
            check_queue_name(queue)
        id_list = None if ids is None else [storable_id(i) or 0 for i in ids]  # 0: no task
        self._require_writable("purge")
        count = await self._store.purge(states, queue, handler, id_list)
        self._bus.emit(EventKind.PURGED, message=f"{count} tasks purged", data={"count": count})
        return count

    async def set_workers(self, n: int) -> int:
        """Resize the pool: grow at once; shrink after current tasks. Returns the old size."""
        count = check_workers(n, self._settings.max_workers)
        old = self._pool.size if self._pool is not None else self._workers
        self._workers = count
        if self._pool is not None:
            self._pool.resize(count)
        if self._monitor is not None and count != old:
            self._monitor.note_manual_change()
        self._bus.emit(
            EventKind.WORKERS_CHANGED,
            message=f"workers {old} → {count}",
            data={"old": old, "new": count},
        )
        return old

    @property
    def worker_count(self) -> int:
        return self._pool.size if self._pool is not None else self._workers

    async def update_settings(self, **changes: Any) -> Settings:
        """Change settings at runtime; all-or-nothing (``SettingsError`` names every bad field)."""
        new = self._settings.replace(**changes)
        old, self._settings = self._settings, new
        self._bus.default_maxsize = new.event_buffer
        self._configure_store()
        if self.worker_count > new.max_workers:
            await self.set_workers(new.max_workers)
        if self._pool is not None:
            self._pool.kick()
        changed = {k: v for k, v in new.as_dict().items() if old.as_dict()[k] != v}
        if changed:
            text = ", ".join(f"{k}={v!r}" for k, v in changed.items())
            self._bus.emit(EventKind.SETTINGS_CHANGED, message=text, data=changed)
        return new

    async def pause(self, queue: str) -> bool:
        """Stop claiming from ``queue`` (running tasks finish). Returns False if already paused."""
        return await self._set_paused(queue, True)

    async def resume(self, queue: str) -> bool:
        """Claim from ``queue`` again. Returns False if it was not paused."""
        return await self._set_paused(queue, False)

    async def _set_paused(self, queue: str, paused: bool) -> bool:
        name = check_queue_name(queue)
        self._require_writable("pause a queue" if paused else "resume a queue")
        changed = await self._store.set_paused(name, paused)
        if changed:
            if not paused and self._pool is not None:
                self._pool.kick()
            kind, verb = (
                (EventKind.QUEUE_PAUSED, "paused")
                if paused
                else (EventKind.QUEUE_RESUMED, "resumed")
            )
            self._bus.emit(kind, queue=name, message=f"queue {name} {verb}")
        return changed

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until no task is queued, scheduled or running (paused queues aside).

        Meant for tests and scripts; ``TimeoutError`` says what was still waiting.
        """
        limit = None if timeout is None else check_seconds("timeout", timeout)
        self._require_running()
        assert self._completer is not None and self._pool is not None and self._progress
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            await self._completer.idle()
            counts = await self._store.counts()
            waiting = running = 0
            for name, per in counts.by_queue.items():
                running += per.get(TaskState.RUNNING, 0)
                if name not in counts.paused:
                    waiting += per.get(TaskState.QUEUED, 0) + per.get(TaskState.SCHEDULED, 0)
            if not waiting and not running and not self._pool.busy and not self._completer.pending:
                return
            if self._pool.size == 0 and not running and not self._pool.busy:
                raise RuntimeError(
                    f"drain() cannot finish: this engine has 0 workers and {waiting} tasks are "
                    "waiting; call set_workers(n) first"
                )
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"drain() timed out after {limit:g} s: {waiting} queued or scheduled and "
                    f"{running} running tasks remain"
                )
            self._progress.clear()
            await wait_event(self._progress, 0.05)

    async def apply_action(self, action: tuple[str, Mapping[str, Any]]) -> str:
        """Carry out a finding's suggested command, e.g. ``("set_workers", {"n": 12})``.

        Only engine commands an operator could type are allowed: set_workers, pause,
        resume, update_settings. Returns what was done, as text.
        """
        name, args = action
        if name == "set_workers":
            old = await self.set_workers(args["n"])
            return f"workers {old} → {args['n']}"
        if name in ("pause", "resume"):
            changed = await self._set_paused(args["queue"], name == "pause")
            state = "paused" if name == "pause" else "resumed"
            return (
                f"queue {args['queue']} {state}"
                if changed
                else f"queue {args['queue']} was already {state}"
            )
        if name == "update_settings":
            await self.update_settings(**args)
            return "settings: " + ", ".join(f"{k}={v!r}" for k, v in args.items())
        raise ValueError(
            f"unknown action {name!r}; allowed: set_workers, pause, resume, update_settings"
        )

    # -- snapshot -----------------------------------------------------------------
    def snapshot(self) -> EngineSnapshot:
        """Counts, workers, queues, rates and settings now. Cheap: no I/O."""
        counts = self._store.last_counts
        names = set(counts.by_queue) | set(counts.paused) | {h.queue for h in self._registry}
        queues = {
            name: QueueInfo(
                name,
                counts.depth(name),
                name in counts.paused,
                dict(counts.by_queue.get(name, dict.fromkeys(TaskState, 0))),
            )
            for name in sorted(names)
        }
        pool, monitor = self._pool, self._monitor
        stats = dict(self._stats)
        stats["dropped_events"] = self._bus.dropped
        stats["transactions"] = self._store.transactions
        if monitor is not None:
            stats["sampler_cpu_ms"] = round(monitor.sample_cost * 1000)
            stats["monitor_cpu_ms"] = round(monitor.tick_cost * 1000)
        if pool is not None:
            stats.update(
                leaked_threads=pool.threads.leaked,
                leaked_threads_total=pool.threads.leaked_total,
                process_children=len(pool.processes.pids()),
                started=pool.started_total,
            )
        return EngineSnapshot(
            at=self._clock(),
            node=self.node,
            store=self.store_url,
            running=self._running,
            encrypted=self.encrypted,
            worker_count=self.worker_count,
            busy_workers=pool.busy if pool is not None else 0,
            workers=pool.workers() if pool is not None else (),
            counts=counts.totals(),
            queues=queues,
            throughput=self._metrics.done.rate(10.0),
            failures_per_minute=float(self._metrics.failed.count(60.0)),
            settings=self._settings,
            stats=stats,
            resources=monitor.history.latest if monitor else None,
            findings=monitor.findings if monitor else (),
            metrics=monitor.view if monitor else None,
            resource_series=monitor.history.values() if monitor else {},
            autoscale=monitor.scaler.last if monitor else None,
        )

    # -- callbacks from the parts ---------------------------------------------------
    def _on_report(self, report: CompletionReport) -> None:
        self._metrics.record_store_ok("completions")
        emit = self._bus.has_subscribers
        for c in report.applied:
            if c.release:
                self._stats["interrupted"] += 1
                kind = EventKind.INTERRUPTED
            else:
                kind = _TASK_EVENT[c.state]
                if c.state == TaskState.SCHEDULED and self._promoter is not None:
                    assert c.run_at is not None
                    self._promoter.notify(c.run_at)
                elif c.state == TaskState.QUEUED and self._pool is not None:
                    self._pool.kick()
                if c.state in (TaskState.SCHEDULED, TaskState.QUEUED):
                    self._stats["retries"] += 1
            if c.state in TERMINAL_STATES:
                self._finished(c.task_id)
                self._call_hook(c.handler, c.state, c.task_id)
                if (c.workflow_id is not None or c.webhook is not None) and self._pool:
                    self._pool.kick()  # the next step or a webhook task may be queued
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
            self._stats["stale_completions"] += 1
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
        if self._progress is not None:
            self._progress.set()

    def _call_hook(self, handler_name: str, state: TaskState, task_id: int) -> None:
        """Run the handler's on_success / on_failure hook, off the completion path."""
        handler = self._registry.find(handler_name)
        if handler is None:
            return
        hook = handler.on_success if state == TaskState.SUCCEEDED else None
        if state == TaskState.FAILED:
            hook = handler.on_failure
        if hook is None:
            return
        task = asyncio.get_running_loop().create_task(self._run_hook(hook, handler_name, task_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

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

    def _on_store_error(self, exc: Exception) -> None:
        self._metrics.record_store_error("completions", exc)
        self._bus.emit(EventKind.STORE_ERROR, message=str(exc))

    def _on_rescued(self, rescued: list[Rescued]) -> None:
        self._stats["rescued"] += len(rescued)
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
                self._finished(r.id)
                self._call_hook(r.handler, r.state, r.id)
        if self._pool is not None:
            self._pool.kick()

    def _on_promoted(self, moved: list[tuple[int, str]]) -> None:
        if self._pool is not None:
            self._pool.kick()
        if self._progress is not None:
            self._progress.set()
        if self._bus.has_subscribers:
            for task_id, queue in moved:
                self._bus.emit(
                    EventKind.PROMOTED, task_id=str(task_id), queue=queue, message="due: queued"
                )

    def __repr__(self) -> str:
        state = "running" if self._running else "stopped"
        return f"<Engine {self.node} {self.store_url} {state} workers={self.worker_count}>"


def _builtin(name: str) -> bool:
    return name.startswith("taskdeck.")


def _parse_state(value: TaskState | str | None) -> TaskState | None:
    if value is None or isinstance(value, TaskState):
        return value
    try:
        return TaskState(str(value).lower())
    except ValueError:
        allowed = ", ".join(s.value for s in TaskState)
        raise ValueError(f"unknown task state {value!r}; use one of {allowed}") from None
