"""Edit a task that is not running (``E`` in task detail): its payload (the enqueue
form's payload editor, filled with the task's payload), priority, queue, retries and —
for a scheduled task — its due time, checked by the engine exactly as an enqueue is; a
refusal stays in the form. A note (why) goes into the audit trail with the change.

| Key | Does |
| --- | --- |
| ctrl+s | save |
| ctrl+r | save and retry (a failed or cancelled task runs again) |
| escape | cancel |

The due time is ISO 8601 with its UTC offset (`2030-01-02T03:04:05+00:00`), editable
for a scheduled task only; the note field is optional.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Static

from console.format import parse_time
from console.read_only import HIDDEN, payloads_hidden
from console.screens.compact import CompactForm
from console.screens.enqueue import PayloadArea
from engine import Engine, PayloadError, TaskRecord, TaskState, check_note, parse_payload

RETRYABLE = (TaskState.FAILED, TaskState.CANCELLED)


class EditScreen(CompactForm[str | None]):
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("ctrl+r", "save_retry", "Save and retry", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, engine: Engine, task: TaskRecord) -> None:
        super().__init__()
        self.engine = engine
        self.record = task

    def compose(self) -> ComposeResult:
        t = self.record
        limit = self.engine.settings.max_payload_bytes
        with Vertical(classes="dialog wide", id="edit-form"):
            title = f"Edit task #{t.id} · {t.handler} · {t.state.value}"
            yield Static(title, classes="dialog-title")
            yield Label("Payload (JSON object)")
            yield PayloadArea(limit, id="payload", soft_wrap=True)
            yield Static("", id="payload-error", classes="error")
            with Horizontal(classes="fields"):
                for label, name, value in (
                    ("Priority (0–9 or name)", "priority", str(t.priority)),
                    ("Queue", "queue", t.queue),
                    ("Retries", "retries", str(t.max_retries)),
                ):
                    with Vertical():
                        yield Label(label)
                        yield Input(value, id=name)
            with Horizontal(classes="fields"):
                with Vertical():
                    yield Label("Run at (scheduled only)")
                    run_at = Input(_iso(t.run_at) if t.state == TaskState.SCHEDULED else "")
                    run_at.id = "run-at"
                    run_at.disabled = t.state != TaskState.SCHEDULED
                    yield run_at
                with Vertical():
                    yield Label("Note (audit trail)")
                    yield Input(placeholder="why", id="note")
            yield Static("", id="options-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Save (ctrl+s)", id="save", variant="primary")
                retry = Button("Save and retry (ctrl+r)", id="save-retry")
                retry.disabled = t.state not in RETRYABLE
                yield retry
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        area = self.query_one("#payload", PayloadArea)
        if payloads_hidden(self.app):
            area.load_text(HIDDEN)
            area.disabled = True
        else:
            area.load_text(json.dumps(self.record.payload, indent=2, ensure_ascii=False))
        area.focus()

    def changes(self) -> dict[str, Any] | None:
        """What the form changes (only fields that differ); None (and the error shown)
        when the payload is not a JSON object."""
        t, out = self.record, dict[str, Any]()
        error = self.query_one("#payload-error", Static)
        error.update("")
        if not payloads_hidden(self.app):
            try:
                payload = parse_payload(self.query_one("#payload", PayloadArea).text)
            except PayloadError as exc:
                error.update(str(exc))
                return None
            if payload != t.payload:
                out["payload"] = payload
        for name, old in (("priority", str(t.priority)), ("queue", t.queue)):
            text = self.query_one(f"#{name}", Input).value.strip()
            if text and text != old:
                out[name] = text
        retries = self.query_one("#retries", Input).value.strip()
        if retries and retries != str(t.max_retries):
            out["retries"] = int(retries) if retries.isdigit() else retries
        run_at = self.query_one("#run-at", Input).value.strip()
        if t.state == TaskState.SCHEDULED and run_at and run_at != _iso(t.run_at):
            out["run_at"] = parse_time(run_at, "run at")
        return out

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        self.save(False)

    @on(Button.Pressed, "#save-retry")
    def action_save_retry(self) -> None:
        if self.record.state not in RETRYABLE:
            self.app.notify(
                f"task {self.record.id} is {self.record.state.value}: save and retry is for "
                "failed or cancelled tasks",
                severity="warning",
            )
            return
        self.save(True)

    @work(exclusive=True)
    async def save(self, retry: bool) -> None:
        """Save; the engine's refusal stays in the form (payload errors under the
        payload, the others under the fields)."""
        try:
            changes = self.changes()
            note = check_note(self.query_one("#note", Input).value.strip() or None)
        except ValueError as exc:  # the due time or the note
            self.query_one("#options-error", Static).update(str(exc))
            self.app.notify(f"not saved: {exc}", severity="error")
            return
        if changes is None:
            self.app.notify("not saved: the payload is not a JSON object", severity="error")
            return
        try:
            task = await self.engine.edit(self.record.id, retry=retry, note=note, **changes)
        except (ValueError, TypeError, LookupError) as exc:
            about_payload = isinstance(exc, TypeError) or "payload" in str(exc)
            where = "#payload-error" if about_payload else "#options-error"
            self.query_one(where, Static).update(str(exc))
            self.app.notify(f"not saved: {exc}", severity="error")
            return
        said = ", ".join(changes) or "nothing changed"
        again = "; queued again" if retry else ""
        self.app.notify(f"task {task.id} saved: {said}{again}")
        self.dismiss(task.id)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


def _iso(at: float | None) -> str:
    """A due time as the field shows it (UTC, seconds)."""
    if at is None:
        return ""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
