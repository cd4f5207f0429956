"""The durable metrics history: a scripted workload over two simulated hours (an
injected clock) gives exact per-minute and per-hour counts and percentiles within
one histogram bucket; roll-up and retention delete exactly what they should; two
engines on one store write one history."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from engine import Engine, parse_span, parse_step
from engine.history import hist
from engine.metrics import percentile

from .conftest import BOTH_BACKENDS, FAST

T0 = 1_799_971_200  # a UTC midnight (divisible by 86400)


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def script(minute: int) -> list[tuple[str, float, float]]:
    """What happens in minute ``minute``: (outcome, run time, wait) per attempt."""
    out = [
        ("succeeded", 0.01 * (1 + (minute + i) % 40), 0.002 * (i + 1))
        for i in range(minute % 4 + 1)
    ]
    if minute % 10 == 3:
        out.append(("failed", 2.5, 0.5))
    if minute % 7 == 0:
        out.append(("retry", 0.3, 0.05))
    return out


async def scripted(engine: Engine, clock: Clock, minutes: int) -> None:
    """Record ``minutes`` minutes of the script for handler ``a`` in queue ``q``,
    writing each minute as it ends (as the history service does)."""
    for m in range(minutes):
        clock.t = T0 + m * 60 + 5
        for outcome, run, wait in script(m):
            engine.history.recorder.started("a", "q", wait)
            engine.history.recorder.finished("a", "q", run, outcome, False)
        clock.t = T0 + (m + 1) * 60 + 1
        await engine.history.flush()


def expected(minutes: range) -> dict[str, Any]:
    attempts = [a for m in minutes for a in script(m)]
    runs = sorted(r for _, r, _ in attempts)
    waits = sorted(w for _, _, w in attempts)
    return {
        "runs": len(attempts),
        "successes": sum(1 for o, _, _ in attempts if o == "succeeded"),
        "failures": sum(1 for o, _, _ in attempts if o == "failed"),
        "retries": sum(1 for o, _, _ in attempts if o == "retry"),
        "run_p95": percentile(runs, 0.95),
        "wait_p50": percentile(waits, 0.5),
    }


def same_bucket(got: float | None, exact: float | None) -> bool:
    assert got is not None and exact is not None
    return hist.bucket_of(got) == hist.bucket_of(exact)


def history_engine(store: str | Path, clock: Clock, **options: Any) -> Engine:
    return Engine(store, workers=0, clock=clock, **{**FAST, **options})


@BOTH_BACKENDS
async def test_two_hours_of_minutes_and_hours_match_the_script(store: str | Path) -> None:
    # Given an engine whose clock we move through two hours of a scripted workload
    clock = Clock(T0)
    engine = history_engine(store, clock, history_minutes=3600)
    await engine.start()
    try:
        await scripted(engine, clock, 120)
        # Then every minute holds exactly its counts, before any roll-up
        minutes = await engine.history.trends(handler="a", since=7200, step="1m")
        assert [p.t for p in minutes[:2]] == [T0, T0 + 60] and len(minutes) == 121
        for m, point in enumerate(minutes[:120]):
            want = expected(range(m, m + 1))
            assert (point.runs, point.successes, point.failures, point.retries) == (
                want["runs"], want["successes"], want["failures"], want["retries"]
            )  # fmt: skip
            assert same_bucket(point.run_p95, want["run_p95"])
        hours_before = await engine.history.trends(since=7200, step=3600)

        # When the leader rolls up (two minutes after the second hour ended) and prunes
        clock.t = T0 + 7200 + 300
        assert await engine.history.maintain()
        hours = await engine.history.trends(since=7200 + 300, step="1h")

        # Then each hour holds exactly its sixty minutes, percentiles from merged buckets
        assert [p.t for p in hours] == [T0, T0 + 3600, T0 + 7200]
        for h, point in enumerate(hours[:2]):
            want = expected(range(h * 60, h * 60 + 60))
            assert (point.runs, point.successes, point.failures, point.retries) == (
                want["runs"], want["successes"], want["failures"], want["retries"]
            )  # fmt: skip
            assert same_bucket(point.run_p95, want["run_p95"])
            assert same_bucket(point.wait_p50, want["wait_p50"])
        assert [(p.runs, p.run_p95) for p in hours_before] == [(p.runs, p.run_p95) for p in hours]
        # and retention (history_minutes = 1 h) deleted exactly the minutes that started
        # over an hour ago: 0..64; 65..119 stay whole, and so do the hours
        assert engine.history.forgotten[60] >= 65 and engine.history.forgotten[3600] == 0
        left = await engine.history.trends(handler="a", since=7200 + 300, step=60)
        kept = [p for p in left if p.runs]
        assert [p.t for p in kept] == [T0 + m * 60 for m in range(65, 120)]
        assert [p.runs for p in kept] == [expected(range(m, m + 1))["runs"] for m in range(65, 120)]
        stats = await engine.history.stats(handler="a", since="2h")
        total = expected(range(0, 120))
        assert (stats.runs, stats.successes, stats.failures) == (
            total["runs"], total["successes"], total["failures"]
        )  # fmt: skip
        assert stats.success_rate == pytest.approx(
            total["successes"] / (total["successes"] + total["failures"])
        )
    finally:
        await engine.stop(grace=0)


async def test_days_roll_up_from_hours_and_old_days_are_deleted(db_path: Path) -> None:
    clock = Clock(T0)
    engine = history_engine(db_path, clock, history_minutes=3600, history_hours=86400,
                            history_days=604800)  # fmt: skip
    await engine.start()
    try:
        await scripted(engine, clock, 90)
        # a day and a bit later the day is rolled up from its hours
        clock.t = T0 + 86400 + 300
        await engine.history.maintain()
        days = await engine.history.trends(since="2d", step="1d")
        assert [(p.t, p.runs) for p in days] == [
            (T0 - 86400, 0), (T0, expected(range(0, 90))["runs"]), (T0 + 86400, 0)
        ]  # fmt: skip
        # eight days later the day is gone (history_days = 7 d), nothing else was kept
        clock.t = T0 + 8 * 86400 + 300
        await engine.history.maintain()
        assert engine.history.forgotten[86400] >= 1
        assert sum(p.runs for p in await engine.history.trends(since="9d", step="1d")) == 0
    finally:
        await engine.stop(grace=0)


@BOTH_BACKENDS
async def test_two_engines_on_one_store_write_one_history(store: str | Path) -> None:
    # Given two engines on one store, both running tasks of one handler
    clock = Clock(T0 + 5)
    engines = [Engine(store, workers=2, clock=clock, name=f"n{i}", **FAST) for i in (1, 2)]
    for e in engines:
        e.task(name="job")(lambda: None)
    await asyncio.gather(*(e.start() for e in engines))
    try:
        ids = [await engines[i % 2].enqueue("job") for i in range(20)]
        for task_id in ids:
            await engines[0].wait(task_id, timeout=10)
        # When the minute ends and both write at once and both try to lead
        clock.t = T0 + 61
        await asyncio.gather(*(e.history.flush() for e in engines))
        leading = [await e.history.maintain() for e in engines]
        # Then the history counts each task once, and one node leads
        assert sorted(leading) == [False, True]
        [point] = (await engines[1].history.trends(since=60, step=60))[:1]
        assert (point.runs, point.successes) == (20, 20)
        assert sum(e.history.written for e in engines) >= 1
        holder = await engines[0].history.leader()
        assert holder is not None and holder[0] == engines[leading.index(True)].node
    finally:
        await asyncio.gather(*(e.stop(grace=0) for e in engines))


def test_spans_and_steps_refuse_bad_input_with_one_line() -> None:
    assert parse_span("24h") == 86400 and parse_span("90m") == 5400 and parse_span(30) == 30
    assert parse_step("1h") == 3600 and parse_step(86400) == 86400
    with pytest.raises(ValueError, match=r"--since must be a positive duration .* got 'x'"):
        parse_span("x")
    with pytest.raises(ValueError, match=r"--step must be 1m, 1h or 1d .* got '5m'"):
        parse_step("5m")


def test_histograms_merge_by_adding_counts() -> None:
    a, b = hist.empty(), hist.empty()
    for v in (0.01, 0.02, 0.5):
        hist.add(a, v)
    hist.add(b, 0.5, 3)
    both = hist.merge(list(a), b)
    assert hist.decode(hist.encode(both)) == both and sum(both) == 6
    assert hist.bucket_of(hist.percentile(both, 0.5) or 0) == hist.bucket_of(0.5)
    assert hist.percentile(hist.empty(), 0.5) is None and hist.encode(hist.empty()) == ""
    for bad in ("x:1", "3:-1", "60:1", "2:1,x", ":"):
        assert hist.decode(bad) == hist.empty()


async def test_a_stopping_engine_writes_the_minute_going_on(db_path: Path) -> None:
    # Given attempts recorded in a minute that has not ended
    clock = Clock(T0 + 10)
    engine = history_engine(db_path, clock)
    await engine.start()
    for _ in range(3):
        engine.history.recorder.finished("a", "q", 0.1, "succeeded", False)
    # When the engine stops, then they are in the store for the next engine to read
    await engine.stop(grace=0)
    again = history_engine(db_path, clock)
    await again.start()
    try:
        [point] = await again.history.trends(handler="a", since=1, step=60)
        assert (point.t, point.runs, point.successes) == (T0, 3, 3)
    finally:
        await again.stop(grace=0)


@BOTH_BACKENDS
async def test_a_minute_of_1200_handler_queue_pairs_is_written_whole(store: str | Path) -> None:
    # more rows than one statement takes (PostgreSQL: 32,767 arguments)
    clock = Clock(T0 + 5)
    engine = history_engine(store, clock)
    await engine.start()
    try:
        for h in range(400):
            for q in range(3):
                engine.history.recorder.finished(f"h{h}", f"q{q}", 0.1, "succeeded", False)
        clock.t = T0 + 61
        assert await engine.history.flush() == 1200
        [point, _] = await engine.history.trends(since=61, step=60)
        assert point.runs == 1200
        handlers, queues = await engine.history.names(since=120)
        assert len(handlers) == 400 and queues == ["q0", "q1", "q2"]
    finally:
        await engine.stop(grace=0)
