"""Operator commands of the SQLite store (cancel, reprioritize, retry, retry by
filter, pause, progress, purge); each runs inside a :class:`Txn`. Expected refusals
are *returned* as exceptions (see :mod:`engine.store.sqlite.txn`)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from engine.codec import Codec
from engine.model import TERMINAL_STATES, AllPaused, TaskState
from engine.store import commands as rules
from engine.store.sqlite import followups as followups
from engine.store.sqlite.tasks import entry_sql
from engine.store.sqlite.txn import Txn

# -- operator commands -------------------------------------------------------

STATE_OF = f"SELECT {rules.STATE_OF_COLUMNS} FROM tasks WHERE id = ?"


CANCEL = (
    "UPDATE tasks SET state = 'cancelled', prev_state = state, finished_at = :now, "
    "lease_owner = NULL, lease_expires_at = NULL, waiting = 0, "
    f"timeline = timeline || {entry_sql(repr('cancelled'), note=':note')} "
    "WHERE id = :id AND state IN ('queued', 'scheduled', 'running') "
    "RETURNING prev_state, queue, workflow_id, webhook"
)


def cancel(
    txn: Txn, task_id: int, by: str, note: str, codec: Codec | None = None
) -> TaskState | Exception:
    row = txn.execute(CANCEL, {"now": txn.now, "by": by, "note": note, "id": task_id}).fetchone()
    if row is not None:
        txn.moved(row[1], row[0], TaskState.CANCELLED)
        if row[2] is not None or row[3] is not None:
            done = followups.Finished(task_id, TaskState.CANCELLED, row[2], row[3], None)
            followups.after_final(txn, [done], codec or Codec(), by)
        return TaskState(row[0])
    return rules.nothing_to_cancel(task_id, txn.execute(STATE_OF, (task_id,)).fetchone())


REPRIORITIZE = (
    "UPDATE tasks SET priority = :priority, "
    f"timeline = timeline || {entry_sql('state', note=':note')} WHERE id = :id"
)


def reprioritize(txn: Txn, task_id: int, priority: int, by: str) -> int | Exception:
    found = txn.execute(STATE_OF, (task_id,)).fetchone()
    refused = rules.reprioritize_refusal(task_id, found)
    if refused is not None:
        return refused
    old = found[2]
    if old != priority:
        note = rules.priority_note(old, priority)
        txn.execute(
            REPRIORITIZE,
            {"priority": priority, "now": txn.now, "by": by, "note": note, "id": task_id},
        )
    return int(old)


RETRY = (
    "UPDATE tasks SET state = 'queued', prev_state = state, finished_at = NULL, result = NULL, "
    "run_at = :now, max_retries = MAX(max_retries, attempts + :retries), "
    f"timeline = timeline || {entry_sql(repr('queued'), note=':note')} WHERE id = :id"
)


#: The active task holding the unique key of a task (not itself), if any.
KEY_HOLDER = (
    "SELECT h.id, h.state, h.unique_key FROM tasks t JOIN tasks h "
    "ON h.unique_key = t.unique_key AND h.state IN ('queued', 'scheduled', 'running') "
    "WHERE t.id = ? AND t.unique_key IS NOT NULL AND h.id != t.id"
)


def retry(txn: Txn, task_id: int, by: str, retries: int | None) -> TaskState | Exception:
    found = txn.execute(STATE_OF, (task_id,)).fetchone()
    holder = None if found is None else txn.execute(KEY_HOLDER, (task_id,)).fetchone()
    refused = rules.retry_refusal(task_id, found, holder)
    if refused is not None:
        return refused
    state, queue = found[0], found[1]
    budget = found[5] if retries is None else retries
    txn.execute(
        RETRY,
        {"now": txn.now, "retries": budget, "by": by, "note": f"retried by {by}", "id": task_id},
    )
    txn.moved(queue, state, TaskState.QUEUED)
    if found[7] is not None:
        followups.resume(txn, found[7], task_id, by)
    return TaskState(state)


# OR IGNORE: of several tasks with one unique key, only the first is queued again
RETRY_WHERE = (
    "UPDATE OR IGNORE tasks SET state = 'queued', prev_state = state, finished_at = NULL, "
    "result = NULL, run_at = :now, max_retries = MAX(max_retries, attempts + retries), "
    f"timeline = timeline || {entry_sql(repr('queued'), note=':note')} "
    "WHERE id IN (SELECT id FROM tasks WHERE {where} LIMIT :limit) "
    "RETURNING queue, prev_state, id, workflow_id"
)


def retry_where(
    txn: Txn,
    states: Sequence[TaskState],
    queue: str | None,
    handler: str | None,
    by: str,
    limit: int,
    ids: Sequence[int] | None = None,
) -> int:
    """Queue up to ``limit`` failed or cancelled tasks again; returns how many (other
    states in ``states`` are ignored: only failed and cancelled tasks can be retried)."""
    states = rules.retryable(states)
    if not states:
        return 0
    where = ["state IN (SELECT value FROM json_each(:states))", "waiting = 0", rules.KEY_FREE]
    params: dict[str, object] = {
        "states": json.dumps([s.value for s in states]),
        "now": txn.now,
        "by": by,
        "note": f"retried by {by} (bulk)",
        "limit": limit,
    }
    if queue is not None:
        where.append("queue = :queue")
        params["queue"] = queue
    if handler is not None:
        where.append("handler = :handler")
        params["handler"] = handler
    if ids is not None:
        where.append("id IN (SELECT value FROM json_each(:ids))")
        params["ids"] = json.dumps(list(ids))
    rows = txn.execute(RETRY_WHERE.format(where=" AND ".join(where)), params).fetchall()
    for queue_name, old, task_id, workflow_id in rows:
        txn.moved(queue_name, old, TaskState.QUEUED)
        if workflow_id is not None:
            followups.resume(txn, workflow_id, task_id, by)
    return len(rows)


SAVE_PROGRESS = (
    "UPDATE tasks SET progress = ?, progress_message = ? "
    "WHERE id = ? AND state = 'running' AND lease_owner = ?"
)


def save_progress(txn: Txn, items: Sequence[tuple[int, str, float | None, str | None]]) -> None:
    txn.conn.executemany(SAVE_PROGRESS, [(f, m, i, o) for i, o, f, m in items])


PAUSE = (
    "INSERT INTO queues (name, paused, changed_at) VALUES (?, ?, ?) "
    "ON CONFLICT(name) DO UPDATE SET paused = excluded.paused, changed_at = excluded.changed_at "
    "WHERE paused != excluded.paused"
)


PAUSE_ALL = "INSERT INTO meta (key, value) VALUES ('paused_all', ?) ON CONFLICT(key) DO NOTHING"
RESUME_ALL = "DELETE FROM meta WHERE key = 'paused_all'"


def set_paused(
    txn: Txn, queue: str | None, paused: bool, by: str = "", note: str | None = None
) -> bool:
    """Pause or resume ``queue``, or (None) everything (a row in ``meta`` that every
    claim looks at)."""
    txn.refresh_counts = True
    if queue is None and paused:
        flag = AllPaused(txn.now, by, note).to_json()
        changed = txn.execute(PAUSE_ALL, (flag,)).rowcount > 0
    elif queue is None:
        changed = txn.execute(RESUME_ALL).rowcount > 0
    else:
        changed = txn.execute(PAUSE, (queue, int(paused), txn.now)).rowcount > 0
    if changed and not paused:
        txn.wake()
    return changed


def purge(
    txn: Txn,
    states: Sequence[TaskState],
    queue: str | None,
    handler: str | None,
    ids: Sequence[int] | None,
    limit: int,
) -> int:
    """Delete up to ``limit`` finished tasks matching the filter; returns how many."""
    where = ["state IN (SELECT value FROM json_each(?))"]
    params: list[object] = [json.dumps([s.value for s in states if s in TERMINAL_STATES])]
    if queue is not None:
        where.append("queue = ?")
        params.append(queue)
    if handler is not None:
        where.append("handler = ?")
        params.append(handler)
    if ids is not None:
        where.append("id IN (SELECT value FROM json_each(?))")
        params.append(json.dumps(list(ids)))
    params.append(limit)
    sql = (
        f"DELETE FROM tasks WHERE id IN (SELECT id FROM tasks WHERE {' AND '.join(where)} "
        "LIMIT ?) RETURNING queue, state"
    )
    rows = txn.execute(sql, params).fetchall()
    for queue_name, state in rows:
        txn.moved(queue_name, state, "")
    if rows:
        txn.fault("purge.mid")
    return len(rows)
