"""One task in full: fields, payload, result, error with its traceback, and the
timeline of every state change. Refreshes while open.

| Key | Does |
| --- | --- |
| c | cancel the task |
| r | retry it (failed or cancelled) |
| escape | close |
"""

from __future__ import annotations

import json
import time
from typing import Any

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from console.format import ago, bar
from console.task_actions import cancel_task, retry_task
from engine import Engine, EngineNotRunning, StoreError, TaskRecord

MAX_JSON_LINES = 400


def when(at: float | None, now: float) -> str:
    if at is None:
        return "–"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
    delta = now - at
    return f"{stamp} ({ago(abs(delta))} {'ago' if delta >= 0 else 'from now'})"


def json_block(value: Any) -> RenderableType:
    if value is None:
        return Text("–", style="dim")
    text = json.dumps(value, indent=2, ensure_ascii=False)
    lines = text.splitlines()
    if len(lines) > MAX_JSON_LINES:
        text = "\n".join(lines[:MAX_JSON_LINES]) + f"\n… {len(lines) - MAX_JSON_LINES:,} more lines"
    return Syntax(text, "json", word_wrap=True, background_color="default")


def detail(task: TaskRecord, now: float) -> RenderableType:
    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="bold")
    fields.add_column()
    progress = ""
    if task.progress is not None:
        progress = (
            f"{bar(task.progress, 20)} {task.progress * 100:.0f}% {task.progress_message or ''}"
        )
    for label, value in (
        ("state", task.state.value),
        ("handler", task.handler),
        ("queue", task.queue),
        ("priority", str(task.priority)),
        ("attempts", f"{task.attempts} of {task.max_attempts}"),
        ("worker", task.worker or "–"),
        ("created", when(task.created_at, now)),
        ("due", when(task.run_at, now) if task.run_at else "–"),
        ("started", when(task.started_at, now)),
        ("finished", when(task.finished_at, now)),
        ("waited", ago(task.wait_time)),
        ("ran", ago(task.run_time)),
        ("progress", progress or "–"),
    ):
        fields.add_row(label, value)
    timeline = Table(
        "when", "state", "attempt", "by", "note", box=None, padding=(0, 2), header_style="bold dim"
    )
    for entry in task.timeline:
        stamp = (
            time.strftime("%H:%M:%S", time.localtime(entry.at)) + f".{int(entry.at % 1 * 1000):03d}"
        )
        timeline.add_row(
            stamp, entry.state.value, str(entry.attempt), entry.by or "", entry.note or ""
        )
    parts: list[RenderableType] = [
        fields,
        Text("\nPayload", style="bold underline"),
        json_block(task.payload),
        Text("\nResult", style="bold underline"),
        json_block(task.result),
    ]
    if task.error:
        parts += [
            Text("\nError", style="bold underline red"),
            Text(task.error.rstrip(), style="red"),
        ]
    parts += [Text("\nTimeline", style="bold underline"), timeline]
    return Group(*parts)


class TaskDetailScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("c", "cancel_task", "Cancel task"),
        Binding("r", "retry_task", "Retry"),
        Binding("escape", "close", "Close"),
    ]

    def __init__(self, engine: Engine, task_id: str) -> None:
        super().__init__()
        self.engine = engine
        self.task_id = task_id
        self.record: TaskRecord | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide tall"):
            yield Static(f"Task #{self.task_id}", id="detail-title", classes="dialog-title")
            with VerticalScroll(id="detail-body"):
                yield Static("loading…", id="detail")
            yield Static(
                "[b]c[/b] cancel · [b]r[/b] retry · [b]esc[/b] close", classes="dialog-keys"
            )

    def on_mount(self) -> None:
        self.load()
        self.set_interval(1.0, self.load)

    @work(exclusive=True, group="detail")
    async def load(self) -> None:
        try:
            task = await self.engine.get(self.task_id)
        except (EngineNotRunning, StoreError):
            return  # the console is closing
        except LookupError:
            self.query_one("#detail", Static).update(
                Text(f"task {self.task_id} no longer exists (purged or expired)", style="bold")
            )
            return
        if task == self.record or not self.is_attached:
            return
        self.record = task
        self.query_one("#detail-title", Static).update(
            f"Task #{task.id} · {task.handler} · {task.state.value}"
        )
        self.query_one("#detail", Static).update(detail(task, time.time()))

    @work(exclusive=True, group="detail-action")
    async def action_cancel_task(self) -> None:
        if await cancel_task(self.app, self.engine, self.task_id):
            self.load()

    @work(exclusive=True, group="detail-action")
    async def action_retry_task(self) -> None:
        if await retry_task(self.app, self.engine, self.task_id):
            self.load()

    def action_close(self) -> None:
        self.dismiss(None)
