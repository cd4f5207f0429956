"""One task in full: fields (with, under the state, why a task that has not started
is waiting: ``engine.diagnose.why``), payload, result, error with its traceback, the
workflow it is a step of (every step with its state), and the timeline of every
state change. Refreshes while open. ``l`` switches to the task's log (what its handler
logged, per attempt), which follows a running task live; ``l`` again goes back.

| Key | Does |
| --- | --- |
| c | cancel the task |
| r | retry it (failed or cancelled; a stopped workflow goes on after it) |
| E | edit it (not running): payload, priority, queue, retries; save, or save and retry |
| l | the task's log (follows a running task live) / back to the detail |
| K | the live stack of a running task (what its handler is doing now) |
| [ / ] | the previous / next step of its workflow |
| escape | close |
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from rich.console import Group, RenderableType
from rich.style import Style
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from console.format import ago, bar, clock, when
from console.panels.task_table import shown_progress
from console.read_only import HIDDEN, payloads_hidden
from console.screens.edit import EditScreen
from console.screens.task_stack import TaskStackScreen
from console.states import state_style
from console.task_actions import cancel_task, retry_task
from engine import (
    TERMINAL_STATES,
    AuditEntry,
    Engine,
    EngineNotRunning,
    LogLine,
    StoreError,
    TaskRecord,
    TaskState,
    WhyWaiting,
    WorkflowRecord,
    WorkflowStep,
)

MAX_JSON_LINES = 400
EDITABLE = (TaskState.QUEUED, TaskState.SCHEDULED, TaskState.FAILED, TaskState.CANCELLED)
KEYS = "[b]c[/b] cancel · [b]r[/b] retry · [b]E[/b] edit · [b]l[/b] logs · [b]esc[/b] close"
#: how a log line's level is shown (debug dim, warnings bold, errors red)
LEVEL_STYLES = {"DEBUG": "dim", "WARNING": "bold", "ERROR": "bold red", "CRITICAL": "bold red"}
#: log lines the Logs view keeps (the newest; the CLI's ``taskdeck logs`` has them all)
MAX_SHOWN_LINES = 5_000
#: The keys line of a workflow step (``\\[`` is a literal bracket in Textual markup).
STEP_KEYS = KEYS.replace(" · [b]esc", " · [b]\\[[/b] / [b]][/b] previous / next step · [b]esc")

StyleOf = Callable[[str], Style]


def json_block(value: Any) -> RenderableType:
    if value is None:
        return Text("–", style="dim")
    text = json.dumps(value, indent=2, ensure_ascii=False)
    lines = text.splitlines()
    if len(lines) > MAX_JSON_LINES:
        text = "\n".join(lines[:MAX_JSON_LINES]) + f"\n… {len(lines) - MAX_JSON_LINES:,} more lines"
    return Syntax(text, "json", word_wrap=True, background_color="default")


def step_note(step: WorkflowStep) -> str:
    """What the state alone does not say: waiting for earlier steps, stopped before it ran."""
    notes = ["callback"] if step.callback else []
    if step.waiting and step.state == TaskState.SCHEDULED:
        notes.append("waiting")
    elif step.waiting and step.state == TaskState.CANCELLED:
        notes.append("never ran")
    return ", ".join(notes)


def workflow_section(
    flow: WorkflowRecord, task_id: str, style_of: StyleOf, now: float
) -> list[RenderableType]:
    """``chain 12 · running`` and a row per step, this task marked."""
    steps = Table(
        "", "step", "task", "handler", "state", "ran", "", box=None, padding=(0, 2),
        header_style="bold dim",
    )  # fmt: skip
    for step in flow.steps:
        here = step.task_id == task_id
        ran = ""
        if step.started_at is not None:
            ran = ago((step.finished_at or now) - step.started_at)
        steps.add_row(
            Text("▶", style="bold") if here else "",
            str(step.index + 1),
            Text(f"#{step.task_id}", style="bold" if here else ""),
            Text(step.handler, style="bold" if here else ""),
            Text(step.state.value, style=style_of(step.state.value)),
            ran,
            Text(step_note(step) + (" ← this task" if here else ""), style="dim"),
        )
    head = Text(f"{flow.kind} {flow.id} · ")
    head.append(flow.state, style=style_of(flow.state))
    head.append(f" · {len(flow.steps)} steps", style="dim")
    return [Text("\nWorkflow", style="bold underline"), head, steps]


def detail(
    task: TaskRecord,
    now: float,
    flow: WorkflowRecord | None = None,
    style_of: StyleOf = lambda state: Style(),
    hide_payloads: bool = False,
    actions: Sequence[AuditEntry] = (),
    why: WhyWaiting | None = None,
) -> RenderableType:
    """Everything about a task; ``hide_payloads``: its payload and result replaced by
    :data:`~console.read_only.HIDDEN` (the error stays: an operator needs it); ``why``:
    why it has not started (shown under the state)."""
    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="bold")
    fields.add_column()
    progress = ""
    fraction = shown_progress(task)
    if fraction is not None:
        progress = f"{bar(fraction, 20)} {fraction * 100:.0f}% {task.progress_message or ''}"
    due = when(task.run_at, now) if task.run_at else "–"
    if task.waiting and task.state == TaskState.SCHEDULED:
        due = "when the steps before it have succeeded"
    rows: list[tuple[str, str | Text]] = [
        ("state", Text(task.state.value, style=style_of(task.state.value))),
        *why_row(why),
        ("handler", task.handler),
        ("queue", task.queue),
        ("priority", str(task.priority)),
        ("attempts", f"{task.attempts} of {task.max_attempts}"),
        ("worker", task.worker or "–"),
        ("created", when(task.created_at, now)),
        ("due", due),
        ("started", when(task.started_at, now)),
        ("finished", when(task.finished_at, now)),
        ("waited", ago(task.wait_time)),
        ("ran", ago(task.run_time)),
        ("progress", progress or "–"),
    ]
    if task.workflow_id is not None:
        kind = flow.kind if flow is not None else "workflow"
        of = f" of {len(flow.steps)}" if flow is not None else ""
        rows.insert(4, ("workflow", f"{kind} {task.workflow_id}, step {(task.step or 0) + 1}{of}"))
    if task.unique_key is not None:
        rows.append(("unique key", task.unique_key))
    if task.webhook is not None:
        rows.append(("webhook", task.webhook))
    for label, value in rows:
        fields.add_row(label, value)
    timeline = Table(
        "when", "state", "attempt", "by", "note", box=None, padding=(0, 2), header_style="bold dim"
    )
    steps: list[tuple[float, tuple[str | Text, ...]]] = []
    for entry in task.timeline:
        row: tuple[str | Text, ...] = (
            entry.state.value, str(entry.attempt), entry.by or "", entry.note or "",
        )  # fmt: skip
        steps.append((entry.at, row))
    for act in actions:  # operators' actions on it, from the audit trail
        said = act.outcome if act.ok else f"refused: {act.outcome}"
        note = f"{said} · note: {act.note}" if act.note else said
        row = (Text(f"» {act.action}", style="italic"), "", f"{act.who} ({act.interface})", note)
        steps.append((act.at, row))
    for at, cells in sorted(steps, key=lambda step: step[0]):
        timeline.add_row(clock(at, date=False, millis=True), *cells)
    parts: list[RenderableType] = [fields]
    if flow is not None:
        parts += workflow_section(flow, task.id, style_of, now)
    hidden = Text(HIDDEN, style="dim italic")
    parts += [
        Text("\nPayload", style="bold underline"),
        hidden if hide_payloads else json_block(task.payload),
        Text("\nResult", style="bold underline"),
        hidden if hide_payloads and task.result is not None else json_block(task.result),
    ]
    if task.error:
        parts += [
            Text("\nError", style="bold underline red"),
            Text(task.error.rstrip(), style="red"),
        ]
    parts += [Text("\nTimeline", style="bold underline"), timeline]
    return Group(*parts)


def log_view(task_id: str, lines: Sequence[LogLine], running: bool) -> RenderableType:
    """The task's log: one line each, ``05:21:40.123 #1 INFO logger: message``."""
    if not lines:
        note = "nothing logged yet" if running else "this task logged nothing"
        return Text(f"Logs of task #{task_id}: {note}", style="dim")
    out = Text()
    for line in lines:
        out.append(f"{clock(line.at, date=False, millis=True)} #{line.attempt} ", style="dim")
        out.append(f"{line.level:<8} ", style=LEVEL_STYLES.get(line.level, ""))
        out.append(f"{line.logger}: ", style="dim")
        out.append(line.message.rstrip() + "\n", style=LEVEL_STYLES.get(line.level, ""))
    if running:
        out.append("… following: new lines appear as the task logs them", style="dim italic")
    return out


