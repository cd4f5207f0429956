"""Cross-process wake-ups on the SQLite store; prints JSON.

    python bench/wake_bench.py            # full run (about three minutes)
    python bench/wake_bench.py --quick    # fewer samples, a 5 s idle window
    python bench/wake_bench.py --root DIR # the engine processes from another checkout
    python bench/wake_bench.py --workers 64 --coalesce 0.005   # other shapes

An Engine with the default 4 workers and a no-op handler runs in its own process;
this process is the producer, a client like ``taskdeck enqueue``. Modes: "wake" (as
shipped), "eager" (every wake-up kicks the pool at once: no ``COALESCE``), and
"poll_only" (wake-ups off in both processes: what was there before them; the
``poll_interval`` of 0.5 s finds the work).

- ``latency_low_load``: enqueue → start; the producer enqueues one task, waits until
  it is done, pauses 5–20 ms, and so on. The figure is the task's ``started_at``
  minus its ``created_at`` (both stamped by the store's transactions).
- ``latency_stream``: the same figure while the producer enqueues 200 tasks/s
  without waiting for them.
- ``stream``: end to end, the producer awaiting one ``enqueue`` at a time as fast as
  it can; tasks/s from the first enqueue until the last task succeeded.
- ``idle_cpu``: CPU of ``taskdeck run --headless --no-demo`` (default settings)
  with nothing to do, measured with psutil over the window, in % of one core.
- ``send_us``: what one wake-up costs the committing process's writer thread (list
  the wake directory, one datagram per other engine), by number of other engines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import Engine, TaskState  # noqa: E402
from engine.store.base import OpenMode  # noqa: E402
from engine.store.sqlite import wake  # noqa: E402

WORKER = """
import asyncio, signal, sys
try:
    import engine.store.sqlite.wake as wake
    wake.SUPPORTED = sys.argv[2] != "poll_only"
    if sys.argv[2] == "eager":
        wake.COALESCE = 0.0
    elif sys.argv[4]:
        wake.COALESCE = float(sys.argv[4])
except ImportError:  # a checkout from before the wake-ups
    pass
from engine import Engine

async def main() -> None:
    engine = Engine(sys.argv[1], **({"workers": int(sys.argv[3])} if sys.argv[3] else {}))

    @engine.task(name="noop")
    async def noop(n: int = 0) -> None:
        return None

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with engine:
        print("ready", flush=True)
        await stop.wait()

asyncio.run(main())
"""


PARTS = ("latency_low_load", "latency_stream", "stream", "idle_cpu", "send_us")


def env(root: Path) -> dict[str, str]:
    """The engine processes' environment: their code from ``root`` (``--root``)."""
    return {**os.environ, "PYTHONPATH": str(root)}


def summary(ms: list[float]) -> dict[str, Any]:
    ms = sorted(ms)
    return {
        "samples": len(ms),
        "p50_ms": round(statistics.median(ms), 2),
        "p99_ms": round(ms[max(0, int(len(ms) * 0.99) - 1)], 2),
        "max_ms": round(ms[-1], 2),
    }


@dataclass(frozen=True)
class Shape:
    """Where the worker process's code comes from, its workers and COALESCE ("": default)."""

    root: Path
    workers: str = ""
    coalesce: str = ""


@contextlib.asynccontextmanager
async def producing(path: Path, mode: str, shape: Shape) -> AsyncIterator[Engine]:
    """The worker process started on ``path`` in ``mode``; yields the producer."""
    wake.SUPPORTED = mode != "poll_only"  # this process, the producer, sends or not
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WORKER, str(path), mode, shape.workers, shape.coalesce,
        cwd=shape.root, env=env(shape.root), stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert worker.stdout is not None
        line = await asyncio.wait_for(worker.stdout.readline(), 60)
        assert line.strip() == b"ready", line
        producer = Engine(path, workers=0, strict_handlers=False)
        async with producer.client(create=False):
            yield producer
    finally:
        worker.send_signal(signal.SIGTERM)
        await worker.wait()
        wake.SUPPORTED = True


async def started_after(producer: Engine, ids: list[Any]) -> list[float]:
    """Each task's enqueue → start, ms (once every one has finished)."""
    ms = []
    for task_id in ids:
        record = await producer.wait(task_id, timeout=60)
        assert record.started_at is not None
        ms.append((record.started_at - record.created_at) * 1000)
    return ms


async def latency_low_load(path: Path, samples: int, mode: str, shape: Shape) -> dict[str, Any]:
    async with producing(path, mode, shape) as producer:
        ms = []
        for n in range(samples):
            ms += await started_after(producer, [await producer.enqueue("noop", {"n": n})])
            await asyncio.sleep(random.uniform(0.005, 0.02))
    return summary(ms)


