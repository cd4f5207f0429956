"""The queue panel: a tab per task state (with live counts), the queues and their
depths, a filter, and the :class:`TaskTable` over a window of the store.

It asks the engine for the rows it shows — never more than a few screens' worth —
so it stays fast with a million queued tasks. Fetches run in one exclusive worker,
so a slow one is replaced, never stacked.

Frozen (``z``), the table keeps its rows while the rest of the dashboard goes on: the
refresh reads no new rows (scrolling still fetches what comes into view, and an action
on a task shows its result). The title says FROZEN, and how many tasks are marked.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, Static, Tab, Tabs

from console.cluster.state import Cluster
from console.format import num, short_num
from console.panels.task_table import TaskTable, header_text
from console.task_actions import cancel_task, retry_task
from engine import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    Engine,
    EngineNotRunning,
    EngineSnapshot,
    QueryError,
    QueueInfo,
    StoreError,
    TaskPage,
    TaskRecord,
    TaskState,
    parse_query,
)

STATES = tuple(TaskState)
#: Tab names when the full ones do not fit.
SHORT_NAMES = {
    TaskState.QUEUED: "Queued",
    TaskState.SCHEDULED: "Sched",
    TaskState.RUNNING: "Run",
    TaskState.SUCCEEDED: "Done",
    TaskState.FAILED: "Failed",
    TaskState.CANCELLED: "Canc",
}
TAB_PADDING = 2
#: rows of the WHY column computed per pass (a pass reads a few rows of the store each)
WHY_ROWS = 60


def tab_labels(
    counts: dict[TaskState, int], states: tuple[TaskState, ...], width: int
) -> list[str]:
    """``Queued 1,204`` per state, or ``Queued 1.2k`` short forms when they would not fit,
    or ``Q 1.2k`` (their initials: Q S R D F C) when even those would not (an attached console
    at 100 columns gives the queue half the width)."""
    full = [f"{s.value.capitalize()} {num(counts.get(s, 0))}" for s in states]
    if sum(len(label) + TAB_PADDING for label in full) <= width:
        return full
    short = [f"{SHORT_NAMES[s]} {short_num(counts.get(s, 0))}" for s in states]
    if sum(len(label) + TAB_PADDING for label in short) <= width:
        return short
    return [f"{SHORT_NAMES[s][0]} {short_num(counts.get(s, 0))}" for s in states]


def queue_strip(queues: list[QueueInfo], width: int) -> str:
    """``queues: images 1,204 · emails 3 ⏸`` that fits ``width``: paused and deep queues
    first, then ``+N more``."""
    if not queues:
        return "queues: none yet"
    ordered = sorted(queues, key=lambda q: (not q.paused, -q.depth, q.name))
    text = "queues:"
    for i, q in enumerate(ordered):
        part = f" {q.name} {num(q.depth)}" + (" ⏸ paused" if q.paused else "")
        part = part if i == 0 else " ·" + part
        rest = len(ordered) - i - 1
        more = f" · +{rest} more" if rest else ""
        if len(text) + len(part) + len(more) > width and i > 0:
            return text + f" · +{len(ordered) - i} more"
        text += part
    return text


@dataclass(frozen=True)
class TaskQuery:
    """What the filter bar asked for: a query (README: "Finding tasks"), e.g.
    ``error~heic`` or ``handler=images.resize priority>5``, or just words."""

    text: str = ""

    def describe(self) -> str:
        return self.text.strip()

    @property
    def active(self) -> bool:
        return bool(self.text.strip())

    def pins(self, encrypted: bool) -> dict[str, str] | None:
        """Its ``handler=`` and ``queue=`` when that is all it asks (else None): the
        list can then follow a task by key, and the Failed screen act on it."""
        try:
            pins, rest = parse_query(self.text, time.time(), encrypted=encrypted).pinned()
        except QueryError:
            return None
        return pins if rest.root is None and "state" not in pins else None


def set_text(line: Static, text: str) -> None:
    """Update a one-line Static only when its text changes (no relayout: fixed height)."""
    if str(line.content) != text:
        line.update(text, layout=False)


class QueuePanel(Vertical):
    """Tasks by state. Tabs switch the state; ``/`` filters."""

    DEFAULT_CSS = """
    QueuePanel { height: 1fr; }
    QueuePanel Tabs { height: 2; }
    QueuePanel #queue-strip { height: 1; color: $text-muted; padding: 0 1; }
    QueuePanel #task-header { height: 1; color: $text-muted; text-style: bold; padding: 0 1; }
    QueuePanel TaskTable { padding: 0 1; }
    QueuePanel #filter { display: none; height: 3; }
    QueuePanel.-filtering #filter { display: block; }
    """

    def __init__(
        self,
        engine: Engine,
        now: Callable[[], float] = time.time,
        states: tuple[TaskState, ...] = STATES,
        cluster: Cluster | None = None,
        **kwargs: Any,
    ) -> None:
        """``cluster`` (attached): queued rows of handlers no node runs are marked."""
        super().__init__(**kwargs)
        self.engine = engine
        self.cluster = cluster
        self.now = now
        self.states = states
        self.state = states[0]
        self.query_filter = TaskQuery()
        self._why_loading = False
        self._counts: tuple[dict[TaskState, int], int] = ({}, 0)
        self._targets: dict[str, int] = {}  # priorities asked for, ahead of the next fetch
        self._wanted: tuple[int, int] | None = None  # the newest window asked for
        self._fetching = False
        self._snap: EngineSnapshot | None = None
        self.frozen = False

    def compose(self) -> ComposeResult:
        yield Tabs(
            *(Tab(s.value.capitalize(), id=f"tab-{s.value}") for s in self.states), id="states"
        )
        yield Static("", id="queue-strip")
        yield Input(
            placeholder="filter: words, or a query: handler=x state=failed error~heic "
            "payload.user_id=42 created>-1h (AND OR NOT) · enter applies · esc clears",
            id="filter",
        )
        yield Static("", id="task-header")
        yield TaskTable(self.now, id="tasks")

    @property
    def table(self) -> TaskTable:
        return self.query_one(TaskTable)

    def on_mount(self) -> None:
        self.show_title()
        self.table.empty_text = f"no {self.state.value} tasks"

    def show_title(self) -> None:
        """``Queue · FROZEN · 3 marked``."""
        marked = len(self.table.marks)
        parts = ["Queue", "FROZEN (z)" if self.frozen else ""]
        parts.append(f"{num(marked)} marked" if marked else "")
        self.border_title = " · ".join(part for part in parts if part)

    @on(TaskTable.MarksChanged)
    def _marks_changed(self, event: TaskTable.MarksChanged) -> None:
        self.show_title()

    def freeze(self) -> bool:
        """Freeze the table (no new rows on refresh) or unfreeze it; returns frozen."""
        self.frozen = not self.frozen
        self.show_title()
        if not self.frozen:
            self.reload()
        return self.frozen

    async def page(self, offset: int, limit: int) -> TaskPage:
        """Rows ``offset`` … of the list the table shows (its tab and filter)."""
        return await self._page(offset, limit)

    @property
    def shown(self) -> EngineSnapshot | None:
        """The snapshot the panel shows (None before the first)."""
        return self._snap

    def on_resize(self) -> None:
        """The tab labels, the queues line and the column header depend on the width:
        redo them (the first update may come before the panel is laid out)."""
        if self._snap is not None:
            self.update_from(self._snap)

    def _update_header(self) -> None:
        text = header_text(self.table.line_width, why=self.table.why is not None)
        set_text(self.query_one("#task-header", Static), text)

    # -- state tabs -----------------------------------------------------------------
    @on(Tabs.TabActivated, "#states")
    def _tab_changed(self, event: Tabs.TabActivated) -> None:
        state = TaskState(str(event.tab.id).removeprefix("tab-"))
        if state != self.state:
            self.state = state
            self.table.selected_id = None
            self.table.cursor = 0
            self.table.scroll_to(y=0, animate=False, immediate=True)
            self.table.empty_text = f"no {state.value} tasks"
            self.reload()

    def show_state(self, state: TaskState) -> None:
        self.query_one("#states", Tabs).active = f"tab-{state.value}"

    # -- filter -----------------------------------------------------------------------
    def open_filter(self) -> None:
        self.add_class("-filtering")
        box = self.query_one("#filter", Input)
        box.value = self.query_filter.describe()
        box.focus()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        try:
            parse_query(event.value, time.time(), encrypted=self.engine.snapshot().encrypted)
        except QueryError as exc:  # the box stays open with the text, to be fixed
            event.stop()
            self.app.notify(f"filter: {exc}", severity="error")
            return
        self.query_filter = TaskQuery(event.value.strip())
        if not self.query_filter.active:
            self.remove_class("-filtering")
        self.table.focus()
        self.reload()

    def clear_filter(self) -> None:
        self.query_filter = TaskQuery()
        self.remove_class("-filtering")
        self.table.focus()
        self.reload()

    # -- data -----------------------------------------------------------------------
    def update_from(self, snap: EngineSnapshot) -> None:
        """Counts in the tab titles, the queues strip; then refresh the visible rows."""
        self._snap = snap
        width = self.content_region.width
        counts = dict(snap.counts)
        if (counts, width) != self._counts:
            self._counts = (counts, width)
            tabs = self.query_one("#states", Tabs)
            labels = tab_labels(counts, self.states, width)
            for state, label in zip(self.states, labels, strict=True):
                tab = tabs.query_one(f"#tab-{state.value}", Tab)
                if str(tab.label) != str(label):  # a new label relayouts the tab row
                    tab.label = label
        self._update_header()
        if self.cluster is not None:
            self.table.unserved = frozenset(self.cluster.unserved)
        if not self.frozen:
            self.table.tick()
        if self.table.why is not None and not self._why_loading:
            self._why_loading = True  # one pass at a time: a slow store is not piled on
            self._load_why()
        strip = self.query_one("#queue-strip", Static)
        room = strip.content_region.width or width
        if self.query_filter.active:
            shown = f"filter: {self.query_filter.describe()} · "
            set_text(strip, shown + queue_strip(list(snap.queues.values()), room - len(shown)))
        else:
            set_text(strip, queue_strip(list(snap.queues.values()), room))
        if not self.frozen:
            self.reload()

    @work(group="why-column")
    async def _load_why(self) -> None:
        """The WHY column for the rows on screen (at most :data:`WHY_ROWS`)."""
        texts: dict[str, str] = {}
        try:
            for task in self.table.rows_on_screen()[:WHY_ROWS]:
                if task.state in (TaskState.QUEUED, TaskState.SCHEDULED, TaskState.RUNNING):
                    with contextlib.suppress(LookupError):  # gone meanwhile
                        texts[task.id] = (await self.engine.diagnose.why(task.id)).short
        except (EngineNotRunning, StoreError):
            return  # the console is closing
        finally:
            self._why_loading = False
        if self.table.why is not None:
            self.table.why = texts

    def reload(self) -> None:
        offset, limit = self.table.window
        self.fetch(offset, limit)

    @on(TaskTable.WindowNeeded)
    def _window_needed(self, event: TaskTable.WindowNeeded) -> None:
        event.stop()
        self.fetch(event.offset, event.limit)

    def fetch(self, offset: int, limit: int) -> None:
        """Ask for rows ``offset`` … ``offset + limit``. Requests made while a read is in
        flight collapse into one (the newest), so slow reads never pile up."""
        self._wanted = (offset, limit)
        if not self._fetching:
            self._fetching = True
            self._fetch_loop()

    @work(group="queue-fetch")
    async def _fetch_loop(self) -> None:
        try:
            while self._wanted is not None:
                offset, limit = self._wanted
                self._wanted = None
                await self._fetch(offset, limit)
        finally:
            self._fetching = False

    async def _fetch(self, offset: int, limit: int) -> None:
        """Rows ``offset`` … ``offset + limit`` into the table. When the task under the
        cursor has moved out of them (a new priority, tasks ahead of it claimed), fetch
        the rows around its new place instead, so the cursor stays on it."""
        if not self.engine.running:
            return
        table = self.table
        wanted, cursor = table.selected_id, table.cursor
        try:
            page = await self._page(offset, limit)
            lost = (
                wanted is not None
                and offset <= cursor < offset + limit
                and all(t.id != wanted for t in page)
            )
            moved = await self._around(wanted, limit) if lost and wanted else None
            if moved is not None:
                page, offset = moved, moved.offset
        except (EngineNotRunning, StoreError) as exc:
            if self.engine.running:  # a store problem, not a shutdown: say so
                self.app.notify(f"cannot read tasks: {exc}", severity="error")
            return
        except QueryError as exc:  # e.g. a text search stopped at its time limit
            self.app.notify(f"filter: {exc}", severity="error")
            return
        if not table.is_attached:  # the console is closing
            return
        for task in page:
            if self._targets.get(task.id) == task.priority:
                del self._targets[task.id]  # the store has caught up
        if page.total is not None:
            total = page.total
        else:  # filtered: the exact total would need a scan; offer one more page if full
            total = offset + len(page) + (limit if len(page) == limit else 0)
        table.set_rows(total, offset, page)

    async def _page(self, offset: int, limit: int) -> TaskPage:
        where = self.query_filter.describe() or None
        return await self.engine.tasks(state=self.state, limit=limit, offset=offset, where=where)

    async def _around(self, task_id: str, limit: int) -> TaskPage | None:
        """The rows around the task's new place in this tab (None if it left the tab, or
        under a query other than handler= and queue=, which cannot be read by key)."""
        pins = self.query_filter.pins(self.engine.snapshot().encrypted)
        if pins is None:
            return None
        return await self.engine.tasks_around(
            task_id, self.state, pins.get("queue"), limit, limit // 3, handler=pins.get("handler")
        )

    # -- actions on the selected task ------------------------------------------------
    @property
    def selected(self) -> TaskRecord | None:
        return self.table.selected

    def _need_selection(self, verb: str) -> TaskRecord | None:
        task = self.selected
        if task is None:
            self.app.notify(f"nothing to {verb}: no task is selected", severity="warning")
        return task

    @work(group="task-action")
    async def cancel_selected(self) -> None:
        task = self._need_selection("cancel")
        if task is None:
            return
        if await cancel_task(self.app, self.engine, task.id, "; r retries it"):
            self.reload()

    @work(group="task-action")
    async def change_priority(self, delta: int) -> None:
        task = self._need_selection("reprioritise")
        if task is None:
            return
        current = self._targets.get(task.id, task.priority)
        target = max(MIN_PRIORITY, min(MAX_PRIORITY, current + delta))
        if target == current:
            edge = "highest" if delta > 0 else "lowest"
            self.app.notify(
                f"task {task.id} is already at priority {current} (the {edge})", severity="warning"
            )
            return
        self._targets[task.id] = target
        try:
            await self.engine.reprioritize(task.id, target)
        except (LookupError, ValueError) as exc:
            self._targets.pop(task.id, None)
            self.app.notify(f"cannot change priority: {exc}", severity="warning")
            return
        self.table.select_task(task.id)
        self.app.notify(f"task {task.id}: priority {current} → {target}", timeout=2)
        self.reload()

    @work(group="task-action")
    async def retry_selected(self) -> None:
        task = self._need_selection("retry")
        if task is None:
            return
        if await retry_task(self.app, self.engine, task.id):
            self.reload()
