"""What a task's final state sets off, in the transaction that records it (both drivers).

- A workflow step that succeeded releases the next step (a chain) or, once every
  member has succeeded, the group's callback, handing over the result(s).
- A step that failed or was cancelled stops the rest: the waiting steps become
  ``cancelled`` with the reason. They keep ``waiting``, so retrying the failed
  step and its success let the chain go on from there.
- A task with a webhook gets a ``taskdeck.webhook`` task that POSTs its record.

Doing this inside the same transaction is what makes workflows durable: a crash
either keeps the completion and its follow-ups, or neither. The logic is written
once as plans (see :mod:`engine.store.plans`); each driver supplies its SQL
(:class:`FollowUpSQL`) and runs them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.codec import Codec, join_json
from engine.model import TaskState, timeline_line
from engine.store.base import WAITING_RUN_AT, Completion, webhook_task
from engine.store.plans import Insert, Moves, Plan, row, rows, run, value


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


def with_previous(args: dict[str, Any], receives: str, value: Any) -> dict[str, Any]:
    """A step's arguments with the previous result added: as the parameter named
    ``receives``, or (``receives == ""``) an object's keys merged in (own arguments win)."""
    if receives:
        return {**args, receives: value}
    if isinstance(value, dict):
        return {**value, **args}
    return args  # the handler's payload check then says which arguments are missing


@dataclass(frozen=True, slots=True)
class FollowUpSQL:
    """A driver's statements for the follow-ups; each takes its arguments in the
    order the plans below pass them."""

    kind: str  # (workflow id) -> the workflow's kind (PostgreSQL: its row locked)
    step_of: str  # (task id) -> step, receives, handler
    head: str  # (task id) -> kind, step, receives of the task's workflow
    step: str  # (workflow id, step) -> a step row (see STEP_COLUMNS)
    callback: str  # (workflow id) -> the group's callback row
    members_left: str  # (workflow id) -> members not succeeded
    member_results: str  # (workflow id) -> each member's result, in step order
    release: str  # (payload, run_at, timeline line, task id)
    stop: str  # (finished_at, line, workflow id, after step) RETURNING queue
    resume: str  # (run_at, line, workflow id, after step) RETURNING queue


STEP_COLUMNS = "id, state, waiting, receives, payload, queue, attempts, step"


def resume(sql: FollowUpSQL, txn: Moves, workflow_id: int, task_id: int, by: str) -> Plan[None]:
    """A stopped step was retried: the steps its stop cancelled wait again."""
    head = yield row(sql.head, task_id)
    if head is None:
        return
    kind, step, receives = head
    if kind == "group" and receives is not None:
        return  # the callback itself: nothing after it
    after = step if kind == "chain" else -1
    line = timeline_line(txn.now, "scheduled", 0, by, f"waiting again: task {task_id} was retried")
    for (queue,) in (yield rows(sql.resume, WAITING_RUN_AT, line, workflow_id, after)):
        txn.moved(queue, TaskState.CANCELLED, TaskState.SCHEDULED)


def after_final(
    sql: FollowUpSQL, txn: Moves, finished: Sequence[Finished], codec: Codec, by: str
) -> Plan[int]:
    """Apply the follow-ups of ``finished``; returns how many tasks became queued."""
    queued = 0
    for f in finished:
        if f.workflow_id is not None:
            queued += yield from _advance(sql, txn, f, codec, by)
        if f.webhook is not None:
            yield Insert(webhook_task(f.webhook, f.task_id, f.state, codec), by)
            queued += 1
    return queued


def _advance(sql: FollowUpSQL, txn: Moves, f: Finished, codec: Codec, by: str) -> Plan[int]:
    assert f.workflow_id is not None
    kind = yield value(sql.kind, f.workflow_id)
    step_row = yield row(sql.step_of, f.task_id)
    if kind is None or step_row is None:
        return 0
    step, receives, handler = step_row
    is_callback = kind == "group" and receives is not None
    if f.state != TaskState.SUCCEEDED:
        if not is_callback:
            what = "step" if kind == "chain" else "group member"
            note = (
                f"{kind} stopped: {what} {step + 1} ({handler}, task {f.task_id}) {f.state.value}"
            )
            line = timeline_line(txn.now, "cancelled", 0, by, note)
            after = -1 if kind == "group" else step
            for (queue,) in (yield rows(sql.stop, txn.now, line, f.workflow_id, after)):
                txn.moved(queue, TaskState.SCHEDULED, TaskState.CANCELLED)
        return 0
    if kind == "chain":
        nxt = yield row(sql.step, f.workflow_id, step + 1)
        note = f"step {step + 1} (task {f.task_id}) succeeded"
        return (yield from _release(sql, txn, nxt, codec.decode(f.result), codec, by, note))
    if is_callback:
        return 0
    if (yield value(sql.members_left, f.workflow_id)):
        return 0
    results = [codec.decode(r[0]) for r in (yield rows(sql.member_results, f.workflow_id))]
    callback = yield row(sql.callback, f.workflow_id)
    note = f"all {len(results)} members succeeded"
    return (yield from _release(sql, txn, callback, results, codec, by, note))


def _release(
    sql: FollowUpSQL, txn: Moves, step: Any, value: Any, codec: Codec, by: str, note: str
) -> Plan[int]:
    """Queue a waiting step with the previous result; 0 if it is not waiting."""
    if step is None:
        return 0
    task_id, state, waiting, receives, payload, queue, attempts, _ = step
    if not waiting or state not in (TaskState.SCHEDULED, TaskState.CANCELLED):
        return 0
    args = json.loads(codec.unseal(payload))
    sealed = codec.seal(join_json(with_previous(args, receives or "", value)))
    line = timeline_line(txn.now, "queued", attempts, by, note)
    yield run(sql.release, sealed, txn.now, line, task_id)
    txn.moved(queue, state, TaskState.QUEUED)
    return 1
