"""The console's history keys: ``T`` opens the Trends screen, ``h`` switches the
dashboard's throughput chart between the last 30 s and the last hour."""

from __future__ import annotations

from collections.abc import Callable

from textual.app import App

from console.panels.throughput import ThroughputPanel
from console.screens.trends import TrendsScreen
from engine import Engine


class HistoryKeys(App[int]):
    """What ``T`` and ``h`` do (the app binds them; ``h`` only on the dashboard)."""

    engine: Engine
    now: Callable[[], float]

    def action_trends(self) -> None:
        self.push_screen(TrendsScreen(self.engine, self.now))

    def action_throughput_hour(self) -> None:  # the next tick repaints it
        self.query_one(ThroughputPanel).toggle_hour(self.engine)
