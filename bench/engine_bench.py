"""Engine throughput, latency and memory at the default settings; prints JSON.

    python bench/engine_bench.py               # full run (several minutes)
    python bench/engine_bench.py --quick       # smaller counts, for a smoke check
    python bench/engine_bench.py --workers 64  # another worker count than the default
    python bench/engine_bench.py --only e2e_many e2e_many_2proc raw_baseline

Every scenario runs in a fresh process on a fresh SQLite file, at the default settings
and the Engine's default worker count (unless ``--workers``), with no-op async handlers.
The ``*_2proc`` scenarios are the usual deployment: a producer process (an Engine with
``workers=0``) and a ``taskdeck run --headless`` process (see bench/two_process.py).
``enqueue_concurrent`` is 100 coroutines each awaiting one ``enqueue`` at a time (a web
server's request handlers); it reports store transactions per enqueue, on SQLite and
(``enqueue_concurrent_pg``) on PostgreSQL at 127.0.0.1:5432, database ``test``, in a
fresh schema. The raw baseline is the stdlib ``sqlite3`` doing the same
claim-and-complete cycle in batches of 100 in a tight loop; every processing rate is
also reported as a fraction of it (``fraction_of_raw``). ``load_1m`` is the machine's
1-minute load average before and after the run: on a shared machine figures move with it.
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import two_process
from cluster_bench import fresh_store

from engine import Engine, Settings

SCENARIOS = (
    "enqueue_many",
    "enqueue_single",
    "enqueue_concurrent",
    "enqueue_concurrent_pg",
    "process",
    "e2e_many",
    "e2e_single",
    "latency",
    *two_process.SCENARIOS,
    "rss",
    "raw_baseline",
)
#: the figures that process tasks, each also given as a fraction of the raw baseline
PROCESSING = ("process", "e2e_many", "e2e_single", "e2e_many_2proc", "e2e_single_2proc")
DEFAULT_WORKERS = two_process.DEFAULT_WORKERS


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def make_engine(path: str, workers: int | None) -> tuple[Engine, list[float]]:
    # settings from TASKDECK_* variables, e.g. TASKDECK_PREFETCH=0 for the old claim size
    engine = Engine(
        path,
        workers=DEFAULT_WORKERS if workers is None else workers,
        settings=Settings.from_env(),
    )
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


def transactions(engine: Engine) -> int:
    return engine.snapshot().stats["transactions"]


async def enqueue_concurrent(store: str, count: int, coroutines: int = 100) -> dict[str, object]:
    """``coroutines`` callers, each awaiting one ``enqueue`` at a time (no workers)."""
    engine, _ = make_engine(store, 0)
    per = count // coroutines

    async def caller(c: int) -> None:
        for i in range(per):
            await engine.enqueue("noop", {"n": c * per + i})

    async with engine:
        await engine.enqueue("noop", {"n": -1})  # warm up connections and statements
        before, t = transactions(engine), time.perf_counter()
        await asyncio.gather(*(caller(c) for c in range(coroutines)))
        elapsed, done = time.perf_counter() - t, transactions(engine) - before
    return {
        "tasks": per * coroutines,
        "coroutines": coroutines,
        "rate": per * coroutines / elapsed,
        "transactions": done,
        "transactions_per_enqueue": done / (per * coroutines),
    }


async def scenario(
    name: str, path: str, n: int, workers: int | None, quick: bool
) -> dict[str, object]:
    if name in two_process.SCENARIOS:
        return await two_process.run(name, path, n, workers, quick)
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
            before, t = transactions(engine), time.perf_counter()
            for i in range(count):
                await engine.enqueue("noop", {"n": i})
            rate = count / (time.perf_counter() - t)
            per = (transactions(engine) - before) / count
            return {"tasks": count, "rate": rate, "transactions_per_enqueue": per}
    if name == "enqueue_concurrent":
        return await enqueue_concurrent(path, n // 10)
    if name == "enqueue_concurrent_pg":
        with fresh_store("postgres") as url:
            return await enqueue_concurrent(url, n // 10)
    if name == "process":
        engine, _ = make_engine(path, 0)
        async with engine:
            await fill(engine, n)
            t = time.perf_counter()
            await engine.set_workers(DEFAULT_WORKERS if workers is None else workers)
            await engine.drain()
            return {"tasks": n, "rate": n / (time.perf_counter() - t)}
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
            return {"tasks": count, "rate": count / (time.perf_counter() - t)}
    if name == "latency":
        engine, starts = make_engine(path, workers)
        async with engine:
            for _ in range(300 if quick else 1000):
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


def run_child(name: str, n: int, workers: int | None, quick: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, __file__, "--scenario", name, "--tasks", str(n)]
        cmd += ["--db", os.path.join(tmp, "bench.db")]
        cmd += ["--workers", str(workers)] if workers is not None else []
        cmd += ["--quick"] if quick else []
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            return {"error": out.stderr.strip().splitlines()[-1:]}
        result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
        return result


def rounded(value: Any) -> Any:
    """Figures to a readable precision: 4 decimals under 1, 2 under 100, else whole."""
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, float):
        return round(value, 4 if abs(value) < 1 else 2 if abs(value) < 100 else None)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    parser.add_argument("--tasks", type=int, default=None, help="tasks per scenario")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help=f"worker slots (default: the Engine's, {DEFAULT_WORKERS})",
    )
    parser.add_argument("--scenario", choices=SCENARIOS, help="run one scenario here")
    parser.add_argument("--only", nargs="*", choices=SCENARIOS, help="run these scenarios")
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    n = args.tasks or (20_000 if args.quick else 100_000)
    if args.scenario:
        result = asyncio.run(scenario(args.scenario, args.db, n, args.workers, args.quick))
        print(json.dumps(result))
        return
    names = args.only or SCENARIOS
    load_before = os.getloadavg()[0]
    results: dict[str, Any] = {name: run_child(name, n, args.workers, args.quick) for name in names}
    summary: dict[str, Any] = {
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
        "load_1m": {"before": load_before, "after": os.getloadavg()[0]},
        "tasks": n,
        "workers": DEFAULT_WORKERS if args.workers is None else args.workers,
        **results,
    }
    raw = results.get("raw_baseline", {}).get("rate")
    if isinstance(raw, float):
        summary["fraction_of_raw"] = {
            name: results[name]["rate"] / raw
            for name in PROCESSING
            if isinstance(results.get(name, {}).get("rate"), float)
        }
    print(json.dumps(rounded(summary), indent=2))


if __name__ == "__main__":
    main()
