"""The tail of engine events, in two lanes side by side: task and engine events on the
left, operator actions and autoscaler decisions on the right, so a flood of progress
lines cannot push a pause, a worker change or a scaling decision out of sight. Each
lane scrolls when focused (``tab`` to it, then ↑ ↓ pgup pgdn home end); scrolled back,
it stays where the reader is, and follows new lines again once back at the end.

| Key | Does |
| --- | --- |
| up / down, pageup / pagedown, home / end | scroll the focused lane |
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
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
    EventKind.COMMAND_FAILED: "red",
}
#: Shown one by one only up to this many per batch; beyond it, task events are summed up.
MAX_PER_BATCH = 40
#: Events held between two refreshes (under a full screen the dashboard is not
#: refreshed); older ones drop.
MAX_PENDING = 5000
#: Lines each lane keeps (older ones drop off the top).
MAX_LINES = 500
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
#: What an operator did (from the console, the CLI, the API or a node command), what
#: the autoscaler decided, and the engine starting and stopping: the right-hand lane.
OPERATOR_KINDS = frozenset(
    {
        EventKind.WORKERS_CHANGED,
        EventKind.SETTINGS_CHANGED,
        EventKind.QUEUE_PAUSED,
        EventKind.QUEUE_RESUMED,
        EventKind.CANCELLED,
        EventKind.REPRIORITIZED,
        EventKind.RETRIED,
        EventKind.PURGED,
        EventKind.SCHEDULE_CHANGED,
        EventKind.COMMAND_SENT,
        EventKind.COMMAND_APPLIED,
        EventKind.COMMAND_FAILED,
        EventKind.AUTOSCALED,
        EventKind.ENGINE_STARTED,
        EventKind.ENGINE_STOPPING,
        EventKind.ENGINE_STOPPED,
    }
)


#: The operator lane's first line, until something happens.
EMPTY_LANE = (
    "Worker, setting and queue changes, cancels, retries and the autoscaler's decisions show here."
)


def stamp(at: float) -> Text:
    return Text(time.strftime("%H:%M:%S ", time.localtime(at)), style="dim")


def event_line(event: Event) -> Text:
    text = stamp(event.at)
    text.append(f"{event.kind.value:<17}", style=STYLE.get(event.kind, ""))
    if event.task_id is not None:
        text.append(f" #{event.task_id}")
    if event.handler:
        text.append(f" {event.handler}", style="bold")
    if event.message:
        text.append(f"  {event.message}")
    return text


def action_line(event: Event) -> Text:
    """An operator or autoscaler event, short (its lane is narrow): the time, the kind
    without padding, the task if any, and the message."""
    text = stamp(event.at)
    text.append(event.kind.value.replace("_", " "), style=STYLE.get(event.kind, "cyan"))
    if event.task_id is not None:
        text.append(f" #{event.task_id}")
    if event.message:
        text.append(f": {event.message}")
    return text


class EngineEvents(Message):
    """A batch of engine events (batched so a flood costs one repaint)."""

    def __init__(self, events: list[Event]) -> None:
        super().__init__()
        self.events = events


class EventLog(RichLog):
    """One lane: follows new lines while scrolled to its end; scrolled back, it stays."""

    DEFAULT_CSS = """
    EventLog { height: 1fr; padding: 0 1; overflow-x: hidden; }
    """

    def __init__(self, *, wrap: bool = False, **kwargs: Any) -> None:
        super().__init__(
            max_lines=MAX_LINES,
            wrap=wrap,
            markup=False,
            highlight=False,
            min_width=20 if wrap else 78,  # a wrapping lane wraps at its own width
            **kwargs,
        )

    def add_lines(self, lines: Sequence[Text]) -> None:
        follow = self.is_vertical_scroll_end
        for line in lines:
            self.write(line, scroll_end=follow)


class EventsPanel(Horizontal):
    """Events arrive whenever the engine emits them but are drawn with the refresh tick,
    so a busy engine costs one repaint per tick rather than one per batch of events."""

    DEFAULT_CSS = """
    EventsPanel { height: 1fr; }
    EventsPanel #event-log { width: 2fr; }
    EventsPanel #event-actions { width: 1fr; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._pending: deque[Event] = deque(maxlen=MAX_PENDING)

    def compose(self) -> ComposeResult:
        yield EventLog(id="event-log", classes="panel")
        yield EventLog(wrap=True, id="event-actions", classes="panel")

    def on_mount(self) -> None:
        self.query_one("#event-log").border_title = "Events"
        actions = self.query_one("#event-actions", EventLog)
        actions.border_title = "Operator · autoscaler"
        actions.write(Text(EMPTY_LANE, style="dim"))

    @property
    def lines(self) -> list[str]:
        """Every line of both lanes, as text (left lane first)."""
        return [line.text for log in self.query(EventLog).results(EventLog) for line in log.lines]

    def clear(self) -> None:
        for log in self.query(EventLog).results(EventLog):
            log.clear()

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
        """Write a batch: operator and autoscaler events to their lane, each one; the rest
        to the main lane, where under heavy load routine task events are counted, not
        listed."""
        actions = [action_line(e) for e in events if e.kind in OPERATOR_KINDS]
        rest = [e for e in events if e.kind not in OPERATOR_KINDS]
        if actions:
            self.query_one("#event-actions", EventLog).add_lines(actions)
        if len(rest) <= MAX_PER_BATCH:
            lines = [event_line(e) for e in rest]
        else:
            routine: dict[EventKind, int] = {}
            lines = []
            for event in rest:
                if event.kind in TASK_NOISE:
                    routine[event.kind] = routine.get(event.kind, 0) + 1
                else:
                    lines.append(event_line(event))
            summary = ", ".join(f"{n:,} {kind.value}" for kind, n in routine.items())
            at = time.localtime(events[-1].at)  # the batch's time (a replay shows it too)
            lines.append(Text(time.strftime("%H:%M:%S", at) + f" … {summary}", style="dim"))
        if lines:
            self.query_one("#event-log", EventLog).add_lines(lines)
