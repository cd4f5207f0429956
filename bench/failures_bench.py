"""Failure groups over many failed tasks: how long ``engine.diagnose.failures`` takes
to read and group the newest N failed tasks, plain and encrypted; and how long
``engine.diagnose.why`` takes for a queued task deep in a long queue.

    python bench/failures_bench.py [--failed 100000] [--queued 100000]

Failed tasks are inserted straight into a SQLite store (three error kinds, with
numbers and ids in their tracebacks), then grouped with ``scan`` 10,000 (the
default) and ``scan`` = every failed task. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import Engine, generate_key
from engine.codec import Codec

TRACE = (
    'Traceback (most recent call last):\n  File "app/jobs.py", line {line}, in run\n'
    "    do_it(job)\n{last}\n"
)
LAST = (
    "ValueError: upload {i} failed for 'photo-{i}.heic': HEIC is not supported",
    "LookupError: user 5f0c1e2d-8a3b-4c5d-9e6f-{i:012d} not found",
    "RuntimeError: connection 0x{i:x} reset by peer after {i}.5 s",
)


def fill(path: Path, failed: int, queued: int, codec: Codec) -> None:
    """``failed`` failed tasks (sealed errors) and ``queued`` queued ones, in bulk."""
    conn = sqlite3.connect(path)
    conn.execute("BEGIN")
    rows = []
    for i in range(failed):
        error = codec.seal(TRACE.format(line=10 + i % 50, last=LAST[i % 3].format(i=i)))
        at = 1_700_000_000.0 + i
        rows.append(("upload", "work", 5, "failed", "running", 1, 0, 0, "{}", error, at, at, at))
    conn.executemany(
        "INSERT INTO tasks (handler, queue, priority, state, prev_state, attempts, "
        "max_retries, retries, payload, error, created_at, started_at, finished_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
        "INSERT INTO tasks (handler, queue, priority, state, max_retries, retries, payload, "
        "created_at) SELECT 'upload', 'work', 5, 'queued', 0, 0, '{}', 1700000000.0 + i FROM n",
        (queued,),
    )
    conn.executemany(
        "INSERT INTO task_counts (queue, state, n) VALUES ('work', ?, ?) "
        "ON CONFLICT(queue, state) DO UPDATE SET n = n + excluded.n",
        [("failed", failed), ("queued", queued)],
    )
    conn.execute("COMMIT")
    conn.close()


async def measure(failed: int, queued: int, key: str | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        engine = Engine(path, workers=0, encryption_key=key, strict_handlers=False)
        async with engine.client():
            pass  # creates the store
        fill(path, failed, queued, Codec.of(key, None))
        out: dict[str, object] = {"encrypted": key is not None}
        async with engine.client(read_only=True) as e:
            for scan in (10_000, failed):
                start = time.perf_counter()
                groups = await e.diagnose.failures(scan=scan)
                took = time.perf_counter() - start
                out[f"failures_scan_{scan}"] = {
                    "seconds": round(took, 3),
                    "tasks_per_second": round(groups.scanned / took),
                    "groups": len(groups),
                    "complete": groups.complete,
                }
            last = str(failed + queued)
            start = time.perf_counter()
            answer = await e.diagnose.why(last)
            out["why_last_queued"] = {
                "seconds": round(time.perf_counter() - start, 4),
                "text": answer.text,
            }
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--failed", type=int, default=100_000)
    parser.add_argument("--queued", type=int, default=100_000)
    args = parser.parse_args()
    results = [
        asyncio.run(measure(args.failed, args.queued, None)),
        asyncio.run(measure(args.failed, args.queued, generate_key())),
    ]
    print(json.dumps({"failed": args.failed, "queued": args.queued, "runs": results}, indent=2))


if __name__ == "__main__":
    main()
