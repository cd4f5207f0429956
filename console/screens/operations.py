"""Bulk operations (``O``; ``taskdeck ops`` in the console): each with its action,
the tasks it acts on, its state, progress (done/total) and result — changed, skipped
and why — newest first; the selected one in full below.

Refreshes every second while open.

| Key | Does |
| --- | --- |
| k | abort the selected operation (it stops after its current batch) |
| escape | back to the dashboard |
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.screen import Screen
from textual.widgets import DataTable, Static

from console.format import ago, bar
from console.panels.footer import KeysFooter
from console.screens.audit import clip
from engine import Engine, EngineNotRunning, Operation, StoreError

COLUMNS = ("ID", "STARTED", "ACTION", "TASKS", "STATE", "PROGRESS", "RESULT", "NOTE")
SHOWN = 200
HOW_TO = (
    "No bulk operations yet.\n\n"
    "Start one from the command line — taskdeck bulk cancel --queue images --state queued, "
    "taskdeck bulk reprioritize --handler images.resize --priority high, retry, move, "
    "set-retries, purge — or with engine.ops.start(...) in your code. Each runs in batches "
    "in the engine, with its progress and result here."
)


class OperationsTable(DataTable[str | Text]):
    """One operation a row, keyed by its id."""


class OperationsScreen(Screen[None]):
    BINDINGS = [
        Binding("k", "abort", "Abort", tooltip="Stop the selected operation after its batch"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, engine: Engine, now: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.engine = engine
        self.now = now
        self.ops: list[Operation] = []
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Static("Bulk operations", id="ops-summary", classes="screen-title")
        yield OperationsTable(id="ops", classes="panel", cursor_type="row", zebra_stripes=True)
        yield Static(HOW_TO, id="ops-empty", classes="panel")
        yield Static("", id="ops-entry", classes="panel")
        yield KeysFooter()

    @property
    def table(self) -> OperationsTable:
        return self.query_one(OperationsTable)

    @property
    def selected(self) -> Operation | None:
        table = self.table
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        return next((o for o in self.ops if str(o.id) == key), None)

    def on_mount(self) -> None:
        self.table.border_title = "Bulk operations"
        self.query_one("#ops-empty").border_title = "Bulk operations"
        self.query_one("#ops-entry").border_title = "Operation"
        for label in COLUMNS:
            self.table.add_column(label, key=label.lower())
        self.table.focus()
        self.load()
        self.set_interval(1.0, self.load)

    @work(exclusive=True, group="ops")
    async def load(self) -> None:
        try:
            found = await self.engine.ops.list(limit=SHOWN)
        except (EngineNotRunning, StoreError):
            return  # the console is closing
        if self.is_attached and self.is_current:
            self.ops, self.loaded = found, True
            self.show()

    def show(self) -> None:
        now, table = self.now(), self.table
        running = sum(not o.finished for o in self.ops)
        self.query_one("#ops-summary", Static).update(
            f"Bulk operations · {len(self.ops)} shown · {running} running"
        )
        empty = not self.ops
        table.display = not empty
        self.query_one("#ops-empty").display = empty
        keep = table.cursor_row
        table.clear()
        for o in self.ops:
            table.add_row(*self._cells(o, now), key=str(o.id))
        if table.row_count:
            table.move_cursor(row=min(keep, table.row_count - 1))
        self._show_entry()

    def _cells(self, o: Operation, now: float) -> list[str | Text]:
        colors = {"done": "success", "aborted": "warning", "failed": "error"}
        color = self.app.theme_variables.get(colors.get(o.state, "accent"), "")
        progress = f"{bar(o.fraction, 10)} {o.done:,}/{o.total:,}"
        return [
            str(o.id),
            f"{ago(now - o.created_at)} ago",
            clip(o.title, 22),
            clip(o.target, 28),
            Text(o.state, style=color),
            progress,
            clip(o.summary(), 48),
            clip(o.note or "", 24),
        ]

    def _show_entry(self) -> None:
        o = self.selected
        entry = self.query_one("#ops-entry", Static)
        if o is None:
            entry.update("")
            return
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(o.created_at))
        lines = [
            f"operation {o.id} · {o.title} on {o.target} · by {o.actor}",
            f"{at} · {o.state} · {o.done:,} of {o.total:,} looked at ({o.fraction:.0%})",
            f"result: {o.summary()}",
        ]
        if o.error:
            lines.append(f"error: {o.error}")
        if o.note:
            lines.append(f"note: {o.note}")
        entry.update(Text("\n".join(lines)))

    @on(DataTable.RowHighlighted, "#ops")
    def _highlighted(self) -> None:
        if self.loaded:
            self._show_entry()

    @work(exclusive=True, group="ops-abort")
    async def action_abort(self) -> None:
        o = self.selected
        if o is None:
            self.app.notify("no operation selected", severity="warning")
            return
        if o.finished:
            self.app.notify(f"operation {o.id} is already {o.state}", severity="warning")
            return
        try:
            done = await self.engine.ops.abort(o.id)
        except (LookupError, ValueError) as exc:
            self.app.notify(f"cannot abort: {exc}", severity="warning")
            return
        self.app.notify(f"operation {done.id} {done.state}: {done.summary()}")
        self.load()

    def action_back(self) -> None:
        self.app.pop_screen()
