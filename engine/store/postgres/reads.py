"""SQL for the PostgreSQL store's reads: task lists, keyset paging, decoded records.

The lists have the same orders as SQLite's (see :mod:`engine.store.sqlite`):
claim order for queued tasks, due time for scheduled, start for running, newest
first for finished tasks and for no state filter. Queued tasks of several queues
are merged from each queue's ``tasks_ready`` range (a ``LATERAL`` per queue), so a
page costs the same with a million tasks queued. ``position`` and ``around``
count and read by key through the same ranges as
:mod:`engine.store.keyset` does, never by ``OFFSET``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.model import TERMINAL_STATES, TaskState
from engine.store.alerts import numbered
from engine.store.base import TaskFilter
from engine.store.keyset import Ordering
from engine.store.where import to_sql

__all__ = ["COLUMNS", "Ordering", "Where", "keyed", "list_query"]

COLUMNS = (
    "id, handler, queue, priority, state, attempts, max_retries, payload, result, error, "
    "progress, progress_message, created_at, run_at, started_at, finished_at, worker, "
    "unique_key, webhook, workflow_id, step, waiting"
)
COLUMN_NAMES = [name.strip() for name in COLUMNS.split(",")]
LIST_ORDER: dict[TaskState | None, str] = {
    TaskState.QUEUED: "priority DESC, id",
    TaskState.SCHEDULED: "run_at, id",
    TaskState.RUNNING: "started_at, id",
    **dict.fromkeys(TERMINAL_STATES, "finished_at DESC, id DESC"),
}
#: Per queue, the creation time of its oldest queued task: ids grow with creation, so
#: it is the smallest id, and each priority's smallest id is the first entry of its
#: ``tasks_ready`` range.
OLDEST_QUEUED = """
SELECT q.name, (SELECT created_at FROM tasks WHERE id = (
    SELECT min((SELECT id FROM tasks WHERE state = 'queued' AND queue = q.name AND priority = p
                ORDER BY priority DESC, id LIMIT 1)) FROM generate_series(0, 9) AS p))
FROM unnest($1::text[]) AS q (name)
"""
WORKFLOW_STEPS = (
    "SELECT id, handler, state, step, waiting, receives, started_at, finished_at FROM tasks "
    "WHERE workflow_id = $1 ORDER BY step"
)
UNCLAIMABLE = (
    "SELECT handler, count(*) FROM (SELECT handler FROM tasks WHERE state = 'queued' "
    "AND handler <> ALL($1::text[]) LIMIT $2) s GROUP BY handler"
)


@dataclass
class Where:
    """A filter's WHERE terms (with ``?`` placeholders) and their values."""

    terms: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    @property
    def sql(self) -> str:
        return " AND ".join(self.terms) if self.terms else "TRUE"


def filter_where(flt: TaskFilter, with_queue: bool = True) -> Where:
    where = Where()
    if flt.state is not None:
        where.terms.append(f"state = '{TaskState(flt.state).value}'")  # literal: partial indexes
        if flt.state in TERMINAL_STATES:
            where.terms.append("finished_at IS NOT NULL")  # lets tasks_finished serve the order
    if flt.handler is not None:
        where.terms.append("handler = ?")
        where.params.append(flt.handler)
    if flt.text:
        pattern = "%" + flt.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        # ILIKE: SQLite's LIKE ignores ASCII case; backslash is the escape character
        where.terms.append("(handler ILIKE ? OR queue ILIKE ?)")
        where.params += [pattern, pattern]
    if flt.id_prefix:
        digits = "".join(ch for ch in flt.id_prefix if ch.isdigit())
        where.terms.append("CAST(id AS text) LIKE ?")
        where.params.append(f"{digits}%" if digits == flt.id_prefix else "-")
    if flt.where is not None:
        sql, params = to_sql(flt.where, "postgres")
        where.terms.append(sql)
        where.params += params
    if with_queue and flt.queue is not None:
        where.terms.append("queue = ?")
        where.params.append(flt.queue)
    return where


