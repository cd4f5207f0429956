"""Failed and cancelled tasks (the dead-letter set): look, retry, purge.

| Key | Does |
| --- | --- |
| 1 / 2 | show failed / cancelled tasks |
| r | retry the selected task |
| R | retry every task shown (the tab and filter), after asking |
| P | purge every task shown, after asking |
| enter | task detail |
| / | filter |
| escape | back to the dashboard |
"""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Input, Static

from console.format import num
from console.panels.footer import KeysFooter
from console.panels.queue import QueuePanel
from console.panels.task_table import TaskTable
from console.screens.confirm import ConfirmScreen
from console.screens.task_detail import TaskDetailScreen
from engine import Engine, TaskState


class FailedScreen(Screen[None]):
    BINDINGS = [
        Binding("1", "show('failed')", "Failed"),
        Binding("2", "show('cancelled')", "Cancelled"),
        Binding("r", "retry_one", "Retry"),
        Binding("R", "retry_all", "Retry all shown"),
        Binding("P", "purge_all", "Purge all shown"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self.engine = engine

    def compose(self) -> ComposeResult:
        yield Static("", id="failed-summary", classes="screen-title")
        yield QueuePanel(self.engine, states=(TaskState.FAILED, TaskState.CANCELLED), id="failed")
        yield Static("", id="error-preview", classes="error")
        yield KeysFooter()

    @property
    def panel(self) -> QueuePanel:
        return self.query_one(QueuePanel)

    def on_mount(self) -> None:
        self.panel.border_title = "Failed and cancelled tasks"
        self.panel.table.focus()
        self.refresh_view()
        self.set_interval(1.0, self.refresh_view)

    def refresh_view(self) -> None:
        snap = self.engine.snapshot()
        self.panel.update_from(snap)
        self.query_one("#failed-summary", Static).update(
            f"Dead letters · {num(snap.counts[TaskState.FAILED])} failed · "
            f"{num(snap.counts[TaskState.CANCELLED])} cancelled · failed tasks are kept "
            f"{snap.settings.failed_ttl / 86400:g} days (failed_ttl)"
        )
        self._preview()

    @on(TaskTable.Opened)
    def _open(self, event: TaskTable.Opened) -> None:
        event.stop()  # the dashboard's handler (on the app) would open a second detail
        self.app.push_screen(TaskDetailScreen(self.engine, event.task.id))

    def _preview(self) -> None:
        task = self.panel.selected
        line = ""
        if task is not None and task.error:
            last = task.error.strip().splitlines()[-1]
            line = f"#{task.id} attempt {task.attempts}/{task.max_attempts}: {last}"
        self.query_one("#error-preview", Static).update(line)

    def action_show(self, state: str) -> None:
        self.panel.show_state(TaskState(state))

    def action_retry_one(self) -> None:
        self.panel.retry_selected()

    def _scope(self) -> tuple[str, dict[str, str | None]] | None:
        """What R and P act on: the tab, and the filter's queue= and handler= (None,
        said in a toast, when the filter asks more than those)."""
        pins = self.panel.query_filter.pins(self.engine.snapshot().encrypted)
        if pins is None:
            self.app.notify(
                "R and P act on a whole tab, or on handler= and queue=; this filter asks "
                "more, so clear it first (esc) or narrow it to those",
                severity="warning",
            )
            return None
        filt = {"queue": pins.get("queue"), "handler": pins.get("handler")}
        words = [f"{k} {v}" for k, v in filt.items() if v]
        state = self.panel.state.value
        return f"every {state} task" + (f" of {' and '.join(words)}" if words else ""), filt

    def action_retry_all(self) -> None:
        scope = self._scope()
        if scope is None:
            return
        what, filt = scope
        count = self.panel.table.total

        ask = ConfirmScreen(f"Retry {what}?", f"{num(count)} tasks go back to the queue.")

        def answered(yes: bool | None) -> None:
            if yes:
                self._bulk("retry", filt, ask.note)

        self.app.push_screen(ask, answered)

    def action_purge_all(self) -> None:
        scope = self._scope()
        if scope is None:
            return
        what, filt = scope
        count = self.panel.table.total

        ask = ConfirmScreen(f"Purge {what}?", f"{num(count)} tasks are deleted for good.")

        def answered(yes: bool | None) -> None:
            if yes:
                self._bulk("purge", filt, ask.note)

        self.app.push_screen(ask, answered)

    @work(exclusive=True, group="bulk")
    async def _bulk(self, verb: str, filt: dict[str, str | None], note: str | None) -> None:
        state, queue, handler = self.panel.state, filt["queue"], filt["handler"]
        with self.engine.audit.note(note):  # recorded with the note from the dialog
            if verb == "retry":
                n = await self.engine.retry_all(state, queue=queue, handler=handler)
                self.app.notify(f"{num(n)} {state.value} tasks queued again")
            else:
                n = await self.engine.purge(state, queue=queue, handler=handler)
                self.app.notify(f"{num(n)} {state.value} tasks purged")
        self.refresh_view()

    def action_filter(self) -> None:
        self.panel.open_filter()

    def action_back(self) -> None:
        if self.panel.has_class("-filtering") and self.focused is self.panel.query_one(
            "#filter", Input
        ):
            self.panel.clear_filter()
            return
        self.app.pop_screen()
