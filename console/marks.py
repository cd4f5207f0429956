"""Marks in the queue table, and acting on the marked tasks.

| Key | Does |
| --- | --- |
| space | mark or unmark the task under the cursor (then the cursor moves down) |
| v | mark every task on screen in the table |
| V | mark every task matching the tab and the filter (not only those loaded) |
| esc | unmark all (a second esc clears the filter) |
| c / r / + / - | with marks: cancel / retry / priority +1 / -1 (one bulk operation) |

``V`` marks up to :data:`MAX_MARKS` tasks; when more match, an action on those marks
acts on every task the tab and filter match (a bulk operation on the query, not on ids).
An action on marks asks first, saying how many.

Marking only looks (a read-only console allows it); acting changes tasks and is refused
there like the single-task keys. :func:`act_on_marked` is the one place that acts: one
durable bulk operation (``engine.ops``), never one engine call per task.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

from console.format import num
from engine import Engine, Operation, TaskPage, TaskState

#: "Mark all matching" stops after this many tasks (and says so).
MAX_MARKS = 100_000
#: Tasks read per page while marking all matching.
PAGE = 5_000

MarkAction = Literal["cancel", "retry", "raise", "lower"]
#: (verb for the question, past tense for the result) per action.
WORDS: dict[MarkAction, tuple[str, str]] = {
    "cancel": ("Cancel", "cancelled"),
    "retry": ("Retry", "queued again"),
    "raise": ("Raise the priority of", "raised"),
    "lower": ("Lower the priority of", "lowered"),
}


#: The bulk operation (and its argument) each action on marks runs.
BULK: dict[MarkAction, tuple[str, str | None]] = {
    "cancel": ("cancel", None),
    "retry": ("retry", None),
    "raise": ("reprioritize", "+1"),
    "lower": ("reprioritize", "-1"),
}


def question(action: MarkAction, count: int) -> str:
    """``Cancel 3 marked tasks?``"""
    return f"{WORDS[action][0]} {num(count)} marked task{'s' if count != 1 else ''}?"


def describe(action: MarkAction, op: Operation) -> str:
    """``operation 7: 3 marked tasks cancelled; 1 skipped (1 already succeeded)``."""
    text = f"operation {op.id}: {num(op.changed)} marked task{'s' if op.changed != 1 else ''} "
    text += WORDS[action][1]
    if op.skipped:
        text += f"; {num(op.skipped)} skipped" + op.why_skipped(3)
    if op.state != "done":
        text += f" — {op.state}" + (f": {op.error}" if op.error else "")
    return text


async def act_on_marked(
    engine: Engine,
    action: MarkAction,
    ids: Sequence[str] | None = None,
    note: str | None = None,
    progress: Callable[[Operation], None] | None = None,
    *,
    state: TaskState | None = None,
    where: str | None = None,
) -> Operation:
    """Cancel, retry, raise or lower (by one, within the range) the priority of the
    tasks ``ids`` — or of every task in ``state`` matching the query ``where`` — as one
    bulk operation the engine runs in batches (``engine.ops``: durable, in the audit
    trail with ``note``, listed on the Operations screen, abortable there). Waits for
    its end, calling ``progress(op)`` about every second; returns the finished one."""
    name, step = BULK[action]
    if ids is not None:
        op = await engine.ops.start(name, ids=list(ids), priority=step, note=note)
    else:
        op = await engine.ops.start(name, state=state, where=where, priority=step, note=note)
    while not op.finished:
        try:
            op = await engine.ops.wait(op.id, timeout=1.0)
        except TimeoutError:
            op = await engine.ops.get(op.id)
            if progress is not None:
                progress(op)
    return op


async def matching_ids(
    page: Callable[[int, int], Awaitable[TaskPage]], limit: int = MAX_MARKS
) -> tuple[list[str], bool]:
    """The ids of every task a list holds, read ``PAGE`` at a time through ``page(offset,
    limit)`` (the queue panel's own read: its tab and filter), up to ``limit``. Returns
    them and whether there were more than ``limit``."""
    ids: dict[str, None] = {}
    offset = 0
    while len(ids) < limit:
        rows = await page(offset, PAGE)
        ids.update((task.id, None) for task in rows)
        if len(rows) < PAGE:
            return list(ids)[:limit], len(ids) > limit
        offset += len(rows)
    more = len(await page(offset, 1)) > 0
    return list(ids)[:limit], more
