"""OpenTelemetry: one trace from the enqueue to every attempt, across processes.

In process, the engine's tracer comes from a private SDK provider whose spans go to
the SDK's ``InMemorySpanExporter``; across processes, each process writes its finished
spans to a file (tests/otel_app.py) and the test compares the trace ids.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from engine import Engine, RetryPolicy, tracing

from .conftest import BOTH_BACKENDS, FAST

ROOT = Path(__file__).resolve().parent.parent
APP = "tests.otel_app:app"


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Engines made in the test trace into memory (the global provider is left alone)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "tracer", lambda: provider.get_tracer("taskdeck"))
    yield exporter
    provider.shutdown()


def of_kind(exporter: InMemorySpanExporter, kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.kind == kind]


@BOTH_BACKENDS
async def test_each_attempt_continues_the_enqueue_trace_and_records_its_error(
    spans: InMemorySpanExporter, store: str | Path
) -> None:
    # Given a handler that fails every attempt, with one retry
    engine = Engine(store, workers=2, **FAST)
    current: list[int] = []  # the span current in the handler, at each attempt

    @engine.task(name="charge", queue="billing", retries=1, retry=RetryPolicy.fixed(0))
    async def charge(amount: int) -> None:
        current.append(trace.get_current_span().get_span_context().span_id)
        raise ValueError(f"card declined for {amount}")

    # When it is enqueued inside a request's span and runs to its end
    app = tracing.tracer()  # the test's provider (a web framework's span would do the same)
    assert app is not None
    async with engine:
        with app.start_as_current_span("POST /charge") as request:
            task_id = await engine.enqueue("charge", {"amount": 12})
        record = await engine.wait(task_id, timeout=10)
    assert record.state == "failed"

    # Then the enqueue is a PRODUCER span under the request, naming the task
    (producer,) = of_kind(spans, SpanKind.PRODUCER)
    assert producer.parent is not None
    assert producer.parent.span_id == request.get_span_context().span_id
    assert producer.attributes is not None
    assert producer.attributes["messaging.message.id"] == task_id
    assert producer.attributes["messaging.destination.name"] == "billing"
    # and each attempt is a CONSUMER span in the same trace, child of the enqueue
    attempts = sorted(of_kind(spans, SpanKind.CONSUMER), key=lambda s: s.start_time or 0)
    assert [dict(s.attributes or {}) for s in attempts] == [
        {
            "messaging.system": "taskdeck",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": "billing",
            "messaging.message.id": task_id,
            "taskdeck.handler": "charge",
            "taskdeck.attempt": attempt,
            "taskdeck.outcome": outcome,
        }
        for attempt, outcome in ((1, "retry"), (2, "failed"))
    ]
    # the attempt's span is current in an async handler: the spans it makes are children
    assert current == [s.context.span_id for s in attempts if s.context is not None]
    for span in attempts:
        assert span.context is not None and producer.context is not None
        assert span.context.trace_id == producer.context.trace_id
        assert span.parent is not None and span.parent.span_id == producer.context.span_id
        assert span.name == "process charge"
        # with the error recorded: status ERROR and the exception as an event
        assert span.status.status_code == StatusCode.ERROR
        assert span.status.description == "ValueError: card declined for 12"
        (event,) = span.events
        assert event.name == "exception" and event.attributes is not None
        assert event.attributes["exception.type"] == "ValueError"
        assert event.attributes["exception.message"] == "card declined for 12"


@BOTH_BACKENDS
async def test_a_batch_is_one_producer_span_and_a_success_is_not_an_error(
    spans: InMemorySpanExporter, store: str | Path
) -> None:
    engine = Engine(store, workers=2, **FAST)

    @engine.task(name="resize", executor="thread")
    def resize(width: int) -> int:
        return width * 2

    async with engine:
        ids = await engine.enqueue_many([("resize", {"width": w}) for w in (1, 2, 3)])
        results = [(await engine.wait(task_id, timeout=10)).result for task_id in ids]
    assert results == [2, 4, 6]

    (producer,) = of_kind(spans, SpanKind.PRODUCER)
    assert producer.name == "enqueue 3 tasks"
    assert producer.attributes is not None
    assert producer.attributes["messaging.batch.message_count"] == 3
    consumers = of_kind(spans, SpanKind.CONSUMER)
    assert sorted(str((s.attributes or {})["messaging.message.id"]) for s in consumers) == sorted(
        ids
    )
    for span in consumers:
        assert span.parent is not None and producer.context is not None
        assert span.parent.span_id == producer.context.span_id
        assert span.status.status_code == StatusCode.UNSET and not span.events
        assert (span.attributes or {})["taskdeck.outcome"] == "succeeded"


async def test_without_a_tracer_provider_nothing_is_stored(db_path: Path) -> None:
    # The API alone (no SDK configured): spans do not record and no context is kept.
    engine = Engine(db_path, workers=0, **FAST)
    engine.task(name="noop")(lambda: None)
    async with engine:
        await engine.enqueue("noop")
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT trace_context FROM tasks").fetchall() == [(None,)]


def test_without_the_otel_extra_the_engine_runs_untraced(tmp_path: Path) -> None:
    # opentelemetry made unimportable, as when the extra is not installed
    script = f"""
