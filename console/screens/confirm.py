"""Ask before a destructive or bulk action, with an optional note for the audit trail.

| Key | Does |
| --- | --- |
| y / enter | confirm |
| n / escape | decline |
| tab | write a note (why), kept with the action in the audit trail; enter confirms |
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from engine import check_note


class ConfirmScreen(ModalScreen[bool]):
    """Answers True or False; ``note`` holds what was written in the note field (None:
    nothing)."""

    AUTO_FOCUS = ""  # nothing focused: y and n answer at once; tab moves to the note
    BINDINGS = [
        Binding("y,enter", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, detail: str = "") -> None:
        super().__init__()
        self.question = question
        self.detail = detail
        self.note: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, classes="dialog-title")
            if self.detail:
                yield Static(self.detail, classes="dialog-text")
            yield Input(
                placeholder="note (optional): why — kept in the audit trail",
                max_length=500,
                id="confirm-note",
            )
            yield Static(
                "[b]y[/b] / enter: yes    [b]n[/b] / esc: no    [b]tab[/b]: write a note",
                classes="dialog-keys",
            )

    @on(Input.Submitted, "#confirm-note")
    def _submitted(self) -> None:
        self.action_answer(True)

    def action_answer(self, yes: bool) -> None:
        text = self.query_one("#confirm-note", Input).value
        try:
            self.note = check_note(text)
        except ValueError as exc:
            self.app.notify(str(exc), severity="warning")
            return
        self.dismiss(yes)
