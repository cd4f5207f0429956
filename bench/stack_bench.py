"""What a live stack costs: ``engine.stack(id)`` on a task running here (async,
thread, process) and on another node (a node process on the same SQLite store), and
the stuck watch's look at 64 running tasks under their threshold; prints JSON.

    python bench/stack_bench.py [--rounds 200]

Times are medians (and p95) in milliseconds over ``--rounds`` stacks each (the
other node: 20).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import Engine, TaskNotRunning, TaskState
from engine.metrics import percentile
from engine.stuck import Running, StuckWatch
from tests import stack_handlers

ROOT = Path(__file__).resolve().parent.parent


async def timed(engine: Engine, task_id: str, rounds: int) -> dict[str, float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        await engine.stack(task_id)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {"p50_ms": round(percentile(times, 0.5) or 0, 3),
            "p95_ms": round(percentile(times, 0.95) or 0, 3)}  # fmt: skip


async def running(engine: Engine, task_id: str) -> None:
    """Until the task's handler waits at its line (a process task: in its child)."""
    while True:
        try:
            trace = await engine.stack(task_id)
        except TaskNotRunning:  # not claimed yet, or its child not started yet
            trace = None
        if trace is not None and trace.top is not None and trace.top.function.endswith("er"):
            return
        await asyncio.sleep(0.02)


async def local(store: Path, rounds: int) -> dict[str, dict[str, float]]:
    engine = Engine(store, workers=4)
    engine.task(name="a")(stack_handlers.async_waiter)
    engine.task(name="t", executor="thread")(stack_handlers.thread_waiter)
    engine.task(name="p", executor="process")(stack_handlers.process_waiter)
    out = {}
    async with engine:
        for name, executor in (("a", "async"), ("t", "thread"), ("p", "process")):
            task_id = str(await engine.enqueue(name, {}))
            await running(engine, task_id)
            out[executor] = await timed(engine, task_id, rounds)
        for task in await engine.tasks(state=TaskState.RUNNING):
            if task.handler != "t":
                await engine.cancel(task.id)
        stack_handlers.RELEASE.set()
    return out


def start_node(store: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NODE_STORE": str(store), "NODE_NAME": "node-a", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "console.cli", "run", "--headless", "--interval", "60",
         "--app", "tests.stack_handlers:app"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def remote(store: Path) -> dict[str, float]:
    node = start_node(store)
    try:
        async with Engine(store, workers=0, strict_handlers=False) as engine:
            task_id = str(await engine.enqueue("wait", {"seconds": 60}))
            await running(engine, task_id)
            result = await timed(engine, task_id, 20)
            await engine.cancel(task_id)
            return result
    finally:
        node.terminate()
        node.wait(10)


async def stuck_look() -> float:
    """Microseconds per look at 64 running tasks, all under their threshold."""

    async def stack(task_id: int) -> None:
        raise AssertionError("not sampled")

    watch = StuckWatch(stack)
    tasks = [Running(i, f"h{i % 8}", 0.1) for i in range(64)]
    p95 = {f"h{i}": (0.5, 100) for i in range(8)}
    start = time.perf_counter()
    for n in range(1000):
        await watch.sample(tasks, p95, 5.0, 3, float(n))
    return round((time.perf_counter() - start) / 1000 * 1e6, 1)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        here = await local(Path(tmp) / "local.db", args.rounds)
        there = await remote(Path(tmp) / "remote.db")
    result = {"local": here, "other_node": there, "stuck_look_64_tasks_us": await stuck_look()}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
