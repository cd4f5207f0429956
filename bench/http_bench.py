"""The HTTP endpoint under load: ``/metrics`` scrape time with 1,000,000 queued tasks in
a SQLite store, and the JSON API's enqueue rate (one client, keep-alive); prints JSON.

    python bench/http_bench.py [--tasks 1000000] [--scrapes 50] [--enqueues 2000]

The store is filled straight in SQL (one transaction; 4 queues, priorities 0–9), then
``taskdeck serve`` runs on it as a subprocess, as a user runs it; an aiohttp client
with one kept-alive connection scrapes and enqueues. Times are seen by the client
(request to full body).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# This file is named http.py: keep its directory off the path, or it hides the stdlib's.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import sqlite3  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import aiohttp  # noqa: E402

from engine import Engine  # noqa: E402

FILL = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
INSERT INTO tasks (handler, queue, priority, state, prev_state, attempts, max_retries, retries,
    payload, created_at)
SELECT 'svc' || (i % 10) || '.run', 'q' || (i % 4), i % 10, 'queued', '', 0, 3, 3,
    '{"n":' || i || '}', :t0 + i * 0.0001
FROM n
"""


def fill(path: Path, count: int) -> float:
    started = time.perf_counter()
    conn = sqlite3.connect(path)
    conn.execute("BEGIN")
    conn.execute(FILL, {"count": count, "t0": time.time() - count * 0.0001 - 60})
    conn.execute("DELETE FROM task_counts")
    conn.execute(
        "INSERT INTO task_counts (queue, state, n) "
        "SELECT queue, state, count(*) FROM tasks GROUP BY queue, state"
    )
    conn.execute("COMMIT")
    conn.close()
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_ready(session: aiohttp.ClientSession, url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            async with session.get(url + "/ready") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.05)
    raise SystemExit("taskdeck serve did not become ready in 60 s")


def percentiles(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return {"median_ms": round(statistics.median(ordered), 2), "p95_ms": round(p95, 2)}


async def scrapes(session: aiohttp.ClientSession, url: str, count: int) -> tuple[list[float], int]:
    times, size = [], 0
    for _ in range(count):
        started = time.perf_counter()
        async with session.get(url + "/metrics") as response:
            body = await response.read()
        times.append((time.perf_counter() - started) * 1000)
        size = len(body)
    return times, size


#: ``GET /api/tasks`` queries: a page of a million matches, and none at all (the worst
#: case: the page is read newest first by id, so every row is looked at)
LISTS = {"queued_page": "state=queued queue=q1", "no_match": "state=failed"}


async def lists(session: aiohttp.ClientSession, url: str, runs: int) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, where in LISTS.items():
        times, rows = [], 0
        for _ in range(runs):
            started = time.perf_counter()
            async with session.get(url + "/api/tasks", params={"where": where}) as response:
                rows = len((await response.json())["tasks"])
            times.append((time.perf_counter() - started) * 1000)
        out[name] = {"where": where, "rows": rows, **percentiles(times)}
    return out


async def enqueues(session: aiohttp.ClientSession, url: str, count: int) -> float:
    started = time.perf_counter()
    for i in range(count):
        body = {"handler": "bench.echo", "payload": {"i": i}, "queue": "api"}
        async with session.post(url + "/api/tasks", json=body) as response:
            if response.status != 201:
                raise SystemExit(f"enqueue answered {response.status}: {await response.text()}")
            await response.read()
    return count / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--scrapes", type=int, default=50)
    parser.add_argument("--enqueues", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "http.db"
        async with Engine(store, workers=0):
            pass  # makes the schema
        fill_s = fill(store, args.tasks)
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
        command = [sys.executable, "-m", "console.cli", "serve", "--store", str(store),
                   "--port", str(port)]  # fmt: skip
        server = await asyncio.create_subprocess_exec(
            *command, env=env, stderr=subprocess.DEVNULL, cwd=tmp
        )
        url = f"http://127.0.0.1:{port}"
        try:
            connector = aiohttp.TCPConnector(limit=1)  # one kept-alive connection
            async with aiohttp.ClientSession(connector=connector) as session:
                await wait_ready(session, url)
                await scrapes(session, url, 3)  # warm up
                times, size = await scrapes(session, url, args.scrapes)
                listed = await lists(session, url, 10)
                rate = await enqueues(session, url, args.enqueues)
        finally:
            server.terminate()
            await asyncio.wait_for(server.wait(), 30)
    print(
        json.dumps(
            {
                "queued_tasks": args.tasks,
                "fill_s": round(fill_s, 1),
                "store": "sqlite",
                "metrics_scrape": {"scrapes": args.scrapes, "bytes": size, **percentiles(times)},
                "api_list": listed,
                "api_enqueue": {
                    "requests": args.enqueues,
                    "per_second": round(rate),
                    "client": "aiohttp, one kept-alive connection, one request at a time",
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
