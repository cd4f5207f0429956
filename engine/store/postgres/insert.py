"""Inserting tasks into the PostgreSQL store; timeline lines built in SQL.

Plain tasks (no unique key, webhook or workflow) go in one ``INSERT … SELECT FROM
unnest(…)`` whatever their number. A task with a ``unique_key`` is inserted with
``ON CONFLICT … DO NOTHING`` against the partial unique index over active tasks:
the index is the check, so two nodes racing on one key cannot both insert, and the
loser gets the holder's id back (marked ``deduplicated``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from engine.model import TaskId
from engine.store.base import NewTask, first_state
from engine.store.postgres.conn import Txn, counted

ACTIVE = "'queued', 'scheduled', 'running'"


def at_text(now: float) -> str:
    """A time as a timeline line writes it."""
    return f"{now:.6f}"


def line_sql(
    state: str, attempt: str, at: str, by: str | None = None, note: str | None = None
) -> str:
    """SQL for one timeline line, as :func:`engine.model.timeline_line` writes it.

    Each argument is an SQL expression: ``state`` gives the state name (``"'queued'"``
    or a column), ``attempt`` a number, ``at`` the time as :func:`at_text` writes it,
    ``by`` and ``note`` JSON strings (see :func:`js`).
    """
    parts = [
        f"'{{\"at\":' || {at}",
        f"',\"state\":\"' || {state} || '\"'",
        f"',\"attempt\":' || ({attempt})",
    ]
    if by is not None:
        parts.append(f"',\"by\":' || {by}")
    if note is not None:
        parts.append(f"',\"note\":' || {note}")
    return "(" + " || ".join(parts) + " || E'}\\n')"


INSERT_MANY = """
INSERT INTO tasks (handler, queue, priority, state, max_retries, retries, payload, created_at,
                   run_at, timeline, trace_context)
SELECT h, q, p, s, r, r, pl, $10, ra, tl, tc
FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::int[], $6::text[],
            $7::float8[], $8::text[], $9::text[])
     WITH ORDINALITY AS u (h, q, p, s, r, pl, ra, tl, tc, ord)
ORDER BY ord
RETURNING id
"""
#: INSERT_MANY as a statement of its own (``Txn.alone``): it writes its count changes
#: and, when it made tasks ready, wakes the other nodes (``$11`` channel, ``$12`` payload).
ENQUEUE_ALONE = (
    f"WITH ins AS ({INSERT_MANY.strip()}, queue, state), {counted('ins', None, 'ins.state')}, "
    "woke AS (SELECT pg_notify($11, $12) WHERE $12 <> '') "
    "SELECT id, (SELECT count(*) FROM woke) FROM ins"
)
#: The rows of an enqueue whose commit's outcome was lost (see PostgresStore.enqueue).
FIND_ENQUEUED = (
    "SELECT id FROM tasks WHERE created_at = $1 AND handler = ANY($2::text[]) "
    "AND payload = ANY($3::text[]) ORDER BY id"
)
INSERT_ONE = (
    "INSERT INTO tasks (handler, queue, priority, state, max_retries, retries, payload, "
    "created_at, run_at, timeline, unique_key, webhook, workflow_id, step, receives, waiting, "
    "trace_context) "
    "VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
)
ON_DUPLICATE = (
    f" ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state IN ({ACTIVE}) DO NOTHING"
)
HOLDER = f"SELECT id FROM tasks WHERE unique_key = $1 AND state IN ({ACTIVE})"
WORKFLOW = "INSERT INTO workflows (kind, steps, created_at) VALUES ($1, $2, $3) RETURNING id"


async def enqueue(
    txn: Txn, tasks: Sequence[NewTask], by: str, workflow_id: int | None = None
) -> list[TaskId]:
    """Insert ``tasks`` in order; returns their ids (a holder's id for a duplicate)."""
    if all(t.plain for t in tasks) and workflow_id is None:
        return await _bulk(txn, tasks, by)
    return [await insert_one(txn, t, by, workflow_id) for t in tasks]


async def _bulk(txn: Txn, tasks: Sequence[NewTask], by: str) -> list[TaskId]:
    now = txn.now
    cols: list[list[object]] = [[] for _ in range(9)]
    for t in tasks:
        state, line, run_at = first_state(t, now, by)
        txn.moved(t.queue, "", state)
        for col, value in zip(
            cols,
            (
                t.handler,
                t.queue,
                t.priority,
                state.value,
                t.retries,
                t.payload,
                run_at,
                line,
                t.trace,
            ),
            strict=True,
        ):
            col.append(value)
    if txn.alone:
        rows = await txn.fetch(ENQUEUE_ALONE, *cols, now, txn.channel, txn.wake_payload())
    else:
        rows = await txn.fetch(INSERT_MANY, *cols, now)
    txn.fault("enqueue_many.mid")
    # Rows are inserted (and their ids drawn from the sequence) in input order.
    return list(map(TaskId, sorted(r[0] for r in rows)))


async def insert_one(txn: Txn, t: NewTask, by: str, workflow_id: int | None = None) -> TaskId:
    now = txn.now
    state, line, run_at = first_state(t, now, by)
    args = (
        t.handler,
        t.queue,
        t.priority,
        state.value,
        t.retries,
        t.payload,
        now,
        run_at,
        line,
        t.unique_key,
        t.webhook,
        workflow_id,
        t.step,
        t.receives,
        bool(t.waiting),
        t.trace,
    )
    if t.unique_key is None:
        task_id = await txn.fetchval(INSERT_ONE + " RETURNING id", *args)
    else:
        for _ in range(5):
            task_id = await txn.fetchval(INSERT_ONE + ON_DUPLICATE + " RETURNING id", *args)
            if task_id is not None:
                break
            holder = await txn.fetchval(HOLDER, t.unique_key)
            if holder is not None:
                return TaskId.held(holder)
            # the holder finished between the two statements: the key is free again
        else:  # pragma: no cover - a key changing hands five times in a row
            raise RuntimeError(f"unique key {t.unique_key!r} keeps changing hands; try again")
    txn.moved(t.queue, "", state)
    return TaskId(task_id)


async def enqueue_workflow(
    txn: Txn, kind: str, tasks: Sequence[NewTask], by: str
) -> tuple[int, list[TaskId]]:
    """Store a workflow and all its steps (later ones waiting) in one transaction."""
    workflow_id = int(await txn.fetchval(WORKFLOW, kind, len(tasks), txn.now))
    return workflow_id, [await insert_one(txn, t, by, workflow_id) for t in tasks]


def js(text: str | None) -> str | None:
    """A JSON string literal (for a timeline line's ``by`` or ``note``)."""
    return None if text is None else json.dumps(text)
