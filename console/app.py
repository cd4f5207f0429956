"""ConsoleApp: the Taskdeck operations console.

It composes the panels and binds the keys; panels and screens hold their own
logic. One timer (2 Hz by default, adjustable) reads a snapshot and feeds the
panels; one task bridges ``engine.events()`` into Textual messages. Nothing here
touches the store: every command is an Engine method. The app starts the engine on
mount if it is not running, and stops it on quit.

``attach=True`` watches a cluster instead (``taskdeck console --attach``): the engine
runs no workers; a Nodes panel takes the place of Workers (its rows read with
``engine.nodes()`` on the tick), and the worker keys become commands to the nodes
(settings and the autoscaler are saved in the store for every node, in both modes).
Which of the two it is lives in one place, the console's :mod:`steering
<console.steering>`; the app does not ask.

``read_only=True`` (``console --read-only``) watches like ``attach`` on a store opened
read-only (``engine.client(read_only=True)``), and :meth:`ConsoleApp.run_action` refuses
every action that would change something (listed in :mod:`console.read_only`).
``hide_payloads=True`` shows tasks without their payloads and results.

The keys are in :mod:`console.keys`; the help screen (``?``) and the README list them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from textual import actions, on, work
from textual.app import App, ComposeResult
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.dom import DOMNode
from textual.events import Resize
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Input, Static

from console.cluster.state import Cluster
from console.commands import ActionsProvider
from console.demo import DemoPipeline
from console.help_groups import help_groups
from console.history_keys import HistoryKeys
from console.keys import CHANGES_ENGINE, DASHBOARD_KEYS, DASHBOARD_ONLY
from console.layout import Layout
from console.mark_keys import MarkKeys
from console.panels.bottlenecks import BottlenecksPanel
from console.panels.events import EngineEvents, EventsPanel
from console.panels.footer import KeysFooter
from console.panels.header import HeaderBar
from console.panels.queue import QueuePanel
from console.panels.resources import ResourcesPanel
from console.panels.task_table import TaskTable
from console.panels.throughput import ThroughputPanel
from console.read_only import refused_action
from console.screens.alerts import AlertsScreen
from console.screens.audit import AuditScreen
from console.screens.enqueue import EnqueueScreen
from console.screens.failed import FailedScreen
from console.screens.failures import FailuresScreen
from console.screens.help import HelpScreen
from console.screens.operations import OperationsScreen
from console.screens.pause_all import PauseAllScreen
from console.screens.queues import QueuesScreen
from console.screens.quit import QuitChoice, QuitScreen
from console.screens.schedules import SchedulesScreen
from console.screens.stack import dashboard_shows
from console.screens.task_detail import TaskDetailScreen
from console.steering.attached import AttachedSteering
from console.steering.base import PanelKind, Steering
from console.steering.local import LocalSteering
from console.steering.read_only import ReadOnlySteering
from console.stop_signals import StopSignals, exit_at_once
from engine import Engine, TaskState


class ConsoleApp(HistoryKeys):
    """The live operations console for one engine."""

    CSS_PATH = Path(__file__).with_name("console.tcss")
    TITLE = "Taskdeck"
    COMMANDS = App.COMMANDS | {ActionsProvider}
    BINDINGS = DASHBOARD_KEYS

    def __init__(
        self,
        engine: Engine,
        *,
        demo: bool = False,
        demo_rate: float = 3.0,
        refresh_hz: float = 2.0,
        now: Callable[[], float] = time.time,
        attach: bool = False,
        read_only: bool = False,
        hide_payloads: bool = False,
    ) -> None:
        """``attach``: watch and steer the nodes on the engine's store (the engine
        should run no workers of its own: ``Engine(url, workers=0)``); ``read_only``:
        watch them and change nothing (the engine is opened read-only, not started);
        ``hide_payloads``: no payloads or results shown."""
        super().__init__()
        self.engine = engine
        engine.audit.act_as("console")  # its actions are recorded as the console's
        self.read_only = read_only
        self.hide_payloads = hide_payloads
        self._client = contextlib.AsyncExitStack()  # the read-only engine's open store
        demo = demo and not read_only
        self.demo = DemoPipeline(engine, rate=demo_rate) if demo else None
        self.refresh_hz = refresh_hz
        self.now = now
        self._timer: Timer | None = None
        self._stopping = False
        self.control: Steering = (
            ReadOnlySteering(self, engine, self.redraw)
            if read_only
            else AttachedSteering(self, engine, self.redraw)
            if attach
            else LocalSteering(self, engine, self.redraw)
        )
        self._signals = StopSignals(self._stop_signal, self._stop_now)
        self.board_layout = Layout()  # full from 100×30, compact from 80×24 (console.layout)
        self.marks = MarkKeys(self, engine, self._queue_in_view)

    @property
    def cluster(self) -> Cluster | None:
        """The nodes as last read (attached), else None."""
        return self.control.cluster

    # -- layout ---------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        cluster = self.control.cluster
        yield HeaderBar(cluster, self.engine.alerts.firing, read_only=self.read_only, id="header")
        with Horizontal(id="top", classes=self.control.dashboard_class):
            yield QueuePanel(self.engine, self.now, cluster=cluster, id="queue", classes="panel")
            yield self.control.pool_panel()
        with Horizontal(id="middle"):
            title = self.control.resources_title
            yield ResourcesPanel(title=title, id="resources", classes="panel")
            yield ThroughputPanel(cluster, id="throughput", classes="panel")
            yield BottlenecksPanel(id="bottlenecks", classes="panel")
        yield EventsPanel(id="events")
        yield KeysFooter()
        with Vertical(id="too-small"):
            yield Static("", id="too-small-text")

    @property
    def queue(self) -> QueuePanel:
        """The dashboard's queue panel (found on the dashboard even under a dialog)."""
        return self.dashboard.query_one("#queue", QueuePanel)

    @property
    def dashboard(self) -> Screen[object]:
        return self.screen_stack[0]

    # -- life cycle -----------------------------------------------------------------
    def on_mount(self) -> None:
        # A signal from outside (kill, a closed terminal) drains as `q` then Enter would;
        # a second one stops now. Textual reads Ctrl-C as a key, not a signal.
        self._signals.install(asyncio.get_running_loop())
        self.queue.table.focus()
        self.start_engine()

    async def on_unmount(self) -> None:
        self._signals.remove(asyncio.get_running_loop())
        if self.demo is not None:
            await self.demo.stop()
        if self.engine.running:  # the app ended another way than the quit dialog
            await self.stop_engine(grace=0)

    async def stop_engine(self, grace: float | None) -> None:
        """Stop the engine, or close the read-only one's store."""
        if self.read_only:
            await self._client.aclose()
        else:
            await self.engine.stop(grace=grace)

    @work(exclusive=True, group="engine")
    async def start_engine(self) -> None:
        if not self.engine.running:
            try:
                if self.read_only:
                    await self._client.enter_async_context(self.engine.client(read_only=True))
                else:
                    await self.engine.start()
            except Exception as exc:
                self.exit(1, message=f"taskdeck: error: {exc}")
                return
        if self.demo is not None:
            self.demo.start()
        self.bridge_events()
        self.refresh_tick()
        self.set_refresh(self.refresh_hz)

    def set_refresh(self, hz: float) -> None:
        """Change how often the panels refresh (the one timer of the app)."""
        self.refresh_hz = hz
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_interval(1.0 / hz, self.refresh_tick)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Dashboard keys work only on the dashboard (the failed-tasks screen has its
        own); while the engine shuts down only looking and quitting are allowed (the
        footer greys the other keys out)."""
        if action in DASHBOARD_ONLY and self.screen is not self.dashboard:
            return False
        if action == "view" and not self.board_layout.compact:
            return False  # one panel at a time only in the compact layout
        return not (self._stopping and action in CHANGES_ENGINE)

    async def run_action(
        self,
        action: str | actions.ActionParseResult,
        default_namespace: DOMNode | None = None,
        namespaces: Mapping[str, DOMNode] | None = None,
    ) -> bool:
        """Every action (a key, the palette, the footer, a screen's button) passes here:
        a read-only console refuses the ones that change something, with a toast."""
        refused = self.read_only and refused_action(self, action, default_namespace, namespaces)
        if refused:
            self.notify(refused, severity="warning", timeout=4)
            return True
        return await super().run_action(action, default_namespace, namespaces)

    def action_set_refresh_rate(self, hz: float) -> None:
        self.set_refresh(hz)
        self.notify(f"refreshing {hz:g} times a second", timeout=2)

    def refresh_tick(self) -> None:
        """Feed every panel from one snapshot, also under a dialog (the dashboard shows
        around it); skipped under a full screen and while the app closes."""
        if not self._dashboard_live():
            return
        self._feed(self.control.panels)
        self.control.refresh()

    def redraw(self, kinds: tuple[PanelKind, ...]) -> None:
        """Feed these panels from a fresh snapshot, if the dashboard shows."""
        if self._dashboard_live():
            self._feed(kinds)

    def _dashboard_live(self) -> bool:
        return self.engine.running and not self._stopping and dashboard_shows(self.screen_stack)

    def _feed(self, kinds: tuple[PanelKind, ...]) -> None:
        snap = self.control.snapshot()
        board = self.dashboard
        try:
            panels = [board.query_one(kind) for kind in kinds]
        except NoMatches:  # a tick while the app is still mounting or already closing
            return
        for panel in panels:
            panel.update_from(snap)

    @work(group="events")
    async def bridge_events(self) -> None:
        """The one task that turns engine events into (batched) Textual messages."""
        async with self.engine.events(maxsize=5000) as events:
            while True:
                batch = [await events.get()]
                await asyncio.sleep(0.2)  # let a burst gather into one message
                while (event := events.get_nowait()) is not None:
                    batch.append(event)
                self.post_message(EngineEvents(batch))

    @on(TaskTable.MarksChanged)
    def _marks_changed(self) -> None:
        self.dashboard.query_one(HeaderBar).marked = len(self.queue.table.marks)
        self.redraw((HeaderBar,))

    @on(EngineEvents)
    def _events(self, message: EngineEvents) -> None:
        if not self.screen_stack:  # the app is closing: its screens are gone
            return
        with contextlib.suppress(NoMatches):  # the app is closing
            self.dashboard.query_one(EventsPanel).add_events(message.events)

    def on_screen_resume(self) -> None:
        self.refresh_tick()

    def on_resize(self, event: Resize) -> None:
        compact = self.board_layout.compact
        self.board_layout.fit(self.dashboard, *event.size)
        if compact != self.board_layout.compact:
            self.refresh_bindings()  # g shows in the footer in the compact layout only

    # -- task actions ---------------------------------------------------------------
    @on(TaskTable.Opened)
    def _open_task(self, event: TaskTable.Opened) -> None:
        self.push_screen(TaskDetailScreen(self.engine, event.task.id))

    def action_cancel(self) -> None:
        if not self.marks.act("cancel"):
            self.queue.cancel_selected()

    def action_priority(self, delta: int) -> None:
        if not self.marks.act("raise" if delta > 0 else "lower"):
            self.queue.change_priority(delta)

    def action_retry(self) -> None:
        if not self.marks.act("retry"):
            self.queue.retry_selected()

    def action_mark(self) -> None:
        self.marks.toggle()

    def action_mark_view(self) -> None:
        self.marks.mark_view()

    def action_mark_all(self) -> None:
        self.marks.mark_all()

    def action_freeze(self) -> None:
        frozen = self._queue_in_view().freeze()
        self.notify("queue table frozen: z resumes" if frozen else "queue table live", timeout=2)

    def _queue_in_view(self) -> QueuePanel:
        """The queue panel, shown (in the compact layout it may not be)."""
        self.board_layout.show_queue(self.dashboard)
        return self.queue

    def action_view(self, delta: int) -> None:
        self.board_layout.step(self.dashboard, delta)

    @work(group="enqueue")
    async def action_enqueue(self) -> None:
        selected = self.queue.selected
        choices = await self.control.enqueue_choices()
        if choices is None:
            return
        handler = selected.handler if selected else None
        form = EnqueueScreen(self.engine, handler, choices.known, choices.served)
        self.push_screen(form, self._enqueued)

    def _enqueued(self, task_id: str | None) -> None:
        if task_id is None:
            return
        self.notify(f"task {task_id} enqueued")
        self.select_new_task(task_id)

    @work(group="select")
    async def select_new_task(self, task_id: str) -> None:
        """Show the new task in its state's tab, with the cursor on it."""
        task = await self.engine.get(task_id)
        self.queue.show_state(task.state)
        self.queue.table.select_task(task_id)
        self.queue.table.focus()
        self.queue.reload()

    def action_show_state(self, state: str) -> None:
        self._queue_in_view().show_state(TaskState(state))

    def action_filter(self) -> None:
        self._queue_in_view().open_filter()

    def action_clear_filter(self) -> None:
        """esc: the marks first (unless typing a filter), then the filter."""
        typing = isinstance(self.focused, Input) and self.focused.id == "filter"
        if not typing and self.marks.clear():
            return
        if self.queue.query_filter.active or self.queue.has_class("-filtering"):
            self.queue.clear_filter()
            self.notify("filter cleared", timeout=2)

    @on(Input.Submitted, "#filter")
    def _filtered(self) -> None:
        described = self.queue.query_filter.describe()
        self.notify(f"filter: {described}" if described else "filter cleared", timeout=2)

    # -- pool and queue actions -------------------------------------------------------
    @work(group="workers")
    async def action_workers(self, delta: int) -> None:
        await self.control.change_workers(delta)

    def action_set_workers(self) -> None:
        self.control.ask_workers()

    def action_queues(self) -> None:
        selected = self.queue.selected
        self.push_screen(QueuesScreen(self.engine, selected.queue if selected else None))

    def action_pause_all(self) -> None:
        self.push_screen(PauseAllScreen(self.engine, self.engine.snapshot().all_paused))

    @work(group="settings")
    async def action_autoscale(self) -> None:
        await self.control.toggle_autoscale()

    def action_settings(self) -> None:
        screen = self.control.settings_screen(self.refresh_hz)
        self.push_screen(screen, lambda hz: self.set_refresh(hz) if hz is not None else None)

    @work(group="finding")
    async def action_apply_finding(self) -> None:
        panel = self.dashboard.query_one(BottlenecksPanel)
        finding = panel.selected
        if finding is None:
            self.notify("no bottleneck to act on: all clear", timeout=2)
            return
        if finding.action is None:
            self.notify(
                f"{finding.title}: this needs a change in code or setup — {finding.suggestion}",
                severity="warning",
                timeout=8,
            )
            return
        if await self.control.handles(finding):
            return
        try:
            done = await self.engine.apply_action(finding.action)
        except (ValueError, TypeError, LookupError) as exc:
            self.notify(f"could not apply: {exc}", severity="error")
            return
        self.notify(f"applied: {done}")

    def action_failed(self) -> None:
        self.push_screen(FailedScreen(self.engine))

    def action_failures(self) -> None:
        self.push_screen(FailuresScreen(self.engine, self.now))

    def action_schedules(self) -> None:
        self.push_screen(SchedulesScreen(self.engine, self.now))

    def action_alerts(self) -> None:
        self.push_screen(AlertsScreen(self.engine, self.now))

    def action_audit(self) -> None:
        self.push_screen(AuditScreen(self.engine, self.now))

    def action_operations(self) -> None:
        self.push_screen(OperationsScreen(self.engine, self.now))

    def action_help(self) -> None:
        self.push_screen(HelpScreen(help_groups(self.control.help_groups, list(self.BINDINGS))))

    # -- quitting -------------------------------------------------------------------
    def action_quit_dialog(self) -> None:
        def chosen(choice: QuitChoice | None) -> None:
            if choice is not None:
                self.shutdown(choice)

        self.push_screen(QuitScreen(self.engine.snapshot, attached=self.control.attached), chosen)

    async def action_quit(self) -> None:
        """ctrl+q and a stop signal: a graceful stop without asking."""
        self.shutdown("drain")

    def _stop_signal(self, _name: str) -> None:
        self.shutdown("drain")

    def _stop_now(self) -> None:
        exit_at_once(self._driver.stop_application_mode if self._driver else None)

    @work(exclusive=True, group="shutdown")
    async def shutdown(self, choice: QuitChoice) -> None:
        if self._stopping:
            return
        self._stopping = True
        self.refresh_bindings()
        grace = 0.0 if choice == "now" else None
        if self.demo is not None:
            await self.demo.stop()
        if self.engine.running:
            running = self.engine.snapshot().busy_workers
            self.notify(
                "stopping now: running tasks go back to the queue"
                if choice == "now"
                else f"finishing {running} running tasks, then quitting…",
                timeout=30,
            )
            await self.stop_engine(grace)
        self.exit(0)
