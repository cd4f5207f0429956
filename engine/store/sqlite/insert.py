"""Inserting tasks: the bulk path for plain tasks, row by row for the rest.

Plain tasks (no unique key, webhook or workflow) travel as one JSON array that
SQLite unpacks in C. A task with a ``unique_key`` is inserted with
``ON CONFLICT … DO NOTHING`` against the partial unique index over active tasks:
the index is the check, so two processes racing on one key cannot both insert,
and the loser gets the holder's id back (marked ``deduplicated``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from engine.model import TaskId, TaskState
from engine.store.base import NewTask, first_state
from engine.store.sqlite.txn import Txn

# The whole batch travels as one JSON array, unpacked by SQLite in C: about 1.6×
# the rows/s of executemany, which binds every row from Python. Everything in it
# is ASCII (names are restricted; payloads are ASCII JSON or Fernet tokens).
INSERT = (
    "INSERT INTO tasks (handler, queue, priority, state, max_retries, retries, payload, "
    "created_at, run_at, timeline, trace_context) "
    "SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>4, value->>5, "
    ":now, value->>6, value->>7, value->>8 FROM json_each(:rows)"
)
INSERT_ONE = (
    "INSERT INTO tasks (handler, queue, priority, state, max_retries, retries, payload, "
    "created_at, run_at, timeline, unique_key, webhook, workflow_id, step, receives, waiting, "
    "trace_context) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
ACTIVE = "'queued', 'scheduled', 'running'"
ON_DUPLICATE = (
    f" ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state IN ({ACTIVE}) "
    "DO NOTHING RETURNING id"
)
HOLDER = f"SELECT id FROM tasks WHERE unique_key = ? AND state IN ({ACTIVE})"


def enqueue(
    txn: Txn, tasks: Sequence[NewTask], by: str, workflow_id: int | None = None
) -> list[TaskId]:
    """Insert ``tasks`` in order; returns their ids (a holder's id for a duplicate)."""
    if all(t.plain for t in tasks) and workflow_id is None:
        return _bulk(txn, tasks, by)
    return [insert_one(txn, t, by, workflow_id) for t in tasks]


def _bulk(txn: Txn, tasks: Sequence[NewTask], by: str) -> list[TaskId]:
    now = txn.now
    rows: list[tuple[object, ...]] = []
    for t in tasks:
        if t.run_at is None or t.run_at <= now:  # the common case, kept inline
            row = (t.handler, t.queue, t.priority, "queued", t.retries, t.payload, t.run_at, "")
            txn.moved(t.queue, "", TaskState.QUEUED)
        else:
            state, line, run_at = first_state(t, now, by)
            row = (t.handler, t.queue, t.priority, state.value, t.retries, t.payload, run_at, line)
            txn.moved(t.queue, "", state)
        # a traced enqueue's context is the 9th value; without one the row stays short
        rows.append(row if t.trace is None else (*row, t.trace))
    packed = json.dumps(rows, separators=(",", ":"))
    last = txn.execute(INSERT, {"now": now, "rows": packed}).lastrowid
    assert last is not None
    txn.fault("enqueue_many.mid")
    # AUTOINCREMENT ids are consecutive within one write transaction.
    return list(map(TaskId, range(last - len(rows) + 1, last + 1)))


def insert_one(txn: Txn, t: NewTask, by: str, workflow_id: int | None = None) -> TaskId:
    now = txn.now
    state, line, run_at = first_state(t, now, by)
    row = (
        t.handler,
        t.queue,
        t.priority,
        state.value,
        t.retries,
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
        int(t.waiting),
        t.trace,
    )
    if t.unique_key is None:
        task_id = txn.execute(INSERT_ONE, row).lastrowid
    else:
        found = txn.execute(INSERT_ONE + ON_DUPLICATE, row).fetchone()
        if found is None:
            (holder,) = txn.execute(HOLDER, (t.unique_key,)).fetchone()
            return TaskId.held(holder)
        task_id = found[0]
    assert task_id is not None
    txn.moved(t.queue, "", state)
    return TaskId(task_id)
