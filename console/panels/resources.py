"""CPU, memory, event-loop lag and file descriptors, each with a sparkline."""

from __future__ import annotations

from rich.text import Text

from console.format import size, spark
from console.panels.text_panel import TextPanel
from engine import EngineSnapshot


class ResourcesPanel(TextPanel):
    TITLE = "Resources"

    def render_snapshot(self, snap: EngineSnapshot) -> Text:
        r = snap.resources
        if r is None:
            return Text("sampling…", style="dim")
        series = snap.resource_series
        room = max(10, self.content_region.width)
        rows = [
            ("CPU", f"{r.process_cpu:4.0f}%", "process_cpu", f"sys {r.system_cpu:.0f}%"),
            ("MEM", size(r.rss), "rss", f"{r.memory_percent:.0f}% of RAM"),
            ("LAG", f"{r.loop_lag * 1000:.0f}ms", "loop_lag", "event loop"),
            ("FDS", str(r.open_fds), "open_fds", f"{r.threads} threads"),
        ]
        notes = max(len(note) for *_, note in rows)
        show_notes = room >= 13 + 6 + notes + 1
        width = room - 13 - (notes + 1 if show_notes else 0)
        text = Text()
        for i, (label, value, key, note) in enumerate(rows):
            text.append(("\n" if i else "") + f"{label} ", style="bold")
            text.append(f"{value:>8} ")
            text.append(spark(series.get(key, ()), max(1, width)), style="cyan")
            if show_notes:
                text.append(f" {note}", style="dim")
        if r.children:
            text.append(
                f"\n{len(r.children)} worker processes · {size(r.children_rss)}", style="dim"
            )
        return text
