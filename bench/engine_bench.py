"""Engine throughput, latency and memory on the SQLite file store; prints JSON.

    python bench/engine_bench.py            # full run (a few minutes)
    python bench/engine_bench.py --quick    # smaller counts, for a smoke check

Every scenario runs in a fresh process on a fresh file, at default durability,
with no-op async handlers. The raw baseline is the stdlib ``sqlite3`` doing the
same claim-and-complete cycle in batches of 100 in a tight loop; our processing
rate is reported as a fraction of it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import Engine, Settings, TaskState

SCENARIOS = (
    "enqueue_many",
    "enqueue_single",
    "process",
    "e2e_many",
    "e2e_single",
    "e2e_single_2proc",
    "latency",
    "rss",
    "raw_baseline",
)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def make_engine(path: str, workers: int) -> tuple[Engine, list[float]]:
    engine = Engine(path, workers=workers, settings=Settings.from_env())  # TASKDECK_PREFETCH …
    starts: list[float] = []

    @engine.task(name="noop")
    async def noop(n: int = 0) -> None:
        return None

    @engine.task(name="timed")
    async def timed(t0: float) -> None:
        starts.append(time.perf_counter() - t0)

    return engine, starts


async def fill(engine: Engine, n: int, batch: int = 500) -> None:
    for i in range(0, n, batch):
        await engine.enqueue_many([("noop", {"n": j}) for j in range(i, min(n, i + batch))])


async def scenario(name: str, path: str, n: int, workers: int) -> dict[str, object]:
    if name == "enqueue_many":
        engine, _ = make_engine(path, 0)
        async with engine:
            t = time.perf_counter()
            await fill(engine, n)
            return {"tasks": n, "batch": 500, "rate": n / (time.perf_counter() - t)}
    if name == "enqueue_single":
        engine, _ = make_engine(path, 0)
        async with engine:
            count = n // 10
            t = time.perf_counter()
            for i in range(count):
                await engine.enqueue("noop", {"n": i})
            return {"tasks": count, "rate": count / (time.perf_counter() - t)}
    if name == "process":
        engine, _ = make_engine(path, 0)
        async with engine:
            await fill(engine, n)
            t = time.perf_counter()
            await engine.set_workers(workers)
            await engine.drain()
            return {"tasks": n, "workers": workers, "rate": n / (time.perf_counter() - t)}
    if name in ("e2e_many", "e2e_single"):
        engine, _ = make_engine(path, workers)
        count = n if name == "e2e_many" else n // 5
        async with engine:
            t = time.perf_counter()
            if name == "e2e_many":
                await fill(engine, count)
            else:
                for i in range(count):
                    await engine.enqueue("noop", {"n": i})
            await engine.drain()
            return {"tasks": count, "workers": workers, "rate": count / (time.perf_counter() - t)}
    if name == "e2e_single_2proc":
        # As the peers in the notes were measured: the producer is its own process.
        engine, _ = make_engine(path, workers)
        count = n // 5
        async with engine:
            t = time.perf_counter()
            producer = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--producer", "--db", path, "--tasks", str(count)
            )
            while engine.snapshot().counts[TaskState.SUCCEEDED] < count:
                if producer.returncode not in (None, 0):
                    raise SystemExit(f"the producer failed with exit code {producer.returncode}")
                await asyncio.sleep(0.005)
            rate = count / (time.perf_counter() - t)
            await producer.wait()
            return {"tasks": count, "workers": workers, "rate": rate}
    if name == "latency":
        engine, starts = make_engine(path, workers)
        async with engine:
            for _ in range(1000):
                tid = await engine.enqueue("timed", {"t0": time.perf_counter()})
                await engine.wait(tid, timeout=5)
                await asyncio.sleep(0.002)
            ms = sorted(s * 1000 for s in starts)
            return {
                "samples": len(ms),
                "p50_ms": statistics.median(ms),
                "p99_ms": ms[int(len(ms) * 0.99) - 1],
                "max_ms": ms[-1],
            }
    if name == "rss":
        engine, _ = make_engine(path, workers)
        async with engine:
            await engine.pause("default")  # keep the backlog queued while workers idle
            marks = {}
            total = n * 10
            for i in range(0, total, 10_000):
                await engine.enqueue_many([("noop", {"n": j}) for j in range(i, i + 10_000)])
                done = i + 10_000
                if done in (total // 10, total):
                    marks[f"rss_mb_at_{done}"] = round(rss_mb(), 1)
            t = time.perf_counter()
            snap = engine.snapshot()
            snap_ms = (time.perf_counter() - t) * 1000
            t = time.perf_counter()
            page = await engine.tasks(state="queued", limit=50)
            page_ms = (time.perf_counter() - t) * 1000
            return {
                **marks,
                "queued": snap.queued,
                "snapshot_ms": snap_ms,
                "top50_ms": page_ms,
                "top50_rows": len(page),
            }
    if name == "raw_baseline":
        return raw_baseline(path, n)
    raise SystemExit(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")


async def produce(path: str, count: int) -> None:
    """The producer process of ``e2e_single_2proc``: one awaited enqueue at a time."""
    engine = Engine(path, workers=0, strict_handlers=False)
    async with engine:
        for i in range(count):
            await engine.enqueue("noop", {"n": i})


def raw_baseline(path: str, n: int) -> dict[str, object]:
    """stdlib sqlite3: claim 100 with UPDATE … RETURNING, then mark them done."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, state TEXT NOT NULL, priority INT NOT NULL, "
        "payload TEXT NOT NULL, owner TEXT)"
    )
    conn.execute("CREATE INDEX t_ready ON t(priority DESC, id) WHERE state = 'queued'")
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO t (state, priority, payload) VALUES ('queued', 5, ?)",
        ((json.dumps({"n": i}),) for i in range(n)),
    )
    conn.execute("COMMIT")
    done = 0
    t = time.perf_counter()
    while True:
        conn.execute("BEGIN IMMEDIATE")
        ids = [
            r[0]
            for r in conn.execute(
                "UPDATE t SET state = 'running', owner = 'me' WHERE id IN (SELECT id FROM t "
                "WHERE state = 'queued' ORDER BY priority DESC, id LIMIT 100) RETURNING id"
            )
        ]
        conn.execute("COMMIT")
        if not ids:
            break
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "UPDATE t SET state = 'done' WHERE id = ? AND owner = 'me'", ((i,) for i in ids)
        )
        conn.execute("COMMIT")
        done += len(ids)
    return {"tasks": done, "batch": 100, "rate": done / (time.perf_counter() - t)}


