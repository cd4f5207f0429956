"""Scheduling and flow control, measured; prints JSON.

    python bench/flow_bench.py            # about 40 s
    python bench/flow_bench.py --quick    # shorter windows, for a smoke check

- delay_lateness: delayed tasks' start time minus their due time (timer-woken).
- periodic_lateness: an every=0.2 s schedule's runs, start minus due time.
- rate_limit: a queue limited to 50/s with a big backlog: tasks started per second
  (after the first second, so the bucket's initial burst is not counted).
- weights: two backlogged queues weighted 3:1: the served ratio.
- claim_cost: processing rate of instant tasks in two queues with no flow control
  and with weights set (the claim then runs the flow-control path).
- chain: 200 five-step chains end to end (steps per second).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import Engine, chain, current_task

QUIET = {"poll_interval": 0.5}


def _ms(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {
        "p50_ms": round(statistics.median(values) * 1000, 2),
        "p95_ms": round(values[int(len(values) * 0.95) - 1] * 1000, 2),
        "max_ms": round(values[-1] * 1000, 2),
        "n": len(values),
    }


async def delay_lateness(db: Path, count: int) -> dict[str, Any]:
    engine = Engine(db, workers=4, **QUIET)
    late: list[float] = []

    @engine.task(name="later")
    async def later(due: float) -> None:
        late.append(time.time() - due)

    async with engine:
        t0 = time.time()
        for i in range(count):
            due = t0 + 0.5 + i * 0.037
            await engine.enqueue("later", {"due": due}, delay=due - time.time())
        await engine.drain(timeout=60)
    return _ms(late)


async def periodic_lateness(db: Path, seconds: float) -> dict[str, Any]:
    engine = Engine(db, workers=2, **QUIET)
    starts: list[float] = []

    @engine.periodic(every=0.2, name="tick")
    async def tick() -> None:
        starts.append(time.time())

    async with engine:
        await asyncio.sleep(seconds)
        created = {r.id: r.created_at for r in await engine.tasks(handler="tick", limit=10_000)}
    grid = sorted(created.values())
    # each run's task is created at its due time; lateness = start - due (grid from first)
    first = grid[0]
    late = [s - (first + round((s - first) / 0.2) * 0.2) for s in starts]
    return {**_ms([max(0.0, x) for x in late]), "runs": len(starts), "expected": seconds / 0.2}


async def rate_limit(db: Path, seconds: float) -> dict[str, Any]:
    engine = Engine(db, workers=8, queue_rate_limits={"emails": "50/s"}, **QUIET)
    started = 0

    @engine.task(name="send", queue="emails")
    async def send(i: int) -> None:
        nonlocal started
        started += 1

    async with engine:
        await engine.enqueue_many([("send", {"i": i}) for i in range(int((seconds + 2) * 100))])
        await asyncio.sleep(1.0)  # past the first burst: measure the steady rate
        t0, at_start = time.monotonic(), started
        await asyncio.sleep(seconds)
        elapsed, done = time.monotonic() - t0, started - at_start
        findings = [f.title + " — " + f.evidence for f in engine.snapshot().findings]
    return {
        "limit_per_s": 50,
        "window_s": round(elapsed, 2),
        "started_per_s": round(done / elapsed, 2),
        "error_pct": round((done / elapsed / 50 - 1) * 100, 2),
        "finding": next((f for f in findings if "rate-limited" in f), None),
    }


async def weights(db: Path, seconds: float) -> dict[str, Any]:
    engine = Engine(db, workers=4, queue_weights={"hi": 3, "lo": 1}, **QUIET)
    served: Counter[str] = Counter()

    @engine.task(name="work")
    async def work(i: int) -> None:
        served[current_task().queue] += 1
        await asyncio.sleep(0.005)

    async with engine:
        await engine.enqueue_many(
            [
                ("work", {"i": i}, {"queue": q})
                for i in range(int((seconds + 1) * 1000))  # more than either queue gets
                for q in ("hi", "lo")
            ]
        )
        await asyncio.sleep(0.5)
        base = Counter(served)
        await asyncio.sleep(seconds)
        got = served - base
    return {"hi": got["hi"], "lo": got["lo"], "ratio": round(got["hi"] / max(1, got["lo"]), 3)}


async def claim_cost(db: Path, count: int, weighted: bool) -> float:
    options: dict[str, Any] = {"queue_weights": {"a": 1, "b": 1}} if weighted else {}
    engine = Engine(db, workers=32, **options, **QUIET)

    @engine.task(name="noop")
    async def noop(i: int) -> None:
        return None

    async with engine:
        items = [("noop", {"i": i}, {"queue": "a" if i % 2 else "b"}) for i in range(count)]
        await engine.enqueue_many(items)
        t0 = time.perf_counter()
        await engine.drain(timeout=600)
        return count / (time.perf_counter() - t0)


async def chains(db: Path, count: int) -> dict[str, Any]:
    engine = Engine(db, workers=16, **QUIET)

    @engine.task(name="step")
    async def step(x: int) -> int:
        return x + 1

    async with engine:
        t0 = time.perf_counter()
        flows = [
            await engine.enqueue_workflow(chain(step.s(x=0), *(step.s() for _ in range(4))))
            for _ in range(count)
        ]
        await engine.drain(timeout=600)
        elapsed = time.perf_counter() - t0
        last = await engine.get(flows[-1].task_ids[-1])
    return {
        "chains": count,
        "steps_per_s": round(count * 5 / elapsed, 1),
        "last_result": last.result,
    }


async def run(quick: bool) -> dict[str, Any]:
    window = 3.0 if quick else 10.0
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        out: dict[str, Any] = {}
        out["delay_lateness"] = await delay_lateness(d / "delay.db", 20 if quick else 60)
        out["periodic_lateness"] = await periodic_lateness(d / "periodic.db", window)
        out["rate_limit"] = await rate_limit(d / "rate.db", window)
        out["weights"] = await weights(d / "weights.db", window / 2)
        n = 5000 if quick else 20_000
        plain = await claim_cost(d / "plain.db", n, weighted=False)
        weighted = await claim_cost(d / "weighted.db", n, weighted=True)
        out["claim_cost"] = {
            "tasks": n,
            "plain_per_s": round(plain),
            "weighted_per_s": round(weighted),
            "weighted_vs_plain": round(weighted / plain, 3),
        }
        out["chain"] = await chains(d / "chain.db", 50 if quick else 200)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter windows")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.quick)), indent=2))


if __name__ == "__main__":
    main()
