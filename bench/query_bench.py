"""The query language over 1,000,000 tasks (SQLite): first-page times of metadata
queries (served by the state indexes), and of text searches that read every
task's payload; prints JSON.

    python bench/query_bench.py [--tasks 1000000] [--runs 5] [--store PATH]
    python bench/query_bench.py --store 'postgresql://…?schema=query_bench'   # PostgreSQL

The store is filled straight in SQL (one transaction): 10 handlers (``svc0.run`` …),
4 queues, states spread over queued 3/7, succeeded 2/7, failed 1/7 (half "HEIC is not
supported"), scheduled 1/7; payloads ``{"user_id": i, "name": "file<i>.png"}``. Each
query is timed cold (first run) and warm (median of ``--runs``), 100 rows a page.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import Engine, QueryError

FILL = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count),
s(i, st) AS (SELECT i, CASE i % 7 WHEN 0 THEN 'queued' WHEN 1 THEN 'queued'
    WHEN 2 THEN 'queued' WHEN 3 THEN 'succeeded' WHEN 4 THEN 'succeeded'
    WHEN 5 THEN 'failed' ELSE 'scheduled' END FROM n)
INSERT INTO tasks (handler, queue, priority, state, prev_state, attempts, max_retries, retries,
    payload, result, error, created_at, run_at, started_at, finished_at, worker)
SELECT 'svc' || (i % 10) || '.run', 'q' || (i % 4), (i / 7) % 10, st,
    CASE WHEN st IN ('succeeded', 'failed') THEN 'running' ELSE '' END,
    CASE WHEN st IN ('succeeded', 'failed') THEN 1 ELSE 0 END, 3, 3,
    '{"user_id":' || i || ',"name":"file' || i || '.png"}',
    CASE st WHEN 'succeeded' THEN '{"ok":true}' END,
    CASE st WHEN 'failed' THEN CASE WHEN i % 2 = 0
        THEN 'ValueError: HEIC is not supported' ELSE 'ConnectionError: smtp refused' END END,
    :t0 + i * 0.001,
    CASE st WHEN 'scheduled' THEN :t0 + 86400 + i END,
    CASE WHEN st IN ('succeeded', 'failed') THEN :t0 + i * 0.001 + 0.5 END,
    CASE WHEN st IN ('succeeded', 'failed') THEN :t0 + i * 0.001 + 1 END,
    CASE WHEN st IN ('succeeded', 'failed') THEN 'node-' || (i % 3) || '/' || (i % 8) END
FROM s
"""

QUERIES = {
    "handler_and_state": "handler=svc3.run AND state=queued",
    "handler_state_priority": "handler=svc3.run AND state=queued AND priority>=8",
    "failed_by_node_last_hour": "state=failed node=node-1 finished>-1h",
    "handler_any_state": "handler=svc3.run",
    "failed_error_heic": 'state=failed error~"HEIC"',
    "payload_text_no_match": "payload~needle-nowhere",
    "payload_json_path_oldest": "payload.user_id=1",
    "bare_word_no_match": "nowhere",
}


def pg_fill_sql() -> str:
    """The same rows for PostgreSQL (generate_series instead of a recursive CTE)."""
    sql = FILL.split("s(i, st) AS", 1)[1]
    sql = "WITH s(i, st) AS" + sql.replace("FROM n)", "FROM generate_series(1, $1) AS n(i))", 1)
    return sql.replace(":t0", "$2::float8")


async def fill_pg(url: str, count: int, t0: float) -> float:
    import asyncpg  # only for this store

    parts = urlsplit(url)
    schema = dict(parse_qsl(parts.query))["schema"]
    conn = await asyncpg.connect(urlunsplit(parts._replace(query="")))
    started = time.perf_counter()
    try:
        await conn.execute(f"SET search_path TO {schema}")
        async with conn.transaction():
            await conn.execute(pg_fill_sql(), count, t0)
            await conn.execute("DELETE FROM task_counts")
            await conn.execute(
                "INSERT INTO task_counts (queue, state, shard, n) "
                "SELECT queue, state, 0, count(*) FROM tasks GROUP BY queue, state"
            )
        await conn.execute("ANALYZE tasks")
    finally:
        await conn.close()
    return time.perf_counter() - started


def size_mb(path: str) -> int:
    return round(Path(path).stat().st_size / 1e6)


def fill(path: Path, count: int, t0: float) -> float:
    started = time.perf_counter()
    conn = sqlite3.connect(path)
    conn.execute("BEGIN")
    conn.execute(FILL, {"count": count, "t0": t0})
    conn.execute("DELETE FROM task_counts")
    conn.execute(
        "INSERT INTO task_counts (queue, state, n) "
        "SELECT queue, state, count(*) FROM tasks GROUP BY queue, state"
    )
    conn.execute("COMMIT")
    conn.close()
    return time.perf_counter() - started


async def timed(engine: Engine, where: str, runs: int) -> dict[str, object]:
    times: list[float] = []
    rows = 0
    error = None
    for _ in range(runs + 1):
        started = time.perf_counter()
        try:
            page = await engine.tasks(limit=100, where=where)
            rows = len(page)
        except QueryError as exc:
            error = str(exc)
        times.append((time.perf_counter() - started) * 1000)
    out: dict[str, object] = {
        "query": where,
        "rows": rows,
        "cold_ms": round(times[0], 1),
        "warm_ms": round(statistics.median(times[1:]), 1),
    }
    if error:
        out["error"] = error
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--store", default=None, help="a file (SQLite) or postgresql:// URL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or str(Path(tmp) / "query.db")
        pg = store.startswith("postgresql://")
        async with Engine(store, workers=0):
            pass  # makes the schema
        t0 = time.time() - args.tasks * 0.001 - 60  # the newest task is a minute old
        if pg:
            fill_s = await fill_pg(store, args.tasks, t0)
        else:
            fill_s = fill(Path(store), args.tasks, t0)
        engine = Engine(store, workers=0)
        async with engine:
            results = {
                name: await timed(engine, where, args.runs) for name, where in QUERIES.items()
            }
        print(
            json.dumps(
                {
                    "tasks": args.tasks,
                    "fill_s": round(fill_s, 1),
                    "store": "postgresql" if pg else "sqlite",
                    "store_mb": None if pg else size_mb(store),
                    "page_rows": 100,
                    "queries": results,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    asyncio.run(main())
