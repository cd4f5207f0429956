"""A bulk reprioritize of 1,000,000 queued tasks while the engine processes other work;
prints JSON.

    python bench/bulk_bench.py               # 1,000,000 tasks (about a minute or two)
    python bench/bulk_bench.py --tasks 100000 --window 3

One engine (4 workers, SQLite file) runs a no-op handler fed by a producer in the
same process that keeps about 1,000 of its tasks waiting. The 1,000,000 tasks of
another handler wait in a paused queue (inserted straight into the file, fast).
Phases: ``before`` (``--window`` s of the other work alone), ``during`` (the bulk
operation ``reprioritize`` to 9 on all of them, started with ``engine.ops.start``
and waited for), ``after``. Figures:

- ``bulk.seconds``, ``bulk.tasks_per_s``: from start to the operation's end;
  ``bulk.changed`` must equal the tasks that were not already priority 9.
- ``throughput``: the other work's completed tasks per second in each phase (mean
  over whole seconds, and the slowest second during the operation); ``dip_percent``:
  how much lower ``during`` is than ``before``.
- ``claim_gap_max_ms``: the longest time between two completions during the
  operation (what a batch transaction holds the writer for, at worst).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import Engine  # noqa: E402

BACKLOG = 1000  # the other work's tasks kept waiting


def bulk_insert(path: Path, count: int) -> None:
    """``count`` queued ``bulk.target`` tasks in queue ``bulk``, priorities 0–9."""
    conn = sqlite3.connect(path)
    conn.execute("BEGIN")
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
        "INSERT INTO tasks (handler, queue, priority, state, max_retries, retries, payload, "
        "created_at) SELECT 'bulk.target', 'bulk', i % 10, 'queued', 3, 3, "
        "'{\"n\":' || i || '}', 1700000000.0 + i FROM n",
        (count,),
    )
    conn.execute(
        "INSERT INTO task_counts (queue, state, n) VALUES ('bulk', 'queued', ?) "
        "ON CONFLICT(queue, state) DO UPDATE SET n = n + excluded.n",
        (count,),
    )
    conn.execute("COMMIT")
    conn.close()


class Work:
    """The other work: a no-op handler, its completions stamped."""

    def __init__(self) -> None:
        self.done: list[float] = []
        self.enqueued = 0

    async def produce(self, engine: Engine, stop: asyncio.Event) -> None:
        while not stop.is_set():
            waiting = self.enqueued - len(self.done)
            if waiting < BACKLOG:
                n = min(200, BACKLOG - waiting)
                await engine.enqueue_many([("work.noop", {})] * n)
                self.enqueued += n
            else:
                await asyncio.sleep(0.005)

    def per_second(self, start: float, end: float) -> list[int]:
        seconds = int(end - start)
        counts = [0] * max(seconds, 1)
        for at in self.done:
            if start <= at < start + seconds:
                counts[int(at - start)] += 1
        return counts

    def max_gap(self, start: float, end: float) -> float:
        stamps = [t for t in self.done if start <= t <= end]
        return max((b - a for a, b in itertools.pairwise(stamps)), default=0.0)


async def bench(tasks: int, window: float, workers: int, pace: float | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        async with Engine(path, workers=0, strict_handlers=False):
            pass  # the schema
        started = time.perf_counter()
        bulk_insert(path, tasks)
        insert_s = time.perf_counter() - started
        work = Work()
        engine = Engine(path, workers=workers, strict_handlers=False)

        @engine.task(name="work.noop", queue="work", retries=0)
        async def noop() -> None:
            work.done.append(time.perf_counter())

        if pace is not None:
            engine.ops.pace = pace
        async with engine:
            await engine.pause("bulk")
            stop = asyncio.Event()
            producer = asyncio.create_task(work.produce(engine, stop))
            await asyncio.sleep(1.0)  # warm up
            t0 = time.perf_counter()
            await asyncio.sleep(window)
            t1 = time.perf_counter()
            op = await engine.ops.start(
                "reprioritize", handler="bulk.target", state="queued", priority=9
            )
            op = await engine.ops.wait(op.id)
            t2 = time.perf_counter()
            await asyncio.sleep(window)
            t3 = time.perf_counter()
            stop.set()
            await producer
        before, during, after = (
            work.per_second(t0, t1),
            work.per_second(t1, t2),
            work.per_second(t2, t3),
        )
        mean_before = statistics.fmean(before)
        mean_during = statistics.fmean(during)
        size = path.stat().st_size
    return {
        "tasks": tasks,
        "workers": workers,
        "pace": engine.ops.pace,
        "insert_seconds": round(insert_s, 2),
        "bulk": {
            "state": op.state,
            "seconds": round(t2 - t1, 2),
            "tasks_per_s": round(tasks / (t2 - t1)),
            "changed": op.changed,
            "skipped": op.skipped,
            "reasons": op.reasons,
            "expected_changed": tasks - tasks // 10,
        },
        "throughput": {
            "before": round(mean_before),
            "during": round(mean_during),
            "during_slowest_second": min(during),
            "after": round(statistics.fmean(after)),
            "dip_percent": round(100 * (1 - mean_during / mean_before), 1),
        },
        "claim_gap_max_ms": round(1000 * work.max_gap(t1, t2), 1),
        "store_mb": round(size / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--window", type=float, default=5.0, help="seconds before and after")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--pace", type=float, default=None, help="engine.ops.pace (0.05–1)")
    args = parser.parse_args()
    result = asyncio.run(bench(args.tasks, args.window, args.workers, args.pace))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
