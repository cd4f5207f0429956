"""The SQLite store's reads: task lists and windows by key, single tasks,
workflows, schedules, nodes, and the oldest queued task per queue. They run on the
read-only connection, which WAL lets run alongside the writer."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.codec import Codec
from engine.model import (
    TERMINAL_STATES,
    CommandResult,
    NodeInfo,
    ScheduleInfo,
    TaskRecord,
    TaskState,
    WorkflowRecord,
)
from engine.store import rows as records
from engine.store.base import TaskFilter, task_missing
from engine.store.keyset import Ordering, count_before, window_around
from engine.store.sqlite import cluster as cluster_ops
from engine.store.sqlite import schedules as sched
from engine.store.sqlite.scan import ScanReader
from engine.store.where import to_sql

Read = Callable[..., Awaitable[list[Any]]]
Queues = Callable[[], Mapping[str, Mapping[TaskState, int]]]

COLUMNS = (
    "id, handler, queue, priority, state, attempts, max_retries, payload, result, error, "
    "progress, progress_message, created_at, run_at, started_at, finished_at, worker, "
    "unique_key, webhook, workflow_id, step, waiting"
)
COLUMN_NAMES = [name.strip() for name in COLUMNS.split(",")]
_MAX_UNION_QUEUES = 64
OLDEST_QUEUED = (
    "SELECT created_at FROM tasks WHERE id = (SELECT min(first) FROM ("
    + " UNION ALL ".join(
        f"SELECT (SELECT min(id) FROM tasks WHERE state = 'queued' AND queue = :q "
        f"AND priority = {p}) AS first"
        for p in range(10)
    )
    + "))"
)
WORKFLOW_STEPS = (
    "SELECT id, handler, state, step, waiting, receives, started_at, finished_at FROM tasks "
    "WHERE workflow_id = ? ORDER BY step"
)
#: How ``tasks()`` orders each state: claim order for queued, due time for
#: scheduled, newest first for finished tasks (and for no state filter).
_LIST_ORDER: dict[TaskState | None, str] = {
    TaskState.QUEUED: "priority DESC, id",
    TaskState.SCHEDULED: "run_at, id",
    TaskState.RUNNING: "started_at, id",
    **dict.fromkeys(TERMINAL_STATES, "finished_at DESC, id DESC"),
}


@dataclass(frozen=True, slots=True)
class ListQuery:
    """SQL for a page of tasks; ``reverse`` when it reads the page back to front."""

    sql: str
    params: list[Any]
    reverse: bool = False


class SQLiteReads:
    """Every read of one SQLite store, on its reader (``read(sql, params)``);
    ``queues()`` gives the store's latest counts per queue (they pick the indexes)."""

    def __init__(
        self, read: Read, codec: Codec, clock: Callable[[], float], queues: Queues, path: Path
    ) -> None:
        self._read = read
        self._scan = ScanReader(path)  # a query's list: own connection, stopped if cancelled
        self.codec = codec
        self.clock = clock
        self._queues = queues

    async def schedules(self) -> list[ScheduleInfo]:
        return [records.schedule(r) for r in await self._read(sched.LIST)]

    async def nodes(self, dead_after: float) -> list[NodeInfo]:
        silent = self.clock() - dead_after
        return [records.node(r, silent, self.codec) for r in await self._read(cluster_ops.NODES)]

    async def command_results(self, command_id: int) -> list[CommandResult]:
        rows = await self._read(cluster_ops.RESULTS, (command_id,))
        return [CommandResult(r[0], r[1], r[2], bool(r[3]), r[4]) for r in rows]

    async def oldest_queued(self) -> dict[str, float]:
        """When the oldest queued task of each queue was created (Unix seconds).

        Ids grow with creation, so the oldest is the smallest id; each priority's
        smallest id is one index seek, so this stays cheap with a million queued.
        """
        out: dict[str, float] = {}
        for queue, per in list(self._queues().items()):
            if not per.get(TaskState.QUEUED):
                continue
            rows = await self._read(OLDEST_QUEUED, {"q": queue})
            if rows and rows[0][0] is not None:
                out[queue] = rows[0][0]
        return out

    async def unclaimable(self, handlers: Sequence[str], limit: int = 1000) -> dict[str, int]:
        rows = await self._read(
            "SELECT handler, count(*) FROM (SELECT handler FROM tasks WHERE state = 'queued' "
            "AND handler NOT IN (SELECT value FROM json_each(?)) LIMIT ?) GROUP BY handler",
            (json.dumps(list(handlers)), limit),
        )
        return {handler: n for handler, n in rows}

    async def workflow(self, workflow_id: int) -> WorkflowRecord:
        head = await self._read(
            "SELECT kind, created_at FROM workflows WHERE id = ?", (workflow_id,)
        )
        if not head:
            raise LookupError(f"no workflow with id '{workflow_id}'")
        steps = await self._read(WORKFLOW_STEPS, (workflow_id,))
        return records.workflow(workflow_id, head[0][0], head[0][1], steps)

    async def get(self, task_id: int) -> TaskRecord:
        rows = await self._read(f"SELECT {COLUMNS}, timeline FROM tasks WHERE id = ?", (task_id,))
        if not rows:
            raise task_missing(task_id)
        return self._record(rows[0], with_timeline=True)

    async def tasks(self, flt: TaskFilter) -> list[TaskRecord]:
        query = self.list_query(flt)
        rows = await (self._read if flt.where is None else self._scan)(query.sql, query.params)
        records = [self._record(row) for row in rows]
        return records[::-1] if query.reverse else records

    def _filter_where(self, flt: TaskFilter) -> tuple[list[str], list[Any]]:
        """WHERE terms and their parameters for a filter (the queue is left to callers)."""
        where: list[str] = []
        params: list[Any] = []
        if flt.state is not None:
            where.append(f"state = '{TaskState(flt.state).value}'")  # literal: partial indexes
            if flt.state in TERMINAL_STATES:
                where.append("finished_at IS NOT NULL")  # lets tasks_finished serve the order
        if flt.handler is not None:
            where.append("handler = ?")
            params.append(flt.handler)
        if flt.text:
            pattern = (
                "%" + flt.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            )
            where.append("(handler LIKE ? ESCAPE '\\' OR queue LIKE ? ESCAPE '\\')")
            params += [pattern, pattern]
        if flt.id_prefix:
            digits = "".join(ch for ch in flt.id_prefix if ch.isdigit())
            where.append("CAST(id AS TEXT) LIKE ?")
            params.append(f"{digits}%" if digits == flt.id_prefix else "-")
        if flt.where is not None:
            sql, more = to_sql(flt.where, "sqlite")
            where.append(sql)
            params += more
        return where, params

    def _keyed(
        self, flt: TaskFilter
    ) -> tuple[Ordering, str, list[Any], list[tuple[str, list[Any]]]]:
        """The list's ordering, its WHERE, and the conditions to read it by key through
        its indexes: one per queue for queued tasks (the ready index leads with it)."""
        where, params = self._filter_where(flt)
        if flt.queue is not None:
            where.append("queue = ?")
            params.append(flt.queue)
        ordering = Ordering.parse(_LIST_ORDER.get(flt.state, "id DESC"))
        cond = " AND ".join(where) if where else "1"
        queues = sorted(q for q, c in self._queues().items() if c[TaskState.QUEUED])
        if (
            flt.state == TaskState.QUEUED
            and flt.queue is None
            and flt.handler is None  # else tasks_handler_ready holds the list in order
            and 0 < len(queues) <= _MAX_UNION_QUEUES
        ):
            return ordering, cond, params, [(f"{cond} AND queue = ?", [*params, q]) for q in queues]
        return ordering, cond, params, [(cond, params)]

    async def _key_of(
        self, task_id: int, ordering: Ordering, cond: str, params: list[Any]
    ) -> list[Any] | None:
        rows = await self._read(
            f"SELECT {ordering.names} FROM tasks WHERE id = ? AND {cond}", [task_id, *params]
        )
        return list(rows[0]) if rows else None

    async def position(self, task_id: int, flt: TaskFilter) -> int | None:
        """How many tasks come before ``task_id`` in ``tasks(flt)``'s order; None when the
        task is not in that list. Counted through the same indexes as the list."""
        ordering, cond, params, conds = self._keyed(flt)
        values = await self._key_of(task_id, ordering, cond, params)
        if values is None:
            return None
        sql, sql_params = count_before(ordering, conds, values)
        counted = await self._read(sql, sql_params)
        return int(counted[0][0])

    async def around(
        self, task_id: int, flt: TaskFilter, before: int
    ) -> tuple[int, list[TaskRecord]] | None:
        """The task's position and ``flt.limit`` rows of ``tasks(flt)`` that start up to
        ``before`` rows ahead of it (``flt.offset`` is ignored); None when the task is not
        in that list. Read by key, so it costs the same anywhere in a long list."""
        ordering, cond, params, conds = self._keyed(flt)
        values = await self._key_of(task_id, ordering, cond, params)
        if values is None:
            return None
        sql, sql_params = count_before(ordering, conds, values)
        position = int((await self._read(sql, sql_params))[0][0])
        before = min(before, position, max(0, flt.limit - 1))
        sql, sql_params = window_around(
            ordering, COLUMNS, conds, values, before, flt.limit - before
        )
        rows = await self._read(sql, sql_params)
        at = [COLUMN_NAMES.index(name) for name, _ in ordering.columns]
        rows.sort(key=lambda row: ordering.sort_key(tuple(row[i] for i in at)))
        ahead = next((i for i, row in enumerate(rows) if row[0] == task_id), before)
        return position - ahead, [self._record(row) for row in rows]

    def list_query(self, flt: TaskFilter) -> ListQuery:
        where, params = self._filter_where(flt)
        queue = flt.queue
        if flt.state == TaskState.QUEUED and queue is None and flt.handler is None:
            queues = sorted(q for q, c in self._queues().items() if c[TaskState.QUEUED])
            if len(queues) == 1:
                queue = queues[0]  # the same rows, straight from one index range
            elif 0 < len(queues) <= _MAX_UNION_QUEUES:
                return self._merged_queues_query(flt, where, params, queues)
        if queue is not None:
            where.append("queue = ?")
            params.append(queue)
        order = _LIST_ORDER.get(flt.state, "id DESC")
        cond = f"WHERE {' AND '.join(where)}" if where else ""
        return ListQuery(
            f"SELECT {COLUMNS} FROM tasks {cond} ORDER BY {order} LIMIT ? OFFSET ?",
            [*params, flt.limit, flt.offset],
        )

    def _merged_queues_query(
        self, flt: TaskFilter, where: list[str], params: list[Any], queues: list[str]
    ) -> ListQuery:
        """Queued tasks of every queue in claim order: the top ids of each queue through
        its index (keys only), merged, then those rows. A window in the back half of a
        long list is read from the end, in reverse, so its cost stays small too."""
        order, reverse_order = "priority DESC, id", "priority ASC, id DESC"
        offset, limit, reverse = flt.offset, flt.limit, False
        if not (
            flt.handler or flt.text or flt.id_prefix or flt.where
        ):  # the count is known exactly
            total = sum(self._queues()[q][TaskState.QUEUED] for q in queues)
            if offset + limit // 2 > total // 2:
                limit = max(0, min(limit, total - offset))
                offset, reverse = max(0, total - offset - limit), True
                order, reverse_order = reverse_order, order
        cond = " AND ".join(where)
        parts, union_params = [], []
        for q in queues:
            parts.append(
                f"SELECT * FROM (SELECT priority, id FROM tasks WHERE {cond} AND queue = ? "
                f"ORDER BY {order} LIMIT ?)"
            )
            union_params += [*params, q, limit + offset]  # each part binds all
        keys = " UNION ALL ".join(parts) + f" ORDER BY {order} LIMIT ? OFFSET ?"
        sql = f"SELECT {COLUMNS} FROM tasks WHERE id IN (SELECT id FROM ({keys})) ORDER BY {order}"
        return ListQuery(sql, [*union_params, limit, offset], reverse)

    def _record(self, row: Any, with_timeline: bool = False) -> TaskRecord:
        return records.task(self.codec, row, row[22] if with_timeline else None)