import asyncio, sys
sys.modules["opentelemetry"] = None
from engine import Engine, tracing
assert not tracing.AVAILABLE and tracing.tracer() is None
async def main():
    engine = Engine({str(tmp_path / "t.db")!r}, workers=1)
    engine.task(name="add")(lambda a, b: a + b)
    async with engine:
        task_id = await engine.enqueue("add", {{"a": 1, "b": 2}})
        print((await engine.wait(task_id, timeout=10)).result)
asyncio.run(main())
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "3\n"


# -- across processes --------------------------------------------------------------------
def read_spans(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_one_trace_spans_the_enqueue_in_one_process_and_the_run_in_another(
    tmp_path: Path,
) -> None:
    produced, ran = tmp_path / "producer.jsonl", tmp_path / "worker.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OTEL_STORE": str(tmp_path / "t.db")}
    # Given three tasks enqueued by one process inside its request span
    producer = subprocess.run(
        [sys.executable, "-m", "tests.otel_app"],
        cwd=ROOT,
        env={**env, "OTEL_SPANS": str(produced)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert producer.returncode == 0, producer.stderr
    # When `taskdeck run --headless` runs them in another (async, thread, process executors)
    worker = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "run", "--headless", "--app", APP],
        cwd=ROOT,
        env={**env, "OTEL_SPANS": str(ran)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30  # another process's file: polled
        while len(read_spans(ran)) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0 and "Traceback" not in err, err

    # Then every attempt is in the producer's trace, under the enqueue of its task
    spans = read_spans(produced)
    (request,) = [s for s in spans if s["name"] == "request"]
    trace_id = request["context"]["trace_id"]
    enqueues = {
        s["attributes"]["taskdeck.handler"]: s for s in spans if s["kind"].endswith("PRODUCER")
    }
    assert set(enqueues) == {"greet", "flaky", "broken"}
    for span in enqueues.values():
        assert span["context"]["trace_id"] == trace_id
        assert span["parent_id"] == request["context"]["span_id"]
    attempts = read_spans(ran)
    seen = []
    for span in sorted(attempts, key=lambda s: s["start_time"]):
        attributes = span["attributes"]
        enqueue = enqueues[attributes["taskdeck.handler"]]
        assert span["kind"] == "SpanKind.CONSUMER"
        assert span["context"]["trace_id"] == trace_id
        assert span["parent_id"] == enqueue["context"]["span_id"]
        assert attributes["messaging.message.id"] == enqueue["attributes"]["messaging.message.id"]
        assert attributes["messaging.destination.name"] == "default"
        status = span["status"]["status_code"]
        errors = [
            (e["attributes"]["exception.type"], e["attributes"]["exception.message"])
            for e in span["events"]
        ]
        seen.append(
            (attributes["taskdeck.handler"], attributes["taskdeck.attempt"],
             attributes["taskdeck.outcome"], status, errors)
        )  # fmt: skip
    assert sorted(seen) == [
        ("broken", 1, "failed", "ERROR", [("ValueError", "bad input")]),
        (
            "flaky",
            1,
            "retry",
            "ERROR",
            [("ConnectionError", "the first attempt loses its connection")],
        ),
        ("flaky", 2, "succeeded", "UNSET", []),
        ("greet", 1, "succeeded", "UNSET", []),
    ]
