"""Failure groups: failed tasks grouped by handler and error fingerprint (the
exception type and its message with numbers, ids and quoted values stripped), the
most tasks first, with first and last seen; the selected group's sample task and
message in full below. ``engine.diagnose.failures``; refreshes every five seconds.

| Key | Does |
| --- | --- |
| r | retry the group's tasks, after asking |
| d / P | purge the group's tasks, after asking |
| enter | show the tasks: the Failed screen filtered by the group's handler and message |
| escape | back to the dashboard |
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.screen import Screen
from textual.widgets import DataTable, Static

from console.format import ago, num
from console.panels.footer import KeysFooter
from console.panels.queue import TaskQuery
from console.screens.audit import clip
from console.screens.confirm import ConfirmScreen
from console.screens.failed import FailedScreen
from engine import Engine, EngineNotRunning, FailureGroup, FailureGroups, StoreError

COLUMNS = ("COUNT", "HANDLER", "ERROR", "LAST SEEN", "FIRST SEEN")
GROUPS_SHOWN = 200
NONE_YET = "No failed tasks. Failed tasks appear here grouped by handler and error."


def group_query(group: FailureGroup, encrypted: bool) -> str:
    """A query for the group's tasks: its handler and the longest fixed part of its
    message (``handler=upload error~"HEIC is not supported"``); the handler alone on
    an encrypted store, which refuses to search errors."""
    text = f"handler={group.handler}"
    parts = re.split(r"<(?:n|id|hex|uuid)>|'…'", group.message)
    words = max((p.strip(" :,;.()[]") for p in parts), key=len, default="")
    if not encrypted and len(words) >= 4:
        escaped = words.replace("\\", "\\\\").replace('"', '\\"')
        text += f' error~"{escaped}"'
    return text


def group_key(group: FailureGroup) -> str:
    return f"{group.handler}\x00{group.fingerprint}"


class FailureTable(DataTable[str | Text]):
    """One failure group a row."""


class FailuresScreen(Screen[None]):
    BINDINGS = [
        Binding("r", "retry_group", "Retry group", tooltip="Queue the group's tasks again"),
        Binding("d,P", "purge_group", "Purge group", tooltip="Delete the group's tasks"),
        Binding("enter", "show_tasks", "Show tasks", tooltip="The group's handler, failed"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, engine: Engine, now: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.engine = engine
        self.now = now
        self.groups = FailureGroups()
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Static("Failure groups", id="failures-summary", classes="screen-title")
        yield FailureTable(id="failures", classes="panel", cursor_type="row", zebra_stripes=True)
        yield Static(NONE_YET, id="failures-empty", classes="panel")
        yield Static("", id="failures-sample", classes="panel")
        yield KeysFooter()

    @property
    def table(self) -> FailureTable:
        return self.query_one(FailureTable)

    @property
    def selected(self) -> FailureGroup | None:
        table = self.table
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        return next((g for g in self.groups if group_key(g) == key), None)

    def on_mount(self) -> None:
        self.table.border_title = "Failed tasks by handler and error"
        self.query_one("#failures-empty").border_title = "Failure groups"
        self.query_one("#failures-sample").border_title = "Sample"
        for label in COLUMNS:
            self.table.add_column(label, key=label.lower())
        self.table.focus()
        self.load()
        self.set_interval(5.0, self.load)

    @work(exclusive=True, group="failures")
    async def load(self) -> None:
        try:
            groups = await self.engine.diagnose.failures(limit=GROUPS_SHOWN)
        except (EngineNotRunning, StoreError):
            return  # the console is closing
        if self.is_attached:
            self.groups, self.loaded = groups, True
            self.show()

    def show(self) -> None:
        now, table, groups = self.now(), self.table, self.groups
        total = sum(g.count for g in groups)
        more = "" if groups.complete else f" (the newest {num(groups.scanned)} read)"
        self.query_one("#failures-summary", Static).update(
            f"Failure groups · {num(total)} failed task{'s' if total != 1 else ''} in "
            f"{len(groups)} group{'s' if len(groups) != 1 else ''}{more}"
        )
        empty = not groups
        table.display = not empty
        self.query_one("#failures-empty").display = empty
        keep = table.cursor_row
        table.clear()
        room = max(30, self.app.size.width - 70)  # the error takes what the rest leave
        for g in groups:
            table.add_row(
                num(g.count),
                clip(g.handler, 28),
                clip(g.fingerprint, room),
                f"{ago(now - g.last_seen)} ago",
                f"{ago(now - g.first_seen)} ago",
                key=group_key(g),
            )
        if table.row_count:
            table.move_cursor(row=min(keep, table.row_count - 1))
        self._show_sample()

    def _show_sample(self) -> None:
        g = self.selected
        text = "" if g is None else f"task #{g.sample_id} (the newest): {g.sample_message}"
        self.query_one("#failures-sample", Static).update(Text(text))

    @on(DataTable.RowHighlighted, "#failures")
    def _highlighted(self) -> None:
        if self.loaded:
            self._show_sample()

    @on(DataTable.RowSelected, "#failures")
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_show_tasks()

    def _need_group(self, verb: str) -> FailureGroup | None:
        group = self.selected
        if group is None:
            self.app.notify(f"no failure group to {verb}", severity="warning", timeout=2)
        return group

    def action_retry_group(self) -> None:
        group = self._need_group("retry")
        if group is None:
            return
        ask = ConfirmScreen(
            f"Retry {num(group.count)} {group.handler} tasks?",
            f"{group.fingerprint}\nThey go back to the queue (those still failed).",
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self._act("retry", group, ask.note)

        self.app.push_screen(ask, answered)

    def action_purge_group(self) -> None:
        group = self._need_group("purge")
        if group is None:
            return
        ask = ConfirmScreen(
            f"Purge {num(group.count)} {group.handler} tasks?",
            f"{group.fingerprint}\nThey are deleted for good.",
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self._act("purge", group, ask.note)

        self.app.push_screen(ask, answered)

    @work(exclusive=True, group="failures-action")
    async def _act(self, verb: str, group: FailureGroup, note: str | None) -> None:
        try:
            with self.engine.audit.note(note):  # recorded with the note from the dialog
                if verb == "retry":
                    n = await self.engine.diagnose.retry_group(group)
                    self.app.notify(f"{num(n)} failed tasks queued again")
                else:
                    n = await self.engine.diagnose.purge_group(group)
                    self.app.notify(f"{num(n)} failed tasks purged")
        except (ValueError, LookupError, StoreError) as exc:
            self.app.notify(f"{verb} failed: {exc}", severity="error")
        self.load()

    def action_show_tasks(self) -> None:
        group = self._need_group("show")
        if group is not None:
            query = TaskQuery(group_query(group, self.engine.encrypted))
            self.app.push_screen(FailedScreen(self.engine, query, select=group.sample_id))

    def action_back(self) -> None:
        self.app.pop_screen()
