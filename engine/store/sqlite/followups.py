"""What a task's final state sets off, in the transaction that records it.

- A workflow step that succeeded releases the next step (a chain) or, once every
  member has succeeded, the group's callback, handing over the result(s).
- A step that failed or was cancelled stops the rest: the waiting steps become
  ``cancelled`` with the reason. They keep ``waiting = 1``, so retrying the failed
  step and its success let the chain go on from there.
- A task with a webhook gets a ``taskdeck.webhook`` task that POSTs its record.

Doing this inside the same transaction is what makes workflows durable: a crash
either keeps the completion and its follow-ups, or neither.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.codec import Codec, join_json
from engine.model import TaskState, timeline_line
from engine.store.base import (
    WAITING_RUN_AT,
    Completion,
    webhook_task,
)
from engine.store.sqlite.insert import insert_one
from engine.store.sqlite.txn import Txn


@dataclass(frozen=True, slots=True)
class Finished:
    """A task that just reached a final state (or failed for good)."""

    task_id: int
    state: TaskState
    workflow_id: int | None
    webhook: str | None
    result: str | None  # as stored (sealed)


def finished(completions: Sequence[Completion]) -> list[Finished]:
    """The completions that set off follow-ups, as :class:`Finished` tasks."""
    return [
        Finished(c.task_id, c.state, c.workflow_id, c.webhook, c.result)
        for c in completions
        if c.sets_off_follow_ups
    ]


STEP = (
    "SELECT id, state, waiting, receives, payload, queue, attempts, step FROM tasks "
    "WHERE workflow_id = ? AND step = ?"
)
CALLBACK = (
    "SELECT id, state, waiting, receives, payload, queue, attempts, step FROM tasks "
    "WHERE workflow_id = ? AND receives IS NOT NULL"
)
MEMBERS_LEFT = (
    "SELECT count(*) FROM tasks WHERE workflow_id = ? AND receives IS NULL AND state != 'succeeded'"
)
MEMBER_RESULTS = "SELECT result FROM tasks WHERE workflow_id = ? AND receives IS NULL ORDER BY step"
RELEASE = (
    "UPDATE tasks SET state = 'queued', prev_state = state, waiting = 0, payload = ?, "
    "run_at = ?, finished_at = NULL, timeline = timeline || ? WHERE id = ?"
)
STOP = (
    "UPDATE tasks SET state = 'cancelled', prev_state = state, finished_at = ?, "
    "timeline = timeline || ? "
    "WHERE workflow_id = ? AND step > ? AND state = 'scheduled' AND waiting = 1 "
    "RETURNING queue"
)


RESUME = (
    "UPDATE tasks SET state = 'scheduled', prev_state = state, finished_at = NULL, run_at = ?, "
    "timeline = timeline || ? "
    "WHERE workflow_id = ? AND step > ? AND state = 'cancelled' AND waiting = 1 "
    "RETURNING queue"
)


def resume(txn: Txn, workflow_id: int, task_id: int, by: str) -> None:
    """A stopped step was retried: the steps its stop cancelled wait again."""
    row = txn.execute(
        "SELECT w.kind, t.step, t.receives FROM workflows w JOIN tasks t "
        "ON t.workflow_id = w.id WHERE t.id = ?",
        (task_id,),
    ).fetchone()
    if row is None:
        return
    kind, step, receives = row
    if kind == "group" and receives is not None:
        return  # the callback itself: nothing after it
    after = step if kind == "chain" else -1
    now = txn.now
    line = timeline_line(now, "scheduled", 0, by, f"waiting again: task {task_id} was retried")
    for (queue,) in txn.execute(RESUME, (WAITING_RUN_AT, line, workflow_id, after)).fetchall():
        txn.moved(queue, TaskState.CANCELLED, TaskState.SCHEDULED)


def with_previous(args: dict[str, Any], receives: str, value: Any) -> dict[str, Any]:
    """A step's arguments with the previous result added: as the parameter named
    ``receives``, or (``receives == ""``) an object's keys merged in (own arguments win)."""
    if receives:
        return {**args, receives: value}
    if isinstance(value, dict):
        return {**value, **args}
    return args  # the handler's payload check then says which arguments are missing


def after_final(txn: Txn, finished: Sequence[Finished], codec: Codec, by: str) -> int:
    """Apply the follow-ups of ``finished``; returns how many tasks became queued."""
    queued = 0
    for f in finished:
        if f.workflow_id is not None:
            queued += _advance(txn, f, codec, by)
        if f.webhook is not None:
            insert_one(txn, webhook_task(f.webhook, f.task_id, f.state, codec), by)
            queued += 1
    return queued


def _advance(txn: Txn, f: Finished, codec: Codec, by: str) -> int:
    assert f.workflow_id is not None
    kind_row = txn.execute("SELECT kind FROM workflows WHERE id = ?", (f.workflow_id,)).fetchone()
    step_row = txn.execute(
        "SELECT step, receives, handler FROM tasks WHERE id = ?", (f.task_id,)
    ).fetchone()
    if kind_row is None or step_row is None:
        return 0
    kind, (step, receives, handler) = kind_row[0], step_row
    is_callback = kind == "group" and receives is not None
    if f.state != TaskState.SUCCEEDED:
        if not is_callback:
            what = "step" if kind == "chain" else "group member"
            _stop(
                txn,
                f,
                by,
                f"{kind} stopped: {what} {step + 1} ({handler}, task {f.task_id}) {f.state.value}",
                -1 if kind == "group" else step,
            )
        return 0
    if kind == "chain":
        nxt = txn.execute(STEP, (f.workflow_id, step + 1)).fetchone()
        value = codec.decode(f.result)
        note = f"step {step + 1} (task {f.task_id}) succeeded"
        return _release(txn, nxt, value, codec, by, note)
    if is_callback:
        return 0
    if txn.execute(MEMBERS_LEFT, (f.workflow_id,)).fetchone()[0]:
        return 0
    results = [codec.decode(r[0]) for r in txn.execute(MEMBER_RESULTS, (f.workflow_id,))]
    callback = txn.execute(CALLBACK, (f.workflow_id,)).fetchone()
    return _release(txn, callback, results, codec, by, f"all {len(results)} members succeeded")


def _release(txn: Txn, row: Any, value: Any, codec: Codec, by: str, note: str) -> int:
    """Queue a waiting step with the previous result; 0 if it is not waiting."""
    if row is None:
        return 0
    task_id, state, waiting, receives, payload, queue, attempts, _ = row
    if not waiting or state not in (TaskState.SCHEDULED, TaskState.CANCELLED):
        return 0
    args = json.loads(codec.unseal(payload))
    sealed = codec.seal(join_json(with_previous(args, receives or "", value)))
    now = txn.now
    line = timeline_line(now, "queued", attempts, by, note)
    txn.execute(RELEASE, (sealed, now, line, task_id))
    txn.moved(queue, state, TaskState.QUEUED)
    return 1


def _stop(txn: Txn, f: Finished, by: str, note: str, after_step: int) -> None:
    assert f.workflow_id is not None
    now = txn.now
    line = timeline_line(now, "cancelled", 0, by, note)
    for (queue,) in txn.execute(STOP, (now, line, f.workflow_id, after_step)).fetchall():
        txn.moved(queue, TaskState.SCHEDULED, TaskState.CANCELLED)
