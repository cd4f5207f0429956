"""Silence an alert rule: for how long, and a note saying why (both required).

| Key | Does |
| --- | --- |
| enter | silence (a bad duration or an empty note is said under the form) |
| escape | cancel |
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from engine import Engine, EngineNotRunning, Silence, StoreError


class SilenceScreen(ModalScreen[Silence | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, engine: Engine, rule: str, by: str) -> None:
        super().__init__()
        self.engine, self.rule, self.by = engine, rule, by

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"Silence rule {self.rule}", classes="dialog-title")
            yield Static("For how long (e.g. 30m, 2h):", classes="dialog-text")
            yield Input("1h", id="silence-for")
            yield Static("Why (kept with the silence):", classes="dialog-text")
            yield Input("", id="silence-note", placeholder="e.g. deploy in progress")
            yield Static("", id="silence-error", classes="dialog-text")
            yield Static("[b]enter[/b]: silence    [b]esc[/b]: cancel", classes="dialog-keys")

    def on_mount(self) -> None:
        self.query_one("#silence-note", Input).focus()

    @on(Input.Submitted)
    @work(exclusive=True)
    async def submit(self) -> None:
        duration = self.query_one("#silence-for", Input).value
        note = self.query_one("#silence-note", Input).value
        try:
            silence = await self.engine.alerts.silence(self.rule, duration, note, by=self.by)
        except (ValueError, EngineNotRunning, StoreError) as exc:
            self.query_one("#silence-error", Static).update(Text(str(exc), style="bold"))
            return
        self.dismiss(silence)

    def action_cancel(self) -> None:
        self.dismiss(None)
