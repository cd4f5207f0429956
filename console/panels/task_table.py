"""A table of tasks drawn line by line: only the visible lines cost anything.

The table knows how many rows there are in all (a million queued tasks is fine)
but holds only a *window* of them. When the visible part leaves that window it
posts :class:`TaskTable.WindowNeeded` and its owner fetches the rows. The
cursor sticks to a task, not a row number: when a refresh moves the selected
task (it was reprioritised, or newer tasks arrived above it), the cursor follows.

| Key | Does |
| --- | --- |
| up / down | move the cursor |
| pageup / pagedown | move a screen |
| home / end | first / last task |
| enter | open the task (posts ``TaskTable.Opened``) |
| y | the WHY column (why each waiting task has not started) in place of PROGRESS |

Marked tasks (:attr:`TaskTable.marks`, by id) show a ``●`` in the first column; the
console's keys mark them (space, ``v``, ``V``) and act on them (:mod:`console.marks`).
A change to the marks posts :class:`TaskTable.MarksChanged`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.events import Click
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from console.format import Column, ago, bar
from engine import TaskRecord, TaskState

COLUMNS = (
    Column("mark", "", 1),
    Column("id", "ID", 8),
    Column("handler", "HANDLER", 0),
    Column("queue", "QUEUE", 13),
    Column("priority", "PRI", 3, right=True),
    Column("state", "STATE", 9),
    Column("age", "AGE", 8, right=True),
    Column("attempts", "TRY", 5, right=True),
    Column("progress", "PROGRESS", 16),
)
GAP = 1
MIN_HANDLER = 16
#: The handler column takes what the others leave, up to this (a wide screen leaves the
#: rest blank rather than pushing QUEUE … PROGRESS ninety columns to the right).
MAX_HANDLER = 40
STATE_COLUMN = [c.key for c in COLUMNS].index("state")
#: The first column of a marked task's row.
MARK = "●"
#: The state cell of a queued task whose handler no alive node runs (attached).
UNSERVED_MARK = "⚠ no node"
#: Dropped first when the table is narrow (their cells become empty).
DROP_ORDER = ("progress", "attempts", "queue")


def column_widths(width: int) -> list[int]:
    """Widths for ``width`` cells: the handler takes what the fixed columns leave (at
    most MAX_HANDLER); when that is under MIN_HANDLER, whole columns are dropped
    (width 0) rather than every column squeezed into ellipses."""
    widths = [c.width for c in COLUMNS]
    dropped: set[str] = set()

    def rest() -> int:
        shown = [w for c, w in zip(COLUMNS, widths, strict=True) if c.key not in dropped]
        fixed = sum(w for w in shown if w)
        return width - fixed - GAP * (len(shown) - 1)

    for key in DROP_ORDER:
        if rest() >= MIN_HANDLER:
            break
        dropped.add(key)
    flexible = [i for i, c in enumerate(COLUMNS) if c.width == 0]
    for i in flexible:
        widths[i] = max(1, min(MAX_HANDLER, rest() // len(flexible)))
    return [0 if c.key in dropped else w for c, w in zip(COLUMNS, widths, strict=True)]


def fit(text: str, width: int, right: bool = False) -> str:
    if len(text) > width:
        return text[: max(0, width - 1)] + "…" if width > 0 else ""
    return text.rjust(width) if right else text.ljust(width)


def header_text(width: int, why: bool = False) -> str:
    """The column labels; ``why``: the last column is WHY (see ``TaskTable.why``)."""
    widths = column_widths(width)
    return (" " * GAP).join(
        fit("WHY" if why and c.key == "progress" else c.label, w, c.right)
        for c, w in zip(COLUMNS, widths, strict=True)
        if w
    )


def age_text(task: TaskRecord, now: float) -> str:
    """Waiting time for queued tasks, due time for scheduled ("waiting" for a workflow
    step waiting for earlier steps), elapsed for running, and how long ago for finished
    ones."""
    if task.state == TaskState.SCHEDULED and task.waiting:
        return "waiting"
    if task.state == TaskState.QUEUED:
        return ago(now - (task.run_at or task.created_at))
    if task.state == TaskState.SCHEDULED:
        return "in " + ago((task.run_at or now) - now)
    if task.state == TaskState.RUNNING:
        return ago(now - (task.started_at or now))
    return ago(now - (task.finished_at or now))


def shown_progress(task: TaskRecord) -> float | None:
    """The progress to show: a succeeded task is done (100 %) whatever its handler last
    reported (progress is saved every ``progress_interval``, not at the end)."""
    if task.progress is not None and task.state == TaskState.SUCCEEDED:
        return 1.0
    return task.progress


def cell_values(task: TaskRecord, now: float, progress_width: int) -> list[str]:
    progress = ""
    fraction = shown_progress(task)
    if fraction is not None:
        pct = f"{fraction * 100:3.0f}%"
        progress = bar(fraction, max(0, progress_width - len(pct) - 1)) + " " + pct
    return [
        "",
        task.id,
        task.handler,
        task.queue,
        str(task.priority),
        task.state.value,
        age_text(task, now),
        f"{task.attempts}/{task.max_retries + 1}",
        progress,
    ]


class TaskTable(ScrollView, can_focus=True):
    """Tasks, one per line, over a window of a possibly huge list."""

    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
        Binding("enter", "open", "Open", tooltip="Open the task: payload, result, error, timeline"),
        Binding(
            "y",
            "toggle_why",
            "Why column",
            show=False,
            tooltip="Why each waiting task has not started, in place of PROGRESS",
        ),
    ]

    COMPONENT_CLASSES = {
        "task-table--cursor",
        "task-table--marked",
        "task-table--loading",
        "task-table--state-queued",
        "task-table--state-scheduled",
        "task-table--state-running",
        "task-table--state-succeeded",
        "task-table--state-failed",
        "task-table--state-cancelled",
        "task-table--unserved",
    }

    DEFAULT_CSS = """
    TaskTable { height: 1fr; overflow-x: hidden; }
    TaskTable > .task-table--cursor { background: $accent 30%; }
    TaskTable:focus > .task-table--cursor { background: $accent; color: $text; text-style: bold; }
    TaskTable > .task-table--marked { color: $accent; text-style: bold; }
    TaskTable > .task-table--loading { color: $text-muted; }
    TaskTable > .task-table--state-queued { color: $text; }
    TaskTable > .task-table--state-scheduled { color: $secondary; }
    TaskTable > .task-table--state-running { color: $warning; }
    TaskTable > .task-table--state-succeeded { color: $success; }
    TaskTable > .task-table--state-failed { color: $error; }
    TaskTable > .task-table--state-cancelled { color: $text-muted; }
    TaskTable > .task-table--unserved { color: $warning; text-style: bold; }
    """

    class WindowNeeded(Message):
        """The visible rows are outside the fetched window: fetch ``limit`` from ``offset``."""

        def __init__(self, table: TaskTable, offset: int, limit: int) -> None:
            super().__init__()
            self.table = table
            self.offset = offset
            self.limit = limit

        @property
        def control(self) -> TaskTable:
            return self.table

    class Opened(Message):
        """Enter was pressed on a task."""

        def __init__(self, table: TaskTable, task: TaskRecord) -> None:
            super().__init__()
            self.table = table
            self.task = task

        @property
        def control(self) -> TaskTable:
            return self.table

    class MarksChanged(Message):
        """Tasks were marked or unmarked (``TaskTable.marks`` holds them)."""

    def __init__(
        self,
        now: Callable[[], float] = time.time,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._now = now
        self._rows: list[TaskRecord] = []
        self._offset = 0
        self._total = 0
        self.cursor = 0
        self.selected_id: str | None = None
        self._empty_text = "no tasks"
        self._requested: tuple[int, int] | None = None
        self._painted_ages: tuple[str, ...] = ()
        self._unserved: frozenset[str] = frozenset()
        self._why: dict[str, str] | None = None
        self._marks: dict[str, None] = {}  # ids, in the order they were marked

    # -- data ---------------------------------------------------------------------
    @property
    def empty_text(self) -> str:
        """What the table says when it has no rows ("no failed tasks")."""
        return self._empty_text

    @empty_text.setter
    def empty_text(self, text: str) -> None:
        if text != self._empty_text:
            self._empty_text = text
            self.refresh()  # an empty table gets no new rows to repaint it

    @property
    def unserved(self) -> frozenset[str]:
        """Handlers no node runs (attached): their queued rows are marked "⚠ no node"."""
        return self._unserved

    @unserved.setter
    def unserved(self, handlers: frozenset[str]) -> None:
        if handlers != self._unserved:
            self._unserved = handlers
            self.refresh()

    @property
    def why(self) -> dict[str, str] | None:
        """Task id → why it waits, shown in place of PROGRESS; None: the column is off."""
        return self._why

    @why.setter
    def why(self, texts: dict[str, str] | None) -> None:
        if texts != self._why:
            self._why = texts
            self.refresh()

    def rows_on_screen(self) -> list[TaskRecord]:
        """The rows on screen (of those fetched)."""
        top = int(self.scroll_y) - self._offset
        return self._rows[max(0, top) : max(0, top + self.size.height)]

    def action_toggle_why(self) -> None:
        self.why = None if self._why is not None else {}

    @property
    def total(self) -> int:
        return self._total

    @property
    def held(self) -> tuple[int, list[TaskRecord]]:
        """(offset, rows): the rows fetched, from which row on."""
        return self._offset, list(self._rows)

    @property
    def window(self) -> tuple[int, int]:
        """(offset, limit) of the rows to keep fetched around the visible part."""
        height = max(1, self.size.height)
        offset = max(0, int(self.scroll_y) - height)
        return offset, height * 3

    @property
    def selected(self) -> TaskRecord | None:
        index = self.cursor - self._offset
        if 0 <= index < len(self._rows):
            return self._rows[index]
        return None

    def set_rows(self, total: int, offset: int, rows: Sequence[TaskRecord]) -> None:
        """New data for rows ``offset`` … of ``total``; the cursor follows its task."""
        rows = list(rows)
        same = (
            offset == self._offset and max(total, offset + len(rows)) == self._total
            and rows == self._rows
        )  # fmt: skip
        self._requested = None
        if same:  # nothing to repaint (ages are redrawn by the panel once a second)
            return
        self._total = max(total, offset + len(rows))
        self._offset = offset
        self._rows = rows
        self.virtual_size = Size(self.line_width, self._total)
        if self.selected_id is not None:
            for i, task in enumerate(self._rows):
                if task.id == self.selected_id:
                    self._move_cursor(offset + i, follow=True)
                    break
            else:
                self._move_cursor(min(self.cursor, max(0, self._total - 1)), follow=False)
        else:
            self._move_cursor(min(self.cursor, max(0, self._total - 1)), follow=False)
        self.refresh()

    def tick(self) -> None:
        """Redraw when an age on screen would read differently (one-second resolution)."""
        top = int(self.scroll_y) - self._offset
        visible = self._rows[max(0, top) : max(0, top + self.size.height)]
        if not visible:
            return
        now = self._now()
        ages = tuple(age_text(task, now) for task in visible)
        if ages != self._painted_ages:
            self._painted_ages = ages
            self.refresh()

    def select_task(self, task_id: str) -> None:
        """Put the cursor on ``task_id`` once it is in the fetched rows."""
        self.selected_id = task_id
        for i, task in enumerate(self._rows):
            if task.id == task_id:
                self._move_cursor(self._offset + i, follow=True)
                return

    # -- marks ----------------------------------------------------------------------
    @property
    def marks(self) -> list[str]:
        """The marked tasks' ids, in the order they were marked."""
        return list(self._marks)

    def toggle_mark(self) -> None:
        """Mark the task under the cursor (or unmark it), then move down a row."""
        task = self.selected
        if task is None:
            return
        if task.id in self._marks:
            del self._marks[task.id]
        else:
            self._marks[task.id] = None
        self._marks_changed()
        self.action_cursor(1)

    def visible_ids(self) -> list[str]:
        """The ids of the rows on screen now."""
        top = int(self.scroll_y) - self._offset
        return [t.id for t in self._rows[max(0, top) : max(0, top + self.size.height)]]

    def mark(self, ids: Sequence[str]) -> int:
        """Mark these tasks too; returns how many were not marked before."""
        before = len(self._marks)
        self._marks.update(dict.fromkeys(ids))
        self._marks_changed()
        return len(self._marks) - before

    def unmark(self, ids: Iterable[str]) -> None:
        for task_id in ids:
            self._marks.pop(task_id, None)
        self._marks_changed()

    def clear_marks(self) -> int:
        """Unmark every task; returns how many were marked."""
        count = len(self._marks)
        self._marks.clear()
        self._marks_changed()
        return count

    def _marks_changed(self) -> None:
        self.refresh()
        self.post_message(self.MarksChanged())

    # -- cursor ---------------------------------------------------------------------
    def _move_cursor(self, row: int, *, follow: bool) -> None:
        row = max(0, min(row, max(0, self._total - 1)))
        self.cursor = row
        task = self.selected
        if task is not None:
            self.selected_id = task.id
        elif not follow:
            self.selected_id = None
        height = max(1, self.size.height)
        if row < self.scroll_y:
            self.scroll_to(y=row, animate=False, immediate=True)
        elif row >= self.scroll_y + height:
            self.scroll_to(y=row - height + 1, animate=False, immediate=True)
        self._check_window()
        self.refresh()

    def action_cursor(self, delta: int) -> None:
        self._move_cursor(self.cursor + delta, follow=False)

    def action_page(self, direction: int) -> None:
        self._move_cursor(self.cursor + direction * max(1, self.size.height - 1), follow=False)

    def action_jump(self, where: int) -> None:
        self._move_cursor(0 if where == 0 else self._total - 1, follow=False)

    def action_open(self) -> None:
        task = self.selected
        if task is not None:
            self.post_message(self.Opened(self, task))

    def on_click(self, event: Click) -> None:
        self._move_cursor(int(self.scroll_y) + event.y, follow=False)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self._check_window()

    def on_resize(self) -> None:
        self.virtual_size = Size(self.line_width, self._total)
        self._check_window()

    def _check_window(self) -> None:
        top = int(self.scroll_y)
        bottom = min(self._total, top + max(1, self.size.height))
        have_from, have_to = self._offset, self._offset + len(self._rows)
        if top >= have_from and bottom <= have_to:
            return
        request = self.window
        if request != self._requested:
            self._requested = request
            self.post_message(self.WindowNeeded(self, *request))

    # -- drawing --------------------------------------------------------------------
    @property
    def line_width(self) -> int:
        """Cells a line may use: the width inside the scrollbar."""
        return max(1, self.scrollable_content_region.width)

    def render_line(self, y: int) -> Strip:
        width = self.line_width
        row = int(self.scroll_y) + y
        if self._total == 0:
            text = fit(self.empty_text, width) if y == 0 else " " * width
            return Strip([Segment(text, self.get_component_rich_style("task-table--loading"))])
        if row >= self._total:
            return Strip.blank(width, self.rich_style)
        index = row - self._offset
        if not 0 <= index < len(self._rows):
            style = self.get_component_rich_style("task-table--loading")
            return Strip([Segment(fit("  …", width), style)])
        return self._render_task(self._rows[index], width, row == self.cursor)

    def _render_task(self, task: TaskRecord, width: int, is_cursor: bool) -> Strip:
        widths = column_widths(width)
        values = cell_values(task, self._now(), widths[-1])
        base = self.rich_style
        state_style = self.get_component_rich_style(f"task-table--state-{task.state.value}")
        if task.state == TaskState.QUEUED and task.handler in self._unserved:
            values[STATE_COLUMN] = UNSERVED_MARK  # it waits for a node that has its handler
            state_style = self.get_component_rich_style("task-table--unserved")
        if self._why is not None:
            values[-1] = self._why.get(task.id, "")
        if task.id in self._marks:
            values[0] = MARK
        marked = self.get_component_rich_style("task-table--marked")
        cursor = self.get_component_rich_style("task-table--cursor") if is_cursor else Style()
        segments: list[Segment] = []
        for column, w, value in zip(COLUMNS, widths, values, strict=True):
            if not w:
                continue
            if segments:
                segments.append(Segment(" " * GAP, base + cursor))
            style = base + (state_style if column.key in ("state", "progress") else Style())
            style += marked if column.key in ("mark", "id") and values[0] else Style()
            segments.append(Segment(fit(value, w, column.right), style + cursor))
        return Strip(segments).adjust_cell_length(width, base + cursor)
