"""Done/s and failed/s over time, as a column chart with axes (attached to a cluster:
the sums over its nodes, from their heartbeats); ``h`` switches it to the last hour,
per minute, from the durable history (every node's tasks)."""

from __future__ import annotations

import time
from itertools import groupby
from typing import Any

from rich.text import Text
from textual import work

from console.cluster.state import Cluster
from console.format import column_chart, nice_top, short_num
from console.panels.text_panel import TextPanel
from engine import Engine, EngineNotRunning, EngineSnapshot, StoreError, TrendPoint

AXIS = 6  # width of the y-axis labels
HOUR_EVERY = 20.0  # seconds between reads of the last hour while it shows


class ThroughputPanel(TextPanel):
    TITLE = "Throughput"

    def __init__(self, cluster: Cluster | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cluster = cluster
        self.engine: Engine | None = None  # set while the last hour shows
        self.hour: list[TrendPoint] = []
        self.read_at = 0.0

    def toggle_hour(self, engine: Engine) -> None:
        """The last 30 s (live, per second) ↔ the last hour (history, per minute)."""
        self.engine = None if self.engine is not None else engine
        self.hour, self.read_at, self._last = [], 0.0, None

    @work(exclusive=True, group="throughput-hour")
    async def read_hour(self, engine: Engine) -> None:
        try:
            points = await engine.history.trends(since=3600, step=60)
        except (EngineNotRunning, StoreError, ValueError):
            return
        if self.engine is engine:
            self.hour = points[:-1]  # the minute going on is not written yet

    def title_for(self, snap: EngineSnapshot) -> str:
        if self.engine is not None:
            done = sum(p.successes + p.failures for p in self.hour[-10:]) / 10
            return f"Throughput · last hour · {done:.1f}/min (10 min)"
        if self.cluster is not None:
            done = self.cluster.totals().throughput
            if self.size.width >= 44:
                return f"Throughput · {done:.1f} done/s (all nodes)"
            return f"Throughput · {done:.1f}/s"
        if self.size.width >= 44:
            return f"Throughput · {snap.throughput:.1f} done/s (10 s)"
        return f"Throughput · {snap.throughput:.1f}/s"

    def series(self, snap: EngineSnapshot) -> tuple[list[float], list[float]]:
        """Done/s and failed/s, one value a second, oldest first (or per minute over the
        last hour)."""
        if self.engine is not None:
            if time.monotonic() - self.read_at >= HOUR_EVERY:
                self.read_at = time.monotonic()
                self.read_hour(self.engine)
            return [float(p.successes) for p in self.hour], [float(p.failures) for p in self.hour]
        if self.cluster is not None:
            return list(self.cluster.done), list(self.cluster.failed)
        metrics = snap.metrics
        done = list(metrics.series.get("done", ())) if metrics else []
        failed = list(metrics.series.get("failed", ())) if metrics else []
        return done, failed

    def render_snapshot(self, snap: EngineSnapshot) -> Text:
        done, failed = self.series(snap)
        width = max(10, self.size.width - AXIS - 3)
        height = max(2, self.size.height - 2)
        top = nice_top(max([*done[-width:], *failed[-width:], 1.0]))
        done_rows = column_chart(done, width, height, top)
        failed_rows = column_chart(failed, width, height, top)
        text = Text()
        for i, (d_row, f_row) in enumerate(zip(done_rows, failed_rows, strict=True)):
            label = short_num(top) if i == 0 else ("0" if i == height - 1 else "")
            if i == height // 2 and height > 3:
                label = short_num(top / 2)
            text.append(f"{label:>{AXIS}} ┤", style="dim")
            # one span per run of same-coloured cells (a span per cell repaints slowly)
            cells = [
                (f, "red") if f != " " else (d, "green") for d, f in zip(d_row, f_row, strict=True)
            ]
            for style, run in groupby(cells, key=lambda cell: cell[1]):
                text.append("".join(char for char, _ in run), style=style)
            text.append("\n")
        span = min(width, len(done))
        unit, per = ("m", "/min") if self.engine is not None else ("s", "/s")
        axis = f"-{span}{unit}".ljust(width - 3) + "now" if span >= 8 else "now".rjust(width)
        text.append(" " * AXIS + " └" + axis, style="dim")
        unit = per if width >= 20 else ""
        legend = 15 + 2 * len(unit)
        text.append("\n" + " " * min(AXIS + 2, max(0, self.content_region.width - legend)))
        text.append(f"█ done{unit} ", style="green")
        text.append(f"█ failed{unit}", style="red")
        return text
