"""The app of the OpenTelemetry tests (tests/test_tracing.py), traced into a file.

Each process that imports it sets the SDK's tracer provider with a span processor
that appends every finished span to ``OTEL_SPANS`` as one JSON line (the SDK's
``ConsoleSpanExporter`` writing to that file). The worker side runs as a user's app::

    OTEL_STORE=… OTEL_SPANS=… python -m console.cli run --headless --app tests.otel_app:app

and the producer side as ``python -m tests.otel_app``: it enqueues ``greet`` (succeeds),
``flaky`` (fails its first attempt, then succeeds) and ``broken`` (always fails; no
retries) inside a span of its own, ``request``, like a web handler would.
"""

from __future__ import annotations

import asyncio
import os

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

from engine import Engine, RetryPolicy, current_task


def one_line(span: ReadableSpan) -> str:
    return span.to_json(indent=None) + "\n"


def trace_to_file() -> None:
    provider = TracerProvider()
    out = open(os.environ["OTEL_SPANS"], "a")  # noqa: SIM115 - open for the process's life
    provider.add_span_processor(
        SimpleSpanProcessor(ConsoleSpanExporter(out=out, formatter=one_line))
    )
    trace.set_tracer_provider(provider)


def app(workers: int = 2) -> Engine:
    trace_to_file()
    engine = Engine(os.environ["OTEL_STORE"], workers=workers)

    @engine.task(name="greet")
    async def greet(name: str) -> str:
        return f"hello {name}"

    @engine.task(name="flaky", executor="thread", retries=2, retry=RetryPolicy.fixed(0))
    def flaky() -> int:
        attempt = current_task().attempt
        if attempt == 1:
            raise ConnectionError("the first attempt loses its connection")
        return attempt

    engine.task(name="broken", executor="process", retries=0)(broken)
    return engine


def broken() -> None:
    """Runs in a worker process (so it is defined at module level)."""
    raise ValueError("bad input")


async def produce() -> None:
    engine = app(workers=0)
    async with engine:
        with trace.get_tracer("producer").start_as_current_span("request"):
            await engine.enqueue("greet", {"name": "Ada"})
            await engine.enqueue("flaky")
            await engine.enqueue("broken")


if __name__ == "__main__":
    asyncio.run(produce())
