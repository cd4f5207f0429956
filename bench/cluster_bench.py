"""Throughput of 1, 2 and 3 engine node processes on one store; prints JSON.

    python bench/cluster_bench.py                      # SQLite and PostgreSQL
    python bench/cluster_bench.py --backend sqlite     # one backend
    python bench/cluster_bench.py --quick              # fewer tasks

Each node is the product's headless runner (`taskdeck run --headless`) on the app
in tests/node_worker.py: one handler, `job`, that returns at once ("noop") or
sleeps 5 ms ("io", an I/O-bound task). The nodes start and go idle first; then a
producer enqueues every task in batches and the clock runs until the store counts
them all succeeded. "producer" measures a process with no workers enqueueing: one
awaited `enqueue` at a time, and `enqueue_many` in batches of 500. PostgreSQL runs
on 127.0.0.1:5432, database `test`, in a fresh schema per run (dropped afterwards).

    python bench/cluster_bench.py --workload producer  # only the producer figures
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import Engine, TaskState

ROOT = Path(__file__).resolve().parent.parent
PG = "postgresql://postgres@127.0.0.1:5432/test"
WORKLOADS = {"noop": 0.0, "io": 0.005}


def start_node(store: str, index: int, workers: int, sleep: float) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "NODE_STORE": store,
        "NODE_NAME": f"bench-{index}",
        "NODE_WORKERS": str(workers),
        "NODE_SLEEP": str(sleep),
        "TASKDECK_POLL_INTERVAL": "0.05",
    }
    command = [sys.executable, "-m", "console.cli", "run", "--headless", "--interval", "600"]
    return subprocess.Popen(
        [*command, "--app", "tests.node_worker:app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def one_run(store: str, nodes: int, workers: int, sleep: float, tasks: int) -> float:
    producer = Engine(store, workers=0, strict_handlers=False, name="bench-producer")
    async with producer:
        procs = [start_node(store, i, workers, sleep) for i in range(nodes)]
        try:
            deadline = time.monotonic() + 60
            while len([n for n in await producer.nodes() if n.state == "alive"]) < nodes:
                if time.monotonic() > deadline:
                    raise RuntimeError("the nodes did not start")
                await asyncio.sleep(0.1)
            t0 = time.perf_counter()
            for start in range(0, tasks, 1000):
                await producer.enqueue_many(
                    [("job", {"n": n}) for n in range(start, min(tasks, start + 1000))]
                )
            while True:
                counts = await producer.counts()
                if counts[TaskState.SUCCEEDED] >= tasks:
                    return tasks / (time.perf_counter() - t0)
                await asyncio.sleep(0.05)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(timeout=60)


async def producer_run(store: str, single: int, batches: int) -> dict[str, int]:
    """A producer (no workers) enqueueing: one awaited enqueue at a time, then batches
    of 500 with enqueue_many."""
    producer = Engine(store, workers=0, strict_handlers=False, name="bench-producer")
    async with producer:
        for n in range(100):  # warm up connections and prepared statements
            await producer.enqueue("job", {"n": n})
        t0 = time.perf_counter()
        for n in range(single):
            await producer.enqueue("job", {"n": n})
        one = single / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(batches):
            await producer.enqueue_many([("job", {"n": n}) for n in range(500)])
        many = batches * 500 / (time.perf_counter() - t0)
    return {"enqueue_single_per_s": round(one), "enqueue_many_per_s": round(many)}


def _pg_schema_url() -> tuple[str, str]:
    schema = f"bench_{secrets.token_hex(4)}"
    return f"{PG}?schema={schema}", schema


def _drop_schema(schema: str) -> None:
    subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-qc",
            f"DROP SCHEMA IF EXISTS {schema} CASCADE",
        ],
        check=False,
        capture_output=True,
    )


@contextlib.contextmanager
def fresh_store(backend: str) -> Iterator[str]:
    """A new store URL: a file in a temporary directory, or a new PostgreSQL schema
    (dropped afterwards)."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield str(Path(tmp) / "cluster.db")
        return
    store, schema = _pg_schema_url()
    try:
        yield store
    finally:
        _drop_schema(schema)


async def bench(backends: list[str], quick: bool, workloads: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"cpus": os.cpu_count(), "workers_per_node": {"noop": 8, "io": 4}}
    sizes = {"noop": 3000 if quick else 20_000, "io": 1500 if quick else 8000}
    for backend in backends:
        results: dict[str, Any] = {}
        for workload in [w for w in workloads if w in WORKLOADS]:
            sleep = WORKLOADS[workload]
            workers = out["workers_per_node"][workload]
            rates = {}
            for nodes in (1, 2, 3):
                with fresh_store(backend) as store:
                    rate = await one_run(store, nodes, workers, sleep, sizes[workload])
                rates[f"{nodes}_nodes"] = round(rate)
            rates["3_vs_1"] = round(rates["3_nodes"] / rates["1_nodes"], 2)
            results[workload] = {"tasks": sizes[workload], "tasks_per_s": rates}
        if "producer" in workloads:
            single, batches = (1000, 20) if quick else (5000, 100)
            with fresh_store(backend) as store:
                results["producer"] = await producer_run(store, single, batches)
        out[backend] = results
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], action="append")
    parser.add_argument("--workload", choices=[*WORKLOADS, "producer"], action="append")
    parser.add_argument("--quick", action="store_true", help="fewer tasks")
    args = parser.parse_args()
    backends = args.backend or ["sqlite", "postgres"]
    workloads = args.workload or [*WORKLOADS, "producer"]
    print(json.dumps(asyncio.run(bench(backends, args.quick, workloads)), indent=2))


if __name__ == "__main__":
    main()
