"""The audit trail: who did what, to what, when, how it ended and why, newest first
(``taskdeck audit`` in the console). The selected entry in full below.

Refreshes every two seconds while open.

| Key | Does |
| --- | --- |
| m | only my actions (this OS user) / everyone's |
| x | only refused actions / all |
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

from console.format import ago
from console.panels.footer import KeysFooter
from engine import AuditEntry, Engine, EngineNotRunning, StoreError

COLUMNS = ("WHEN", "WHO", "VIA", "ACTION", "TARGET", "OUTCOME", "NOTE")
SHOWN = 500  # entries read for the table
HOW_TO = (
    "No operator actions recorded yet.\n\n"
    "Every change made from the console, the CLI or the API — cancel, retry, pause, "
    "workers, settings, schedules, alerts, node commands — is recorded here with who "
    "made it and the note given (taskdeck cancel 42 --note 'why')."
)


def clip(text: str | Text, width: int) -> str | Text:
    """At most ``width`` cells (the selected entry is shown in full below)."""
    if len(text) <= width:
        return text
    if isinstance(text, Text):
        text = text.copy()
        text.truncate(width, overflow="ellipsis")
        return text
    return text[: width - 1] + "…"


class AuditTable(DataTable[str | Text]):
    """One audit entry a row, keyed by its id."""


class AuditScreen(Screen[None]):
    BINDINGS = [
        Binding("m", "mine", "Mine/all", tooltip="Only this OS user's actions, or everyone's"),
        Binding("x", "refused", "Refused/all", tooltip="Only refused actions, or all"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, engine: Engine, now: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.engine = engine
        self.now = now
        self.entries: list[AuditEntry] = []
        self.only_mine = False
        self.only_refused = False
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Static("Audit trail", id="audit-summary", classes="screen-title")
        yield AuditTable(id="audit", classes="panel", cursor_type="row", zebra_stripes=True)
        yield Static(HOW_TO, id="audit-empty", classes="panel")
        yield Static("", id="audit-entry", classes="panel")
        yield KeysFooter()

    @property
    def table(self) -> AuditTable:
        return self.query_one(AuditTable)

    @property
    def selected(self) -> AuditEntry | None:
        table = self.table
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        return next((e for e in self.entries if str(e.id) == key), None)

    def on_mount(self) -> None:
        self.table.border_title = "Audit trail"
        self.query_one("#audit-empty").border_title = "Audit trail"
        self.query_one("#audit-entry").border_title = "Entry"
        for label in COLUMNS:
            self.table.add_column(label, key=label.lower())
        self.table.focus()
        self.load()
        self.set_interval(2.0, self.load)

    @work(exclusive=True, group="audit")
    async def load(self) -> None:
        actor = self.engine.audit.actor.user if self.only_mine else None
        try:
            entries = await self.engine.audit.entries(actor=actor, limit=SHOWN)
        except (EngineNotRunning, StoreError):
            return  # the console is closing
        if self.only_refused:
            entries = [e for e in entries if not e.ok]
        if self.is_attached and self.is_current:
            self.entries, self.loaded = entries, True
            self.show()

    def show(self) -> None:
        now, table = self.now(), self.table
        scope = [
            "mine" if self.only_mine else "everyone's",
            "refused only" if self.only_refused else "",
        ]
        refused = sum(not e.ok for e in self.entries)
        summary = f"Audit trail · {len(self.entries)} entries ({', '.join(filter(None, scope))})"
        self.query_one("#audit-summary", Static).update(summary + f" · {refused} refused")
        empty = not self.entries
        table.display = not empty
        self.query_one("#audit-empty").display = empty
        keep = table.cursor_row
        table.clear()
        for e in self.entries:
            table.add_row(*self._cells(e, now), key=str(e.id))
        if table.row_count:
            table.move_cursor(row=min(keep, table.row_count - 1))
        self._show_entry()

    def _cells(self, e: AuditEntry, now: float) -> list[str | Text]:
        outcome: str | Text = e.outcome
        if not e.ok:
            color = self.app.theme_variables.get("error", "")
            outcome = Text(f"refused: {e.outcome}", style=f"bold {color}")
        return [
            f"{ago(now - e.at)} ago",
            e.who,
            e.interface,
            e.action,
            clip(e.target, 40),
            clip(outcome, 44),
            clip(e.note or "", 40),
        ]

    def _show_entry(self) -> None:
        e = self.selected
        if e is None:
            self.query_one("#audit-entry", Static).update("")
            return
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.at))
        lines = [
            f"{at} · {e.who} · {e.interface}, pid {e.pid}",
            f"{e.action} {e.target}",
            ("done: " if e.ok else "refused: ") + e.outcome,
        ]
        if e.note:
            lines.append(f"note: {e.note}")
        self.query_one("#audit-entry", Static).update(Text("\n".join(lines)))

    @on(DataTable.RowHighlighted, "#audit")
    def _highlighted(self) -> None:
        if self.loaded:
            self._show_entry()

    def action_mine(self) -> None:
        self.only_mine = not self.only_mine
        self.app.notify("audit: only your actions" if self.only_mine else "audit: everyone's")
        self.load()

    def action_refused(self) -> None:
        self.only_refused = not self.only_refused
        self.app.notify("audit: refused actions only" if self.only_refused else "audit: all")
        self.load()

    def action_back(self) -> None:
        self.app.pop_screen()
