"""Editing one task that is not running (see :mod:`engine.edit`), written once for
both drivers as a plan (``?`` placeholders, numbered for PostgreSQL)."""

from __future__ import annotations

from typing import Any

from engine.errors import InvalidTransition
from engine.model import timeline_line
from engine.store.base import task_missing
from engine.store.plans import Moves, Plan, row

#: the columns an edit may set, as the engine names them
EDITABLE = ("payload", "priority", "queue", "retries", "run_at")
READ = "SELECT state, queue, attempts FROM tasks WHERE id = ?"


def edit(
    txn: Moves, task_id: int, state: str, changes: dict[str, Any], by: str, note: str
) -> Plan[Exception | None]:
    """Write ``changes`` to the task if it is still in ``state``; the timeline gets
    ``note`` (the old and new values, sealed by the caller when there is a key). A
    refusal is returned, not raised."""
    found = yield row(READ, task_id)
    if found is None:
        return task_missing(task_id)
    if found[0] != state:
        return InvalidTransition(
            f"task {task_id} became {found[0]} while being edited; nothing was changed"
        )
    sets, args = [], []
    for column in EDITABLE:
        if column in changes:
            sets.append(f"{column} = ?")
            args.append(changes[column])
    if "retries" in changes:
        sets.append("max_retries = attempts + ?")
        args.append(changes["retries"])
    line = timeline_line(txn.now, state, int(found[2]), by, note)
    sets.append("timeline = timeline || ?")
    yield row(
        f"UPDATE tasks SET {', '.join(sets)} WHERE id = ? AND state = ? RETURNING id",
        *args, line, task_id, state,
    )  # fmt: skip
    new_queue = changes.get("queue")
    if new_queue is not None and new_queue != found[1]:
        txn.moved(found[1], state, "")
        txn.moved(new_queue, "", state)
    return None
