"""Done/s and failed/s over time, as a column chart with axes (attached to a cluster:
the sums over its nodes, from their heartbeats)."""

from __future__ import annotations

from itertools import groupby
from typing import Any

from rich.text import Text

from console.cluster.state import Cluster
from console.format import column_chart, nice_top, short_num
from console.panels.text_panel import TextPanel
from engine import EngineSnapshot

AXIS = 6  # width of the y-axis labels


class ThroughputPanel(TextPanel):
    TITLE = "Throughput"

    def __init__(self, cluster: Cluster | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cluster = cluster

    def title_for(self, snap: EngineSnapshot) -> str:
        if self.cluster is not None:
            done = self.cluster.totals().throughput
            if self.size.width >= 44:
                return f"Throughput · {done:.1f} done/s (all nodes)"
            return f"Throughput · {done:.1f}/s"
        if self.size.width >= 44:
            return f"Throughput · {snap.throughput:.1f} done/s (10 s)"
        return f"Throughput · {snap.throughput:.1f}/s"

    def series(self, snap: EngineSnapshot) -> tuple[list[float], list[float]]:
        """Done/s and failed/s, one value a second, oldest first."""
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
        axis = f"-{span}s".ljust(width - 3) + "now" if span >= 8 else "now".rjust(width)
        text.append(" " * AXIS + " └" + axis, style="dim")
        unit = "/s" if width >= 20 else ""
        legend = 15 + 2 * len(unit)
        text.append("\n" + " " * min(AXIS + 2, max(0, self.content_region.width - legend)))
        text.append(f"█ done{unit} ", style="green")
        text.append(f"█ failed{unit}", style="red")
        return text