def run_child(name: str, n: int, workers: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            __file__,
            "--scenario",
            name,
            "--tasks",
            str(n),
            "--workers",
            str(workers),
            "--db",
            os.path.join(tmp, "bench.db"),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            return {"error": out.stderr.strip().splitlines()[-1:]}
        result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    parser.add_argument("--tasks", type=int, default=None, help="tasks per scenario")
    parser.add_argument("--workers", type=int, default=64, help="worker slots (async)")
    parser.add_argument("--scenario", choices=SCENARIOS, help="run one scenario here")
    parser.add_argument("--only", nargs="*", choices=SCENARIOS, help="run these scenarios")
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--producer", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    n = args.tasks or (20_000 if args.quick else 100_000)
    if args.producer:
        asyncio.run(produce(args.db, n))
        return
    if args.scenario:
        result = asyncio.run(scenario(args.scenario, args.db, n, args.workers))
        print(json.dumps(result))
        return
    results = {name: run_child(name, n, args.workers) for name in (args.only or SCENARIOS)}
    summary: dict[str, object] = {
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
        "tasks": n,
        "workers": args.workers,
        **results,
    }
    raw = results.get("raw_baseline", {}).get("rate")
    proc = results.get("process", {}).get("rate")
    if isinstance(raw, float) and isinstance(proc, float):
        summary["process_fraction_of_raw"] = round(proc / raw, 3)
    print(json.dumps(summary, indent=2, default=lambda v: round(v, 2)))


if __name__ == "__main__":
    main()
