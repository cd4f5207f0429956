"""``engine.diagnose``: why a task is waiting, and failed tasks grouped by error.

:meth:`Diagnose.why` reads the task, the store's counts and pauses, the node rows,
the flow-control settings and the rate buckets, and names the first thing that holds
the task back, in the order the claim applies them (see :mod:`engine.why`).
:meth:`Diagnose.failures` groups failed tasks by handler and error fingerprint (see
:mod:`engine.failures`); :meth:`retry_group` and :meth:`purge_group` act on one
group's tasks by id, through ``retry_all`` and ``purge`` (so the audit trail has
them).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from engine.audit import Audit
from engine.checks import parse_task_id
from engine.codec import Codec
from engine.commands import Commands
from engine.errors import EncryptionKeyError
from engine.failures import (
    DEFAULT_SCAN,
    MAX_SCAN,
    PAGE,
    FailureGroup,
    FailureGroups,
    group_rows,
    merge,
)
from engine.limits import FlowLimits, Rate
from engine.model import NodeInfo, TaskRecord, TaskState
from engine.nodes import Nodes
from engine.reads import Reads
from engine.state import EngineState
from engine.store import diagnose as plans
from engine.store.base import WAITING_RUN_AT, Store
from engine.why import WhyWaiting, at_text, span, who_when

#: pause entries of the audit trail read to say who paused a queue
PAUSE_LOOKBACK = 200


class Diagnose:
    """``engine.diagnose``: :meth:`why`, :meth:`failures`, :meth:`retry_group`,
    :meth:`purge_group`."""

    def __init__(
        self,
        state: EngineState,
        store: Store,
        codec: Codec,
        reads: Reads,
        nodes: Nodes,
        commands: Commands,
        audit: Audit,
        node: str,
        clock: Callable[[], float],
    ) -> None:
        self._state, self._store, self._codec, self._reads = state, store, codec, reads
        self._nodes, self._commands, self._audit = nodes, commands, audit
        self._node, self._clock = node, clock

    # -- why waiting ----------------------------------------------------------------
    async def why(self, task_id: str | int) -> WhyWaiting:
        """Why the task has not started (or that it is running or finished), from the
        store and the node rows; ``LookupError`` if there is no such task."""
        tid = parse_task_id(task_id)
        task = await self._reads.get(tid)
        now = self._clock()
        if task.state is TaskState.SCHEDULED:
            return await self._scheduled(task, now)
        if task.state is TaskState.RUNNING:
            return await self._running(task)
        if task.state is TaskState.QUEUED:
            return await self._queued(task, now)
        return await self._finished(task)

    def _answer(self, task: TaskRecord, code: str, text: str, **details: Any) -> WhyWaiting:
        return WhyWaiting(task.id, task.state.value, code, text, details)

    async def _scheduled(self, task: TaskRecord, now: float) -> WhyWaiting:
        run_at = task.run_at or now
        if task.waiting or run_at >= WAITING_RUN_AT:
            earlier = None
            if task.workflow_id is not None and task.step is not None:
                plan = partial(
                    plans.earlier_step, workflow_id=int(task.workflow_id), step=task.step
                )
                earlier = await self._store.run_plan(plan)
            if earlier is None:
                return self._answer(task, "workflow", "waiting for an earlier workflow step")
            step_id, state = str(earlier[0]), str(earlier[1])
            return self._answer(
                task, "workflow",
                f"waiting for an earlier step of workflow {task.workflow_id}: #{step_id} ({state})",
                workflow_id=task.workflow_id, waiting_for=step_id, waiting_for_state=state,
            )  # fmt: skip
        if run_at > now:
            return self._answer(
                task, "not_due", f"not due until {at_text(run_at)} (in {span(run_at - now)})",
                run_at=run_at, in_seconds=run_at - now,
            )  # fmt: skip
        return self._answer(
            task, "due", "due: queued at the next promotion of due tasks", run_at=run_at
        )

    async def _running(self, task: TaskRecord) -> WhyWaiting:
        tid = int(task.id)
        pool, holder = self._state.pool, None
        if pool is not None and pool.holds(tid):
            holder = self._node
        else:
            for node in await self._nodes.nodes():
                if node.state == "alive" and tid in (node.snapshot.get("held") or ()):
                    holder = node.id
                    break
        if holder is not None:
            return self._answer(
                task, "buffered",
                f"held in the ready buffer of node {holder}: claimed, starts when one of "
                "its workers frees",
                node=holder,
            )  # fmt: skip
        return self._answer(task, "running", f"running on {task.worker or 'a worker'}")

    async def _finished(self, task: TaskRecord) -> WhyWaiting:
        if task.state in (TaskState.FAILED, TaskState.CANCELLED) and task.unique_key:
            plan = partial(plans.key_holder, key=task.unique_key, task_id=int(task.id))
            holder = await self._store.run_plan(plan)
            if holder is not None:
                hid, state = str(holder[0]), str(holder[1])
                return self._answer(
                    task, "unique_key",
                    f"{task.state.value}; a retry would wait: its unique key "
                    f"{task.unique_key!r} is held by #{hid} ({state})",
                    key=task.unique_key, held_by=hid, holder_state=state,
                )  # fmt: skip
        return self._answer(task, "finished", f"{task.state.value}: not waiting")

    async def _queued(self, task: TaskRecord, now: float) -> WhyWaiting:
        counts = await self._store.counts()
        paused = counts.all_paused
        if paused is not None:
            note = f": {paused.note}" if paused.note else ""
            return self._answer(
                task, "all_paused",
                f"everything is paused{who_when(paused.by, paused.at, now)}{note}",
                by=paused.by, at=paused.at, note=paused.note,
            )  # fmt: skip
        if task.queue in counts.paused:
            by, at = await self._paused_by(task.queue)
            return self._answer(
                task, "queue_paused", f"queue {task.queue} is paused{who_when(by, at, now)}",
                queue=task.queue, by=by, at=at,
            )  # fmt: skip
        alive = await self._alive()
        if not alive:
            return self._answer(task, "no_node", "no alive node works on this store")
        serving = [n for n in alive if n.workers > 0 and _runs(n, task.handler)]
        if not serving:
            return self._answer(
                task, "unserved",
                f"no alive node with workers runs handler {task.handler} "
                f"({len(alive)} alive node{'s' if len(alive) != 1 else ''})",
                handler=task.handler, alive=[n.id for n in alive],
            )  # fmt: skip
        held = await self._flow(task, counts.by_queue.get(task.queue, {}), now)
        if held is not None:
            return held
        return await self._position(task, serving)

    async def _paused_by(self, queue: str) -> tuple[str | None, float | None]:
        """Who paused ``queue`` and when, from the audit trail (None: not recorded)."""
        try:
            entries = await self._audit.entries(action="pause", limit=PAUSE_LOOKBACK)
        except Exception:  # an audit trail that cannot be read only loses the "by"
            return None, None
        for entry in entries:
            if entry.ok and entry.target == f"queue {queue}":
                return entry.who, entry.at
        return None, None

    async def _alive(self) -> list[NodeInfo]:
        """The alive nodes as their heartbeats say; this engine, while its pool runs,
        as it is now (its heartbeat may be a second old, or not written yet)."""
        rows = [n for n in await self._nodes.nodes() if n.state == "alive"]
        if self._state.pool is None:
            return rows
        return [n for n in rows if n.id != self._node] + [self._nodes.describe_node()]

    async def _flow(self, task: TaskRecord, states: Any, now: float) -> WhyWaiting | None:
        flow: FlowLimits | None = self._state.flow_limits()
        if flow is None:
            return None
        limit = flow.queue_concurrency.get(task.queue)
        running = int(states.get(TaskState.RUNNING, 0))
        if limit is not None and running >= limit:
            return self._answer(
                task, "concurrency",
                f"concurrency limit of queue {task.queue}: {running} of {limit} running",
                queue=task.queue, running=running, limit=limit,
            )  # fmt: skip
        for key, what, rate in (
            (f"q:{task.queue}", f"queue {task.queue}", flow.queue_rates.get(task.queue)),
            (f"h:{task.handler}", f"handler {task.handler}", flow.handler_rates.get(task.handler)),
        ):
            if rate is None:
                continue
            wait = await self._token_wait(key, rate)
            if wait is not None:
                return self._answer(
                    task, "rate_limit",
                    f"rate limit {rate} of {what}: next token in {wait:.1f} s",
                    limit=str(rate), bucket=key, next_token_in=wait,
                )  # fmt: skip
        return None

    async def _token_wait(self, key: str, rate: Rate) -> float | None:
        """Seconds until the bucket has a whole token (None: it has one now)."""
        stored, now = await self._store.run_plan(partial(plans.bucket, key=key))
        if stored is None:
            return None  # a bucket not used yet is full
        tokens = min(
            rate.burst, float(stored[0]) + max(0.0, now - float(stored[1])) * rate.per_second
        )
        if tokens >= 1.0:
            return None
        return (1.0 - tokens) / rate.per_second

    async def _position(self, task: TaskRecord, serving: Sequence[NodeInfo]) -> WhyWaiting:
        in_queue = await self._reads.position(task.id, TaskState.QUEUED, task.queue, None)
        ahead = await self._reads.position(task.id, TaskState.QUEUED, None, None)
        workers = sum(n.workers for n in serving)
        busy = sum(min(n.busy, n.workers) for n in serving)
        rate = sum(n.throughput for n in serving)
        place = (in_queue or 0) + 1
        details: dict[str, Any] = {
            "position": place, "queue": task.queue, "ahead": ahead or 0,
            "workers": workers, "busy": busy, "rate": rate,
        }  # fmt: skip
        if busy < workers:
            free = workers - busy
            return self._answer(
                task, "starting",
                f"position {place} in queue {task.queue}; {free} worker"
                f"{'s' if free != 1 else ''} free: starts at the next claim",
                **details,
            )  # fmt: skip
        if rate > 0:
            eta = ((ahead or 0) + 1) / rate
            details["estimated_start_in"] = eta
            estimate = f"estimated start in {span(eta)} at {rate:.1f} tasks/s"
        else:
            estimate = "no estimate: no task finished lately"
        return self._answer(
            task, "no_free_worker",
            f"no free worker ({busy} of {workers} busy): position {place} in queue "
            f"{task.queue}, {estimate}",
            **details,
        )  # fmt: skip

    # -- failure groups -------------------------------------------------------------
    async def failures(
        self, since: float | None = None, limit: int = 50, scan: int = DEFAULT_SCAN
    ) -> FailureGroups:
        """Failed tasks (finished at or after ``since``, a Unix time) grouped by handler
        and error fingerprint, the most tasks first, at most ``limit`` groups. Reads at
        most the newest ``scan`` failed tasks, in pages, decrypting errors here."""
        for name, value, top in (("limit", limit, 100_000), ("scan", scan, MAX_SCAN)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                raise ValueError(f"{name}: a whole number from 1 to {top:,}; got {value!r}")
        if since is not None and (isinstance(since, bool) or not isinstance(since, int | float)):
            raise TypeError(f"since: a Unix time in seconds; got {type(since).__name__}")
        self._state.require_running()
        groups: dict[tuple[str, str, str], FailureGroup] = {}
        before, scanned, complete = (math.inf, 0), 0, True
        while True:
            want = min(PAGE, scan - scanned)
            plan = partial(plans.failed_page, since=since or 0.0, before=before, limit=want)
            page = await self._store.run_plan(plan)
            scanned += len(page)
            if page:
                merge(groups, await asyncio.to_thread(self._group, page))
                before = (float(page[-1][3]), int(page[-1][0]))
            if len(page) < want:
                break
            if scanned >= scan:
                complete = not await self._store.run_plan(
                    partial(plans.failed_page, since=since or 0.0, before=before, limit=1)
                )
                break
        out = FailureGroups(
            sorted(groups.values(), key=lambda g: (-g.count, -g.last_seen, g.handler))[:limit]
        )
        out.scanned, out.complete = scanned, complete
        return out

    def _group(self, page: Sequence[Any]) -> dict[tuple[str, str, str], FailureGroup]:
        """A page's groups (run in a thread: decrypting is CPU work)."""
        return group_rows((str(r[0]), r[1], self._error(r[2]), float(r[3])) for r in page)

    def _error(self, stored: str | None) -> str | None:
        try:
            return self._codec.decode_text(stored)
        except EncryptionKeyError:
            return "EncryptionKeyError: cannot decrypt the error with the keys given"

    async def retry_group(self, group: FailureGroup) -> int:
        """Queue the group's tasks again (those still failed); returns how many."""
        return await self._commands.retry_all(TaskState.FAILED, None, None, group.task_ids)

    async def purge_group(self, group: FailureGroup) -> int:
        """Delete the group's tasks (those still failed); returns how many."""
        return await self._commands.purge(TaskState.FAILED, None, None, group.task_ids)


def _runs(node: NodeInfo, handler: str) -> bool:
    """Whether ``node`` runs ``handler`` (a node that does not say may run any)."""
    return node.handlers is None or handler in node.handlers
