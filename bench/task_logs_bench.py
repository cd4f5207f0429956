"""What task logs cost: throughput of short tasks that log nothing, log three lines
(async and thread; and async with task logs off), and run beside a handler that logs
10 MB; prints JSON.

    python bench/task_logs_bench.py [--tasks 2000]

At default settings (task_log_limit 64 KiB, progress_interval 0.5 s), 8 workers, on a
SQLite file in a temporary directory. ``flood``: seconds a 10 MB handler took, lines
stored for it, and the short tasks' throughput while it ran.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import Engine, current_task

log = logging.getLogger("bench.logs")
log.setLevel(logging.INFO)
LINE = "x" * 1000


async def quiet(n: int) -> int:
    return n


async def three(n: int) -> int:
    log.info("starting %d", n)
    log.warning("half way through %d", n)
    current_task().log(f"done {n}")
    return n


def three_thread(n: int) -> int:
    log.info("starting %d", n)
    log.warning("half way through %d", n)
    current_task().log(f"done {n}")
    return n


def flood(megabytes: int) -> int:
    for i in range(megabytes * 1000):
        log.info("%d %s", i, LINE)
    return megabytes


async def rate(engine: Engine, handler: str, tasks: int) -> float:
    start = time.perf_counter()
    ids = await engine.enqueue_many([(handler, {"n": i}) for i in range(tasks)])
    for task_id in ids:
        await engine.wait(task_id, timeout=300)
    return tasks / (time.perf_counter() - start)


async def main(tasks: int) -> dict[str, object]:
    logging.getLogger().addHandler(logging.NullHandler())  # as a configured program has
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(Path(tmp) / "bench.db", workers=8)
        engine.task(name="quiet")(quiet)
        engine.task(name="three")(three)
        engine.task(name="three_thread", executor="thread")(three_thread)
        engine.task(name="flood", executor="thread")(flood)
        out: dict[str, object] = {"tasks": tasks}
        async with engine:
            await rate(engine, "quiet", 200)  # warm up
            for handler in ("quiet", "three", "three_thread"):
                out[f"{handler}_per_s"] = round(await rate(engine, handler, tasks))
            await engine.update_settings(task_log_limit=0)
            out["three_per_s_logs_off"] = round(await rate(engine, "three", tasks))
            await engine.reset_settings("task_log_limit")
            started = time.perf_counter()
            flood_id = await engine.enqueue("flood", {"megabytes": 10})
            beside = await rate(engine, "quiet", tasks)
            await engine.wait(flood_id, timeout=300)
            took = time.perf_counter() - started
            lines = await engine.logs(flood_id)
            out["flood"] = {
                "megabytes": 10,
                "seconds": round(took, 2),
                "lines_stored": len(lines),
                "marker": lines[-1].message,
                "quiet_per_s_beside_it": round(beside),
            }
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=2000)
    print(json.dumps(asyncio.run(main(parser.parse_args().tasks)), indent=2))
