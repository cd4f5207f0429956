"""What the dashboard's mark keys do (the app binds them; :mod:`console.marks` acts).

Marks are kept by the queue table (by task id, across tabs and filters) until esc or an
action on them: ``c``/``r``/``+``/``-`` on marked tasks start one bulk operation, which
shows on the Operations screen (``O``: progress, abort, result); its result is toasted
and the marks are cleared. When ``V`` found more tasks than it may mark, the action is
on the tab and filter itself (every task matching them when the action starts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textual.app import App

from console.format import num
from console.marks import (
    MAX_MARKS,
    WORDS,
    MarkAction,
    act_on_marked,
    describe,
    matching_ids,
    question,
)
from console.panels.queue import QueuePanel
from console.screens.confirm import ConfirmScreen
from engine import Engine, EngineNotRunning, Operation, StoreError, TaskState

#: What the confirmation says under its question.
EACH = (
    "One bulk operation (O shows its progress and can abort it); a task that cannot be "
    "changed (finished already, say) is skipped and counted."
)


@dataclass(frozen=True)
class Matching:
    """What ``V`` marked when more tasks matched than it may mark: the tab and filter."""

    state: TaskState
    where: str | None
    marked: int  # how many marks it left (an action acts on the query only while unchanged)


class MarkKeys:
    """Space, ``v``, ``V`` and esc on the queue table; ``c``/``r``/``+``/``-`` on marks."""

    def __init__(self, app: App[int], engine: Engine, panel: Callable[[], QueuePanel]) -> None:
        """``panel()``: the dashboard's queue panel, brought into view (compact layout)."""
        self.app = app
        self.engine = engine
        self._panel = panel
        self._beyond: Matching | None = None  # V's query, when more matched than the limit
        self.limit = MAX_MARKS  #: how many tasks V marks at most

    @property
    def panel(self) -> QueuePanel:
        return self._panel()

    @property
    def count(self) -> int:
        return len(self.panel.table.marks)

    def toggle(self) -> None:
        self.panel.table.toggle_mark()

    def mark_view(self) -> None:
        table = self.panel.table
        added = table.mark(table.visible_ids())
        self.app.notify(f"{num(added)} more marked on screen · {num(self.count)} marked", timeout=2)

    def mark_all(self) -> None:
        self.app.notify("marking every task that matches the tab and filter…", timeout=2)
        self.app.run_worker(self._mark_all(), group="marks", exclusive=True)

    async def _mark_all(self) -> None:
        panel = self.panel
        try:
            ids, more = await matching_ids(panel.page, self.limit)
        except (EngineNotRunning, StoreError) as exc:
            self.app.notify(f"cannot read tasks: {exc}", severity="error")
            return
        panel.table.mark(ids)
        self._beyond = None
        if more:
            filter_text = panel.query_filter.describe() or None
            self._beyond = Matching(panel.state, filter_text, self.count)
        what = f"{panel.state.value} tasks"
        what += " matching the filter" if panel.query_filter.active else ""
        limit = f" (the first {num(self.limit)}; c/r/+/- act on all that match)" if more else ""
        self.app.notify(f"{num(len(ids))} {what} marked{limit} · {num(self.count)} marked in all")

    def clear(self) -> bool:
        """Unmark every task; False when none was marked."""
        cleared = self.panel.table.clear_marks()
        self._beyond = None
        if cleared:
            self.app.notify(f"{num(cleared)} marks cleared", timeout=2)
        return bool(cleared)

    def act(self, action: MarkAction) -> bool:
        """Ask, then ``action`` on every marked task; False when none is marked (the key
        then acts on the task under the cursor)."""
        ids = self.panel.table.marks
        if not ids:
            return False
        beyond = self._beyond if self._beyond and self._beyond.marked == len(ids) else None
        if beyond is None:
            ask = ConfirmScreen(question(action, len(ids)), EACH)
        else:
            what = f"{beyond.state.value} task" + (
                f" matching {beyond.where}" if beyond.where else ""
            )
            ask = ConfirmScreen(
                f"{WORDS[action][0]} every {what}? (more than {num(self.limit)})", EACH
            )

        def answered(yes: bool | None) -> None:
            if yes:
                self.app.run_worker(self._act(action, ids, beyond, ask.note), group="marks")

        self.app.push_screen(ask, answered)
        return True

    async def _act(
        self, action: MarkAction, ids: list[str], beyond: Matching | None, note: str | None
    ) -> None:
        def progress(op: Operation) -> None:
            self.app.notify(
                f"operation {op.id}: {num(op.done)} of {num(op.total)} done…", timeout=2
            )

        try:
            if beyond is None:
                op = await act_on_marked(self.engine, action, ids, note, progress)
            else:
                op = await act_on_marked(
                    self.engine, action, None, note, progress,
                    state=beyond.state, where=beyond.where,
                )  # fmt: skip
        except (EngineNotRunning, StoreError, LookupError, ValueError, TypeError) as exc:
            self.app.notify(f"not done: {exc}", severity="error")
            return
        self.panel.table.clear_marks()
        self._beyond = None
        warn = bool(op.skipped) or op.state != "done"
        self.app.notify(
            describe(action, op), severity="warning" if warn else "information", timeout=6
        )
        self.panel.reload()
