"""Quit: let running tasks finish (up to shutdown_grace), stop now, or stay. The count of
running tasks is live while the dialog is open.

| Key | Does |
| --- | --- |
| enter | finish running tasks, then quit |
| s | stop now: running tasks go back to the queue |
| escape | stay |
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from engine import EngineSnapshot

QuitChoice = Literal["drain", "now"]


class QuitScreen(ModalScreen[QuitChoice | None]):
    BINDINGS = [
        Binding("enter", "choose('drain')", "Finish running tasks and quit"),
        Binding("s", "choose('now')", "Stop now"),
        Binding("escape", "choose(None)", "Stay"),
    ]

    def __init__(self, snapshot: Callable[[], EngineSnapshot], *, attached: bool = False) -> None:
        """``snapshot``: the engine's, read again every second while the dialog is open."""
        super().__init__()
        self.snapshot = snapshot
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
            yield Static(self._text(), id="quit-text", classes="dialog-text")

    def on_mount(self) -> None:
        if not self.attached:
            self.set_interval(1.0, self._refresh_text)

    def _text(self) -> str:
        snap = self.snapshot()
        return (
            f"{snap.busy_workers} tasks are running. Queued tasks stay in the store.\n\n"
            f"[b]enter[/b]  let running tasks finish (up to {snap.settings.shutdown_grace:g} s), "
            "then quit\n"
            "[b]s[/b]      stop now: running tasks go back to the queue (no attempt used)\n"
            "[b]esc[/b]    stay"
        )

    def _refresh_text(self) -> None:
        self.query_one("#quit-text", Static).update(self._text())

    def action_choose(self, choice: QuitChoice | None) -> None:
        self.dismiss(choice)
