"""The PostgreSQL store: many engine nodes on one database (asyncpg).

``Engine(store="postgresql://user@host:5432/db?schema=name")`` — the same Store
contract, behaviour and messages as the SQLite store, for a cluster of nodes:

- Each write is one transaction on a small asyncpg pool (1 … 8 connections), its
  count changes written in the same transaction (``task_counts``), so every node's
  counts describe the whole cluster. ``last_counts`` is refreshed from that table
  after each write and every half second.
- Claims take a batch in one statement (``FOR UPDATE SKIP LOCKED`` in a
  materialised CTE), so two nodes never get the same task; leases are renewed per
  node in one statement; expired leases are rescued, due tasks promoted and old
  results purged by whichever node gets there first (rows another node holds are
  skipped).
- When tasks become ready, the transaction ``NOTIFY``s a channel named after the
  schema; a dedicated ``LISTEN`` connection per node turns that into a wake-up of
  its worker pool (:meth:`set_wakeup`). Polling (``poll_interval``) stays the
  fallback: notifications are not replayed to a node that was disconnected.
- Settings: ``durability="normal"`` runs transactions with
  ``synchronous_commit=off`` (a commit survives the engine's crash and a server
  restart; a crash of the PostgreSQL server itself may lose the last fraction of
  a second of commits, as SQLite's NORMAL may on power loss); ``"full"`` uses
  ``synchronous_commit=on``. ``lock_timeout`` is PostgreSQL's ``lock_timeout``
  (and how long deadlocked transactions are retried); ``busy_timeout`` is the
  connect timeout.
- A lost connection is retried on a fresh one when the transaction surely did not
  commit; otherwise the operation fails with a :class:`StoreError` that says so
  (a claim whose commit reply was lost gives its tasks back at once; a completion
  sent again after a lost reply counts once).
- Node rows and operator commands (:mod:`engine.cluster`) use the statements of
  :mod:`engine.store.postgres.cluster` (schema version 2).

The connections and transactions are in :mod:`engine.store.postgres.session`, the
statements in ``tasks`` (task life cycle), ``commands`` (operator commands),
``insert``, ``followups``, ``flow``, ``schedules`` and ``reads`` next to it; the
schema in ``schema``. Logic both drivers share lives in :mod:`engine.store`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from engine.errors import StoreError
from engine.limits import FlowLimits
from engine.model import (
    CommandResult,
    NodeCommand,
    NodeInfo,
    SavedSetting,
    ScheduleInfo,
    TaskId,
    TaskRecord,
    TaskState,
    WorkflowRecord,
)
from engine.store import rows as records
from engine.store.alerts import drive_reads, is_read, numbered, numbered_plan
from engine.store.base import (
    Claimed,
    ClaimedTask,
    Completion,
    CompletionReport,
    Expired,
    NewTask,
    Rescued,
    StoredSchedule,
    TaskFilter,
    task_missing,
)
from engine.store.batches import in_batches
from engine.store.plans import Plan
from engine.store.postgres import cluster as cluster
from engine.store.postgres import commands as commands
from engine.store.postgres import flow as flow_ops
from engine.store.postgres import reads as reads
from engine.store.postgres import schedules as sched
from engine.store.postgres import settings as saved_ops
from engine.store.postgres import tasks as ops
from engine.store.postgres.conn import AmbiguousCommit, Txn
from engine.store.postgres.group import EnqueueGroup
from engine.store.postgres.insert import FIND_ENQUEUED
from engine.store.postgres.plans import drive
from engine.store.postgres.session import Op, PgSession, T

log = logging.getLogger(__name__)

MAX_ID = 2**63 - 1


class PostgresStore(PgSession):
    """Taskdeck's Store on a PostgreSQL schema, shared by any number of nodes."""

    #: claim every free worker slot at once (see WorkerPool._dispatch)
    split_claims = False
    _group: EnqueueGroup | None = None  # made at the first enqueue of plain tasks

    # -- writes ---------------------------------------------------------------
    async def enqueue(self, tasks: Sequence[NewTask]) -> list[TaskId]:
        if not tasks:
            return []
        if not all(t.plain for t in tasks):
            return await self._run(partial(ops.enqueue, tasks=tasks, by=self._by))
        if self._group is None:
            self._group = EnqueueGroup(self._insert_plain, self._spawn)
        return await self._group.enqueue(tasks)  # concurrent ones share one statement

    async def _insert_plain(self, tasks: Sequence[NewTask]) -> list[TaskId]:
        op = partial(ops.enqueue, tasks=tasks, by=self._by)
        try:  # one INSERT: a statement of its own
            return await self._run(op, alone=True)
        except AmbiguousCommit as exc:
            return await self._enqueue_again(tasks, exc)

    async def _enqueue_again(self, tasks: Sequence[NewTask], lost: AmbiguousCommit) -> list[TaskId]:
        """The connection was lost while an enqueue ran: if its rows are there (same
        creation time, handlers and payloads), it committed: return their ids; if none
        are, it did not: enqueue again. Either way each task is stored once."""
        try:
            rows = await self._read(
                FIND_ENQUEUED, lost.at, [t.handler for t in tasks], [t.payload for t in tasks]
            )
        except StoreError:
            raise lost from None
        if len(rows) == len(tasks):
            return [TaskId(r[0]) for r in rows]
        if rows:
            raise lost
        log.info("an enqueue was cut off before it committed; enqueueing again")
        return await self._run(partial(ops.enqueue, tasks=tasks, by=self._by))

    async def enqueue_workflow(
        self, kind: str, tasks: Sequence[NewTask]
    ) -> tuple[int, list[TaskId]]:
        return await self._run(partial(ops.enqueue_workflow, kind=kind, tasks=tasks, by=self._by))

    async def enqueue_and_claim(
        self, task: NewTask, owner: str, lease_ttl: float
    ) -> tuple[TaskId, ClaimedTask | None]:
        op = partial(ops.enqueue_and_claim, task=task, by=owner, lease_ttl=lease_ttl)
        return await self._leasing(owner, op)

    async def claim(
        self,
        owner: str,
        limit: int,
        handlers: Sequence[str],
        lease_ttl: float,
        flow: FlowLimits | None = None,
        held: Sequence[int] = (),
    ) -> Claimed:
        op: Op[Claimed]
        if flow:
            op = partial(
                flow_ops.claim,
                owner=owner,
                limit=limit,
                handlers=list(handlers),
                lease_ttl=lease_ttl,
                flow=flow,
                lock_key=self._target.schema,
            )
        else:
            op = partial(
                ops.claim, owner=owner, limit=limit, handlers=handlers, lease_ttl=lease_ttl
            )
        if held:
            op = partial(ops.claim_checking, op=op, owner=owner, held=list(held))
        return await self._leasing(owner, op, alone=not flow and not held)

    async def _leasing(self, owner: str, op: Op[T], alone: bool = False) -> T:
        """Run a claiming ``op`` (``alone``: as one statement, see ``Txn.alone``). If its
        commit's reply is lost with the connection, the tasks it may have leased are
        given back at once (or with the next claim)."""
        pending = list(self._recover)

        async def run(txn: Txn) -> T:
            for who, at in pending:
                await ops.recover_claim(txn, who, at)
            return await op(txn)

        try:
            result = await self._run(run, "claim", alone=alone and not pending)
        except AmbiguousCommit as exc:
            self._recover.append((owner, exc.at))
            with contextlib.suppress(StoreError):
                await self._run(self._recover_all)
                self._recover = []
            raise StoreError(f"{exc} (any task it claimed is returned to the queue)") from exc
        self._recover = [p for p in self._recover if p not in pending]
        return result

    async def _recover_all(self, txn: Txn) -> None:
        for who, at in self._recover:
            await ops.recover_claim(txn, who, at)

    async def complete(self, completions: Sequence[Completion]) -> CompletionReport:
        if not completions:
            return CompletionReport()
        applied, stale = await self._run(
            partial(ops.complete, completions=completions, codec=self.codec, by=self._by),
            "complete",
            alone=ops.completes_alone(completions),
        )
        return CompletionReport([completions[i] for i in applied], [completions[i] for i in stale])

    async def renew_leases(self, owner: str, lease_ttl: float) -> set[int]:
        return await self._run(partial(ops.renew_leases, owner=owner, lease_ttl=lease_ttl))

    async def rescue(self, exclude_owner: str) -> list[Rescued]:
        return await self._run(partial(ops.rescue, exclude_owner=exclude_owner, codec=self.codec))

    async def promote_due(self) -> tuple[list[tuple[int, str]], float | None]:
        return await self._run(ops.promote_due)

    async def cancel(self, task_id: int, by: str, note: str) -> TaskState:
        _check_id(task_id)
        return await self._run(
            partial(commands.cancel, task_id=task_id, by=by, note=note, codec=self.codec)
        )

    async def reprioritize(self, task_id: int, priority: int, by: str) -> int:
        _check_id(task_id)
        return await self._run(
            partial(commands.reprioritize, task_id=task_id, priority=priority, by=by)
        )

    async def retry(self, task_id: int, by: str, retries: int | None) -> TaskState:
        _check_id(task_id)
        return await self._run(partial(commands.retry, task_id=task_id, by=by, retries=retries))

    async def retry_where(
        self,
        states: Sequence[TaskState],
        queue: str | None,
        handler: str | None,
        by: str,
        ids: Sequence[int] | None = None,
        batch: int = 1000,
    ) -> int:
        op = partial(
            commands.retry_where, states=states, queue=queue, handler=handler, by=by, ids=ids
        )
        return await in_batches(lambda limit: self._run(partial(op, limit=limit)), batch)

    async def purge(
        self,
        states: Sequence[TaskState],
        queue: str | None,
        handler: str | None,
        ids: Sequence[int] | None,
        batch: int = 1000,
    ) -> int:
        if ids is not None:
            ids = [i for i in ids if i <= MAX_ID]
        op = partial(commands.purge, states=states, queue=queue, handler=handler, ids=ids)
        return await in_batches(partial(self._batch, op), batch)

    async def _batch(self, op: Callable[..., Awaitable[int]], limit: int) -> tuple[int, int]:
        n = await self._run(partial(op, limit=limit))
        return n, n

    async def purge_expired(
        self, result_ttl: float, failed_ttl: float, limit: int
    ) -> list[Expired]:
        return await self._run(
            partial(ops.purge_expired, result_ttl=result_ttl, failed_ttl=failed_ttl, limit=limit)
        )

    async def save_progress(
        self, items: Sequence[tuple[int, str, float | None, str | None]]
    ) -> None:
        if items:
            await self._run(partial(commands.save_progress, items=items))

    async def run_plan(self, plan: Callable[[Any], Plan[T]]) -> T:
        if is_read(plan):  # on a pooled connection: no write transaction
            read = partial(_read_numbered, self._read)
            return await drive_reads(read, plan, self.clock())
        return await self._run(lambda txn: drive(txn, numbered_plan(plan(txn))))

    async def set_paused(
        self, queue: str | None, paused: bool, by: str = "", note: str | None = None
    ) -> bool:
        op = partial(commands.set_paused, queue=queue, paused=paused, by=by, note=note)
        return await self._run(op)

    # -- periodic schedules ------------------------------------------------------
    async def sync_schedules(self, schedules: Sequence[StoredSchedule]) -> list[str]:
        return await self._run(partial(sched.sync, schedules=schedules, codec=self.codec))

    async def fire_schedules(
        self, next_run: sched.NextRun
    ) -> tuple[list[tuple[str, str, str]], float | None]:
        return await self._run(partial(sched.fire_due, next_run=next_run, by=self._by))

    async def set_schedule_paused(self, name: str, paused: bool, next_run: sched.NextRun) -> bool:
        return await self._run(
            partial(sched.set_paused, name=name, paused=paused, next_run=next_run)
        )

    async def trigger_schedule(self, name: str, by: str) -> str:
        return await self._run(partial(sched.trigger, name=name, by=by))

    async def schedules(self) -> list[ScheduleInfo]:
        return [records.schedule(r) for r in await self._read(sched.LIST)]

    # -- cluster: node rows and commands (see engine.store.postgres.cluster) ---------
    async def heartbeat(self, node: NodeInfo, dead_after: float) -> list[NodeCommand]:
        now = self.clock()
        return await self._on_conn(
            partial(cluster.heartbeat, node=node, dead_after=dead_after, now=now, codec=self.codec)
        )

    async def node_stopped(self, node_id: str) -> None:
        await self._on_conn(partial(cluster.node_stopped, node_id=node_id, now=self.clock()))

    async def send_command(self, target: str, action: str, args: str, by: str) -> int:
        send = partial(
            cluster.send_command, target=target, action=action, args=args, by=by, now=self.clock()
        )
        return await self._on_conn(send, retry=False)  # not twice: it adds a row

    async def record_command(self, result: CommandResult) -> None:
        await self._on_conn(partial(cluster.record_command, result=result))

    async def nodes(self, dead_after: float) -> list[NodeInfo]:
        silent = self.clock() - dead_after
        return await self._on_conn(partial(cluster.nodes, silent_since=silent, codec=self.codec))

    async def command_results(self, command_id: int) -> list[CommandResult]:
        return await self._on_conn(partial(cluster.command_results, command_id=command_id))

    # -- runtime settings (see engine.store.postgres.settings) -------------------------
    async def save_settings(
        self, saved: Sequence[SavedSetting], removed: Sequence[str], command: tuple[str, str, str]
    ) -> int:
        save = partial(saved_ops.save, saved=saved, removed=removed, command=command)
        return await self._on_conn(partial(save, now=self.clock()), retry=False)  # adds a row

    async def saved_settings(self) -> list[SavedSetting]:
        return [saved_ops.saved_setting(r) for r in await self._read(saved_ops.SAVED)]

    # -- reads ----------------------------------------------------------------
    async def oldest_queued(self) -> dict[str, float]:
        """When the oldest queued task of each queue was created (Unix seconds): each
        priority's smallest id is one index probe, so this stays cheap."""
        queues = sorted(q for q, c in self._counts.by_queue.items() if c.get(TaskState.QUEUED))
        if not queues:
            return {}
        rows = await self._read(reads.OLDEST_QUEUED, queues)
        return {name: created for name, created in rows if created is not None}

    async def unclaimable(self, handlers: Sequence[str], limit: int = 1000) -> dict[str, int]:
        rows = await self._read(reads.UNCLAIMABLE, list(handlers), limit)
        return {handler: int(n) for handler, n in rows}

    async def workflow(self, workflow_id: int) -> WorkflowRecord:
        head = (
            await self._read("SELECT kind, created_at FROM workflows WHERE id = $1", workflow_id)
            if workflow_id <= MAX_ID
            else []
        )
        if not head:
            raise LookupError(f"no workflow with id '{workflow_id}'")
        steps = await self._read(reads.WORKFLOW_STEPS, workflow_id)
        return records.workflow(workflow_id, head[0][0], head[0][1], steps)

    async def get(self, task_id: int) -> TaskRecord:
        _check_id(task_id)
        rows = await self._read(
            f"SELECT {reads.COLUMNS}, timeline FROM tasks WHERE id = $1", task_id
        )
        if not rows:
            raise task_missing(task_id)
        return records.task(self.codec, rows[0], rows[0][22])

    async def tasks(self, flt: TaskFilter) -> list[TaskRecord]:
        sql, params = reads.list_query(flt)
        return [records.task(self.codec, row) for row in await self._read(sql, *params)]

    async def _queued_queues(self) -> list[str]:
        return sorted(r[0] for r in await self._read(reads.QUEUED_QUEUES))

    async def _key(
        self, task_id: int, flt: TaskFilter
    ) -> tuple[reads.Ordering, list[reads.Where], list[Any]] | None:
        if task_id > MAX_ID:
            return None
        queued = await self._queued_queues() if flt.state == TaskState.QUEUED else []
        ordering, where, conds = reads.keyed(flt, queued)
        sql, params = reads.key_of(task_id, ordering, where)
        rows = await self._read(sql, *params)
        return (ordering, conds, list(rows[0])) if rows else None

    async def position(self, task_id: int, flt: TaskFilter) -> int | None:
        """How many tasks come before ``task_id`` in ``tasks(flt)``'s order; None when the
        task is not in that list. Counted through the same indexes as the list."""
        key = await self._key(task_id, flt)
        if key is None:
            return None
        ordering, conds, values = key
        sql, params = reads.count_before(ordering, conds, values)
        return int((await self._read(sql, *params))[0][0])

    async def around(
        self, task_id: int, flt: TaskFilter, before: int
    ) -> tuple[int, list[TaskRecord]] | None:
        """The task's position and ``flt.limit`` rows of ``tasks(flt)`` that start up to
        ``before`` rows ahead of it; None when the task is not in that list."""
        key = await self._key(task_id, flt)
        if key is None:
            return None
        ordering, conds, values = key
        sql, params = reads.count_before(ordering, conds, values)
        position = int((await self._read(sql, *params))[0][0])
        before = min(before, position, max(0, flt.limit - 1))
        sql, params = reads.window_around(ordering, conds, values, before, flt.limit - before)
        rows = await self._read(sql, *params)
        at = [reads.COLUMN_NAMES.index(name) for name, _ in ordering.columns]
        rows.sort(key=lambda row: ordering.sort_key(tuple(row[i] for i in at)))
        ahead = next((i for i, row in enumerate(rows) if row[0] == task_id), before)
        return position - ahead, [records.task(self.codec, row) for row in rows]


def _check_id(task_id: int) -> None:
    if task_id > MAX_ID:
        raise task_missing(task_id)


async def _read_numbered(
    read: Callable[..., Awaitable[list[Any]]], sql: str, args: tuple[Any, ...]
) -> list[Any]:
    return await read(numbered(sql), *args)
