"""The tail of engine events: state changes, operator actions, autoscaler decisions."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.widgets import RichLog

from engine import EngineSnapshot, Event, EventKind

STYLE = {
    EventKind.FAILED: "red",
    EventKind.RESCUED: "red",
    EventKind.STORE_ERROR: "bold red",
    EventKind.HOOK_ERROR: "red",
    EventKind.STALE_COMPLETION: "yellow",
    EventKind.RETRY_SCHEDULED: "yellow",
    EventKind.TIMED_OUT: "yellow",
    EventKind.SUCCEEDED: "green",
    EventKind.AUTOSCALED: "bold cyan",
    EventKind.FINDING: "bold magenta",
    EventKind.WORKERS_CHANGED: "cyan",
    EventKind.SETTINGS_CHANGED: "cyan",
    EventKind.QUEUE_PAUSED: "cyan",
    EventKind.QUEUE_RESUMED: "cyan",
    EventKind.CANCELLED: "cyan",
    EventKind.SCHEDULE_FIRED: "blue",
    EventKind.SCHEDULE_CHANGED: "cyan",
    EventKind.DEDUPLICATED: "dim",
}
#: Shown one by one only up to this many per batch; beyond it, task events are summed up.
MAX_PER_BATCH = 40
#: Events held between two refreshes (a covered dashboard is not refreshed); older drop.
MAX_PENDING = 5000
TASK_NOISE = frozenset(
    {
        EventKind.ENQUEUED,
        EventKind.STARTED,
        EventKind.PROGRESS,
        EventKind.SUCCEEDED,
        EventKind.PROMOTED,
        EventKind.WORKFLOW_ENQUEUED,
    }
)


def event_line(event: Event) -> Text:
    stamp = time.strftime("%H:%M:%S", time.localtime(event.at))
    text = Text(f"{stamp} ", style="dim")
    text.append(f"{event.kind.value:<17}", style=STYLE.get(event.kind, ""))
    if event.task_id is not None:
        text.append(f" #{event.task_id}")
    if event.handler:
        text.append(f" {event.handler}", style="bold")
    if event.message:
        text.append(f"  {event.message}")
    return text


class EventsPanel(RichLog):
    """Events arrive whenever the engine emits them but are drawn with the refresh tick,
    so a busy engine costs one repaint per tick rather than one per batch of events."""

    DEFAULT_CSS = """
    EventsPanel { height: 1fr; padding: 0 1; overflow-x: hidden; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_lines=500, wrap=False, markup=False, highlight=False, **kwargs)
        self._pending: deque[Event] = deque(maxlen=MAX_PENDING)

    def on_mount(self) -> None:
        self.border_title = "Events"

    def add_events(self, events: Sequence[Event]) -> None:
        """Hold events until the next refresh tick draws them."""
        self._pending.extend(events)

    def update_from(self, snap: EngineSnapshot) -> None:
        """Draw the events that arrived since the last tick."""
        if self._pending:
            events = list(self._pending)
            self._pending.clear()
            self.write_events(events)

    def write_events(self, events: Sequence[Event]) -> None:
        """Write a batch; under heavy load routine task events are counted, not listed."""
        if len(events) <= MAX_PER_BATCH:
            for event in events:
                self.write(event_line(event))
            return
        routine: dict[EventKind, int] = {}
        for event in events:
            if event.kind in TASK_NOISE:
                routine[event.kind] = routine.get(event.kind, 0) + 1
            else:
                self.write(event_line(event))
        summary = ", ".join(f"{n:,} {kind.value}" for kind, n in routine.items())
        stamp = time.strftime("%H:%M:%S")
        self.write(Text(f"{stamp} … {summary}", style="dim"))
