"""What a task's final state sets off, in the transaction that records it (PostgreSQL).

The same rules as :mod:`engine.store.sqlite.followups`: a succeeded workflow step
releases the next step (or, once every member has succeeded, the group's
callback) with the result(s); a failed or cancelled step stops the waiting rest
(they keep ``waiting``, so retrying the step resumes them); a task with a webhook
gets a ``taskdeck.webhook`` task. The workflow's step rows are locked first, so
two members of a group finishing on two nodes at once cannot both (or neither)
release the callback.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from engine.codec import Codec, join_json
from engine.model import TaskState, timeline_line
from engine.store.base import (
    WAITING_RUN_AT,
    webhook_task,
)
from engine.store.postgres.conn import Txn
from engine.store.postgres.insert import insert_one
from engine.store.sqlite.followups import Finished, finished, with_previous

__all__ = ["Finished", "after_final", "finished", "resume"]

_STEP_COLUMNS = "id, state, waiting, receives, payload, queue, attempts, step"
STEP = f"SELECT {_STEP_COLUMNS} FROM tasks WHERE workflow_id = $1 AND step = $2"
CALLBACK = f"SELECT {_STEP_COLUMNS} FROM tasks WHERE workflow_id = $1 AND receives IS NOT NULL"
MEMBERS_LEFT = (
    "SELECT count(*) FROM tasks WHERE workflow_id = $1 AND receives IS NULL "
    "AND state <> 'succeeded'"
)
MEMBER_RESULTS = (
    "SELECT result FROM tasks WHERE workflow_id = $1 AND receives IS NULL ORDER BY step"
)
LOCK_WORKFLOW = "SELECT kind FROM workflows WHERE id = $1 FOR UPDATE"
RELEASE = (
    "UPDATE tasks SET state = 'queued', prev_state = state, waiting = false, payload = $1, "
    "run_at = $2, finished_at = NULL, timeline = timeline || $3 WHERE id = $4"
)
STOP = (
    "UPDATE tasks SET state = 'cancelled', prev_state = state, finished_at = $1, "
    "timeline = timeline || $2 "
    "WHERE workflow_id = $3 AND step > $4 AND state = 'scheduled' AND waiting "
    "RETURNING queue"
)
RESUME = (
    "UPDATE tasks SET state = 'scheduled', prev_state = state, finished_at = NULL, run_at = $1, "
    "timeline = timeline || $2 "
    "WHERE workflow_id = $3 AND step > $4 AND state = 'cancelled' AND waiting "
    "RETURNING queue"
)


async def resume(txn: Txn, workflow_id: int, task_id: int, by: str) -> None:
    """A stopped step was retried: the steps its stop cancelled wait again."""
    row = await txn.fetchrow(
        "SELECT w.kind, t.step, t.receives FROM workflows w JOIN tasks t "
        "ON t.workflow_id = w.id WHERE t.id = $1",
        task_id,
    )
    if row is None:
        return
    kind, step, receives = row
    if kind == "group" and receives is not None:
        return  # the callback itself: nothing after it
    after = step if kind == "chain" else -1
    line = timeline_line(txn.now, "scheduled", 0, by, f"waiting again: task {task_id} was retried")
    for (queue,) in await txn.fetch(RESUME, WAITING_RUN_AT, line, workflow_id, after):
        txn.moved(queue, TaskState.CANCELLED, TaskState.SCHEDULED)


async def after_final(txn: Txn, finished: Sequence[Finished], codec: Codec, by: str) -> int:
    """Apply the follow-ups of ``finished``; returns how many tasks became queued."""
    queued = 0
    for f in sorted(finished, key=lambda f: (f.workflow_id or 0, f.task_id)):
        if f.workflow_id is not None:
            queued += await _advance(txn, f, codec, by)
        if f.webhook is not None:
            await insert_one(txn, webhook_task(f.webhook, f.task_id, f.state, codec), by)
            queued += 1
    return queued


async def _advance(txn: Txn, f: Finished, codec: Codec, by: str) -> int:
    assert f.workflow_id is not None
    kind = await txn.fetchval(LOCK_WORKFLOW, f.workflow_id)
    step_row = await txn.fetchrow(
        "SELECT step, receives, handler FROM tasks WHERE id = $1", f.task_id
    )
    if kind is None or step_row is None:
        return 0
    step, receives, handler = step_row
    is_callback = kind == "group" and receives is not None
    if f.state != TaskState.SUCCEEDED:
        if not is_callback:
            what = "step" if kind == "chain" else "group member"
            await _stop(
                txn,
                f,
                by,
                f"{kind} stopped: {what} {step + 1} ({handler}, task {f.task_id}) {f.state.value}",
                -1 if kind == "group" else step,
            )
        return 0
    if kind == "chain":
        nxt = await txn.fetchrow(STEP, f.workflow_id, step + 1)
        value = codec.decode(f.result)
        note = f"step {step + 1} (task {f.task_id}) succeeded"
        return await _release(txn, nxt, value, codec, by, note)
    if is_callback:
        return 0
    if await txn.fetchval(MEMBERS_LEFT, f.workflow_id):
        return 0
    results = [codec.decode(r[0]) for r in await txn.fetch(MEMBER_RESULTS, f.workflow_id)]
    callback = await txn.fetchrow(CALLBACK, f.workflow_id)
    note = f"all {len(results)} members succeeded"
    return await _release(txn, callback, results, codec, by, note)


async def _release(txn: Txn, row: Any, value: Any, codec: Codec, by: str, note: str) -> int:
    """Queue a waiting step with the previous result; 0 if it is not waiting."""
    if row is None:
        return 0
    task_id, state, waiting, receives, payload, queue, attempts, _ = row
    if not waiting or state not in (TaskState.SCHEDULED, TaskState.CANCELLED):
        return 0
    args = json.loads(codec.unseal(payload))
    sealed = codec.seal(join_json(with_previous(args, receives or "", value)))
    line = timeline_line(txn.now, "queued", attempts, by, note)
    await txn.execute(RELEASE, sealed, txn.now, line, task_id)
    txn.moved(queue, state, TaskState.QUEUED)
    return 1


async def _stop(txn: Txn, f: Finished, by: str, note: str, after_step: int) -> None:
    assert f.workflow_id is not None
    line = timeline_line(txn.now, "cancelled", 0, by, note)
    for (queue,) in await txn.fetch(STOP, txn.now, line, f.workflow_id, after_step):
        txn.moved(queue, TaskState.SCHEDULED, TaskState.CANCELLED)