def why_row(why: WhyWaiting | None) -> list[tuple[str, str | Text]]:
    """The ``why`` row: why a queued, scheduled or held task has not started (and a
    finished one's retry that would wait for a unique key); none otherwise."""
    if why is None or why.code in ("running", "finished"):
        return []
    return [("why", Text(why.text, style="bold"))]


async def why_of(engine: Engine, task: TaskRecord) -> WhyWaiting | None:
    """``engine.diagnose.why`` for a task that may wait (None for one that has
    succeeded; None if the answer cannot be read now)."""
    if task.state is TaskState.SUCCEEDED:
        return None
    try:
        return await engine.diagnose.why(task.id)
    except LookupError:
        return None


class TaskDetailScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("c", "cancel_task", "Cancel task"),
        Binding("r", "retry_task", "Retry"),
        Binding("E", "edit_task", "Edit", tooltip="Edit the task (not running): a form"),
        Binding(
            "l",
            "toggle_logs",
            "Logs",
            tooltip="The task's log lines (follows a running task); l again: the detail",
        ),
        Binding(
            "left_square_bracket",
            "step(-1)",
            "Previous step",
            key_display="[",
            tooltip="Show the previous step of the task's workflow",
        ),
        Binding(
            "right_square_bracket",
            "step(1)",
            "Next step",
            key_display="]",
            tooltip="Show the next step of the task's workflow",
        ),
        Binding(
            "K",
            "show_stack",
            "Live stack",
            tooltip="What a running task's handler is doing now: its live stack (any node)",
        ),
        Binding("escape", "close", "Close"),
    ]

    def __init__(self, engine: Engine, task_id: str) -> None:
        super().__init__()
        self.engine = engine
        self.task_id = task_id
        self.record: TaskRecord | None = None
        self.workflow: WorkflowRecord | None = None
        self.actions: list[AuditEntry] = []
        self.why: WhyWaiting | None = None
        self.showing_logs = False
        self.log_lines: list[LogLine] = []

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide tall"):
            yield Static(f"Task #{self.task_id}", id="detail-title", classes="dialog-title")
            with VerticalScroll(id="detail-body"):
                yield Static("loading…", id="detail")
            yield Static(KEYS, id="detail-keys", classes="dialog-keys")

    def on_mount(self) -> None:
        self.load()
        self.set_interval(1.0, self.load)

    @work(exclusive=True, group="detail")
    async def load(self) -> None:
        task_id = self.task_id
        flow = None
        try:
            task = await self.engine.get(task_id)
            if task.workflow_id is not None:
                flow = await self.engine.workflow(task.workflow_id)
            actions = await self.engine.audit.entries(task=task_id, limit=100)
            why = await why_of(self.engine, task)
            after = self.log_lines[-1].seq if self.log_lines else None
            new_lines = await self.engine.logs(task_id, after=after)
        except (EngineNotRunning, StoreError):
            return  # the console is closing
        except LookupError:
            self.query_one("#detail", Static).update(
                Text(f"task {task_id} no longer exists (purged or expired)", style="bold")
            )
            return
        unchanged = (task, flow, actions, why) == (
            self.record,
            self.workflow,
            self.actions,
            self.why,
        )
        if (unchanged and not new_lines) or task_id != self.task_id or not self.is_attached:
            return
        self.record, self.workflow, self.actions, self.why = task, flow, actions, why
        self.log_lines = [*self.log_lines, *new_lines][-MAX_SHOWN_LINES:]
        self.show()

    def show(self) -> None:
        """Draw the detail, or the log, of the task as last loaded."""
        task, flow, actions, why = self.record, self.workflow, self.actions, self.why
        if task is None:
            return
        view = " · log" if self.showing_logs else ""
        self.query_one("#detail-title", Static).update(
            f"Task #{task.id} · {task.handler} · {task.state.value}{view}"
        )
        keys = STEP_KEYS if flow else KEYS
        if task.state == TaskState.RUNNING:  # not editable; its live stack instead
            keys = keys.replace("[b]E[/b] edit", "[b]K[/b] stack")
        if self.showing_logs:
            keys = keys.replace("[b]l[/b] logs", "[b]l[/b] back to the detail")
        self.query_one("#detail-keys", Static).update(keys)
        body = self.query_one("#detail", Static)
        if self.showing_logs:
            scroll = self.query_one("#detail-body", VerticalScroll)
            at_end = scroll.scroll_y >= scroll.max_scroll_y
            running = task.state not in TERMINAL_STATES
            body.update(log_view(task.id, self.log_lines, running))
            if at_end:  # following: keep the newest line in sight
                scroll.call_after_refresh(scroll.scroll_end, animate=False)
            return
        hide = payloads_hidden(self.app)
        style_of = partial(state_style, body)
        shown = detail(
            task, time.time(), flow, style_of, hide_payloads=hide, actions=actions, why=why
        )
        count = len(self.log_lines)
        logged = f"{count:,} lines · press l to show them" if count else "none yet"
        body.update(Group(shown, Text("\nLogs", style="bold underline"), Text(logged, style="dim")))

    def action_step(self, delta: int) -> None:
        """Show the step ``delta`` places before or after this one in its workflow."""
        task, flow = self.record, self.workflow
        if task is None:
            self.app.notify("the task is still loading", severity="warning", timeout=2)
            return
        if flow is None:
            self.app.notify(
                f"task #{task.id} is not a step of a chain or group: no other steps to show",
                severity="warning",
            )
            return
        ids = flow.task_ids
        target = ids.index(task.id) + delta if task.id in ids else -1
        if not 0 <= target < len(ids):
            edge = "first" if delta < 0 else "last"
            self.app.notify(
                f"task #{task.id} is the {edge} step of {flow.kind} {flow.id}", timeout=2
            )
            return
        self.task_id = ids[target]
        self.log_lines = []
        self.query_one("#detail-title", Static).update(f"Task #{self.task_id}")
        self.query_one("#detail-body", VerticalScroll).scroll_home(animate=False)
        self.load()

    def action_toggle_logs(self) -> None:
        """Switch between the task's detail and its log (shown from its newest line)."""
        self.showing_logs = not self.showing_logs
        scroll = self.query_one("#detail-body", VerticalScroll)
        scroll.scroll_home(animate=False)
        self.show()
        if self.showing_logs:
            scroll.call_after_refresh(scroll.scroll_end, animate=False)

    @work(exclusive=True, group="detail-action")
    async def action_cancel_task(self) -> None:
        if await cancel_task(self.app, self.engine, self.task_id):
            self.load()

    @work(exclusive=True, group="detail-action")
    async def action_retry_task(self) -> None:
        if await retry_task(self.app, self.engine, self.task_id):
            self.load()

    def action_edit_task(self) -> None:
        task = self.record
        if task is None:
            self.app.notify("the task is still loading", severity="warning", timeout=2)
            return
        if task.state not in EDITABLE:
            why = "a running task cannot be edited; cancel it or wait for it to finish"
            if task.state != TaskState.RUNNING:
                why = "only queued, scheduled, failed or cancelled tasks can be edited"
            self.app.notify(f"cannot edit: task {task.id} is {task.state.value}: {why}",
                            severity="warning")  # fmt: skip
            return

        def edited(task_id: str | None) -> None:
            if task_id is not None:
                self.record = None
                self.load()

        self.app.push_screen(EditScreen(self.engine, task), edited)

    def action_show_stack(self) -> None:
        """The live stack of the task (a running one; others say they are not)."""
        self.app.push_screen(TaskStackScreen(self.engine, self.task_id))

    def action_close(self) -> None:
        self.dismiss(None)
