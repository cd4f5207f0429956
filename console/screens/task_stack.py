"""The live stack of a running task (``K`` in task detail): what its handler's code
is doing right now, on whichever node runs it. Handler frames first (its function,
then what it called, down to the line it is on), engine frames folded into one line.
Taken once when opened; ``r`` takes it again.

| Key | Does |
| --- | --- |
| r | take the stack again |
| escape | close |
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from console.format import clock
from engine import Engine, EngineNotRunning, StackTrace, StoreError, TaskNotFound, TaskNotRunning

KEYS = "[b]r[/b] refresh · [b]esc[/b] close"


class TaskStackScreen(ModalScreen[None]):
    """One running task's live stack; see the module docstring."""

    BINDINGS = [
        Binding("r", "refresh_stack", "Refresh", tooltip="Take the task's stack again"),
        Binding("escape", "close", "Close"),
    ]

    def __init__(self, engine: Engine, task_id: str) -> None:
        super().__init__()
        self.engine = engine
        self.task_id = task_id
        self.trace: StackTrace | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide tall"):
            yield Static(f"Live stack · task #{self.task_id}", id="stack-title",
                         classes="dialog-title")  # fmt: skip
            with VerticalScroll(id="stack-body"):
                yield Static("taking the stack…", id="stack")
            yield Static(KEYS, classes="dialog-keys")

    def on_mount(self) -> None:
        self.load()

    @work(exclusive=True, group="stack")
    async def load(self) -> None:
        body = self.query_one("#stack", Static)
        try:
            trace = await self.engine.stack(self.task_id)
        except (EngineNotRunning, StoreError) as exc:  # closing, or a read-only store
            body.update(Text(f"cannot take the stack: {exc}", style="bold"))
            return
        except (TaskNotRunning, TaskNotFound) as exc:
            body.update(Text(str(exc).strip("'\""), style="bold"))
            return
        if not self.is_attached:
            return
        self.trace = trace
        self.query_one("#stack-title", Static).update(
            f"Live stack · task #{trace.task_id} · {trace.handler} · {trace.executor}"
        )
        body.update(stack_view(trace))

    def action_refresh_stack(self) -> None:
        self.load()

    def action_close(self) -> None:
        self.dismiss(None)


def stack_view(trace: StackTrace) -> RenderableType:
    """Where it was taken, then each frame: function and place, its source line below;
    folded engine frames as one dim line."""
    parts: list[RenderableType] = [
        Text(f"node {trace.node} · taken {clock(trace.taken_at, millis=True)}", style="dim")
    ]
    top = trace.top
    for frame in trace.frames:
        if frame.folded:
            plural = "s" if frame.folded != 1 else ""
            parts.append(Text(f"… {frame.folded} {frame.function} frame{plural}", style="dim"))
            continue
        head = Text()
        head.append(frame.function, style="bold")
        head.append(f"  {frame.where}", style="dim")
        if frame is top:
            head.append("  ← now", style="bold")
        parts.append(head)
        if frame.source:
            parts.append(Text(f"    {frame.source}", style="reverse" if frame is top else ""))
    if top is None:
        parts.append(Text("no handler frame: it is between steps; press r", style="italic"))
    return Group(*parts)
