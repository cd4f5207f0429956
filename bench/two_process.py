"""The two-process scenarios of bench/engine_bench.py: this process is the producer (an
Engine with ``workers=0``) and a ``taskdeck run --headless`` process on bench/bench_app.py
is the worker, as the README's deployment runs them. Both on the default settings.

- ``e2e_many_2proc`` / ``e2e_single_2proc``: the clock starts at the first enqueue
  (``enqueue_many`` batches of 500, or one awaited ``enqueue`` at a time) and stops when
  the store counts every task succeeded.
- ``latency_2proc``: ``timed`` tasks enqueued one at a time about every 10 ms (low load);
  the worker notes how long after the producer's clock reading before ``enqueue`` each
  one started (``time.monotonic``: one clock for every process on the machine).
- ``idle_cpu_2proc``: the worker process's CPU time over a few seconds with nothing to do,
  as a percentage of one core.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import random
import signal
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psutil

from engine import Engine, TaskState

ROOT = Path(__file__).resolve().parent.parent
PING = -1
#: the Engine's default worker count, which every bench uses unless told otherwise
DEFAULT_WORKERS: int = inspect.signature(Engine).parameters["workers"].default
SCENARIOS = ("e2e_many_2proc", "e2e_single_2proc", "latency_2proc", "idle_cpu_2proc")


def node_command() -> list[str]:
    return [
        *(sys.executable, "-m", "console.cli", "run", "--headless", "--interval", "600"),
        *("--app", "bench.bench_app:app"),
    ]


def node_env(store: str, out: Path, expect: int, workers: int | None) -> dict[str, str]:
    env = {**os.environ, "BENCH_STORE": store, "BENCH_OUT": str(out), "BENCH_EXPECT": str(expect)}
    if workers is not None:
        env["BENCH_WORKERS"] = str(workers)
    return env


async def wait_file(path: Path, proc: asyncio.subprocess.Process, timeout: float) -> None:
    """Until ``path`` exists; fails if the consumer process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(path.exists):
        if proc.returncode is not None:
            raise RuntimeError(f"the worker process exited with code {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {path.name} from the worker process within {timeout:g} s")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def headless_node(
    store: str, out: Path, expect: int, workers: int | None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A ``taskdeck run --headless`` process on bench_app, stopped (SIGTERM) afterwards."""
    log = out.with_name(out.name + ".log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        *node_command(),
        cwd=ROOT,
        env=node_env(store, out, expect, workers),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=log,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 60)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()


async def until_succeeded(engine: Engine, at_least: int, node: asyncio.subprocess.Process) -> int:
    """Polls the store's counts (every 10 ms) until ``at_least`` tasks have succeeded."""
    while (done := (await engine.counts())[TaskState.SUCCEEDED]) < at_least:
        if node.returncode is not None:
            raise RuntimeError(f"the worker process exited with code {node.returncode}")
        await asyncio.sleep(0.01)
    return done


async def run(name: str, path: str, n: int, workers: int | None, quick: bool) -> dict[str, object]:
    out = Path(path + ".done")
    expect = {
        "e2e_many_2proc": n,
        "e2e_single_2proc": n // 5,
        "latency_2proc": 100 if quick else 300,
    }.get(name, 0)
    producer = Engine(path, workers=0, strict_handlers=False, name="bench-producer")
    async with producer, headless_node(path, out, expect, workers) as node:
        await producer.enqueue("noop", {"n": PING})  # the worker writes .ready on running it
        await wait_file(out.with_name(out.name + ".ready"), node, 60)
        if name == "idle_cpu_2proc":
            return await idle_cpu(node.pid, 3.0 if quick else 10.0)
        if name == "latency_2proc":
            return await latency(producer, node, out, expect)
        base = await until_succeeded(producer, 1, node)  # the ping's completion committed
        t = time.monotonic()
        if name == "e2e_many_2proc":
            for i in range(0, expect, 500):
                batch = [("noop", {"n": j}) for j in range(i, min(expect, i + 500))]
                await producer.enqueue_many(batch)
        else:
            for i in range(expect):
                await producer.enqueue("noop", {"n": i})
        enqueued = time.monotonic() - t
        await until_succeeded(producer, base + expect, node)
        elapsed = time.monotonic() - t
        return {
            "tasks": expect,
            "batch": 500 if name == "e2e_many_2proc" else 1,
            "rate": expect / elapsed,
            "enqueue_rate": expect / enqueued,
        }


async def latency(
    producer: Engine, node: asyncio.subprocess.Process, out: Path, samples: int
) -> dict[str, object]:
    pace = random.Random(15)
    for _ in range(samples):
        await producer.enqueue("timed", {"t0": time.monotonic()})
        await asyncio.sleep(0.01 * pace.uniform(0.5, 1.5))
    await wait_file(out, node, 120)
    ms = sorted(json.loads(await asyncio.to_thread(out.read_text))["latencies_ms"])
    return {
        "samples": len(ms),
        "p50_ms": statistics.median(ms),
        "p99_ms": ms[max(0, int(len(ms) * 0.99) - 1)],
        "max_ms": ms[-1],
    }


async def idle_cpu(pid: int, seconds: float) -> dict[str, object]:
    proc = psutil.Process(pid)
    await asyncio.sleep(1.0)  # past start-up
    before, t = proc.cpu_times(), time.monotonic()
    await asyncio.sleep(seconds)
    after, wall = proc.cpu_times(), time.monotonic() - t
    used = (after.user - before.user) + (after.system - before.system)
    return {"seconds": seconds, "cpu_pct_of_one_core": 100 * used / wall}
