"""Forms that still fit a 100×30 terminal: borderless inputs when the screen is short."""

from __future__ import annotations

from typing import TypeVar

from textual.events import Resize
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Select, TextArea

#: Below this many rows the form's widgets drop their borders (one row each, not three).
SHORT = 40

ResultT = TypeVar("ResultT")


class CompactForm(ModalScreen[ResultT]):
    """A modal form that switches its fields to Textual's compact style on short screens."""

    def on_resize(self, event: Resize) -> None:
        self.fit(event.size.height)

    def fit(self, height: int) -> None:
        short = height < SHORT
        self.set_class(short, "-short")
        for widget in self.query("Input, Select, Button, TextArea"):
            if isinstance(widget, Input | Select | Button | TextArea):
                widget.compact = short
