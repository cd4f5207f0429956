"""Every key, generated from the bindings themselves (so it is never out of date), after
how to move between the panels."""

from __future__ import annotations

from collections.abc import Iterable

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

#: Keys Textual handles itself (focus) and the keys every panel shares: the first group.
NAVIGATION: list[BindingType] = [
    Binding("tab", "app.focus_next", "Next panel (the focused one has a bright border)"),
    Binding("shift+tab", "app.focus_previous", "Previous panel"),
    Binding("up,down", "noop", "Move in the focused table or list; scroll the focused Events lane"),
    Binding("pageup,pagedown", "noop", "A screen up / down"),
    Binding("home,end", "noop", "First / last line"),
]


def key_label(binding: Binding) -> str:
    names = {
        "plus": "+",
        "minus": "-",
        "right_square_bracket": "]",
        "left_square_bracket": "[",
        "slash": "/",
        "question_mark": "?",
        "enter": "enter",
        "escape": "esc",
        "up": "↑",
        "down": "↓",
    }
    return " / ".join(names.get(k, k) for k in binding.key.split(","))


def describe(binding: Binding) -> str:
    """The long description (the tooltip) when the footer's label is a short one."""
    return binding.tooltip or binding.description


def keys_table(groups: Iterable[tuple[str, Iterable[BindingType]]]) -> Table:
    table = Table(box=None, padding=(0, 2), show_header=False)
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for title, bindings in groups:
        table.add_row("", "")
        table.add_row(f"[b]{title}[/b]", "")
        for b in bindings:
            if isinstance(b, Binding) and b.description:
                table.add_row(key_label(b), describe(b))
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]

    def __init__(self, groups: list[tuple[str, list[BindingType]]]) -> None:
        super().__init__()
        self.groups = groups

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide tall"):
            yield Static(
                "Keys · esc closes · ctrl+p finds any action by name", classes="dialog-title"
            )
            with VerticalScroll():
                yield Static(keys_table([("Moving around", NAVIGATION), *self.groups]))

    def action_close(self) -> None:
        self.dismiss(None)
