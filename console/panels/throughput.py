"""Done/s and failed/s over time, as a column chart with axes."""

from __future__ import annotations

from rich.text import Text

from console.format import column_chart, nice_top, short_num
from console.panels.text_panel import TextPanel
from engine import EngineSnapshot

AXIS = 6  # width of the y-axis labels


class ThroughputPanel(TextPanel):
    TITLE = "Throughput"

    def title_for(self, snap: EngineSnapshot) -> str:
        return f"Throughput · {snap.throughput:.1f} done/s (10 s)"

    def render_snapshot(self, snap: EngineSnapshot) -> Text:
        metrics = snap.metrics
        done = list(metrics.series.get("done", ())) if metrics else []
        failed = list(metrics.series.get("failed", ())) if metrics else []
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
            for d, f in zip(d_row, f_row, strict=True):
                if f != " ":
                    text.append(f, style="red")
                else:
                    text.append(d, style="green")
            text.append("\n")
        span = min(width, len(done))
        axis = f"-{span}s".ljust(width - 3) + "now" if span >= 8 else "now".rjust(width)
        text.append(" " * AXIS + " └" + axis, style="dim")
        text.append("\n" + " " * (AXIS + 2))
        text.append("█ done/s ", style="green")
        text.append("█ failed/s", style="red")
        return text
