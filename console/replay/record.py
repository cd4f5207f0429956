"""``taskdeck console --record FILE``: the console, writing down what it shows.

:class:`RecordingConsole` is the ordinary :class:`~console.app.ConsoleApp`; after each
refresh it hands the snapshot the panels were fed and the rows the queue table holds to
a :class:`~console.replay.file.Recorder`, and every batch of events the events panel
receives. When the file reaches its limit, a toast says so once and the console goes
on without recording.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from textual import on

from console.app import ConsoleApp
from console.panels.events import EngineEvents
from console.panels.header import HeaderBar
from console.panels.queue import QueuePanel
from console.panels.task_table import TaskTable
from console.replay.file import Recorder
from console.steering.base import PanelKind
from engine import Engine, EngineSnapshot

UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
         "kib": 1024, "mib": 1024**2, "gib": 1024**3}  # fmt: skip
MIN_LIMIT = 64 * 1024
MAX_LIMIT = 100 * 1000**3


def parse_limit(text: str) -> int:
    """``50MB``, ``512KiB``, ``2GB`` or bytes → bytes; ValueError says what is allowed."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*", text, re.IGNORECASE)
    unit = (match.group(2) or "").lower() if match else ""
    if match is None or unit not in UNITS:
        raise ValueError(f"a size like 50MB, 512KiB or 2GB is allowed; got {text.strip()!r}")
    size = int(float(match.group(1)) * UNITS[unit])
    if not MIN_LIMIT <= size <= MAX_LIMIT:
        raise ValueError(f"must be from 64KiB to 100GB; got {text.strip()}")
    return size


class RecordingConsole(ConsoleApp):
    """The console, recording each refresh and each batch of events to ``recorder``."""

    def __init__(self, engine: Engine, recorder: Recorder, **kwargs: Any) -> None:
        super().__init__(engine, **kwargs)
        self.recorder = recorder
        self._told = False
        self._recorded: object = None  # the last snapshot written (each is written once)
        self._panels: tuple[QueuePanel, TaskTable, HeaderBar] | None = None  # for the unmount

    def on_mount(self) -> None:
        self._panels = (self.queue, self.queue.table, self.dashboard.query_one(HeaderBar))

    def redraw(self, kinds: tuple[PanelKind, ...]) -> None:
        """A redraw after a change (workers, the autoscaler) is recorded like a refresh."""
        super().redraw(kinds)
        self._tick_done()

    def refresh_tick(self) -> None:
        super().refresh_tick()
        self._tick_done()

    def _tick_done(self) -> None:
        shown = self.queue.shown if self.is_running else None
        if shown is None or shown is self._recorded:  # not fed (a full screen is open)
            return
        self._recorded = shown
        self._record(shown)
        if (self.recorder.full or self.recorder.error) and not self._told:
            self._told = True
            why = self.recorder.error or (
                f"{self.recorder.path} reached its limit ({self.recorder.limit:,} bytes)"
            )
            self.notify(f"recording stopped: {why}; the console goes on", severity="warning")

    def _record(self, snap: EngineSnapshot) -> None:
        queue, table, header = self._panels or (
            self.queue,
            self.queue.table,
            self.dashboard.query_one(HeaderBar),
        )
        self.recorder.snapshot(
            snap, queue.state, table.total, *table.held,
            scroll=int(table.scroll_y), cursor=table.cursor, firing=header.firing,
        )  # fmt: skip

    @on(EngineEvents)
    def _record_events(self, message: EngineEvents) -> None:
        self.recorder.events(message.events)

    async def on_unmount(self) -> None:
        """Finish the file (its last lines and the gzip trailer) off the event loop; a
        console that quit before its first refresh records the one it would have shown,
        so that every recording replays."""
        try:
            if self._recorded is None and self._panels is not None:
                self._record(self.engine.snapshot())
        finally:
            await asyncio.to_thread(self.recorder.close)
