"""The metrics history's cost: what writing it costs per minute at 20 handlers × 5
queues, and how long trend queries over 30 days of hours take; prints JSON.

    python bench/history_bench.py                                  # SQLite (a temp file)
    python bench/history_bench.py --store 'postgresql://…?schema=history_bench'

Write cost: each simulated minute every (handler, queue) pair finishes ``--per-pair``
attempts (recorded in memory as the pool does), then the minute is written as the
history service does it (``flush``: one read and one multi-row write) and the leader
does its upkeep (``maintain``: lease, backlog rows, roll-up check, prune). Reported:
milliseconds per minute for each (median and max over ``--minutes``), and the cost
of recording one attempt in memory. Then the hour roll-up those minutes trigger.

Query time: 30 days of hour rows for the same 100 pairs (72,000 rows, written
directly), rolled into days by the leader's upkeep (timed: a catch-up of 30 days),
then ``trends(since=30d, step=1h)`` for everything and for one handler,
``trends(since=30d, step=1d)`` (from day rows) and ``stats(since=30d)`` (from hour
rows); the median of five runs each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

# the repository instead of bench/ (bench/http.py would shadow the standard library's http)
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from engine import Engine  # noqa: E402
from engine.history.cells import Cell  # noqa: E402
from engine.history.hist import add, empty  # noqa: E402
from engine.store import history as sql  # noqa: E402

HANDLERS, QUEUES = 20, 5
T0 = 1_799_971_200  # a UTC midnight


def pairs() -> list[tuple[str, str]]:
    return [(f"h{h:02d}", f"q{q}") for h in range(HANDLERS) for q in range(QUEUES)]


async def write_cost(store: str, minutes: int, per_pair: int) -> dict[str, object]:
    at = [float(T0)]
    engine = Engine(store, workers=0, clock=lambda: at[0])
    await engine.start()
    history, flush_ms, upkeep_ms, record_s = engine.history, [], [], 0.0
    try:
        for m in range(minutes):
            at[0] = T0 + m * 60 + 1
            began = time.perf_counter()
            for handler, queue in pairs():
                for i in range(per_pair):
                    history.recorder.started(handler, queue, 0.01 * (i + 1))
                    history.recorder.finished(handler, queue, 0.05 * (i + 1), "succeeded", False)
            record_s += time.perf_counter() - began
            at[0] = T0 + (m + 1) * 60 + 1
            began = time.perf_counter()
            await history.flush()
            flush_ms.append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            await history.maintain()
            upkeep_ms.append((time.perf_counter() - began) * 1000)
        at[0] = T0 + 3600 + 121  # the first hour rolls up now
        began = time.perf_counter()
        await history.maintain()
        rollup_ms = (time.perf_counter() - began) * 1000
    finally:
        await engine.stop(grace=0)
    attempts = minutes * len(pairs()) * per_pair
    return {
        "pairs": len(pairs()),
        "attempts_per_minute": len(pairs()) * per_pair,
        "minutes": minutes,
        "flush_ms_median": round(statistics.median(flush_ms), 2),
        "flush_ms_max": round(max(flush_ms), 2),
        "leader_upkeep_ms_median": round(statistics.median(upkeep_ms), 2),
        "rows_written_per_minute": len(pairs()),
        "record_us_per_attempt": round(record_s / attempts * 1e6, 2),
        "hour_rollup_ms": round(rollup_ms, 1),
    }


async def query_time(store: str) -> dict[str, object]:
    now = T0 + 30 * 86400
    engine = Engine(store, workers=0, clock=lambda: float(now))
    await engine.start()
    try:
        runs = empty()
        for i in range(20):
            add(runs, 0.01 * 1.3**i, 5)
        for day in range(30):  # one day of hour rows a write
            cells = {}
            for hour in range(24):
                t = T0 + day * 86400 + hour * 3600
                for handler, queue in pairs():
                    cells[(3600, t, handler, queue)] = Cell(
                        100, 95, 3, 2, 0, 12.5, list(runs), list(runs)
                    ).columns()
            await engine.history._store.run_plan(partial(sql.upsert, cells=cells))
        rows = engine.history._store
        await rows.run_plan(partial(sql.set_mark, step=3600, upto=now))  # hours: all rolled
        await rows.run_plan(partial(sql.set_mark, step=86400, upto=0))  # days: not yet
        began = time.perf_counter()
        await engine.history.maintain()  # rolls the 30 days of hours into days
        day_rollup_ms = (time.perf_counter() - began) * 1000
        timings = {}
        cases: dict[str, Callable[[], Awaitable[object]]] = {
            "trends_30d_per_hour_all_ms": lambda: engine.history.trends(since="30d", step="1h"),
            "trends_30d_per_hour_one_handler_ms": lambda: engine.history.trends(
                handler="h07", since="30d", step="1h"
            ),
            "trends_30d_per_day_all_ms": lambda: engine.history.trends(since="30d", step="1d"),
            "stats_30d_all_ms": lambda: engine.history.stats(since="30d"),
        }
        for name, call in cases.items():
            took = []
            for _ in range(5):
                began = time.perf_counter()
                await call()
                took.append((time.perf_counter() - began) * 1000)
            timings[name] = round(statistics.median(took), 1)
        return {
            "hour_rows": 30 * 24 * len(pairs()),
            "day_rollup_of_30_days_ms": round(day_rollup_ms, 1),
            **timings,
        }
    finally:
        await engine.stop(grace=0)


async def main() -> None:
    parser = argparse.ArgumentParser(description="the metrics history's cost")
    parser.add_argument("--store", default=None, help="a file (SQLite) or postgresql:// URL")
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--per-pair", type=int, default=10, help="attempts a pair a minute")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        write_store = args.store or str(Path(tmp) / "write.db")
        query_store = args.store or str(Path(tmp) / "query.db")
        if args.store and args.store.startswith("postgresql://"):
            query_store = args.store.replace("schema=", "schema=q_")
        write = await write_cost(write_store, args.minutes, args.per_pair)
        query = await query_time(query_store)
    backend = "postgresql" if (args.store or "").startswith("postgresql://") else "sqlite"
    print(json.dumps({"store": backend, "write": write, "query": query}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
