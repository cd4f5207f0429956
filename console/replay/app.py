"""``taskdeck replay FILE``: the console's dashboard on a recording, with a timeline.

The same panels as the live console (header, queue, workers, resources, throughput,
bottlenecks, events), in the same layout, each fed the recorded snapshot of the
moment shown, so they show the same numbers as they did then. The queue table shows
the rows it held then (the tab it was on). No engine and no store: every key that
would change something, or open a screen that reads the store, is refused with a
toast, through the read-only console's list (:data:`console.read_only.REFUSED`).

Keys (the timeline bar at the bottom shows them): ←/→ one refresh, shift+←/→ ten
seconds, space plays or pauses (at the recorded speed), home/end the first/last
refresh, ``q`` quits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import cast

from textual import actions
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.dom import DOMNode
from textual.events import Resize
from textual.timer import Timer
from textual.widgets import Static

from console.keys import DASHBOARD_KEYS
from console.layout import Layout
from console.panels.bottlenecks import BottlenecksPanel
from console.panels.events import EventsPanel
from console.panels.header import HeaderBar
from console.panels.queue import QueuePanel
from console.panels.resources import ResourcesPanel
from console.panels.text_panel import TextPanel
from console.panels.throughput import ThroughputPanel
from console.panels.workers import WorkersPanel
from console.read_only import REFUSED, refused_action
from console.replay.file import Frame, Recording
from console.replay.player import BIG_STEP, Player, timeline_text
from console.stop_signals import StopSignals, exit_at_once
from engine import Engine, TaskPage

WHY = "this is a replay of a recording"
#: How often playing moves on (seconds of the wall clock = seconds of the recording).
PLAY_TICK = 0.1
#: Refreshes of events drawn again when the replay jumps (the events panel keeps 500 lines).
EVENT_FRAMES = 120


def _refused_keys() -> list[BindingType]:
    """The dashboard's keys the replay refuses (bound so that a toast says why)."""
    refused = REFUSED["ReplayApp"]
    keys: list[BindingType] = []
    for binding in DASHBOARD_KEYS:
        if isinstance(binding, Binding) and actions.parse(binding.action)[1] in refused:
            keys.append(Binding(binding.key, binding.action, binding.description, show=False))
    return keys


class ReplayQueuePanel(QueuePanel):
    """The queue panel on recorded rows: the tab and window the console showed."""

    def __init__(self, replay: ReplayApp, **kwargs: object) -> None:
        # It never reaches an engine: reads (_fetch, _load_why) are replaced below, and
        # the replay binds no key that acts on a task (they are refused).
        super().__init__(cast(Engine, None), lambda: replay.player.now, **kwargs)  # type: ignore[arg-type]
        self.replay = replay

    def show_frame(self, frame: Frame) -> None:
        self.show_state(frame.state)
        self.update_from(frame.snapshot)
        table = self.table
        table.set_rows(frame.total, frame.offset, frame.rows)
        table.cursor = frame.cursor
        table.scroll_to(y=frame.scroll, animate=False, immediate=True)
        table.refresh()

    async def _fetch(self, offset: int, limit: int) -> None:
        frame = self.replay.frame
        if self.state != frame.state:  # a click on another tab: its rows were not recorded
            self.table.empty_text = f"not recorded: the console showed {frame.state.value}"
            self.table.set_rows(0, 0, TaskPage([], 0, 0, 0))
            return
        self.table.set_rows(frame.total, frame.offset, frame.rows)

    def _load_why(self) -> None:  # type: ignore[override]
        self.table.why = None
        self.app.notify("the WHY column reads the store: not in a replay", timeout=3)


