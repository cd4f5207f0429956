"""Enqueue a task: handler from the registry, a JSON payload checked as you type
(line and column of a syntax error; missing or unexpected arguments), priority by
number or name, queue, delay. The payload starts as an example of each parameter's
type (``""`` for str, ``0`` for int, …; never null); what the engine refuses at
enqueue (e.g. a value of the wrong type) is shown in the form, which stays open.

An engine with no handlers of its own (an attached console) takes the handler by
name instead, with the names seen in the store as suggestions; its payload is
checked as JSON only (the signature lives with the nodes that run it).

| Key | Does |
| --- | --- |
| ctrl+s | enqueue (the form stays open, with the error, if anything is wrong) |
| escape | cancel |
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.suggester import SuggestFromList
from textual.widgets import Button, Input, Label, Select, Static, TextArea

from console.payload_template import template_text
from console.screens.compact import CompactForm
from engine import (
    Engine,
    Handler,
    PayloadError,
    check_handler_name,
    check_queue_name,
    check_seconds,
    parse_payload,
    parse_priority,
)

BY_NAME = (
    "Not registered in this console: the payload is checked as JSON only; a node that has "
    "this handler runs it."
)


@dataclass
class FormCheck:
    """What the form would enqueue, or why it cannot."""

    payload: Any = None
    options: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def check_form(
    handler: Handler | str | None,
    payload: str,
    priority: str,
    queue: str,
    delay: str,
    limit: int,
) -> FormCheck:
    """Validate the form's fields; every problem is reported against its field. A
    handler given by name (not registered here) is checked as a name only."""
    check = FormCheck()
    if handler is None:
        check.errors["handler"] = "choose a handler"
    elif isinstance(handler, str):
        try:
            check_handler_name(handler)
        except (ValueError, TypeError) as exc:
            check.errors["handler"] = str(exc)
    size = len(payload.encode("utf-8"))
    if size > limit:
        check.errors["payload"] = (
            f"payload is {size:,} bytes; the limit is {limit:,} bytes (max_payload_bytes)"
        )
    else:  # the engine's own reading: JSON, an object, nesting, lone surrogates
        try:
            check.payload = parse_payload(payload)
        except PayloadError as exc:
            check.errors["payload"] = str(exc)
    if "payload" not in check.errors and isinstance(handler, Handler):
        try:
            handler.check_payload(check.payload)
        except TypeError as exc:
            check.errors["payload"] = str(exc)
    for name, text, parse in (
        ("priority", priority, parse_priority),
        ("queue", queue, check_queue_name),
        ("delay", delay, lambda t: check_seconds("delay", float(t))),
    ):
        if not text.strip():
            continue
        try:
            check.options[name] = parse(text.strip())
        except (ValueError, TypeError) as exc:
            message = str(exc)
            if name == "delay" and "could not convert" in message:
                message = f"delay must be a number of seconds; got {text.strip()!r}"
            check.errors[name] = message
    return check


class PayloadArea(TextArea):
    """A TextArea that refuses a paste bigger than the payload limit, with its size."""

    class PasteRejected(Message):
        def __init__(self, size: int) -> None:
            super().__init__()
            self.size = size

    def __init__(self, limit: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limit = limit

    async def _on_paste(self, event: events.Paste) -> None:
        size = len(event.text.encode("utf-8"))
        if size > self.limit:
            event.prevent_default()  # the TextArea's own paste handler does not run
            self.post_message(self.PasteRejected(size))


class EnqueueScreen(CompactForm[str | None]):
    BINDINGS = [
        Binding("ctrl+s", "submit", "Enqueue", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(
        self,
        engine: Engine,
        handler: str | None = None,
        known: Sequence[str] = (),
        served: frozenset[str] | None = None,
    ) -> None:
        """``known``: handler names to suggest when the engine has none registered;
        ``served`` (attached): the handlers the alive nodes run, suggested too, and a
        name outside them is warned about (None: not known)."""
        super().__init__()
        self.engine = engine
        self.initial = handler
        self.served = served
        self.known = sorted({*known, *(served or ())})
        self.by_name = not engine.handlers
        self._template: str | None = None

    def compose(self) -> ComposeResult:
        names = [h.name for h in self.engine.handlers]
        first = self.initial if self.initial in names else (names[0] if names else None)
        limit = self.engine.settings.max_payload_bytes
        with Vertical(classes="dialog wide", id="enqueue-form"):
            yield Static("Enqueue a task", classes="dialog-title")
            yield Label("Handler")
            if self.by_name:
                yield Input(
                    self.initial or "",
                    placeholder="handler name (→ completes a name seen in the store)",
                    id="handler-name",
                    suggester=SuggestFromList(self.known, case_sensitive=True),
                )
                yield Static(BY_NAME, id="signature", classes="dialog-text")
            else:
                yield Select(
                    [(n, n) for n in names],
                    value=first or Select.NULL,
                    id="handler",
                    allow_blank=not first,
                )
                yield Static("", id="signature", classes="dialog-text")
            yield Label("Payload (JSON object)")
            yield PayloadArea(limit, id="payload", soft_wrap=True)
            yield Static("", id="payload-error", classes="error")
            with Horizontal(classes="fields"):
                with Vertical():
                    yield Label("Priority (0–9 or name)")
                    yield Input(id="priority")
                with Vertical():
                    yield Label("Queue")
                    yield Input(id="queue")
                with Vertical():
                    yield Label("Delay (seconds)")
                    yield Input(id="delay")
            yield Static("", id="options-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Enqueue (ctrl+s)", id="submit", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        handler = self._handler()
        if isinstance(handler, Handler):
            self._handler_changed(handler)
        else:
            self._validate()
        self.query_one("#payload", PayloadArea).focus()

    def _handler(self) -> Handler | str | None:
        if self.by_name:
            return self.query_one("#handler-name", Input).value.strip() or None
        value = self.query_one("#handler", Select).value
        return self.engine.registry.find(str(value)) if isinstance(value, str) else None

    @on(Select.Changed, "#handler")
    def _select_changed(self, event: Select.Changed) -> None:
        handler = self._handler()
        if isinstance(handler, Handler):
            self._handler_changed(handler)

    def _handler_changed(self, handler: Handler) -> None:
        routes = self.engine.settings.routes
        queue = handler.routed_queue(routes)
        rule = None if handler.queue_given else routes.rule_for(handler.name)
        routed = f" (route {rule})" if rule else ""
        self.query_one("#signature", Static).update(
            f"{handler.signature_text()} · queue {queue}{routed} · priority {handler.priority} "
            f"· {handler.executor} · retries {handler.retries}"
        )
        self.query_one("#priority", Input).placeholder = str(handler.priority)
        self.query_one("#queue", Input).placeholder = queue
        self.query_one("#delay", Input).placeholder = "0"
        area = self.query_one("#payload", PayloadArea)
        if not area.text.strip() or area.text == self._template:
            self._template = template_text(handler)  # an example of each type, no nulls
            area.load_text(self._template)
        self._validate()

    @on(TextArea.Changed, "#payload")
    @on(Input.Changed)
    def _changed(self) -> None:
        self._validate()

    @on(Input.Changed, "#handler-name")
    def _name_changed(self, event: Input.Changed) -> None:
        """Attached: say so when no alive node runs the handler named."""
        name = event.value.strip()
        unserved = self.served is not None and bool(name) and name not in self.served
        text = f"⚠ No alive node runs {name}: the task waits until one that has it joins. "
        self.query_one("#signature", Static).update(text + BY_NAME if unserved else BY_NAME)

    @on(PayloadArea.PasteRejected)
    def _paste_rejected(self, event: PayloadArea.PasteRejected) -> None:
        limit = self.engine.settings.max_payload_bytes
        message = f"paste refused: {event.size:,} bytes; the limit is {limit:,} bytes"
        self.query_one("#payload-error", Static).update(message)
        self.app.notify(message, severity="error")

    def _validate(self) -> FormCheck:
        check = check_form(
            self._handler(),
            self.query_one("#payload", PayloadArea).text,
            self.query_one("#priority", Input).value,
            self.query_one("#queue", Input).value,
            self.query_one("#delay", Input).value,
            self.engine.settings.max_payload_bytes,
        )
        payload_error = check.errors.get("payload") or check.errors.get("handler", "")
        self.query_one("#payload-error", Static).update(payload_error)
        other = [
            f"{k}: {v}" for k, v in check.errors.items() if k in ("priority", "queue", "delay")
        ]
        self.query_one("#options-error", Static).update("\n".join(other))
        self.query_one("#submit", Button).disabled = not check.ok
        return check

    @on(Button.Pressed, "#submit")
    def action_submit(self) -> None:
        check = self._validate()
        if not check.ok:
            self.app.notify("not enqueued: fix the fields marked in red", severity="error")
            return
        handler = self._handler()
        assert handler is not None
        self.enqueue(handler if isinstance(handler, str) else handler.name, check)

    @work(exclusive=True)
    async def enqueue(self, name: str, check: FormCheck) -> None:
        """Enqueue; a refusal stays in the form: the engine's payload, type and handler
        errors under the payload (``images.resize: field "image_id" must be str; got
        null``), anything else under the options."""
        try:
            with self.engine.audit.note():  # an operator's enqueue: in the audit trail
                task_id = await self.engine.enqueue(name, check.payload, **check.options)
        except (ValueError, TypeError, LookupError, RuntimeError) as exc:
            about_payload = isinstance(exc, ValueError | TypeError | LookupError)
            where = "#payload-error" if about_payload else "#options-error"
            self.query_one(where, Static).update(str(exc))
            self.query_one("#submit", Button).disabled = about_payload  # until edited
            self.app.notify(f"not enqueued: {exc}", severity="error")
            return
        self.dismiss(task_id)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
