"""The top line: node, store, workers busy/total, rates, encryption, autoscale, pauses."""

from __future__ import annotations

from rich.text import Text

from console.format import rate
from console.panels.text_panel import TextPanel
from engine import EngineSnapshot


class HeaderBar(TextPanel):
    DEFAULT_CSS = """
    HeaderBar { height: 1; padding: 0 1; background: $panel; color: $text; dock: top; }
    """

    def render_snapshot(self, snap: EngineSnapshot) -> Text:
        text = Text()
        text.append("taskdeck ", style="bold")
        store = snap.store if self.size.width >= 150 else snap.store.rsplit("/", 1)[-1]
        node = f"{snap.node} · " if self.size.width >= 120 else ""
        text.append(f"{node}{store} · ")
        text.append(f"workers {snap.busy_workers}/{snap.worker_count}", style="bold")
        text.append(
            f" · {rate(snap.throughput)} done/s · {snap.failures_per_minute:.0f} failed/min"
        )
        text.append(" · 🔒 encrypted" if snap.encrypted else " · plain")
        text.append(" · autoscale " + ("on" if snap.settings.autoscale else "off"))
        if snap.paused_queues:
            text.append(" · paused: " + ", ".join(sorted(snap.paused_queues)), style="bold")
        if not snap.running:
            text.append(" · stopped", style="bold")
        return text
