"""Memory stays flat: a million tiny tasks end to end; JSON summary.

    python bench/memory_flat.py               # 1,000,000 tasks
    python bench/memory_flat.py --tasks 200000

One engine (64 workers, no-op async handler) on a fresh SQLite file processes tasks
that a producer in the same process enqueues in batches of 1,000, keeping at most
50,000 waiting. Results expire after ``--result-ttl`` seconds and are purged by the
cleanup loop. Reported: RSS and the database size (file + WAL) when 100,000 and all
tasks are done, the largest database size seen, and the throughput. RSS should not
grow between the marks, and the file should stay bounded by what the TTL keeps.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import Engine, TaskState  # noqa: E402

MiB = 1024 * 1024


def db_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


async def main(total: int, result_ttl: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "flat.db"
        engine = Engine(path, workers=64, result_ttl=result_ttl, cleanup_interval=1.0)
        done = 0

        @engine.task(name="tiny")
        async def tiny(n: int) -> None:
            nonlocal done
            done += 1

        me = psutil.Process()
        marks: dict[str, dict[str, float]] = {}
        biggest = 0
        async with engine:

            async def produce() -> None:
                for start in range(0, total, 1000):
                    while True:  # keep the backlog bounded
                        if engine.snapshot().counts[TaskState.QUEUED] <= 50_000:
                            break
                        await asyncio.sleep(0.05)
                    await engine.enqueue_many(
                        [("tiny", {"n": n}) for n in range(start, min(total, start + 1000))]
                    )

            t0 = time.monotonic()
            producer = asyncio.create_task(produce())
            for mark in (100_000, total):
                while True:  # sample the file size until the mark
                    biggest = max(biggest, db_bytes(path))
                    if done >= mark:
                        break
                    await asyncio.sleep(0.2)
                marks[f"at_{mark}"] = {
                    "rss_mib": round(me.memory_info().rss / MiB, 1),
                    "db_mib": round(db_bytes(path) / MiB, 1),
                    "seconds": round(time.monotonic() - t0, 1),
                }
            await producer
            elapsed = time.monotonic() - t0
            rows = sum(engine.snapshot().counts.values())
    first, last = marks["at_100000"], marks[f"at_{total}"]
    return {
        "tasks": total,
        "result_ttl_s": result_ttl,
        **marks,
        "rss_growth_mib": round(last["rss_mib"] - first["rss_mib"], 1),
        "db_max_mib": round(biggest / MiB, 1),
        "rows_left_at_end": rows,
        "tasks_per_s": round(total / elapsed),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--result-ttl", type=float, default=10.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.tasks, args.result_ttl)), indent=2))
