"""Quit: let running tasks finish (up to shutdown_grace), stop now, or stay.

| Key | Does |
| --- | --- |
| enter | finish running tasks, then quit |
| s | stop now: running tasks go back to the queue |
| escape | stay |
"""

from __future__ import annotations

from typing import Literal

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

QuitChoice = Literal["drain", "now"]


class QuitScreen(ModalScreen[QuitChoice | None]):
    BINDINGS = [
        Binding("enter", "choose('drain')", "Finish running tasks and quit"),
        Binding("s", "choose('now')", "Stop now"),
        Binding("escape", "choose(None)", "Stay"),
    ]

    def __init__(self, running: int, grace: float, *, attached: bool = False) -> None:
        super().__init__()
        self.running = running
        self.grace = grace
        self.attached = attached

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("Quit Taskdeck?", classes="dialog-title")
            if self.attached:
                yield Static(
                    "This console is attached: the nodes keep running, and nothing on them "
                    "changes when it quits.\n\n"
                    "[b]enter[/b]  quit\n"
                    "[b]esc[/b]    stay",
                    classes="dialog-text",
                )
                return
            yield Static(
                f"{self.running} tasks are running. Queued tasks stay in the store.\n\n"
                f"[b]enter[/b]  let running tasks finish (up to {self.grace:g} s), then quit\n"
                "[b]s[/b]      stop now: running tasks go back to the queue (no attempt used)\n"
                "[b]esc[/b]    stay",
                classes="dialog-text",
            )

    def action_choose(self, choice: QuitChoice | None) -> None:
        self.dismiss(choice)
