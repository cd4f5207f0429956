"""Set the worker count (of this engine, or of one node of a cluster).

A count outside 0 … max_workers, a negative one or one that is not a whole number is
refused in the dialog with the engine's own message; nothing is changed.

| Key | Does |
| --- | --- |
| enter | apply |
| escape | cancel |
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from engine import parse_workers


class WorkerCountScreen(ModalScreen[int | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: int, maximum: int, node: str | None = None) -> None:
        super().__init__()
        self.current = current
        self.maximum = maximum
        self.node = node

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            title = f"Worker count of node {self.node}" if self.node else "Worker count"
            yield Static(title, classes="dialog-title")
            yield Static(
                f"now {self.current}; from 0 (enqueue only) to {self.maximum} (max_workers)",
                classes="dialog-text",
            )
            yield Input(str(self.current), id="count")
            yield Static("", id="count-error", classes="error")

    @on(Input.Changed, "#count")
    def _changed(self) -> None:
        self.query_one("#count-error", Static).update("")

    @on(Input.Submitted, "#count")
    def _submitted(self, event: Input.Submitted) -> None:
        try:
            n = parse_workers(event.value, self.maximum)
        except ValueError as exc:
            self.query_one("#count-error", Static).update(str(exc))
            return
        self.dismiss(n)

    def action_cancel(self) -> None:
        self.dismiss(None)
