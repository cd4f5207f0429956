"""What OpenTelemetry tracing costs enqueue and processing; prints JSON.

    python bench/tracing_bench.py            # 3 rounds per mode (about a minute)
    python bench/tracing_bench.py --rounds 5

Each mode runs in a fresh process on a fresh SQLite file at the default settings:

- ``absent``: ``opentelemetry`` cannot be imported (the ``otel`` extra not installed);
- ``api_only``: the API is installed but no SDK is configured (spans do not record);
- ``sdk``: the SDK's ``TracerProvider`` with a ``BatchSpanProcessor`` whose exporter
  drops the spans (the cost of making and ending them, not of shipping them).

Per mode: ``enqueue_single`` (one awaited ``enqueue`` at a time, no workers),
``enqueue_many`` (batches of 500, no workers) and ``e2e_single`` (enqueue one at a time
with the default workers running no-op handlers, until all are done), each the median
of ``--rounds`` rounds in tasks per second; ``vs_absent`` is each rate over ``absent``'s.
On a busy machine these rates move by more than tracing costs; ``span_us`` is steadier:
the microseconds one producer span (with its stored context) and one attempt's span
take, made in a loop of 20,000 without the engine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODES = ("absent", "api_only", "sdk")
SINGLE, MANY, E2E = 3_000, 50_000, 3_000
RATES = ("enqueue_single", "enqueue_many", "e2e_single")
SPANS = ("producer", "attempt")


def set_mode(mode: str) -> None:
    if mode == "absent":
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]
    elif mode == "sdk":
        from collections.abc import Sequence

        from opentelemetry import trace
        from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )

        class Drop(SpanExporter):
            def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(Drop()))
        trace.set_tracer_provider(provider)


async def measure(db: str) -> dict[str, float]:
    from engine import Engine

    out: dict[str, float] = {}
    for name, workers in (("enqueue_single", 0), ("enqueue_many", 0), ("e2e_single", None)):
        path = f"{db}.{name}"
        engine = Engine(path) if workers is None else Engine(path, workers=workers)
        engine.task(name="noop")(noop)
        async with engine:
            await engine.enqueue("noop", {"n": -1})  # warm up
            if workers is None:
                await engine.drain()
            t = time.perf_counter()
            if name == "enqueue_many":
                for i in range(0, MANY, 500):
                    await engine.enqueue_many([("noop", {"n": j}) for j in range(i, i + 500)])
                count = MANY
            else:
                for i in range(SINGLE):
                    await engine.enqueue("noop", {"n": i})
                count = SINGLE
                if workers is None:
                    await engine.drain()
            out[name] = count / (time.perf_counter() - t)
    return out


async def noop(n: int = 0) -> None:
    return None


def span_costs() -> dict[str, float]:
    """Microseconds per producer span and per attempt span (see the module docstring)."""
    from engine import tracing
    from engine.store.base import ClaimedTask, NewTask

    tracer = tracing.tracer()
    if tracer is None:
        return {"producer": 0.0, "attempt": 0.0}
    n, new = 20_000, NewTask("noop", "default", 5, "{}", 3)
    t = time.perf_counter()
    for i in range(n):
        with tracing.producing(tracer, [new]) as span:
            tracing.enqueued(span, [str(i)])
    producer = (time.perf_counter() - t) / n * 1e6
    claimed = ClaimedTask(1, "noop", "default", 5, 1, 3, "{}", 0.0, None, 0.0, trace=new.trace)
    t = time.perf_counter()
    for _ in range(n):
        tracing.attempt_span(tracer, claimed).end("succeeded")
    return {"producer": producer, "attempt": (time.perf_counter() - t) / n * 1e6}


def child(mode: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, __file__, "--mode", mode, "--db", os.path.join(tmp, "b.db")]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        set_mode(args.mode)
        sys.path.insert(0, str(ROOT))
        rates: dict[str, Any] = asyncio.run(measure(args.db))
        print(json.dumps({**rates, "span_us": span_costs()}))
        return
    load_before = os.getloadavg()[0]
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for _ in range(args.rounds):
        for mode in MODES:  # interleaved, so load changes touch every mode alike
            runs[mode].append(child(mode))
    medians = {
        mode: {k: round(statistics.median(r[k] for r in rounds)) for k in RATES}
        for mode, rounds in runs.items()
    }
    spans = {
        mode: {k: round(statistics.median(r["span_us"][k] for r in rounds), 1) for k in SPANS}
        for mode, rounds in runs.items()
        if mode != "absent"
    }
    summary = {
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load_1m": {"before": load_before, "after": os.getloadavg()[0]},
        "rounds": args.rounds,
        "tasks": {"enqueue_single": SINGLE, "enqueue_many": MANY, "e2e_single": E2E},
        **medians,
        "vs_absent": {
            mode: {k: round(v / medians["absent"][k], 3) for k, v in medians[mode].items()}
            for mode in MODES[1:]
        },
        "span_us": spans,
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