class ReplayApp(App[int]):
    """The dashboard of a recorded console, scrubbed along a timeline."""

    CSS_PATH = Path(__file__).parent.parent / "console.tcss"
    TITLE = "Taskdeck replay"
    BINDINGS = [
        Binding("left", "step(-1)", "Back", priority=True),
        Binding("right", "step(1)", "On", priority=True),
        Binding("shift+left", "seek(-1)", "10 s back", priority=True),
        Binding("shift+right", "seek(1)", "10 s on", priority=True),
        Binding("space", "play", "Play/pause", priority=True),
        Binding("home", "jump(0)", "First", priority=True),
        Binding("end", "jump(1)", "Last", priority=True),
        Binding("q", "quit", "Quit"),
        *_refused_keys(),
    ]

    def __init__(self, recording: Recording) -> None:
        super().__init__()
        self.recording = recording
        self.player = Player([f.snapshot.at for f in recording.frames])
        self.board_layout = Layout()
        self._shown = -1  # the frame the panels show
        self._findings_of = -1  # the frame whose findings the Bottlenecks panel shows
        self._timer: Timer | None = None
        self._signals = StopSignals(lambda _name: self.exit(0), exit_at_once)

    @property
    def frame(self) -> Frame:
        return self.recording.frames[self.player.index]

    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
        with Horizontal(id="top"):
            yield ReplayQueuePanel(self, id="queue", classes="panel")
            yield WorkersPanel(id="workers", classes="panel")
        with Horizontal(id="middle"):
            yield ResourcesPanel(id="resources", classes="panel")
            yield ThroughputPanel(None, id="throughput", classes="panel")
            yield BottlenecksPanel(id="bottlenecks", classes="panel")
        yield EventsPanel(id="events")
        yield Static("", id="timeline")
        with Vertical(id="too-small"):
            yield Static("", id="too-small-text")

    def on_mount(self) -> None:
        self._signals.install(asyncio.get_running_loop())  # a kill or a closed terminal: quit
        self.query_one("#timeline", Static).styles.dock = "bottom"
        self.show()

    def on_unmount(self) -> None:
        self._signals.remove(asyncio.get_running_loop())

    def on_resize(self, event: Resize) -> None:
        self.board_layout.fit(self.screen, *event.size)
        self.show(again=True)

    async def run_action(
        self,
        action: str | actions.ActionParseResult,
        default_namespace: DOMNode | None = None,
        namespaces: Mapping[str, DOMNode] | None = None,
    ) -> bool:
        """Changes (and screens that read the store) are refused with a toast."""
        refused = refused_action(self, action, default_namespace, namespaces, WHY)
        if refused:
            self.notify(refused.replace("read-only console", "replay"), severity="warning")
            return True
        return await super().run_action(action, default_namespace, namespaces)

    # -- the timeline ---------------------------------------------------------------
    def action_step(self, frames: int) -> None:
        self.player.step(frames)
        self.show()

    def action_seek(self, direction: int) -> None:
        self.player.seek(direction * BIG_STEP)
        self.show()

    def action_jump(self, end: int) -> None:
        self.player.jump(bool(end))
        self.show()

    def action_play(self) -> None:
        self.player.playing = not self.player.playing
        if self.player.playing and self.player.index >= self.player.last:
            self.player.jump(False)  # at the end, play starts over
        if self._timer is None:
            self._timer = self.set_interval(PLAY_TICK, self._play)
        self.show(again=True)

    def _play(self) -> None:
        if self.player.playing:
            self.player.advance(PLAY_TICK)
            self.show(again=True)

    def show(self, *, again: bool = False) -> None:
        """Feed every panel the current frame (the events up to it too)."""
        index = self.player.index
        bar = self.query_one("#timeline", Static)
        bar.update(timeline_text(self.player, self.size.width or 100))
        if index == self._shown and not again:
            return
        if index != self._shown:
            self._events_to(index)
        self._shown = index
        frame = self.frame
        self.query_one(ReplayQueuePanel).show_frame(frame)
        self.query_one(HeaderBar).firing = frame.firing
        panels: tuple[TextPanel, ...] = (
            self.query_one(HeaderBar), self.query_one(WorkersPanel),
            self.query_one(ResourcesPanel), self.query_one(ThroughputPanel),
        )  # fmt: skip
        for panel in panels:
            panel.update_from(frame.snapshot)
        if frame.findings_of != self._findings_of:  # as drawn then (numbers lag a little)
            self._findings_of = frame.findings_of
            bottlenecks = self.query_one(BottlenecksPanel)
            bottlenecks.findings = ()
            bottlenecks.update_from(self.recording.frames[frame.findings_of].snapshot)

    def _events_to(self, index: int) -> None:
        """The events panel as it was at refresh ``index``: the next refresh's batch, or
        (after a jump) the batches of the refreshes before it, drawn again."""
        panel = self.query_one(EventsPanel)
        frames = self.recording.frames
        if index != self._shown + 1:
            panel.clear()
            first = max(0, index - EVENT_FRAMES)
            previous = frames[first - 1].events if first else 0
            for frame in frames[first:index]:
                self._batch(panel, previous, frame.events)
                previous = frame.events
        previous = frames[index - 1].events if index else 0
        self._batch(panel, previous, frames[index].events)

    def _batch(self, panel: EventsPanel, start: int, end: int) -> None:
        if end > start:
            panel.write_events(self.recording.events[start:end])