async def latency_stream(path: Path, seconds: float, mode: str, shape: Shape) -> dict[str, Any]:
    async with producing(path, mode, shape) as producer:
        ids, loop = [], asyncio.get_running_loop()
        start = loop.time()
        for n in range(int(seconds * 200)):
            await asyncio.sleep(max(0.0, start + n / 200 - loop.time()))
            ids.append(await producer.enqueue("noop", {"n": n}))
        return summary(await started_after(producer, ids))


async def stream(path: Path, tasks: int, mode: str, shape: Shape) -> dict[str, Any]:
    async with producing(path, mode, shape) as producer:
        t = time.perf_counter()
        for n in range(tasks):
            await producer.enqueue("noop", {"n": n})
        # another process runs them: its counts in the store are all there is to watch
        while (await producer.counts())[TaskState.SUCCEEDED] < tasks:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        return {"tasks": tasks, "rate": round(tasks / (time.perf_counter() - t))}


async def idle_cpu(folder: Path, window: float, root: Path) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "console.cli", "run", "--headless",
        "--no-demo",  # nothing to do
        "--store", str(folder / "idle.db"),
        cwd=root, env=env(root), stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        await asyncio.wait_for(proc.stdout.readline(), 60)  # started
        drain = asyncio.create_task(proc.stdout.read())  # its status lines
        await asyncio.sleep(2.0)  # settle after the start
        watched = psutil.Process(proc.pid)
        before, t0 = watched.cpu_times(), time.monotonic()
        await asyncio.sleep(window)
        after, elapsed = watched.cpu_times(), time.monotonic() - t0
    finally:
        proc.send_signal(signal.SIGTERM)
        await proc.wait()
    await drain
    used = (after.user - before.user) + (after.system - before.system)
    percent = round(100 * used / elapsed, 3)
    return {"window_s": round(elapsed, 1), "cpu_percent_of_one_core": percent}


async def send_cost(folder: Path, sends: int) -> dict[str, Any]:
    """One committing process's ``send()``: own socket skipped, ``peers`` others."""
    store = folder / "send.db"
    sender = wake.Wake(store)
    await sender.listen(OpenMode())
    beside, _ = wake.wake_dirs(store)
    result: dict[str, Any] = {}
    peers: list[socket.socket] = []
    try:
        for count in (0, 1, 3):
            while len(peers) < count:
                peer = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                peer.bind(str(beside / f"{len(peers)}-peer.sock"))
                peer.setblocking(False)
                peers.append(peer)
            took = []
            for _ in range(sends):
                t = time.perf_counter()
                sender.send()
                took.append((time.perf_counter() - t) * 1e6)
                for peer in peers:  # drained outside the timing, as a live engine would
                    while True:
                        try:
                            peer.recv(16)
                        except BlockingIOError:
                            break
            result[f"peers_{count}"] = round(statistics.median(took), 1)
    finally:
        for peer in peers:
            peer.close()
        await sender.close()
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--root", type=Path, help="run the engine processes from this checkout")
    parser.add_argument("--window", type=float, help="idle CPU window, s (default 20, quick 5)")
    parser.add_argument("--workers", default="", help="the worker engine's workers (default 4)")
    parser.add_argument("--coalesce", default="", help="COALESCE in the 'wake' mode, s")
    parser.add_argument("--only", nargs="*", choices=PARTS, help="run these parts")
    args = parser.parse_args()
    root = args.root.resolve() if args.root else ROOT
    shape = Shape(root, args.workers, args.coalesce)
    samples, seconds, tasks, window = (40, 2.0, 2000, 5.0) if args.quick else (200, 5.0, 4000, 20.0)
    window = args.window or window
    out: dict[str, Any] = {"engine_code": str(root), "workers": args.workers or "default"}
    out["coalesce_s"] = float(args.coalesce or wake.COALESCE)
    only = set(args.only or PARTS)
    with tempfile.TemporaryDirectory(prefix="wake-bench-") as tmp:
        folder = Path(tmp)
        for mode in ("wake", "eager", "poll_only") if "latency_low_load" in only else ():
            n = samples if mode == "wake" else samples // 2
            db = folder / f"{mode}-low.db"
            out[f"latency_low_load_{mode}"] = await latency_low_load(db, n, mode, shape)
        for mode in ("wake", "eager") if "latency_stream" in only else ():
            db = folder / f"{mode}-stream.db"
            out[f"latency_stream_{mode}"] = await latency_stream(db, seconds, mode, shape)
        for mode in ("wake", "eager", "poll_only") if "stream" in only else ():
            out[f"stream_{mode}"] = await stream(folder / f"{mode}-rate.db", tasks, mode, shape)
        if "idle_cpu" in only:
            out["idle_cpu"] = await idle_cpu(folder, window, root)
        if "send_us" in only:
            out["send_us"] = await send_cost(folder, 2000)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
