"""What the dashboard's mark keys do (the app binds them; :mod:`console.marks` acts).

Marks are kept by the queue table (by task id, across tabs and filters) until esc or an
action on them: after ``c``/``r``/``+``/``-`` on marked tasks, the ones that changed are
unmarked and the skipped ones stay marked, so the toast's "skipped" can be looked at.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.app import App

from console.format import num
from console.marks import MAX_MARKS, MarkAction, act_on_marked, matching_ids, question
from console.panels.queue import QueuePanel
from console.screens.confirm import ConfirmScreen
from engine import Engine, EngineNotRunning, StoreError

#: What the confirmation says under its question.
EACH = (
    "Each task is changed on its own; one that cannot be (finished already, say) is "
    "skipped and stays marked."
)


class MarkKeys:
    """Space, ``v``, ``V`` and esc on the queue table; ``c``/``r``/``+``/``-`` on marks."""

    def __init__(self, app: App[int], engine: Engine, panel: Callable[[], QueuePanel]) -> None:
        """``panel()``: the dashboard's queue panel, brought into view (compact layout)."""
        self.app = app
        self.engine = engine
        self._panel = panel

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
            ids, more = await matching_ids(panel.page)
        except (EngineNotRunning, StoreError) as exc:
            self.app.notify(f"cannot read tasks: {exc}", severity="error")
            return
        panel.table.mark(ids)
        what = f"{panel.state.value} tasks"
        what += " matching the filter" if panel.query_filter.active else ""
        limit = f" (the first {num(MAX_MARKS)}: more match)" if more else ""
        self.app.notify(f"{num(len(ids))} {what} marked{limit} · {num(self.count)} marked in all")

    def clear(self) -> bool:
        """Unmark every task; False when none was marked."""
        cleared = self.panel.table.clear_marks()
        if cleared:
            self.app.notify(f"{num(cleared)} marks cleared", timeout=2)
        return bool(cleared)

    def act(self, action: MarkAction) -> bool:
        """Ask, then ``action`` on every marked task; False when none is marked (the key
        then acts on the task under the cursor)."""
        ids = self.panel.table.marks
        if not ids:
            return False
        ask = ConfirmScreen(question(action, len(ids)), EACH)

        def answered(yes: bool | None) -> None:
            if yes:
                self.app.run_worker(self._act(action, ids, ask.note), group="marks")

        self.app.push_screen(ask, answered)
        return True

    async def _act(self, action: MarkAction, ids: list[str], note: str | None) -> None:
        def progress(done: int) -> None:
            self.app.notify(f"{num(done)} of {num(len(ids))} marked tasks done…", timeout=2)

        try:
            outcome = await act_on_marked(self.engine, action, ids, note, progress)
        except (EngineNotRunning, StoreError) as exc:
            self.app.notify(f"stopped: {exc}", severity="error")
            return
        table = self.panel.table
        table.unmark(outcome.done)  # the skipped ones stay marked
        text = outcome.describe(action)
        self.app.notify(text, severity="warning" if outcome.skipped else "information", timeout=6)
        self.panel.reload()
