"""Pause everything (the big red button), or resume: asks first, with a note.

While everything is paused no task starts on any node — nodes started later
included — until resumed; running tasks finish and enqueues are still accepted.
The pause is stored, so every console and ``taskdeck status`` shows it.

| Key | Does |
| --- | --- |
| enter | pause everything (with the note typed), or resume |
| escape | leave it as it is |
"""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from console.format import paused_by
from engine import AllPaused, Engine


class PauseAllScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "close", "Cancel")]

    def __init__(self, engine: Engine, paused: AllPaused | None) -> None:
        super().__init__()
        self.engine = engine
        self.paused = paused

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            if self.paused is None:
                yield Static("Pause everything?", classes="dialog-title")
                yield Static(
                    "No task will start on any node — nodes started later included — "
                    "until you resume. Running tasks finish; enqueues are still accepted.",
                    classes="dialog-text",
                )
                yield Input(placeholder="why (optional, shown to everyone)", id="note")
                yield Static("enter: pause everything    esc: cancel", classes="dialog-keys")
            else:
                p = self.paused
                yield Static("Resume everything?", classes="dialog-title")
                yield Static(
                    f"Everything is paused {paused_by(p.by, p.at, p.note)}.", classes="dialog-text"
                )
                yield Static("enter: resume    esc: leave it paused", classes="dialog-keys")

    def on_mount(self) -> None:
        if self.paused is None:
            self.query_one("#note", Input).focus()

    @on(Input.Submitted, "#note")
    def _submitted(self) -> None:
        self.decide()

    def key_enter(self) -> None:
        if self.paused is not None:
            self.decide()

    @work(exclusive=True)
    async def decide(self) -> None:
        if self.paused is not None:
            changed = await self.engine.resume_all()
            self.app.notify("everything resumed" if changed else "everything was not paused")
        else:
            note = self.query_one("#note", Input).value.strip() or None
            try:
                await self.engine.pause_all(note=note)
            except ValueError as exc:  # a note too long: say so, stay open
                self.app.notify(str(exc), severity="error")
                return
            self.app.notify("everything paused: nothing starts until resumed (P)", timeout=8)
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
