"""Reading the engine's tasks and state: counts, records, pages of tasks, waiting for
a task to finish, and the cheap ``snapshot()`` the console polls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import replace

from engine.checks import check_queue_name, check_seconds, parse_task_id, storable_id
from engine.codec import Codec
from engine.events import EventBus
from engine.metrics import Metrics
from engine.model import TaskRecord, TaskState
from engine.query import SEARCH_SECONDS, AllOf, Compare, Node, Query, QueryError, parse
from engine.snapshot import EngineSnapshot, QueueInfo
from engine.state import EngineState
from engine.store.base import Store, TaskFilter
from engine.waiters import Waiters


class TaskPage(list[TaskRecord]):
    """A window of tasks; ``total`` is how many match (when cheaply known)."""

    def __init__(self, items: Iterable[TaskRecord], total: int | None, offset: int, limit: int):
        super().__init__(items)
        self.total = total
        self.offset = offset
        self.limit = limit


def parse_state(value: TaskState | str | None) -> TaskState | None:
    """A ``TaskState`` from its value (any case); ``ValueError`` lists the states."""
    if value is None or isinstance(value, TaskState):
        return value
    try:
        return TaskState(str(value).lower())
    except ValueError:
        allowed = ", ".join(s.value for s in TaskState)
        raise ValueError(f"unknown task state {value!r}; use one of {allowed}") from None


def _pin(
    pins: dict[str, str],
    state: TaskState | None,
    queue: str | None,
    handler: str | None,
    query: Query,
) -> tuple[TaskState | None, str | None, str | None, Query]:
    """The query's top-level ``state=``, ``queue=`` and ``handler=`` as the list's own
    filters (their order and indexes); one that differs from a filter already given
    goes back into the query (the two together match nothing)."""
    given = {"state": state.value if state else None, "queue": queue, "handler": handler}
    back: list[Node] = []
    for name, value in pins.items():
        if given[name] is None:
            given[name] = value
        elif given[name] != value:
            back.append(Compare(name, "=", value))
    if back:
        terms = (query.root, *back) if query.root is not None else tuple(back)
        query = replace(query, root=terms[0] if len(terms) == 1 else AllOf(terms))
    st = TaskState(given["state"]) if given["state"] else None
    return st, given["queue"], given["handler"], query


def _check_window(name: str, value: object, low: int, top: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= top:
        raise ValueError(f"{name} must be a whole number from {low} to {top:,}; got {value!r}")


class Reads:
    """Every read an operator or a script makes; nothing here writes."""

    def __init__(
        self,
        state: EngineState,
        store: Store,
        codec: Codec,
        bus: EventBus,
        metrics: Metrics,
        waiters: Waiters,
        node: str,
        clock: Callable[[], float],
    ) -> None:
        self._state = state
        self._store = store
        self._codec = codec
        self._bus = bus
        self._metrics = metrics
        self._waiters = waiters
        self._node = node
        self._clock = clock

    async def counts(self, queue: str | None = None) -> dict[TaskState, int]:
        """Tasks per state now, read from the store, for one queue or all."""
        if queue is not None:
            check_queue_name(queue)
        self._state.require_running()
        counts = await self._store.counts()
        if queue is None:
            return counts.totals()
        return {s: counts.by_queue.get(queue, {}).get(s, 0) for s in TaskState}

    async def get(self, task_id: str | int) -> TaskRecord:
        """The task's record (with its timeline); ``LookupError`` if there is none."""
        tid = parse_task_id(task_id)
        self._state.require_running()
        return await self._store.get(tid)

    async def tasks(
        self,
        state: TaskState | str | None,
        queue: str | None,
        limit: int,
        offset: int,
        handler: str | None,
        id_prefix: str | None,
        text: str | None,
        where: str | None = None,
    ) -> TaskPage:
        """A page of tasks: queued by priority, finished newest first, others by id;
        ``where`` narrows it with a query (:mod:`engine.query`)."""
        st = parse_state(state)
        if queue is not None:
            check_queue_name(queue)
        _check_window("limit", limit, 0, 10_000)
        _check_window("offset", offset, 0, 10**9)
        query = None
        if where is not None:
            query = parse(where, self._clock(), encrypted=self._codec.encrypted)
            pins, query = query.pinned()
            st, queue, handler, query = _pin(pins, st, queue, handler, query)
        self._state.require_running()
        flt = TaskFilter(st, queue, handler, id_prefix, limit, offset, text or None)
        if query is None or query.root is None:
            items = await self._store.tasks(flt)
            return TaskPage(items, self._list_total(flt), offset, limit)
        flt = replace(flt, where=query.root)
        if not query.searches_text:
            return TaskPage(await self._store.tasks(flt), None, offset, limit)
        try:
            async with asyncio.timeout(SEARCH_SECONDS):
                items = await self._store.tasks(flt)
        except TimeoutError:
            raise QueryError(
                0,
                f"the search was stopped after {SEARCH_SECONDS:g} s: it reads the text of "
                "every task it cannot rule out; narrow it with state=, handler=, queue= "
                "or created>",
            ) from None
        return TaskPage(items, None, offset, limit)

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
        state: TaskState | str | None,
        queue: str | None,
        handler: str | None,
    ) -> int | None:
        """Where the task is in ``tasks(state, queue, handler=...)``: its offset (0 is
        first), or None when it is not in that list (another state, queue or handler).

        The console uses it to keep the cursor on a task that a new priority moved far
        away in a long list; it counts through the same indexes as ``tasks()``.
        """
        tid = storable_id(task_id) or 0  # too big for a store: in no list
        st = parse_state(state)
        if queue is not None:
            check_queue_name(queue)
        self._state.require_running()
        return await self._store.position(tid, TaskFilter(st, queue, handler))

    async def tasks_around(
        self,
        task_id: str | int,
        state: TaskState | str | None,
        queue: str | None,
        limit: int,
        before: int,
        handler: str | None,
    ) -> TaskPage | None:
        """The page of ``tasks(state, queue, handler=...)`` that holds the task, with up
        to ``before`` tasks ahead of it (at most ``limit - 1``); ``page.offset`` says
        where it starts. None when the task is not in that list.

        Unlike ``tasks(offset=...)``, it reads by the task's key, so it is as fast a
        million rows down as at the top: the console uses it to follow a task that a
        new priority moved far away.
        """
        tid = storable_id(task_id) or 0  # too big for a store: in no list
        st = parse_state(state)
        if queue is not None:
            check_queue_name(queue)
        _check_window("limit", limit, 1, 10_000)
        _check_window("before", before, 0, 10_000)
        self._state.require_running()
        flt = TaskFilter(st, queue, handler, limit=limit)
        found = await self._store.around(tid, flt, before)
        if found is None:
            return None
        offset, items = found
        return TaskPage(items, self._list_total(flt), offset, limit)

    async def wait(self, task_id: str | int, timeout: float | None) -> TaskRecord:
        """Wait until the task is finished; returns its record (TimeoutError after timeout s)."""
        tid = parse_task_id(task_id)
        limit = None if timeout is None else check_seconds("timeout", timeout)
        self._state.require_running()
        deadline = None if limit is None else time.monotonic() + limit
        pause = 0.05
        while True:
            record = await self._store.get(tid)
            if record.is_terminal:
                return record
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"task {tid} is still {record.state} after {limit:g} s")
            try:
                await self._waiters.until_finished(
                    tid, pause if remaining is None else min(pause, remaining)
                )
            except TimeoutError:
                pause = min(pause * 2, 1.0)

    def snapshot(self) -> EngineSnapshot:
        """Counts, workers, queues, rates and settings now. Cheap: no I/O."""
        state = self._state
        counts = self._store.last_counts
        names = (
            set(counts.by_queue)
            | set(counts.paused)
            | set(state.registry.queues(state.settings.routes).values())
        )
        pool, monitor = state.pool, state.monitor
        held = pool.buffered_per_queue() if pool is not None else {}
        queues = {
            name: QueueInfo(
                name,
                counts.depth(name),
                name in counts.paused,
                dict(counts.by_queue.get(name, dict.fromkeys(TaskState, 0))),
                held.get(name, 0),
            )
            for name in sorted(names)
        }
        return EngineSnapshot(
            at=self._clock(),
            node=self._node,
            store=self._store.url,
            running=state.running,
            encrypted=self._codec.encrypted,
            worker_count=state.worker_count,
            busy_workers=pool.busy if pool is not None else 0,
            buffered=pool.buffered if pool is not None else 0,
            workers=pool.workers() if pool is not None else (),
            counts=counts.totals(),
            queues=queues,
            throughput=self._metrics.done.rate(10.0),
            failures_per_minute=float(self._metrics.failed.count(60.0)),
            settings=state.settings,
            stats=self._stats(),
            resources=monitor.history.latest if monitor else None,
            findings=monitor.findings if monitor else (),
            metrics=monitor.view if monitor else None,
            resource_series=monitor.history.values() if monitor else {},
            autoscale=monitor.scaler.last if monitor else None,
            all_paused=counts.all_paused,
            process_children=pool.processes.children() if pool is not None else (),
        )

    def _stats(self) -> dict[str, int]:
        pool, monitor = self._state.pool, self._state.monitor
        stats = dict(self._state.stats)
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
                process_recycled=pool.processes.recycled,
                started=pool.started_total,
                claim_batches=pool.claim_batches,
                claimed=pool.claimed_total,
                held_dropped=pool.held.dropped,
            )
        completer = self._state.completer
        if completer is not None:
            stats.update(completion_writes=completer.writes, completions=completer.written)
        return stats
