"""Alerts: firing first, then pending, then the recently resolved; the selected
alert's history (transitions and deliveries) below; acknowledge and silence.

Refreshes every second while open.

| Key | Does |
| --- | --- |
| a | acknowledge the selected alert (no more repeats; it stays listed) |
| s | silence the selected alert's rule for a while, with a note |
| escape | back to the dashboard |
"""

from __future__ import annotations

import getpass
import socket
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
from console.screens.alert_silence import SilenceScreen
from engine import Alert, AlertEvent, Engine, EngineNotRunning, Silence, StoreError

HOW_TO = (
    "No alerts firing, pending or resolved in the last day.\n\n"
    "Rules and channels come from the [alerts] table of taskdeck.toml, e.g.\n\n"
    '    [alerts.rules]\n    images = "queue:images backlog > 1000 for 2m severity critical"\n\n'
    "(see the README's On call section), or engine.alerts.configure({...}) in code."
)
COLUMNS = ("ID", "STATE", "SEVERITY", "RULE", "KEY", "SINCE", "NOTIFIED", "SUMMARY")
STYLES = {"firing": "bold $error", "pending": "$warning", "critical": "bold $error"}


def actor() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()} (console)"


class AlertTable(DataTable[str | Text]):
    """One alert a row, keyed by its id."""


class AlertsScreen(Screen[None]):
    BINDINGS = [
        Binding("a", "ack", "Acknowledge", tooltip="Stop the selected alert's repeats"),
        Binding("s", "silence", "Silence…", tooltip="Notify nobody about its rule for a while"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, engine: Engine, now: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.engine = engine
        self.now = now
        self.alerts: list[Alert] = []
        self.silenced: list[Silence] = []
        self.history: list[AlertEvent] = []
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Static("Alerts", id="alerts-summary", classes="screen-title")
        yield AlertTable(id="alerts", classes="panel", cursor_type="row", zebra_stripes=True)
        yield Static(HOW_TO, id="alerts-empty", classes="panel")
        yield Static("", id="alert-history", classes="panel")
        yield KeysFooter()

    @property
    def table(self) -> AlertTable:
        return self.query_one(AlertTable)

    @property
    def selected(self) -> Alert | None:
        table = self.table
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        return next((a for a in self.alerts if str(a.id) == key), None)

    def on_mount(self) -> None:
        self.table.border_title = "Alerts"
        self.query_one("#alerts-empty").border_title = "Alerts"
        self.query_one("#alert-history").border_title = "History"
        for label in COLUMNS:
            self.table.add_column(label, key=label.lower())
        self.table.focus()
        self.load()
        self.set_interval(1.0, self.load)

    @work(exclusive=True, group="alerts")
    async def load(self) -> None:
        chosen = self.selected if self.is_attached else None
        try:
            alerts = await self.engine.alerts.recent()
            silenced = await self.engine.alerts.silences()
            history = await self.engine.alerts.history(chosen.id if chosen else 0, 30)
        except (EngineNotRunning, StoreError):
            return  # the console is closing
        if self.is_attached and self.is_current:
            self.alerts, self.silenced, self.history = alerts, silenced, history
            self.loaded = True
            self.show()

    # -- drawing ----------------------------------------------------------------------
    def show(self) -> None:
        now, table = self.now(), self.table
        firing = sum(a.state == "firing" for a in self.alerts)
        pending = sum(a.state == "pending" for a in self.alerts)
        summary = f"Alerts · {firing} firing · {pending} pending"
        if self.silenced:
            quiet = ", ".join(f"{s.rule} ({ago(s.until - now)} left)" for s in self.silenced)
            summary += f" · silenced: {quiet}"
        self.query_one("#alerts-summary", Static).update(summary)
        empty = not self.alerts
        table.display = not empty
        self.query_one("#alerts-empty").display = empty
        keep = self.table.cursor_row
        table.clear()
        for a in self.alerts:
            table.add_row(*self._cells(a, now), key=str(a.id))
        if table.row_count:
            table.move_cursor(row=min(keep, table.row_count - 1))
        self._show_history(now)

    def _cells(self, a: Alert, now: float) -> list[str | Text]:
        state = a.state + (" ✓ack" if a.acked_at is not None else "")
        notified = f"{ago(now - a.last_notified)} ago" if a.last_notified else "never"
        return [
            str(a.id),
            self._styled(state, a.state),
            self._styled(a.severity, a.severity),
            a.rule,
            a.key,
            f"{ago(now - a.since)} ago",
            notified,
            a.summary,
        ]

    def _styled(self, text: str, kind: str) -> str | Text:
        style = STYLES.get(kind)
        if style is None:
            return text
        variables = self.app.theme_variables
        color = variables.get(style.split("$")[1], "")
        return Text(text, style=("bold " if "bold" in style else "") + color)

    def _show_history(self, now: float) -> None:
        chosen = self.selected
        lines = []
        for e in self.history:
            if chosen is not None and e.alert_id != chosen.id:
                continue
            to = f" → {e.channel}" if e.channel else ""
            lines.append(f"{ago(now - e.at):>6} ago  {e.kind}{to}  {e.detail}")
        head = f"alert {chosen.id}: {chosen.rule} {chosen.key}" if chosen else "all alerts"
        body = "\n".join(lines[:12]) if lines else "no history yet"
        self.query_one("#alert-history", Static).update(f"{head}\n{body}")

    @on(DataTable.RowHighlighted, "#alerts")
    def _highlighted(self) -> None:
        if self.loaded:
            self.load()

    # -- actions ----------------------------------------------------------------------
    def _target(self, verb: str) -> Alert | None:
        chosen = self.selected
        if chosen is None:
            self.app.notify(f"cannot {verb}: no alert is selected", severity="warning")
        return chosen

    @work(exclusive=True, group="alert-action")
    async def action_ack(self) -> None:
        chosen = self._target("acknowledge")
        if chosen is None:
            return
        if chosen.acked_at is not None:
            self.app.notify(f"alert {chosen.id} is already acknowledged by {chosen.acked_by}")
            return
        try:
            await self.engine.alerts.ack(chosen.id, by=actor())
        except (LookupError, ValueError, EngineNotRunning, StoreError) as exc:
            self.app.notify(f"cannot acknowledge alert {chosen.id}: {exc}", severity="warning")
            return
        self.app.notify(f"alert {chosen.id} ({chosen.rule}) acknowledged: no more repeats")
        self.load()

    def action_silence(self) -> None:
        chosen = self._target("silence")
        if chosen is None:
            return
        self.app.push_screen(SilenceScreen(self.engine, chosen.rule, actor()), self._silenced)

    def _silenced(self, silence: Silence | None) -> None:
        if silence is not None:
            left = ago(silence.until - self.now())
            self.app.notify(f"rule {silence.rule} silenced for {left}: {silence.note}")
            self.load()

    def action_back(self) -> None:
        self.app.pop_screen()
