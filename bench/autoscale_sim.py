"""A bursty 60 s workload, run with a fixed pool at max_workers and with the
autoscaler; prints a JSON summary of both.

    python bench/autoscale_sim.py [--seconds 60] [--max-workers 64]

Workload: I/O-bound tasks of 0.2 s (async sleeps); arrivals alternate 5 s bursts of
200/s with 10 s lulls of 20/s. Reported per mode: tasks done within the run,
p95 queue wait (enqueue to start), and worker-seconds provisioned (the worker count
integrated over the run). Also: the resource sampler's own CPU cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import Engine
from engine.metrics import percentile

RUN = 0.2
BURST, LULL = (5.0, 200.0), (10.0, 20.0)  # (seconds, arrivals per second)


def rate_at(t: float) -> float:
    cycle = BURST[0] + LULL[0]
    return BURST[1] if (t % cycle) < BURST[0] else LULL[1]


async def run_mode(
    path: str, autoscale: bool, seconds: float, max_workers: int
) -> dict[str, object]:
    engine = Engine(
        path,
        workers=max_workers if not autoscale else 2,
        max_workers=max_workers,
        autoscale=autoscale,
        min_workers=2,
        scale_interval=1.0,
        cooldown=2.0,
    )

    @engine.task(name="io")
    async def io() -> None:
        await asyncio.sleep(RUN)

    async with engine:
        start = time.monotonic()
        worker_seconds = 0.0
        last = start
        debt = 0.0
        while (now := time.monotonic()) - start < seconds:
            worker_seconds += engine.worker_count * (now - last)
            debt += rate_at(now - start) * (now - last)
            last = now
            if debt >= 1:
                count = int(debt)
                debt -= count
                await engine.enqueue_many([("io", None)] * count)
            await asyncio.sleep(0.02)
        worker_seconds += engine.worker_count * (time.monotonic() - last)
        done = engine.snapshot().counts["succeeded"]
        stats = engine.snapshot().stats
        sampler_ms = stats.get("sampler_cpu_ms", 0)
        monitor_ms = stats.get("monitor_cpu_ms", 0)
    conn = sqlite3.connect(path)
    waits = sorted(
        r[0]
        for r in conn.execute(
            "SELECT started_at - created_at FROM tasks WHERE started_at IS NOT NULL"
        )
    )
    enqueued = conn.execute("SELECT count(*) FROM tasks").fetchone()[0]
    conn.close()
    return {
        "enqueued": enqueued,
        "done": done,
        "p95_wait_s": round(percentile(waits, 0.95) or 0.0, 3),
        "worker_seconds": round(worker_seconds),
        "sampler_cpu_ms": sampler_ms,
        "sampler_cost_percent_of_core": round(sampler_ms / 1000 / seconds * 100, 3),
        "monitor_cpu_ms": monitor_ms,
        "monitor_cost_percent_of_core": round(monitor_ms / 1000 / seconds * 100, 3),
    }


def child(mode: str, seconds: float, max_workers: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--mode",
                mode,
                "--seconds",
                str(seconds),
                "--max-workers",
                str(max_workers),
                "--db",
                os.path.join(tmp, "sim.db"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            return {"error": out.stderr.strip().splitlines()[-3:]}
        result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--max-workers", type=int, default=64)
    parser.add_argument("--mode", choices=["fixed", "autoscale"], help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        result = asyncio.run(
            run_mode(args.db, args.mode == "autoscale", args.seconds, args.max_workers)
        )
        print(json.dumps(result))
        return
    fixed = child("fixed", args.seconds, args.max_workers)
    scaled = child("autoscale", args.seconds, args.max_workers)
    summary: dict[str, object] = {
        "seconds": args.seconds,
        "task_seconds": RUN,
        "pattern": f"{BURST[0]:g} s at {BURST[1]:g}/s, then {LULL[0]:g} s at {LULL[1]:g}/s",
        "fixed_max_pool": fixed,
        "autoscaler": scaled,
    }
    if "done" in fixed and "done" in scaled:
        summary["throughput_ratio"] = round(int(scaled["done"]) / max(1, int(fixed["done"])), 3)  # type: ignore[call-overload]
        summary["worker_seconds_ratio"] = round(
            int(scaled["worker_seconds"]) / max(1, int(fixed["worker_seconds"])),
            3,  # type: ignore[call-overload]
        )
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
