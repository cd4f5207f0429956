"""Metrics primitives and the collector, on a hand-driven clock."""

from __future__ import annotations

import asyncio
import time

import pytest

from engine.aio import TimedSteps
from engine.metrics import Metrics, Reservoir, RollingCounter, TimeSeries, percentile
from engine.resources import LoopLagMonitor, PsutilSampler


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rolling_counter_windows_and_young_rates() -> None:
    clock = Clock()
    counter = RollingCounter(horizon=60, clock=clock)
    counter.add(5)
    clock.now += 1
    counter.add(3)
    assert counter.count(10) == 8 and counter.total == 8
    # a counter 1 s old is not diluted over a 30 s window
    assert counter.rate(30) == pytest.approx(8 / 1)
    clock.now += 30
    counter.add(1)
    assert counter.count(10) == 1
    assert counter.rate(10) == pytest.approx(0.1)
    clock.now += 100  # old buckets fall off the horizon
    counter.add(2)
    assert counter.count(60) == 2 and counter.total == 11


def test_percentiles_nearest_rank() -> None:
    values = sorted(float(v) for v in range(1, 101))
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.99) == 7.0


def test_reservoir_keeps_the_most_recent() -> None:
    r = Reservoir(3)
    for i in range(5):
        r.add(float(i), at=float(i))
    assert r.values() == [2.0, 3.0, 4.0] and len(r) == 3
    assert r.values(since=3.5) == [4.0]


def test_time_series_keeps_ten_minutes() -> None:
    s = TimeSeries()
    for i in range(700):
        s.append(float(i))
    assert len(s) == 600 and s.values()[0] == 100.0 and s.values(3) == (697.0, 698.0, 699.0)


def test_metrics_view_shares_waits_and_rates() -> None:
    clock = Clock()
    m = Metrics(clock=clock)
    m.record_enqueued("images", 10)
    for _ in range(3):
        m.record_start("resize", "thread", wait=2.0)
        m.record_attempt("resize", "thread", "images", run_time=0.3, outcome="succeeded", cpu=0.27)
    m.record_attempt(
        "send",
        "async",
        "mail",
        run_time=0.1,
        outcome="retry",
        error="ConnectionError: refused",
        max_step=0.0004,
    )
    m.record_attempt(
        "send",
        "async",
        "mail",
        run_time=0.1,
        outcome="failed",
        error="ConnectionError: refused",
        max_step=0.25,
    )
    m.tick(depth=7, busy_seconds=0.0, workers=4, queue_depths={"images": 7})
    clock.now += 1
    m.tick(depth=9, busy_seconds=3.0, workers=4, queue_depths={"images": 9})
    v = m.view(
        worker_count=4,
        busy=3,
        depth=9,
        queues=[("images", 9, False, 12.0)],
        store_latency_p99=0.004,
    )
    resize, send = v.handlers["resize"], v.handlers["send"]
    assert (resize.runs, resize.successes, resize.failures) == (3, 3, 0)
    assert resize.run_p50 == pytest.approx(0.3) and resize.wait_p95 == 2.0
    assert resize.cpu_ratio == pytest.approx(0.9)
    assert resize.impact == pytest.approx(0.9 / 1.1)
    assert (send.failures, send.retries, send.failures_last_minute) == (2, 1, 2)
    assert send.top_error == "ConnectionError: refused" and send.top_error_count == 2
    assert send.max_step == 0.25  # the sub-millisecond step was not kept
    assert v.utilization == pytest.approx(0.75)  # 3 busy worker-seconds of 4 in 1 s
    assert v.depth_trend == pytest.approx(2.0)
    assert v.queues["images"].oldest_age == 12.0 and v.queues["images"].depth_trend == 2.0
    assert v.series["done"] == (4.0, 0.0) and v.series["failed"] == (2.0, 0.0)
    assert v.done_rate == pytest.approx(4.0)  # 3 succeeded + 1 failed for good, in 1 s


async def test_timed_steps_measure_how_long_a_coroutine_holds_the_loop() -> None:
    async def handler() -> str:
        time.sleep(0.03)  # noqa: ASYNC251 - this is the blocking step we want to see
        await asyncio.sleep(0.01)
        return "done"

    timed = TimedSteps(handler())
    assert await timed == "done"
    assert 0.03 <= timed.longest < 0.1 and timed.total >= timed.longest

    async def forever() -> None:
        await asyncio.sleep(10)

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await TimedSteps(forever())


async def test_loop_lag_monitor_sees_a_blocked_loop() -> None:
    lag = LoopLagMonitor(tick=0.01)
    lag.start()
    await asyncio.sleep(0.05)
    lag.take()
    time.sleep(0.12)  # noqa: ASYNC251 - block the loop on purpose
    await asyncio.sleep(0.02)
    assert lag.take() >= 0.09
    lag.stop()


def test_psutil_sampler_reads_this_process() -> None:
    sample = PsutilSampler().sample([])
    assert sample.rss > 0 and sample.threads >= 1 and sample.open_fds > 0
    assert 0 <= sample.memory_percent <= 100 and len(sample.cpu_per_core) >= 1
