"""Steering the engine that runs in this process (the console's default mode)."""

from __future__ import annotations

from typing import Any

from textual.app import App
from textual.widget import Widget

from console.cluster.state import Cluster
from console.panels.workers import WorkersPanel
from console.screens.settings import SettingsScreen
from console.screens.workers import WorkerCountScreen
from console.steering.base import SNAPSHOT_PANELS, EnqueueChoices, HelpGroups, Redraw
from engine import Engine, EngineSnapshot, Finding


class LocalSteering:
    """Steers the engine running in this process: its workers, autoscaler and settings."""

    def __init__(self, app: App[Any], engine: Engine, redraw: Redraw) -> None:
        self.app = app
        self.engine = engine
        self.redraw = redraw
        self.attached = False
        self.cluster: Cluster | None = None
        self.panels = SNAPSHOT_PANELS
        self.dashboard_class = ""
        self.resources_title: str | None = None
        self.help_groups: HelpGroups = []

    def pool_panel(self) -> Widget:
        return WorkersPanel(id="workers", classes="panel")

    def snapshot(self) -> EngineSnapshot:
        return self.engine.snapshot()

    def refresh(self) -> None:
        """Nothing to read: the snapshot has it all."""

    async def change_workers(self, delta: int) -> None:
        current = self.engine.worker_count
        target = current + delta
        limit = self.engine.settings.max_workers
        if not 0 <= target <= limit:
            edge = f"the maximum ({limit}, max_workers)" if delta > 0 else "0"
            self.app.notify(f"workers already at {edge}", severity="warning")
            return
        await self.engine.set_workers(target)
        note = " (autoscaler on: it may change this)" if self.engine.settings.autoscale else ""
        self.app.notify(f"workers {current} → {target}{note}", timeout=2)
        self.redraw(self.panels)

    def ask_workers(self) -> None:
        def chosen(n: int | None) -> None:
            if n is not None:
                delta = n - self.engine.worker_count
                self.app.run_worker(self.change_workers(delta), group="workers")

        count, limit = self.engine.worker_count, self.engine.settings.max_workers
        self.app.push_screen(WorkerCountScreen(count, limit), chosen)

    async def toggle_autoscale(self) -> None:
        on_now = not self.engine.settings.autoscale
        await self.engine.update_settings(autoscale=on_now)
        self.redraw(self.panels)
        s = self.engine.settings
        self.app.notify(
            f"autoscaler {'on' if on_now else 'off'}"
            + (
                f": {s.min_workers}–{s.max_workers} workers, aiming at "
                f"{s.target_utilization:g} % busy"
                if on_now
                else ""
            )
        )

    def settings_screen(self, refresh_hz: float) -> SettingsScreen:
        return SettingsScreen(self.engine, refresh_hz)

    async def enqueue_choices(self) -> EnqueueChoices | None:
        if not self.engine.handlers:
            self.app.notify(
                "no handlers are registered in this engine: nothing to enqueue",
                severity="warning",
            )
            return None
        return EnqueueChoices([], None)

    async def handles(self, finding: Finding) -> bool:
        """The engine applies every suggestion itself."""
        return False
