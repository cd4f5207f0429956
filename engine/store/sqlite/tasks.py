"""Write operations of the SQLite store; each runs inside a :class:`Txn`.

Every state change sets ``prev_state = state`` so the schema's CHECK constraint
sees the transition; every one appends a line to the task's timeline and records
its count change with ``txn.moved``. Expected refusals are *returned* as
exceptions (see :mod:`engine.store.sqlite.txn`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import lru_cache

from engine.codec import Codec
from engine.faults import no_fault
from engine.model import TERMINAL_STATES, TaskId, TaskState, timeline_line
from engine.store.base import (
    Claimed,
    ClaimedTask,
    Completion,
    Expired,
    NewTask,
    Rescued,
)
from engine.store.completion_batch import merged, split_unstarted
from engine.store.sqlite import followups as followups
from engine.store.sqlite import insert as sqlite_insert
from engine.store.sqlite.txn import Txn

ENTRY = (
    "json_object('at', :now, 'state', {state}, 'attempt', {attempt}, 'by', :by{note}) || char(10)"
)


def entry_sql(state: str, attempt: str = "attempts", note: str = "") -> str:
    return ENTRY.format(state=state, attempt=attempt, note=f", 'note', {note}" if note else "")


# -- enqueue -----------------------------------------------------------------

enqueue = sqlite_insert.enqueue
WORKFLOW = "INSERT INTO workflows (kind, steps, created_at) VALUES (?, ?, ?)"


def enqueue_workflow(
    txn: Txn, kind: str, tasks: Sequence[NewTask], by: str
) -> tuple[int, list[TaskId]]:
    """Store a workflow and all its steps (later ones waiting) in one transaction."""
    workflow_id = txn.execute(WORKFLOW, (kind, len(tasks), txn.now)).lastrowid
    assert workflow_id is not None
    return workflow_id, [sqlite_insert.insert_one(txn, t, by, workflow_id) for t in tasks]


# -- claim -------------------------------------------------------------------

#: Nothing starts while everything is paused (``Engine.pause_all``).
NOT_ALL_PAUSED = "NOT EXISTS (SELECT 1 FROM meta WHERE key = 'paused_all')"
ACTIVE_QUEUES = (
    "SELECT queue FROM task_counts WHERE state = 'queued' AND n > 0 "
    f"AND queue NOT IN (SELECT name FROM queues WHERE paused = 1) AND {NOT_ALL_PAUSED} "
    "ORDER BY queue"
)

_READY = (
    "SELECT id, priority FROM tasks WHERE state = 'queued' AND queue = :q{i} "
    "AND handler IN (SELECT value FROM json_each(:handlers)) "
    "ORDER BY priority DESC, id LIMIT :n{cap}"
)


@lru_cache(maxsize=128)
def claim_sql(queue_count: int, per_queue: bool = False) -> str:
    """One UPDATE that leases the best ``:n`` tasks across ``queue_count`` queues.

    Each queue contributes its own top ``n`` (``:n{i}`` with ``per_queue``: flow
    control gives each queue its own share) through the ``tasks_ready`` index; the
    union is ordered once more and cut to ``n``.
    """
    ready = [_READY.format(i=i, cap=i if per_queue else "") for i in range(queue_count)]
    if queue_count > 1:
        parts = " UNION ALL ".join(f"SELECT id, priority FROM ({r})" for r in ready)
        pick = f"SELECT id FROM ({parts}) ORDER BY priority DESC, id LIMIT :n"
    else:  # with per-queue shares the queue's share may exceed n: cut to n as well
        pick = f"SELECT id FROM ({ready[0]})" + (" LIMIT :n" if per_queue else "")
    return (
        "UPDATE tasks SET state = 'running', prev_state = 'queued', attempts = attempts + 1, "
        "lease_owner = :owner, lease_expires_at = :expires, started_at = :now, worker = :owner, "
        "progress = NULL, progress_message = NULL, "
        f"timeline = timeline || {entry_sql(repr('running'), 'attempts + 1')} "
        f"WHERE id IN ({pick}) "
        "RETURNING id, handler, queue, priority, attempts, max_retries, payload, created_at, "
        "run_at, workflow_id, webhook, trace_context"
    )


def claim(txn: Txn, owner: str, limit: int, handlers: str, lease_ttl: float) -> Claimed:
    queues = [row[0] for row in txn.execute(ACTIVE_QUEUES)]
    if not queues or limit <= 0:
        return Claimed()
    params: dict[str, object] = {f"q{i}": q for i, q in enumerate(queues)}
    params["n"] = limit
    return run_claim(txn, claim_sql(len(queues)), params, owner, handlers, lease_ttl)


def run_claim(
    txn: Txn, sql: str, params: dict[str, object], owner: str, handlers: str, lease_ttl: float
) -> Claimed:
    """Run a claim statement; the leased tasks, best first."""
    now = txn.now
    params.update(handlers=handlers, owner=owner, by=owner, now=now, expires=now + lease_ttl)
    rows = txn.execute(sql, params).fetchall()
    rows.sort(key=lambda r: (-r[3], r[0]))
    out = Claimed()
    for r in rows:
        txn.moved(r[2], TaskState.QUEUED, TaskState.RUNNING)
        out.append(
            ClaimedTask(
                r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], now, r[9], r[10], r[11]
            )
        )
    return out


HELD = (
    "SELECT id, state = 'running' AND lease_owner = :owner, "
    f"queue IN (SELECT name FROM queues WHERE paused = 1) OR NOT {NOT_ALL_PAUSED} "
    "FROM tasks WHERE id IN (SELECT value FROM json_each(:held))"
)


def claim_checking(
    txn: Txn, op: Callable[[Txn], Claimed], owner: str, held: Sequence[int]
) -> Claimed:
    """Run the claim ``op`` and, in the same transaction, check the ``held`` tasks."""
    rows = txn.execute(HELD, {"owner": owner, "held": json.dumps(list(held))}).fetchall()
    return op(txn).check(held, rows)


# -- enqueue straight to an idle worker -------------------------------------------

ANY_READY = (
    "SELECT 1 FROM task_counts WHERE state = 'queued' AND n > 0 "
    "AND queue NOT IN (SELECT name FROM queues WHERE paused = 1) LIMIT 1"
)
QUEUE_PAUSED = (
    "SELECT 1 FROM queues WHERE name = ? AND paused = 1 "
    "UNION ALL SELECT 1 FROM meta WHERE key = 'paused_all'"
)
INSERT_RUNNING = (
    "INSERT INTO tasks (handler, queue, priority, state, prev_state, attempts, max_retries, "
    "retries, payload, created_at, started_at, worker, lease_owner, lease_expires_at, timeline, "
    "trace_context) VALUES (?, ?, ?, 'running', 'queued', 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def enqueue_and_claim(
    txn: Txn, task: NewTask, by: str, lease_ttl: float
) -> tuple[TaskId, ClaimedTask | None]:
    """Insert ``task`` already claimed by ``by`` when nothing else is waiting.

    With no queued task in any unpaused queue, the new task is the one the next
    claim would take anyway; handing it over in the enqueue transaction saves a
    whole claim round trip. Otherwise it is enqueued normally.
    """
    ready = txn.execute(ANY_READY).fetchone()
    if (
        ready is not None
        or task.run_at is not None
        or not task.plain
        or txn.execute(QUEUE_PAUSED, (task.queue,)).fetchone()
    ):
        return enqueue(txn, [task], by)[0], None
    now = txn.now
    line = timeline_line(now, TaskState.RUNNING, 1, by)
    cursor = txn.execute(
        INSERT_RUNNING,
        (
            task.handler,
            task.queue,
            task.priority,
            task.retries,
            task.retries,
            task.payload,
            now,
            now,
            by,
            by,
            now + lease_ttl,
            line,
            task.trace,
        ),
    )
    task_id = cursor.lastrowid
    assert task_id is not None
    txn.moved(task.queue, "", TaskState.RUNNING)
    return TaskId(task_id), ClaimedTask.handed_over(task_id, task, now)


# -- completion (fenced) -----------------------------------------------------

COMPLETE = (
    "UPDATE tasks SET state = ?, prev_state = 'running', result = ?, error = IIF(?, error, ?), "
    "finished_at = ?, run_at = COALESCE(?, run_at), lease_owner = NULL, lease_expires_at = NULL, "
    "worker = ?, progress = COALESCE(?, progress), "
    "progress_message = COALESCE(?, progress_message), "
    "attempts = attempts - ?, timeline = timeline || ? "
    "WHERE id = ? AND state = 'running' AND lease_owner = ? AND attempts = ?"
)
COMPLETE_MANY = COMPLETE
COMPLETE += " RETURNING queue"


#: The timeline line a claim wrote (the same expression on the values it stored).
CLAIM_LINE = (
    "json_object('at', started_at, 'state', 'running', 'attempt', attempts, 'by', lease_owner)"
    " || char(10)"
)
#: A held task given back unstarted: its claim undone (the claim's line taken off the
#: timeline, or, should another line follow it, a ``queued`` line added).
GIVE_BACK = (
    "UPDATE tasks SET state = 'queued', prev_state = 'running', lease_owner = NULL, "
    "lease_expires_at = NULL, attempts = attempts - 1, timeline = CASE "
    f"WHEN substr(timeline, -length({CLAIM_LINE})) = {CLAIM_LINE} "
    f"THEN substr(timeline, 1, length(timeline) - length({CLAIM_LINE})) ELSE timeline || ? END "
    "WHERE id = ? AND state = 'running' AND lease_owner = ? AND attempts = ? RETURNING queue"
)


def complete(
    txn: Txn, completions: Sequence[Completion], codec: Codec | None = None, by: str = "engine"
) -> tuple[list[int], list[int]]:
    """Apply completions whose lease is still held; returns (applied, stale) indexes."""
    back, rest = split_unstarted(completions)
    if not back:
        return _complete(txn, completions, codec, by)
    given = give_back(txn, [completions[i] for i in back])
    done = _complete(txn, [completions[i] for i in rest], codec, by) if rest else ([], [])
    return merged((back, given), (rest, done))


def give_back(txn: Txn, completions: Sequence[Completion]) -> tuple[list[int], list[int]]:
    applied, stale = [], []
    for index, c in enumerate(completions):
        line = timeline_line(c.at, TaskState.QUEUED, c.attempt - 1, c.owner, c.note)
        row = txn.execute(GIVE_BACK, (line, c.task_id, c.owner, c.attempt)).fetchone()
        if row is None:
            stale.append(index)
        else:
            applied.append(index)
            txn.moved(row[0], TaskState.RUNNING, TaskState.QUEUED)
    return applied, stale


def _complete(
    txn: Txn, completions: Sequence[Completion], codec: Codec | None, by: str
) -> tuple[list[int], list[int]]:
    """Apply completions whose lease is still held; returns (applied, stale) indexes.

    Final states of workflow steps and tasks with webhooks set off their follow-ups
    (see :mod:`engine.store.sqlite.followups`) in the same transaction.

    Fast path: one ``executemany`` inside a savepoint. If any row did not match
    (a stale completion: the lease was lost), roll back to the savepoint and apply
    them one by one to learn which.
    """
    rows = []
    for c in completions:
        state = c.state.value
        finished = c.at if c.state in TERMINAL_STATES else None
        attempt_shown = c.attempt - 1 if c.release else c.attempt
        line = timeline_line(c.at, state, attempt_shown, c.worker or c.owner, c.note)
        rows.append(
            (
                state,
                c.result,
                c.release,
                c.error,
                finished,
                c.run_at,
                c.worker,
                c.progress,
                c.progress_message,
                1 if c.release else 0,
                line,
                c.task_id,
                c.owner,
                c.attempt,
            )
        )
    conn = txn.conn
    conn.execute("SAVEPOINT complete")
    if len(rows) > 1 and txn.fault is not no_fault:  # a crash test: stop halfway
        half = len(rows) // 2
        conn.executemany(COMPLETE_MANY, rows[:half])
        txn.fault("complete.mid_batch")
        conn.execute("ROLLBACK TO complete")
    if conn.executemany(COMPLETE_MANY, rows).rowcount == len(rows):
        conn.execute("RELEASE complete")
        for c in completions:
            txn.moved(c.queue, TaskState.RUNNING, c.state)
        _follow_up(txn, completions, codec, by)
        return list(range(len(rows))), []
    conn.execute("ROLLBACK TO complete")
    conn.execute("RELEASE complete")
    applied: list[int] = []
    stale: list[int] = []
    for index, row in enumerate(rows):
        found = conn.execute(COMPLETE, row).fetchone()
        if found is None:
            stale.append(index)
        else:
            applied.append(index)
            txn.moved(found[0], TaskState.RUNNING, completions[index].state)
    _follow_up(txn, [completions[i] for i in applied], codec, by)
    return applied, stale


def _follow_up(txn: Txn, completions: Sequence[Completion], codec: Codec | None, by: str) -> None:
    finished = followups.finished(completions)
    if finished:
        followups.after_final(txn, finished, codec or Codec(), by)


# -- leases ------------------------------------------------------------------

RENEW = (
    "UPDATE tasks SET lease_expires_at = ? WHERE state = 'running' AND lease_owner = ? RETURNING id"
)


def renew_leases(txn: Txn, owner: str, lease_ttl: float) -> set[int]:
    renewed = {row[0] for row in txn.execute(RENEW, (txn.now + lease_ttl, owner))}
    txn.fault("lease.renew")
    return renewed


EXPIRED_LEASES = (
    "SELECT id, handler, queue, attempts, max_retries, lease_owner, workflow_id, webhook "
    "FROM tasks "
    "WHERE state = 'running' AND lease_expires_at < ? AND lease_owner != ? "
    "ORDER BY lease_expires_at LIMIT 500"
)
RESCUE = (
    "UPDATE tasks SET state = ?, prev_state = 'running', finished_at = ?, error = ?, run_at = ?, "
    "lease_owner = NULL, lease_expires_at = NULL, timeline = timeline || ? "
    "WHERE id = ? AND state = 'running' AND lease_owner = ? AND attempts = ?"
)


def rescue(txn: Txn, exclude_owner: str, codec: Codec) -> list[Rescued]:
    """Requeue tasks whose lease expired; fail those that used their last attempt."""
    now = txn.now
    out = []
    final = []
    for task_id, handler, queue, attempts, max_retries, owner, workflow_id, webhook in txn.execute(
        EXPIRED_LEASES, (now, exclude_owner)
    ).fetchall():
        lost = f"worker lost during attempt {attempts}/{max_retries + 1} (lease expired)"
        if attempts > max_retries:
            state, finished, run_at = TaskState.FAILED, now, None
        else:
            state, finished, run_at = TaskState.QUEUED, None, now
        note = f"rescued from {owner}: {lost}"
        changed = txn.execute(
            RESCUE,
            (
                state.value,
                finished,
                codec.seal(lost),
                run_at,
                timeline_line(now, state, attempts, None, note),
                task_id,
                owner,
                attempts,
            ),
        ).rowcount
        if changed:
            txn.moved(queue, TaskState.RUNNING, state)
            out.append(Rescued(task_id, handler, queue, state, attempts, max_retries, owner))
            if state == TaskState.FAILED and (workflow_id is not None or webhook is not None):
                final.append(followups.Finished(task_id, state, workflow_id, webhook, None))
            txn.fault("rescue.mid")
    if final:
        followups.after_final(txn, final, codec, exclude_owner)
    return out


# -- scheduled -> queued -----------------------------------------------------

PROMOTE = (
    "UPDATE tasks SET state = 'queued', prev_state = 'scheduled', "
    f"timeline = timeline || {entry_sql(repr('queued'))} "
    "WHERE id IN (SELECT id FROM tasks WHERE state = 'scheduled' AND run_at <= :now "
    "ORDER BY run_at LIMIT 1000) RETURNING id, queue"
)
NEXT_DUE = "SELECT min(run_at) FROM tasks WHERE state = 'scheduled'"


def promote_due(txn: Txn) -> tuple[list[tuple[int, str]], float | None]:
    rows = txn.execute(PROMOTE, {"now": txn.now, "by": None}).fetchall()
    for _, queue in rows:
        txn.moved(queue, TaskState.SCHEDULED, TaskState.QUEUED)
    next_due = txn.execute(NEXT_DUE).fetchone()[0]
    return [(r[0], r[1]) for r in rows], next_due


# -- deletion ----------------------------------------------------------------

PURGE_EXPIRED = (
    "DELETE FROM tasks WHERE id IN (SELECT id FROM tasks WHERE state = ? AND finished_at < ? "
    "ORDER BY finished_at LIMIT ?) RETURNING id, handler, queue, state, finished_at"
)


def purge_expired(txn: Txn, result_ttl: float, failed_ttl: float, limit: int) -> list[Expired]:
    out: list[Expired] = []
    for state, ttl in (
        (TaskState.SUCCEEDED, result_ttl),
        (TaskState.FAILED, failed_ttl),
        (TaskState.CANCELLED, failed_ttl),
    ):
        room = limit - len(out)
        if room <= 0:
            break
        for r in txn.execute(PURGE_EXPIRED, (state.value, txn.now - ttl, room)).fetchall():
            txn.moved(r[2], r[3], "")
            out.append(Expired(str(r[0]), r[1], r[2], TaskState(r[3]), r[4]))
        if out:
            txn.fault("purge.mid")
    return out
