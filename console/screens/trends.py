"""Trends: the durable metrics history as charts (throughput, success rate, wait p95,
run p95, backlog) over the last hour, day, week or month, for everything or one
handler or queue (``taskdeck trends`` in the console).

Refreshes every 5 s (the last hour) or 30 s (longer spans) while open; it only reads.

| Key | Does |
| --- | --- |
| 1 2 3 4 | the last hour (per minute), 24 hours (per hour), 7 days (per hour), 30 days (per day) |
| h / H | the next / previous handler (all handlers first) |
| u / U | the next / previous queue (all queues first) |
| escape | back to the dashboard |
"""

from __future__ import annotations

import time
from collections.abc import Callable

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static

from console.panels.footer import KeysFooter
from console.panels.trend_charts import TrendCharts
from engine import Engine, EngineNotRunning, StoreError, TrendPoint

#: (key label, span, seconds back, step)
SPANS = (("1 h", "1h", 3600, 60), ("24 h", "24h", 86400, 3600),
         ("7 d", "7d", 604800, 3600), ("30 d", "30d", 2_592_000, 86400))  # fmt: skip
HOW_TO = (
    "No history yet: each engine writes one row a minute per handler and queue once a "
    "minute with finished tasks has ended (history_minutes, history_hours, history_days "
    "say how long each resolution is kept)."
)


class TrendsScreen(Screen[None]):
    BINDINGS = [
        Binding("1", "span(0)", "1 h", tooltip="The last hour, per minute"),
        Binding("2", "span(1)", "24 h", tooltip="The last 24 hours, per hour"),
        Binding("3", "span(2)", "7 d", tooltip="The last 7 days, per hour"),
        Binding("4", "span(3)", "30 d", tooltip="The last 30 days, per day"),
        Binding("h", "handler(1)", "Handler", tooltip="The next handler (all handlers first)"),
        Binding("H", "handler(-1)", "Handler back", show=False, tooltip="The previous handler"),
        Binding("u", "queue(1)", "Queue", tooltip="The next queue (all queues first)"),
        Binding("U", "queue(-1)", "Queue back", show=False, tooltip="The previous queue"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, engine: Engine, now: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.engine, self.now = engine, now
        self.span = 1
        self.handlers: list[str] = []
        self.queues: list[str] = []
        self.handler: str | None = None
        self.queue: str | None = None
        self.points: list[TrendPoint] = []
        self.loaded = False
        self.ticks = 0

    def compose(self) -> ComposeResult:
        yield Static("Trends", id="trends-summary", classes="screen-title")
        yield TrendCharts(id="trends", classes="panel")
        yield KeysFooter()

    @property
    def charts(self) -> TrendCharts:
        return self.query_one(TrendCharts)

    def on_mount(self) -> None:
        self.charts.border_title = "Trends"
        self.load()
        self.set_interval(5.0, self.tick)

    def tick(self) -> None:
        """Every 5 s for the last hour; a longer span (hour and day points, read from
        thousands of rows) every 30 s."""
        self.ticks += 1
        if self.span == 0 or self.ticks % 6 == 0:
            self.load()

    @work(exclusive=True, group="trends")
    async def load(self) -> None:
        _, _, seconds, step = SPANS[self.span]
        history = self.engine.history
        try:
            handlers, queues = await history.names(seconds)
            points = await history.trends(self.handler, self.queue, seconds, step)
        except (EngineNotRunning, StoreError):
            return  # the console is closing
        if self.is_attached and self.is_current:
            self.handlers, self.queues = handlers, [q for q in queues if q]
            self.points, self.loaded = points, True
            self.show()

    def heading(self) -> str:
        label, _, _, step = SPANS[self.span]
        per = {60: "minute", 3600: "hour", 86400: "day"}[step]
        runs = sum(p.runs for p in self.points)
        return (
            f"Trends · last {label} per {per} · {self.handler or 'all handlers'} · "
            f"{self.queue or 'all queues'} · {runs:,} runs"
        )

    def show(self) -> None:
        if not self.is_mounted:
            return
        self.query_one("#trends-summary", Static).update(self.heading())
        empty = self.loaded and not any(p.runs or p.backlog for p in self.points)
        self.charts.show(self.points, SPANS[self.span][1], HOW_TO if empty else "")

    def _cycle(self, current: str | None, names: list[str], delta: int) -> str | None:
        choices: list[str | None] = [None, *names]
        at = choices.index(current) if current in choices else 0
        return choices[(at + delta) % len(choices)]

    def action_span(self, index: int) -> None:
        self.span = index
        self.load()

    def action_handler(self, delta: int) -> None:
        self.handler = self._cycle(self.handler, self.handlers, delta)
        self.load()

    def action_queue(self, delta: int) -> None:
        self.queue = self._cycle(self.queue, self.queues, delta)
        self.load()

    def action_back(self) -> None:
        self.app.pop_screen()
