"""Operator commands and deletion in the PostgreSQL store; each runs in one :class:`Txn`.

The same behaviour and messages as :mod:`engine.store.sqlite.tasks`: cancel,
reprioritize, retry (one task, or every failed or cancelled task matching a
filter), progress, pausing a queue, and purging finished tasks (by filter, or
past their TTL). A command on one task locks its row (``FOR UPDATE``) and so waits
for a claim or completion of that task on another node to commit; bulk commands
skip rows another node holds.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.codec import Codec
from engine.model import TERMINAL_STATES, AllPaused, TaskState, timeline_line
from engine.store import commands as rules
from engine.store.postgres import followups as followups
from engine.store.postgres.conn import Txn
from engine.store.postgres.insert import at_text, js, line_sql

# -- operator commands -------------------------------------------------------

STATE_OF = f"SELECT {rules.STATE_OF_COLUMNS} FROM tasks WHERE id = $1 FOR UPDATE"


CANCEL = (
    "UPDATE tasks SET state = 'cancelled', prev_state = state, finished_at = $2, "
    "lease_owner = NULL, lease_expires_at = NULL, waiting = false, "
    f"timeline = timeline || {line_sql(repr('cancelled'), 'attempts', '$3', '$4', '$5')} "
    "WHERE id = $1 AND state IN ('queued', 'scheduled', 'running') "
    "RETURNING prev_state, queue, workflow_id, webhook"
)


async def cancel(txn: Txn, task_id: int, by: str, note: str, codec: Codec) -> TaskState:
    now = txn.now
    row = await txn.fetchrow(CANCEL, task_id, now, at_text(now), js(by), js(note))
    if row is not None:
        txn.moved(row[1], row[0], TaskState.CANCELLED)
        if row[2] is not None or row[3] is not None:
            done = followups.Finished(task_id, TaskState.CANCELLED, row[2], row[3], None)
            await followups.after_final(txn, [done], codec, by)
        return TaskState(row[0])
    raise rules.nothing_to_cancel(task_id, await txn.fetchrow(STATE_OF, task_id))


REPRIORITIZE = "UPDATE tasks SET priority = $1, timeline = timeline || $2 WHERE id = $3"


async def reprioritize(txn: Txn, task_id: int, priority: int, by: str) -> int:
    found = await txn.fetchrow(STATE_OF, task_id)
    refused = rules.reprioritize_refusal(task_id, found)
    if refused is not None:
        raise refused
    assert found is not None
    state, old, attempts = found[0], found[2], found[3]
    if old != priority:
        line = timeline_line(txn.now, state, attempts, by, rules.priority_note(old, priority))
        await txn.execute(REPRIORITIZE, priority, line, task_id)
    return int(old)


RETRY = (
    "UPDATE tasks SET state = 'queued', prev_state = state, finished_at = NULL, result = NULL, "
    "run_at = $2, max_retries = GREATEST(max_retries, attempts + $3), "
    f"timeline = timeline || {line_sql(repr('queued'), 'attempts', '$4', '$5', '$6')} "
    "WHERE id = $1"
)
#: The active task holding the unique key of a task (not itself), if any.
KEY_HOLDER = (
    "SELECT h.id, h.state, h.unique_key FROM tasks t JOIN tasks h "
    "ON h.unique_key = t.unique_key AND h.state IN ('queued', 'scheduled', 'running') "
    "WHERE t.id = $1 AND t.unique_key IS NOT NULL AND h.id <> t.id"
)


async def retry(txn: Txn, task_id: int, by: str, retries: int | None) -> TaskState:
    found = await txn.fetchrow(STATE_OF, task_id)
    holder = None if found is None else await txn.fetchrow(KEY_HOLDER, task_id)
    refused = rules.retry_refusal(task_id, found, holder)
    if refused is not None:
        raise refused
    assert found is not None
    state, queue = found[0], found[1]
    budget = found[5] if retries is None else retries
    now = txn.now
    note = js(f"retried by {by}")
    await txn.execute(RETRY, task_id, now, budget, at_text(now), js(by), note)
    txn.moved(queue, state, TaskState.QUEUED)
    if found[7] is not None:
        await followups.resume(txn, found[7], task_id, by)
    return TaskState(state)


RETRY_WHERE = (
    "UPDATE tasks SET state = 'queued', prev_state = state, finished_at = NULL, result = NULL, "
    "run_at = $2, max_retries = GREATEST(max_retries, attempts + retries), "
    f"timeline = timeline || {line_sql(repr('queued'), 'attempts', '$3', '$4', '$5')} "
    "WHERE id = ANY($1::bigint[]) RETURNING queue, prev_state, id, workflow_id"
)


def _filters(
    queue: str | None, handler: str | None, params: list[object], where: list[str]
) -> None:
    if queue is not None:
        params.append(queue)
        where.append(f"queue = ${len(params)}")
    if handler is not None:
        params.append(handler)
        where.append(f"handler = ${len(params)}")


async def retry_where(
    txn: Txn,
    states: Sequence[TaskState],
    queue: str | None,
    handler: str | None,
    by: str,
    limit: int,
    ids: Sequence[int] | None = None,
) -> tuple[int, int]:
    """Queue up to ``limit`` failed or cancelled tasks again; returns (how many were
    queued, how many were looked at). Of several tasks with one unique key only the
    first is queued again (the others stay as they are)."""
    # only finished tasks that may move to queued: an active (or succeeded) one is left alone
    retryable = [s.value for s in rules.retryable(states)]
    params: list[object] = [retryable]
    where = ["state = ANY($1::text[])", "NOT waiting", rules.KEY_FREE]
    _filters(queue, handler, params, where)
    if ids is not None:
        params.append(list(ids))
        where.append(f"id = ANY(${len(params)}::bigint[])")
    params.append(limit)
    candidates = await txn.fetch(
        f"SELECT id, unique_key FROM tasks WHERE {' AND '.join(where)} ORDER BY id "
        f"LIMIT ${len(params)} FOR UPDATE SKIP LOCKED",
        *params,
    )
    keys: set[str] = set()
    ids = []
    for task_id, key in candidates:
        if key is not None:
            if key in keys:
                continue
            keys.add(key)
        ids.append(task_id)
    if not ids:
        return 0, len(candidates)
    now = txn.now
    note = js(f"retried by {by} (bulk)")
    rows = await txn.fetch(RETRY_WHERE, ids, now, at_text(now), js(by), note)
    for queue_name, old, task_id, workflow_id in rows:
        txn.moved(queue_name, old, TaskState.QUEUED)
        if workflow_id is not None:
            await followups.resume(txn, workflow_id, task_id, by)
    return len(rows), len(candidates)


SAVE_PROGRESS = """
UPDATE tasks t SET progress = p.fraction, progress_message = p.message
FROM unnest($1::bigint[], $2::text[], $3::float8[], $4::text[]) AS p (id, owner, fraction, message)
WHERE t.id = p.id AND t.state = 'running' AND t.lease_owner = p.owner
"""


async def save_progress(
    txn: Txn, items: Sequence[tuple[int, str, float | None, str | None]]
) -> None:
    await txn.execute(
        SAVE_PROGRESS,
        [i[0] for i in items],
        [i[1] for i in items],
        [i[2] for i in items],
        [i[3] for i in items],
    )


PAUSE = (
    "INSERT INTO queues (name, paused, changed_at) VALUES ($1, $2, $3) "
    "ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, changed_at = excluded.changed_at "
    "WHERE queues.paused <> excluded.paused"
)


PAUSE_ALL = (
    "INSERT INTO taskdeck_meta (key, value) VALUES ('paused_all', $1) ON CONFLICT (key) DO NOTHING"
)
RESUME_ALL = "DELETE FROM taskdeck_meta WHERE key = 'paused_all'"


async def set_paused(
    txn: Txn, queue: str | None, paused: bool, by: str = "", note: str | None = None
) -> bool:
    """Pause or resume ``queue``, or (None) everything (a row in ``taskdeck_meta`` that
    every claim looks at)."""
    txn.refresh_counts = True
    if queue is None and paused:
        flag = AllPaused(txn.now, by, note).to_json()
        changed = await txn.execute(PAUSE_ALL, flag) > 0
    elif queue is None:
        changed = await txn.execute(RESUME_ALL) > 0
    else:
        changed = await txn.execute(PAUSE, queue, paused, txn.now) > 0
    if changed and not paused:
        txn.wake("*" if queue is None else queue)
    return changed


# -- deletion ----------------------------------------------------------------


async def purge(
    txn: Txn,
    states: Sequence[TaskState],
    queue: str | None,
    handler: str | None,
    ids: Sequence[int] | None,
    limit: int,
) -> int:
    """Delete up to ``limit`` finished tasks matching the filter; returns how many."""
    params: list[object] = [[s.value for s in states if s in TERMINAL_STATES]]
    where = ["state = ANY($1::text[])"]
    _filters(queue, handler, params, where)
    if ids is not None:
        params.append(list(ids))
        where.append(f"id = ANY(${len(params)}::bigint[])")
    params.append(limit)
    rows = await txn.fetch(
        f"DELETE FROM tasks WHERE id IN (SELECT id FROM tasks WHERE {' AND '.join(where)} "
        f"LIMIT ${len(params)} FOR UPDATE SKIP LOCKED) RETURNING queue, state",
        *params,
    )
    for queue_name, state in rows:
        txn.moved(queue_name, state, "")
    if rows:
        txn.fault("purge.mid")
    return len(rows)