#: The queues that have queued tasks now (from the counts).
QUEUED_QUEUES = (
    "SELECT queue AS name FROM task_counts WHERE state = 'queued' GROUP BY queue HAVING sum(n) > 0"
)


def list_query(flt: TaskFilter) -> tuple[str, list[Any]]:
    """A page of ``tasks(flt)``."""
    where = filter_where(flt)
    order = LIST_ORDER.get(flt.state, "id DESC")
    if flt.state == TaskState.QUEUED and flt.queue is None and flt.handler is None:
        # each queue's first offset + limit rows through its index, merged
        sql = (
            f"SELECT t.* FROM ({QUEUED_QUEUES}) AS q CROSS JOIN LATERAL ("
            f"SELECT {COLUMNS} FROM tasks WHERE {where.sql} AND queue = q.name "
            f"ORDER BY {order} LIMIT ?) t ORDER BY {order} LIMIT ? OFFSET ?"
        )
        params = [*where.params, flt.offset + flt.limit, flt.limit, flt.offset]
        return numbered(sql), params
    sql = f"SELECT {COLUMNS} FROM tasks WHERE {where.sql} ORDER BY {order} LIMIT ? OFFSET ?"
    return numbered(sql), [*where.params, flt.limit, flt.offset]


def keyed(flt: TaskFilter, queued: list[str]) -> tuple[Ordering, Where, list[Where]]:
    """The list's ordering, its WHERE, and the conditions to read it by key through its
    indexes: one per queue for queued tasks (the ready index leads with the queue)."""
    where = filter_where(flt)
    ordering = Ordering.parse(LIST_ORDER.get(flt.state, "id DESC"))
    # one handler's queued tasks: tasks_handler_ready holds them in order, in one range
    by_queue = flt.state == TaskState.QUEUED and flt.queue is None and flt.handler is None
    if by_queue and 0 < len(queued) <= 64:
        per_queue = [Where([*where.terms, "queue = ?"], [*where.params, q]) for q in queued]
        return ordering, where, per_queue
    return ordering, where, [where]


def key_of(task_id: int, ordering: Ordering, where: Where) -> tuple[str, list[Any]]:
    sql = f"SELECT {ordering.names} FROM tasks WHERE id = ? AND {where.sql}"
    return numbered(sql), [task_id, *where.params]


def count_before(
    ordering: Ordering, conds: list[Where], values: list[Any]
) -> tuple[str, list[Any]]:
    """One statement counting the rows before ``values`` under each condition."""
    parts: list[str] = []
    out: list[Any] = []
    for cond in conds:
        for _, sql, params in ordering.ranges(cond.sql, cond.params, values, after=False):
            parts.append(f"(SELECT count(*) FROM tasks WHERE {sql})")
            out += params
    return numbered("SELECT " + " + ".join(parts)), out


def window_around(
    ordering: Ordering, conds: list[Where], values: list[Any], before: int, after: int
) -> tuple[str, list[Any]]:
    """Up to ``before`` rows ahead of the key and ``after`` rows from it on, in no
    particular order (sort them with :meth:`Ordering.sort_key`)."""
    sides: list[str] = []
    out: list[Any] = []
    n = 0
    for is_after, limit in ((False, before), (True, after)):
        if limit <= 0:
            continue
        parts: list[str] = []
        for cond in conds:
            for depth, sql, params in ordering.ranges(
                cond.sql, cond.params, values, after=is_after
            ):
                order = ordering.sql(forward=is_after, start=depth)
                n += 1
                parts.append(f"(SELECT {COLUMNS} FROM tasks WHERE {sql} ORDER BY {order} LIMIT ?)")
                out += [*params, limit]
        union = " UNION ALL ".join(parts)
        n += 1
        sides.append(
            f"(SELECT * FROM ({union}) AS s{n} ORDER BY {ordering.sql(forward=is_after)} LIMIT ?)"
        )
        out.append(limit)
    return numbered(" UNION ALL ".join(sides)), out
