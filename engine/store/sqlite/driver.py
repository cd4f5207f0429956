"""The embedded default store: one SQLite file in WAL mode.

Writes go through one writer connection on its own thread (see
:mod:`engine.store.sqlite.txn`) and are *group-committed*: every operation
submitted while a transaction is in flight joins the next one, so concurrent
enqueues, claims and completions share a single ``BEGIN IMMEDIATE … COMMIT`` and
a single thread hop. Reads (``get``, ``tasks``, ``counts``) use a separate
read-only aiosqlite connection, which WAL lets run alongside the writer. A commit
that made tasks ready wakes the other processes' engines (see ``wake.py``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite

from engine.codec import Codec
from engine.errors import (
    EngineNotRunning,
    ReadOnlyError,
    StoreError,
    StoreOpenError,
)
from engine.faults import FaultPlan, hook
from engine.limits import FlowLimits
from engine.metrics import Reservoir, percentile
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
from engine.store.alerts import drive_reads, is_read
from engine.store.base import (
    Claimed,
    ClaimedTask,
    Completion,
    CompletionReport,
    Expired,
    NewTask,
    OpenMode,
    Rescued,
    StoreCounts,
    StoredSchedule,
    TaskFilter,
)
from engine.store.batches import in_batches
from engine.store.plans import Plan
from engine.store.sqlite import cluster as cluster_ops
from engine.store.sqlite import commands
from engine.store.sqlite import flow as flow_ops
from engine.store.sqlite import schedules as sched
from engine.store.sqlite import settings as saved_ops
from engine.store.sqlite import tasks as ops
from engine.store.sqlite.file import FileInfo, check_keys, inspect_file, sidecars
from engine.store.sqlite.open import (
    apply_pragmas,
    check_readable,
    connect_reader,
    connect_writer,
    read_counts,
    read_counts_with,
    tidy_sidecars,
)
from engine.store.sqlite.plans import drive
from engine.store.sqlite.reads import ListQuery, SQLiteReads
from engine.store.sqlite.txn import (
    BatchResult,
    CountsReader,
    LockWait,
    Op,
    Txn,
    WriterThread,
    apply_deltas,
    describe_sqlite_error,
    run_batch,
    settle_batch,
)
from engine.store.sqlite.wake import Wake
from engine.store.sqlite.watch import FileIdentity

log = logging.getLogger(__name__)

T = TypeVar("T")


class SQLiteStore:
    """Taskdeck's Store on an SQLite file."""

    def __init__(
        self,
        path: str | Path,
        codec: Codec | None = None,
        clock: Callable[[], float] = time.time,
        *,
        url: str | None = None,
        by: str = "engine",
        faults: FaultPlan | None = None,
    ) -> None:
        self.path = Path(path).expanduser().absolute()
        self._fault = hook(faults)
        self.url = url or f"sqlite:///{self.path}"
        self.codec, self.clock = codec or Codec(), clock
        self._by = by
        self._durability, self._busy_timeout = "normal", 5.0
        self._lock = LockWait()
        self._mode = OpenMode()
        self._sidecars_before: frozenset[str] = frozenset()
        self._identity = FileIdentity(self.path)
        self._wake = Wake(self.path)  # other processes' engines, and this one's socket
        self._writer: WriterThread | None = None
        self._reader: aiosqlite.Connection | None = None
        self._reader_busy: float | None = None
        self._by_queue: dict[str, dict[TaskState, int]] = {}
        self._pauses = StoreCounts()  # the paused queues, and whether everything is
        self._counts_reader = CountsReader(read_counts)
        self.transactions, self._latency = 0, Reservoir(512)
        self._reads = SQLiteReads(self._read, self.codec, clock, lambda: self._by_queue, self.path)

    #: at most half the pool per claim: the loop and the writer thread overlap
    split_claims = True

    def set_wakeup(self, callback: Callable[[], None]) -> None:
        self._wake.on_wake = callback  # another process made tasks ready (see wake.py)

    # -- lifecycle ------------------------------------------------------------
    @property
    def encrypted(self) -> bool:
        return self.codec.encrypted

    @property
    def last_counts(self) -> StoreCounts:
        by_queue = {q: dict(c) for q, c in self._by_queue.items()}
        return StoreCounts(by_queue, self._pauses.paused, self._pauses.all_paused)

    def _set_counts(self, counts: StoreCounts) -> None:
        self._by_queue = {q: dict(c) for q, c in counts.by_queue.items()}
        self._pauses = counts

    def configure(self, *, durability: str, busy_timeout: float, lock_timeout: float) -> None:
        """Runtime settings: for the writer's next batch and the reader's next query."""
        changed = durability != self._durability
        self._durability, self._busy_timeout = durability, busy_timeout
        self._lock.timeout = lock_timeout
        if changed and self._writer is not None:
            self._writer.submit(partial(apply_pragmas, durability=durability))

    async def open(self, mode: OpenMode | None = None) -> None:
        """Open the file (see :class:`OpenMode`); a failed open leaves no new file."""
        self._mode = mode = mode or OpenMode()
        before = sidecars(self.path)
        try:
            # One deadline for every wait of the open: the look, the WAL switch, migrations.
            self._lock.give_up_at = None
            deadline = time.monotonic() + self._lock.timeout
            info = await asyncio.to_thread(inspect_file, self.path, mode, self._lock.timeout)
            check_keys(info, self.codec)
            if not mode.read_only:
                self._writer = WriterThread(
                    partial(self._connect_writer, info, deadline),
                    self._run_ops,
                    self._deliver,
                    f"taskdeck-writer:{self.path.name}",
                    self._wake.after,  # a commit that made tasks ready wakes the others
                )
                await self._writer.start()
                await self._wake.listen(mode)  # an engine's socket (not a client's)
            self._reader = await connect_reader(self.path, mode.read_only)
            if mode.read_only:
                await check_readable(self._read, info)
            await self.counts()
        except BaseException as exc:
            await self.close()
            await asyncio.to_thread(tidy_sidecars, self.path, before)
            if isinstance(exc, sqlite3.Error):  # corrupted …: say so, no traceback
                why = describe_sqlite_error(exc)
                raise StoreOpenError(f"cannot open {self.path}: {why}") from None
            raise
        self._sidecars_before = before

    def _connect_writer(self, info: FileInfo, deadline: float) -> sqlite3.Connection:
        return connect_writer(
            self.path, info, deadline, self._lock.timeout, self._fault, self.codec, self._ready
        )

    def _ready(self, conn: sqlite3.Connection) -> None:
        apply_pragmas(conn, self._durability)
        self._identity.capture()

    def give_up_at(self, deadline: float) -> None:
        """Blocked writes give up at ``deadline`` (``time.monotonic()``): a stop's bound."""
        self._lock.give_up_at = deadline

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.stop()  # finishes every operation queued before it
            self._writer = None
        await self._wake.close()
        if self._reader is not None:
            await self._reader.close()
            self._reader = None
            if self._mode.read_only:
                await asyncio.to_thread(tidy_sidecars, self.path, self._sidecars_before)

    # -- group commit ---------------------------------------------------------
    async def _call(self, op: Callable[..., T], /, **args: Any) -> T:
        """``op(txn, **args)`` in the next group commit; returns what it returned."""
        result: T = await self._write(partial(op, **args))
        return result

    def _write(self, op: Callable[[Txn], T | Exception]) -> asyncio.Future[T]:
        """Queue ``op`` for the writer's next transaction (an ``Exception`` it returns
        is raised to the caller)."""
        if self._writer is None:
            if self._mode.read_only and self._reader is not None:
                raise ReadOnlyError(f"the store {self.path} was opened read-only; cannot write")
            raise EngineNotRunning("the store is not open; start the engine first")
        return self._writer.write(op)

    def _run_ops(self, conn: sqlite3.Connection, ops: list[Op]) -> BatchResult:
        """On the writer thread: one group commit (see :func:`run_batch`), refused once
        the store file is deleted or replaced (see :mod:`engine.store.sqlite.watch`)."""
        batch = partial(run_batch, conn, ops, self.clock, self._lock, self._counts_reader)
        return self._identity.guard(partial(batch, self._fault, str(self.path)), len(ops))

    def _deliver(
        self,
        futures: list[asyncio.Future[Any]],
        outcome: BatchResult | None,
        error: BaseException | None,
    ) -> None:
        """On the loop: apply the batch's count changes, then settle every future."""
        self.transactions += 1
        if outcome is not None:
            self._latency.add(outcome.elapsed, outcome.elapsed)
            if outcome.counts is not None:
                self._set_counts(outcome.counts)
            else:
                apply_deltas(self._by_queue, outcome.deltas)
        settle_batch(futures, outcome, error)

    # -- writes ---------------------------------------------------------------
    async def enqueue(self, tasks: Sequence[NewTask]) -> list[TaskId]:
        if not tasks:
            return []
        return await self._write(partial(ops.enqueue, tasks=tasks, by=self._by))

    async def enqueue_workflow(
        self, kind: str, tasks: Sequence[NewTask]
    ) -> tuple[int, list[TaskId]]:
        return await self._write(partial(ops.enqueue_workflow, kind=kind, tasks=tasks, by=self._by))

    async def enqueue_and_claim(
        self, task: NewTask, owner: str, lease_ttl: float
    ) -> tuple[TaskId, ClaimedTask | None]:
        return await self._write(
            partial(ops.enqueue_and_claim, task=task, by=owner, lease_ttl=lease_ttl)
        )

    async def claim(
        self,
        owner: str,
        limit: int,
        handlers: Sequence[str],
        lease_ttl: float,
        flow: FlowLimits | None = None,
        held: Sequence[int] = (),
    ) -> Claimed:
        op: Op
        if flow:
            op = partial(
                flow_ops.claim,
                owner=owner,
                limit=limit,
                handlers=list(handlers),
                lease_ttl=lease_ttl,
                flow=flow,
            )
        else:
            names = json.dumps(list(handlers))
            op = partial(ops.claim, owner=owner, limit=limit, handlers=names, lease_ttl=lease_ttl)
        if held:
            op = partial(ops.claim_checking, op=op, owner=owner, held=list(held))
        return await self._write(op)

    async def complete(self, completions: Sequence[Completion]) -> CompletionReport:
        if not completions:
            return CompletionReport()
        applied, stale = await self._write(
            partial(ops.complete, completions=completions, codec=self.codec, by=self._by)
        )
        return CompletionReport([completions[i] for i in applied], [completions[i] for i in stale])

    async def renew_leases(self, owner: str, lease_ttl: float) -> set[int]:
        return await self._write(partial(ops.renew_leases, owner=owner, lease_ttl=lease_ttl))

    async def rescue(self, exclude_owner: str) -> list[Rescued]:
        return await self._write(partial(ops.rescue, exclude_owner=exclude_owner, codec=self.codec))

    async def promote_due(self) -> tuple[list[tuple[int, str]], float | None]:
        return await self._write(ops.promote_due)

    async def cancel(self, task_id: int, by: str, note: str) -> TaskState:
        return await self._write(
            partial(commands.cancel, task_id=task_id, by=by, note=note, codec=self.codec)
        )

    async def reprioritize(self, task_id: int, priority: int, by: str) -> int:
        return await self._write(
            partial(commands.reprioritize, task_id=task_id, priority=priority, by=by)
        )

    async def retry(self, task_id: int, by: str, retries: int | None) -> TaskState:
        return await self._write(partial(commands.retry, task_id=task_id, by=by, retries=retries))

    async def purge(
        self,
        states: Sequence[TaskState],
        queue: str | None,
        handler: str | None,
        ids: Sequence[int] | None,
        batch: int = 1000,
    ) -> int:
        op = partial(commands.purge, states=states, queue=queue, handler=handler, ids=ids)
        return await in_batches(partial(self._batch, op), batch)

    async def retry_where(
        self,
        states: Sequence[TaskState],
        queue: str | None,
        handler: str | None,
        by: str,
        batch: int = 1000,
    ) -> int:
        op = partial(commands.retry_where, states=states, queue=queue, handler=handler, by=by)
        return await in_batches(partial(self._batch, op), batch)

    async def _batch(self, op: Callable[..., int], limit: int) -> tuple[int, int]:
        n: int = await self._write(partial(op, limit=limit))
        return n, n

    async def purge_expired(
        self, result_ttl: float, failed_ttl: float, limit: int
    ) -> list[Expired]:
        return await self._write(
            partial(ops.purge_expired, result_ttl=result_ttl, failed_ttl=failed_ttl, limit=limit)
        )

    async def save_progress(
        self, items: Sequence[tuple[int, str, float | None, str | None]]
    ) -> None:
        if items:
            await self._write(partial(commands.save_progress, items=items))

    async def run_plan(self, plan: Callable[[Any], Plan[T]]) -> T:
        if is_read(plan):  # on the reader: no write transaction; works read-only too
            return await drive_reads(self._read, plan, self.clock())
        return cast(T, await self._write(lambda txn: drive(txn, plan(txn))))

    async def set_paused(
        self, queue: str | None, paused: bool, by: str = "", note: str | None = None
    ) -> bool:
        op = partial(commands.set_paused, queue=queue, paused=paused, by=by, note=note)
        return await self._write(op)

    # -- periodic schedules ------------------------------------------------------
    async def sync_schedules(self, schedules: Sequence[StoredSchedule]) -> list[str]:
        return await self._write(partial(sched.sync, schedules=schedules, codec=self.codec))

    async def fire_schedules(
        self, next_run: sched.NextRun
    ) -> tuple[list[tuple[str, str, str]], float | None]:
        return await self._write(partial(sched.fire_due, next_run=next_run, by=self._by))

    async def set_schedule_paused(self, name: str, paused: bool, next_run: sched.NextRun) -> bool:
        return await self._write(
            partial(sched.set_paused, name=name, paused=paused, next_run=next_run)
        )

    async def trigger_schedule(self, name: str, by: str) -> str:
        return await self._write(partial(sched.trigger, name=name, by=by))

    # -- cluster --------------------------------------------------------------
    async def heartbeat(self, node: NodeInfo, dead_after: float) -> list[NodeCommand]:
        return await self._write(
            partial(cluster_ops.heartbeat, node=node, dead_after=dead_after, codec=self.codec)
        )

    async def node_stopped(self, node_id: str) -> None:
        await self._write(partial(cluster_ops.node_stopped, node_id=node_id))

    async def send_command(self, target: str, action: str, args: str, by: str) -> int:
        return await self._write(
            partial(cluster_ops.send_command, target=target, action=action, args=args, by=by)
        )

    async def record_command(self, result: CommandResult) -> None:
        await self._write(partial(cluster_ops.record_command, result=result))

    async def save_settings(
        self, saved: Sequence[SavedSetting], removed: Sequence[str], command: tuple[str, str, str]
    ) -> int:
        return await self._call(saved_ops.save, saved=saved, removed=removed, command=command)

    async def saved_settings(self) -> list[SavedSetting]:
        if self._writer is None:  # read-only: on the reader; else in order with the writes
            return [SavedSetting(*row) for row in await self._read(saved_ops.SAVED)]
        return await self.on_writer(saved_ops.saved)

    # -- reads ----------------------------------------------------------------
    async def _read(self, sql: str, params: Any = ()) -> list[Any]:
        reader = self._reader
        if reader is None:
            raise EngineNotRunning("the store is not open; start the engine first")
        try:
            if self._reader_busy != self._busy_timeout:
                self._reader_busy = self._busy_timeout
                await reader.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            return list(await reader.execute_fetchall(sql, params))
        except sqlite3.Error as exc:  # corrupted, locked, deleted …: a StoreError saying so
            gone = self._identity.gone
            raise (StoreError(gone) if gone else describe_sqlite_error(exc)) from exc

    async def counts(self) -> StoreCounts:
        """Read every count now, on the writer thread between batches (read-only: on the
        reader); kept only if no batch's deltas were applied while this one resumed."""
        if self._writer is None and self._mode.read_only:
            counts = await read_counts_with(self._read)
        else:
            delivered = self.transactions
            counts = await self.on_writer(partial(self._identity.read, read_counts))
            if self.transactions != delivered:  # they may be missing from it: keep them
                return counts
        self._set_counts(counts)
        return counts

    async def on_writer(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the writer thread between batches (maintenance)."""
        if self._writer is None:
            raise EngineNotRunning("the store is not open; start the engine first")
        return await self._writer.submit(fn)

    def latency_p99(self) -> float | None:
        """p99 of recent write transactions (BEGIN to COMMIT, including lock waits)."""
        return percentile(sorted(self._latency.values()), 0.99)

    # -- reads (see engine.store.sqlite.reads) ----------------------------------
    async def oldest_queued(self) -> dict[str, float]:
        return await self._reads.oldest_queued()

    async def unclaimable(self, handlers: Sequence[str], limit: int = 1000) -> dict[str, int]:
        return await self._reads.unclaimable(handlers, limit)

    async def workflow(self, workflow_id: int) -> WorkflowRecord:
        return await self._reads.workflow(workflow_id)

    async def get(self, task_id: int) -> TaskRecord:
        return await self._reads.get(task_id)

    async def tasks(self, flt: TaskFilter) -> list[TaskRecord]:
        return await self._reads.tasks(flt)

    def _list_query(self, flt: TaskFilter) -> ListQuery:
        """The SQL ``tasks(flt)`` runs (tests check its query plan)."""
        return self._reads.list_query(flt)

    async def position(self, task_id: int, flt: TaskFilter) -> int | None:
        return await self._reads.position(task_id, flt)

    async def around(
        self, task_id: int, flt: TaskFilter, before: int
    ) -> tuple[int, list[TaskRecord]] | None:
        return await self._reads.around(task_id, flt, before)

    async def schedules(self) -> list[ScheduleInfo]:
        return await self._reads.schedules()

    async def nodes(self, dead_after: float) -> list[NodeInfo]:
        return await self._reads.nodes(dead_after)

    async def command_results(self, command_id: int) -> list[CommandResult]:
        return await self._reads.command_results(command_id)
