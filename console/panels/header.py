"""The top line: node, store, workers busy/total, rates, encryption, autoscale, pauses
(everything paused first, in red, until resumed).

Attached to a cluster (``cluster`` given) it says so, with the number of nodes, and
the workers, rates and autoscaler are the sums over the alive nodes. A read-only
console (``console --read-only``) says READ-ONLY first of all."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from rich.text import Text
from textual import work

from console.cluster.state import Cluster
from console.format import busy_of, rate
from console.panels.text_panel import TextPanel
from engine import EngineSnapshot


class HeaderBar(TextPanel):
    DEFAULT_CSS = """
    HeaderBar { height: 1; padding: 0 1; background: $panel; color: $text; dock: top; }
    """

    def __init__(
        self,
        cluster: Cluster | None = None,
        firing: Callable[[], Awaitable[int]] | None = None,
        *,
        read_only: bool = False,
        **kwargs: Any,
    ) -> None:
        """``firing``: reads how many alerts are firing (every 2 s, shown when any);
        ``read_only``: the console changes nothing (shown first)."""
        super().__init__(**kwargs)
        self.cluster = cluster
        self.read_only = read_only
        self._read_firing = firing
        self.firing = 0
        self.marked = 0  #: tasks marked in the queue table (shown when any)

    def on_mount(self) -> None:
        super().on_mount()
        if self._read_firing is not None:
            self.set_interval(2.0, self.count_firing)
            self.count_firing()

    @work(exclusive=True, group="firing")
    async def count_firing(self) -> None:
        if self._read_firing is None:
            return
        try:
            self.firing = await self._read_firing()
        except Exception:  # the store is closing or gone: keep the last count
            return

    def render_snapshot(self, snap: EngineSnapshot) -> Text:
        text = Text()
        text.append("taskdeck ", style="bold")
        if self.read_only:  # first: whatever else is cut off, this is not
            text.append(" READ-ONLY ", style="bold black on yellow")
            text.append(" ")
        if snap.all_paused is not None:  # first, so that no width cuts it off
            why = f": {snap.all_paused.note}" if snap.all_paused.note else ""
            text.append(f" ■ ALL PAUSED by {snap.all_paused.by}{why} ", style="bold white on red")
            text.append(" ")
        if self.firing:  # first, so it shows however narrow the screen
            error = self.app.theme_variables.get("error", "")
            plural = "s" if self.firing > 1 else ""
            text.append(f"▲ {self.firing} alert{plural} firing (A)", style=f"bold {error}")
            text.append(" · ")
        if self.marked:  # seen whatever panel the compact layout shows
            text.append(f"● {self.marked:,} marked", style="bold")
            text.append(" · ")
        store = snap.store if self.size.width >= 150 else snap.store.rsplit("/", 1)[-1]
        if self.cluster is not None:
            return self._cluster_line(text, snap, self.cluster, store)
        node = f"{snap.node} · " if self.size.width >= 120 else ""
        text.append(f"{node}{store} · ")
        text.append(f"workers {busy_of(snap.busy_workers, snap.worker_count)}", style="bold")
        text.append(
            f" · {rate(snap.throughput)} done/s · {snap.failures_per_minute:.0f} failed/min"
        )
        if snap.encrypted or self.size.width >= 100:
            text.append(" · 🔒 encrypted" if snap.encrypted else " · plain")
        text.append(" · autoscale " + ("on" if snap.settings.autoscale else "off"))
        self._tail(text, snap)
        return text

    def _cluster_line(self, text: Text, snap: EngineSnapshot, cluster: Cluster, store: str) -> Text:
        t = cluster.totals()
        text.append(f"attached · {cluster.describe()}", style="bold")
        if self.size.width >= 120:
            text.append(f" · {store}")
        text.append(" · ")
        text.append(f"workers {busy_of(t.busy, t.workers)}", style="bold")
        text.append(f" · {rate(t.throughput)} done/s · {t.failures_per_minute:.0f} failed/min")
        if self.size.width >= 120:
            text.append(" · 🔒 encrypted" if snap.encrypted else " · plain")
        if not t.autoscaling:
            scale = "off"
        elif t.autoscaling == t.alive:
            scale = "on"
        else:
            scale = f"on {t.autoscaling}/{t.alive}"
        text.append(f" · autoscale {scale}")
        self._tail(text, snap)
        return text

    @staticmethod
    def _tail(text: Text, snap: EngineSnapshot) -> None:
        if snap.paused_queues:
            text.append(" · paused: " + ", ".join(sorted(snap.paused_queues)), style="bold")
        if not snap.running:
            text.append(" · stopped", style="bold")
