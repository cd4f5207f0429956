"""Periodic tasks: every schedule with its rule, next and last run; pause, run now.

Refreshes every second while open. Times are relative (``in 4m12s``, ``12s ago``);
the line under the table spells out the selected schedule in full.

| Key | Does |
| --- | --- |
| p | pause the selected schedule, or resume it |
| n | run it now (enqueues one task; the next scheduled run stays) |
| enter | open the task of its last run |
| escape | back to the dashboard |
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import DataTable, Static

from console.format import ago, clock
from console.panels.footer import KeysFooter
from console.screens.task_detail import TaskDetailScreen
from console.states import state_text
from engine import Engine, EngineNotRunning, ScheduleInfo, StoreError

#: How to define a schedule, shown while there is none.
HOW_TO = (
    "No schedules yet. Define one in code; it shows here once the engine starts:\n\n"
    "    @engine.periodic(every=300)                    # every 5 min\n"
    "    async def cleanup() -> None: ...\n\n"
    '    @engine.periodic(cron="0 2 * * *", tz="UTC")   # 02:00 every day\n'
    "    def nightly_report() -> str: ...\n\n"
    'or engine.add_schedule("handler.name", every=60, payload={...}) for a registered handler.'
)


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int  # 0: as wide as its longest value (shrunk when the screen is narrow)


COLUMNS = (
    Column("name", "SCHEDULE", 0),
    Column("handler", "HANDLER", 0),
    Column("rule", "RULE", 0),
    Column("next", "NEXT RUN", 11),
    Column("last", "LAST RUN", 11),
    Column("state", "LAST STATE", 10),
    Column("task", "LAST TASK", 9),
)
PADDING = 1  # the table's cell padding, on each side of every column
MIN_NAME = 16
MIN_RULE = 12


def column_widths(width: int, schedules: list[ScheduleInfo]) -> dict[str, int]:
    """Widths for a table ``width`` cells wide. The name, handler and rule take their
    longest value; when that is too wide the name and handler share what the rule
    leaves (MIN_NAME at least each), else the handler column goes (the line under the
    table names it) and the name takes what the rule leaves."""
    want = {
        "name": max([len(s.name) for s in schedules] + [len("SCHEDULE")]),
        "handler": max([len(s.handler) for s in schedules] + [len("HANDLER")]),
        "rule": max([len(s.rule) for s in schedules] + [len("RULE")]),
    }
    fixed = sum(c.width + 2 * PADDING for c in COLUMNS if c.width)
    room = width - fixed - 2 * PADDING * len(want)  # for the name, handler and rule
    if sum(want.values()) > room:
        rule = min(want["rule"], max(MIN_RULE, room - 2 * MIN_NAME))
        names = room - rule
        if names >= 2 * MIN_NAME:
            name = min(want["name"], max(names // 2, names - want["handler"]))
            want = {"name": name, "handler": names - name, "rule": rule}
        else:
            room += 2 * PADDING
            rule = min(want["rule"], max(MIN_RULE, room // 2))
            want = {"name": max(MIN_NAME, room - rule), "rule": rule}
    return {c.key: c.width or want[c.key] for c in COLUMNS if c.width or c.key in want}


def fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def next_text(s: ScheduleInfo, now: float) -> str:
    if s.paused:
        return "paused"
    return f"in {ago(s.next_run - now)}" if s.next_run > now else "due now"


def last_text(s: ScheduleInfo, now: float) -> str:
    return "never" if s.last_run is None else f"{ago(now - s.last_run)} ago"


def describe(s: ScheduleInfo, now: float) -> str:
    """The selected schedule in one or two lines, nothing abbreviated."""
    head = f"{s.name} runs {s.handler} on queue {s.queue}, {s.rule}"
    if s.paused:
        when = "paused (p resumes it)"
    else:
        when = f"next run {clock(s.next_run)} ({next_text(s, now)})"
    if s.last_run is None:
        last = "it has not run yet (n runs it now)"
    else:
        last = f"last run {clock(s.last_run)}: task #{s.last_task_id}, {s.last_state}"
    return f"{head}\n{when} · {last}"


class ScheduleTable(DataTable[str | Text]):
    """The schedules, one row each, keyed by name."""

    BINDINGS = [
        Binding("enter", "select_cursor", "Last run", tooltip="Open the task of its last run")
    ]


class SchedulesScreen(Screen[None]):
    BINDINGS = [
        Binding("p", "toggle_pause", "Pause/resume", tooltip="Pause or resume the schedule"),
        Binding("n", "run_now", "Run now", tooltip="Enqueue one run of the schedule now"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, engine: Engine, now: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.engine = engine
        self.now = now
        self.schedules: list[ScheduleInfo] = []
        self.loaded = False
        self._layout: tuple[tuple[str, ...], tuple[tuple[str, int], ...]] | None = None

    def compose(self) -> ComposeResult:
        yield Static("Schedules", id="schedules-summary", classes="screen-title")
        yield ScheduleTable(id="schedules", classes="panel", cursor_type="row", zebra_stripes=True)
        yield Static(HOW_TO, id="schedules-empty", classes="panel")
        yield Static("", id="schedule-info")
        yield KeysFooter()

    @property
    def table(self) -> ScheduleTable:
        return self.query_one(ScheduleTable)

    @property
    def selected_name(self) -> str | None:
        """The schedule under the table's cursor (as drawn, even before a redraw)."""
        table = self.table
        if table.row_count == 0:
            return None
        return str(table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value)

    @property
    def selected(self) -> ScheduleInfo | None:
        name = self.selected_name
        return next((s for s in self.schedules if s.name == name), None)

    def on_mount(self) -> None:
        self.table.border_title = "Periodic tasks"
        self.query_one("#schedules-empty").border_title = "Periodic tasks"
        self.table.focus()
        self.load()
        self.set_interval(1.0, self.load)

    def on_resize(self, event: Resize) -> None:
        self.show()

    @work(exclusive=True, group="schedules")
    async def load(self) -> None:
        try:
            schedules = await self.engine.schedules()
        except (EngineNotRunning, StoreError):
            return  # the console is closing
        if self.is_attached:
            self.schedules = sorted(schedules, key=lambda s: s.name)
            self.loaded = True
            self.show()

    # -- drawing ----------------------------------------------------------------------
    def show(self) -> None:
        if not self.loaded:
            return
        schedules, now, table = self.schedules, self.now(), self.table
        empty = not schedules
        table.display = not empty
        self.query_one("#schedules-empty").display = empty
        paused = sum(s.paused for s in schedules)
        summary = f"Schedules · {len(schedules)} defined · {paused} paused"
        if empty:
            summary = "Schedules · none defined"
        due = [s for s in schedules if not s.paused]
        if due:
            first = min(due, key=lambda s: s.next_run)
            summary += f" · next: {first.name} {next_text(first, now)}"
        self.query_one("#schedules-summary", Static).update(summary)
        widths = column_widths(self.size.width - 4, schedules)  # border and a scrollbar
        layout = (tuple(s.name for s in schedules), tuple(widths.items()))
        if layout != self._layout:
            self._rebuild(widths)
            self._layout = layout
        else:
            for s in schedules:
                for key, value in self._cells(s, widths, now).items():
                    table.update_cell(s.name, key, value)
        selected = self.selected
        self.query_one("#schedule-info", Static).update(describe(selected, now) if selected else "")

    def _rebuild(self, widths: dict[str, int]) -> None:
        table, now = self.table, self.now()
        keep = self.selected_name
        table.clear(columns=True)
        for column in COLUMNS:
            if column.key in widths:
                table.add_column(column.label, key=column.key, width=widths[column.key])
        for s in self.schedules:
            table.add_row(*self._cells(s, widths, now).values(), key=s.name)
        names = [s.name for s in self.schedules]
        if keep in names:
            table.move_cursor(row=names.index(keep))

    def _cells(self, s: ScheduleInfo, widths: dict[str, int], now: float) -> dict[str, str | Text]:
        cells: dict[str, str | Text] = {
            "name": fit(s.name, widths["name"]),
            "handler": fit(s.handler, widths.get("handler", 0)),
            "rule": fit(s.rule, widths["rule"]),
            "next": state_text(self.table, "paused") if s.paused else next_text(s, now),
            "last": last_text(s, now),
            "state": state_text(self.table, s.last_state) if s.last_state else "–",
            "task": f"#{s.last_task_id}" if s.last_task_id else "–",
        }
        return {key: value for key, value in cells.items() if key in widths}

    @on(DataTable.RowHighlighted, "#schedules")
    def _highlighted(self) -> None:
        selected = self.selected
        if selected is not None:
            self.query_one("#schedule-info", Static).update(describe(selected, self.now()))

    # -- actions ----------------------------------------------------------------------
    def _target(self, verb: str) -> ScheduleInfo | None:
        """The selected schedule, or None after a toast that says why there is none."""
        if not self.loaded:
            self.app.notify(f"cannot {verb}: the schedules are still loading", timeout=2)
            return None
        if not self.schedules:
            self.app.notify(
                f"cannot {verb}: there are no schedules; define one with "
                "@engine.periodic(every=300)",
                severity="warning",
            )
            return None
        selected = self.selected
        if selected is None:
            self.app.notify(f"cannot {verb}: no schedule is selected", severity="warning")
        return selected

    @work(exclusive=True, group="schedule-action")
    async def action_toggle_pause(self) -> None:
        s = self._target("pause or resume")
        if s is None:
            return
        try:
            if s.paused:
                changed = await self.engine.resume_schedule(s.name)
                message = f"schedule {s.name} resumed: it runs {s.rule} again"
            else:
                changed = await self.engine.pause_schedule(s.name)
                message = f"schedule {s.name} paused: no runs until you resume it (p)"
        except (LookupError, ValueError, EngineNotRunning, StoreError) as exc:
            self.app.notify(f"cannot pause or resume {s.name}: {exc}", severity="warning")
            return
        if changed:
            self.app.notify(message)
        else:
            state = "paused" if s.paused else "running"
            self.app.notify(f"schedule {s.name} was already {state}", severity="warning")
        self.load()

    @work(exclusive=True, group="schedule-action")
    async def action_run_now(self) -> None:
        s = self._target("run a schedule")
        if s is None:
            return
        try:
            task_id = await self.engine.trigger_schedule(s.name)
        except (LookupError, ValueError, EngineNotRunning, StoreError) as exc:
            self.app.notify(f"cannot run {s.name}: {exc}", severity="warning")
            return
        keeps = "its next run stays as scheduled" if not s.paused else "it stays paused"
        self.app.notify(f"schedule {s.name}: task #{task_id} enqueued now ({keeps})")
        self.load()

    @on(DataTable.RowSelected, "#schedules")
    def _selected(self) -> None:
        self.open_last_run()

    def open_last_run(self) -> None:
        s = self._target("open the last run")
        if s is None:
            return
        if s.last_task_id is None:
            self.app.notify(
                f"schedule {s.name} has not run yet: no task to open (n runs it now)",
                severity="warning",
            )
            return
        if s.last_state == "expired":
            self.app.notify(
                f"the last run of {s.name} (task #{s.last_task_id}) has expired and was purged",
                severity="warning",
            )
            return
        self.app.push_screen(TaskDetailScreen(self.engine, s.last_task_id))

    def action_back(self) -> None:
        self.app.pop_screen()
