"""Set the worker count (of this engine, or of one node of a cluster).

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
from textual.validation import Integer
from textual.widgets import Input, Static


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
            yield Input(
                str(self.current),
                id="count",
                restrict=r"[0-9]*",
                validators=[
                    Integer(
                        0,
                        self.maximum,
                        failure_description=(f"a whole number from 0 to {self.maximum}"),
                    )
                ],
            )
            yield Static("", id="count-error", classes="error")

    @on(Input.Submitted, "#count")
    def _submitted(self, event: Input.Submitted) -> None:
        result = event.validation_result
        if result is not None and not result.is_valid:
            self.query_one("#count-error", Static).update("; ".join(result.failure_descriptions))
            return
        self.dismiss(int(event.value))

    def action_cancel(self) -> None:
        self.dismiss(None)
