"""What the operator commands allow, said once for every driver.

Each driver reads the task's row (its columns are :data:`STATE_OF_COLUMNS`), asks
here whether the command may go ahead, and writes with its own SQL. The refusals
are the same words on SQLite and PostgreSQL because they come from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.errors import InvalidTransition
from engine.model import TaskState
from engine.store.base import task_missing

#: The columns a single-task command reads first, in this order (see :func:`retry_refusal`).
STATE_OF_COLUMNS = (
    "state, queue, priority, attempts, max_retries, retries, waiting, workflow_id, step"
)

#: A task whose unique key (if any) no active task holds: it can be queued again.
KEY_FREE = (
    "(unique_key IS NULL OR NOT EXISTS (SELECT 1 FROM tasks h WHERE h.unique_key = "
    "tasks.unique_key AND h.state IN ('queued', 'scheduled', 'running')))"
)

RETRYABLE = (TaskState.FAILED, TaskState.CANCELLED)


def nothing_to_cancel(task_id: int, found: Sequence[Any] | None) -> Exception:
    """Why a cancel changed nothing: no such task, or it has already finished."""
    if found is None:
        return task_missing(task_id)
    return InvalidTransition(f"task {task_id} already {found[0]}; nothing to cancel")


def reprioritize_refusal(task_id: int, found: Sequence[Any] | None) -> Exception | None:
    """None when the task may change priority (it is queued or scheduled)."""
    if found is None:
        return task_missing(task_id)
    if found[0] not in (TaskState.QUEUED, TaskState.SCHEDULED):
        return InvalidTransition(
            f"task {task_id} is {found[0]}; only queued or scheduled tasks can change priority"
        )
    return None


def priority_note(old: int, new: int) -> str:
    return f"priority {old} → {new}"


def retry_refusal(
    task_id: int, found: Sequence[Any] | None, holder: Sequence[Any] | None
) -> Exception | None:
    """None when the task may be queued again: it failed or was cancelled, it is not a
    workflow step still waiting for an earlier one, and no active task holds its
    unique key (``holder``: that task's id, state and key, if any)."""
    if found is None:
        return task_missing(task_id)
    state = found[0]
    if state not in RETRYABLE:
        return InvalidTransition(
            f"task {task_id} is {state}; only failed or cancelled tasks can be retried"
        )
    if found[6]:
        return InvalidTransition(
            f"task {task_id} is step {found[8] + 1} of workflow {found[7]} and waits for an "
            "earlier step; retry the step that failed and this one follows"
        )
    if holder is not None:
        return InvalidTransition(
            f"task {task_id} cannot be retried: its unique key {holder[2]!r} is held by task "
            f"{holder[0]}, which is {holder[1]}; retry once that task has finished"
        )
    return None


def retryable(states: Sequence[TaskState]) -> list[TaskState]:
    """Of ``states``, those a bulk retry acts on (only failed and cancelled tasks)."""
    return [s for s in states if s in RETRYABLE]
