"""Pause or resume a queue.

| Key | Does |
| --- | --- |
| enter | pause the highlighted queue, or resume it |
| escape | close |
"""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from console.format import num
from engine import Engine


class QueuesScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, engine: Engine, preselect: str | None = None) -> None:
        super().__init__()
        self.engine = engine
        self.preselect = preselect
        self._filled = False
        self._lines: list[str] = []

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("Queues: enter pauses or resumes", classes="dialog-title")
            yield OptionList(id="queues")
            yield Static("esc: close", classes="dialog-keys")

    def on_mount(self) -> None:
        self._fill()
        self.set_interval(1.0, self._fill)  # the depths and pauses stay live

    def _fill(self) -> None:
        queues = self.engine.snapshot().queues
        lines = [
            f"{'⏸ paused ' if q.paused else '▶ running'}  {q.name:<24} {num(q.depth):>10} queued"
            for q in queues.values()
        ]
        if lines == self._lines:
            return
        self._lines = lines
        options = self.query_one("#queues", OptionList)
        keep = options.highlighted
        options.clear_options()
        for q, line in zip(queues.values(), lines, strict=True):
            options.add_option(Option(line, id=q.name))
        names = list(queues)
        if not self._filled and self.preselect in names:
            options.highlighted = names.index(self.preselect)
        elif names:
            options.highlighted = min(keep or 0, len(names) - 1)
        self._filled = True
        options.focus()

    @on(OptionList.OptionSelected, "#queues")
    async def _selected(self, event: OptionList.OptionSelected) -> None:
        # An action, so that a read-only console refuses it (see console.read_only).
        await self.run_action(f"toggle_queue({str(event.option.id)!r})")

    @work(exclusive=True)
    async def action_toggle_queue(self, name: str) -> None:
        paused = self.engine.snapshot().queues[name].paused
        if paused:
            await self.engine.resume(name)
            self.app.notify(f"queue {name} resumed")
        else:
            await self.engine.pause(name)
            self.app.notify(f"queue {name} paused: running tasks finish, nothing new starts")
        self._fill()

    def action_close(self) -> None:
        self.dismiss(None)
