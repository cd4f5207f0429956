"""Marks in the queue table, and acting on the marked tasks.

| Key | Does |
| --- | --- |
| space | mark or unmark the task under the cursor (then the cursor moves down) |
| v | mark every task on screen in the table |
| V | mark every task matching the tab and the filter (not only those loaded) |
| esc | unmark all (a second esc clears the filter) |
| c / r / + / - | with marks: cancel / retry / raise / lower the priority of each marked task |

``V`` marks up to :data:`MAX_MARKS` tasks. An action on marks asks first, saying how many.

Marking only looks (a read-only console allows it); acting changes tasks and is refused
there like the single-task keys. :func:`act_on_marked` is the one place that acts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from console.format import num
from engine import MAX_PRIORITY, MIN_PRIORITY, Engine, TaskPage, TaskState

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
#: Which action a dashboard key runs when tasks are marked.
KEY_ACTION: dict[str, MarkAction] = {"cancel": "cancel", "retry": "retry"}


@dataclass
class Outcome:
    """What acting on marked tasks did: how many changed, and why the others did not."""

    done: set[str] = field(default_factory=set)  # the ids changed
    skipped: Counter[str] = field(default_factory=Counter)  # why → how many

    @property
    def changed(self) -> int:
        return len(self.done)

    def describe(self, action: MarkAction) -> str:
        """``3 tasks cancelled; 1 skipped (task 7 is succeeded, …)``."""
        text = f"{num(self.changed)} marked task{'s' if self.changed != 1 else ''} "
        text += WORDS[action][1]
        if self.skipped:
            reasons = "; ".join(f"{n} {why}" for why, n in self.skipped.most_common(3))
            text += f"; {num(sum(self.skipped.values()))} skipped ({reasons})"
        return text


def question(action: MarkAction, count: int) -> str:
    """``Cancel 3 marked tasks?``"""
    return f"{WORDS[action][0]} {num(count)} marked task{'s' if count != 1 else ''}?"


async def act_on_marked(
    engine: Engine,
    action: MarkAction,
    ids: Sequence[str],
    note: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Outcome:
    """Cancel, retry, raise or lower (by one) the priority of the tasks ``ids``.

    The one place the console acts on marked tasks. For now it makes one engine call per
    task (each recorded in the audit trail with ``note``); it is meant to become one
    durable bulk operation (``engine.ops``) when those exist. ``progress(done)`` is
    called every :data:`PAGE` tasks.
    """
    outcome = Outcome()
    for done, task_id in enumerate(ids, 1):
        try:
            with engine.audit.note(note):
                await _act_on_one(engine, action, task_id)
        except (LookupError, ValueError) as exc:
            outcome.skipped[_reason(exc)] += 1
        else:
            outcome.done.add(task_id)
        if progress is not None and done % PAGE == 0:
            progress(done)
    return outcome


async def _act_on_one(engine: Engine, action: MarkAction, task_id: str) -> None:
    if action == "cancel":
        await engine.cancel(task_id)
    elif action == "retry":
        await engine.retry(task_id)
    else:
        task = await engine.get(task_id)
        if task.state not in (TaskState.QUEUED, TaskState.SCHEDULED):
            raise ValueError(f"{task.state.value}: only queued or scheduled tasks")
        step = 1 if action == "raise" else -1
        target = max(MIN_PRIORITY, min(MAX_PRIORITY, task.priority + step))
        if target == task.priority:
            raise ValueError(f"already at priority {target}")
        await engine.reprioritize(task_id, target)


def _reason(exc: Exception) -> str:
    """An engine refusal without the task's id, so that alike ones count together:
    ``task 12 is succeeded; …`` → ``is succeeded``."""
    text = str(exc).split(";")[0]
    words = text.split()
    if len(words) > 2 and words[0] == "task" and words[1].lstrip("#").isdigit():
        text = " ".join(words[2:])
    return text[:60]


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
            return list(ids)[:limit], False
        offset += len(rows)
    more = len(await page(offset, 1)) > 0
    return list(ids)[:limit], more
