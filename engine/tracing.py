"""OpenTelemetry tracing, on when ``opentelemetry-api`` is installed (the ``otel`` extra).

``enqueue`` runs inside a PRODUCER span and stores that span's W3C trace context
(``traceparent``, ``tracestate``) with the task, as JSON. Each attempt at the task runs
inside a CONSUMER span whose parent is that context, so one trace holds the request
that enqueued a task and every attempt at it, across processes and machines. The
attempt's span lives in the engine process around the attempt, whatever the executor
(async, thread or process), and carries the task id, handler, queue, attempt and
outcome (the messaging semantic conventions where they fit — ``messaging.message.id``
is the task id, ``messaging.destination.name`` the queue — ``taskdeck.*`` otherwise);
a failed attempt's exception is recorded on it and its status is ERROR.

The API is imported once, here. Without it :func:`tracer` returns None and the engine
skips every call below: nothing else is done and nothing is stored. With the API but
no SDK (no tracer provider set), spans are non-recording and no context is stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import Token
from dataclasses import dataclass
from importlib import metadata

from engine.errors import RemoteError
from engine.store.base import ClaimedTask, NewTask

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    AVAILABLE = True
except ImportError:  # the otel extra is not installed: tracing is off
    AVAILABLE = False

SYSTEM = "taskdeck"  #: messaging.system


def tracer() -> Tracer | None:
    """Taskdeck's tracer, or None when ``opentelemetry-api`` is not installed.

    The tracer follows the global tracer provider, also one set after this call."""
    if not AVAILABLE:
        return None
    try:
        version = metadata.version("taskdeck")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a bare checkout
        version = "0"
    return trace.get_tracer("taskdeck", version)


@contextmanager
def producing(tracer: Tracer, tasks: Sequence[NewTask]) -> Iterator[Span]:
    """A PRODUCER span around storing ``tasks`` (one enqueue, a batch or a workflow),
    current while it is open; each task gets its trace context. An exception that
    leaves the block is recorded on the span (status ERROR)."""
    first = tasks[0]
    name = f"enqueue {first.handler}" if len(tasks) == 1 else f"enqueue {len(tasks)} tasks"
    attributes: dict[str, str | int] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "send",
        "messaging.operation.name": "enqueue",
        "messaging.destination.name": first.queue,
        "taskdeck.handler": first.handler,
    }
    if len(tasks) > 1:
        attributes["messaging.batch.message_count"] = len(tasks)
    with tracer.start_as_current_span(name, kind=SpanKind.PRODUCER, attributes=attributes) as span:
        text = None
        if span.get_span_context().is_valid:  # not without an SDK (a sampled-out one is)
            carrier: dict[str, str] = {}
            TraceContextTextMapPropagator().inject(carrier)
            text = json.dumps(carrier, separators=(",", ":"))
        for task in tasks:
            task.trace = text
        yield span


def enqueued(span: Span, ids: Sequence[str]) -> None:
    """Name the stored task (or the first of a batch) on the producer span."""
    if ids and span.is_recording():
        span.set_attribute("messaging.message.id", str(ids[0]))


@dataclass(slots=True)
class AttemptSpan:
    """The CONSUMER span of one attempt, current in the attempt's asyncio task."""

    span: Span
    token: Token[Context]

    def failed(self, exc: BaseException) -> None:
        """Record the attempt's exception; the span's status is ERROR. A handler's
        exception in a worker process is recorded as it was raised there (its type,
        message and traceback), not as the RemoteError that carried it."""
        name, text = type(exc).__name__, str(exc)
        if isinstance(exc, RemoteError):
            name = exc.type_name.rpartition(".")[2]
            text = text.removeprefix(f"{name}: ") if text != exc.type_name else ""
            self.span.record_exception(
                exc,
                attributes={
                    "exception.type": exc.type_name,
                    "exception.message": text,
                    "exception.stacktrace": exc.text,
                },
            )
        else:
            self.span.record_exception(exc)
        description = f"{name}: {text}" if text else name
        self.span.set_status(Status(StatusCode.ERROR, description[:300]))

    def end(self, outcome: str) -> None:
        """Close the span with the attempt's outcome (succeeded, failed, retry, …)."""
        self.span.set_attribute("taskdeck.outcome", outcome)
        otel_context.detach(self.token)
        self.span.end()


def attempt_span(tracer: Tracer, claimed: ClaimedTask) -> AttemptSpan:
    """Open the CONSUMER span of an attempt, continuing the enqueue's trace (a new
    trace when the task was enqueued without tracing, or its context is unreadable)."""
    parent = None
    if claimed.trace is not None:
        try:
            carrier = json.loads(claimed.trace)
        except ValueError:
            carrier = None
        if isinstance(carrier, dict):
            parent = TraceContextTextMapPropagator().extract(carrier)
    span = tracer.start_span(
        f"process {claimed.handler}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": SYSTEM,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": claimed.queue,
            "messaging.message.id": str(claimed.id),
            "taskdeck.handler": claimed.handler,
            "taskdeck.attempt": claimed.attempts,
        },
    )
    token = otel_context.attach(trace.set_span_in_context(span))
    return AttemptSpan(span, token)
