"""Metrics, findings and the autoscaler with a real engine and real load."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Sequence

import pytest

from engine import Engine, EventKind, Finding, RetryPolicy
from engine.resources import ResourceSample

from .conftest import EngineFactory


async def finding(engine: Engine, rule: str, timeout: float) -> Finding:
    """Wait for a finding of ``rule`` to be announced, then return the current one."""
    async with engine.events(kinds=[EventKind.FINDING]) as events, asyncio.timeout(timeout):
        while True:
            for f in engine.snapshot().findings:
                if f.rule == rule:
                    return f
            await events.get()


async def produce(engine: Engine, handler: str, rate: float) -> None:
    """Enqueue ``rate`` tasks a second until cancelled."""
    while True:
        await engine.enqueue_many([(handler, None)] * max(1, round(rate / 10)))
        await asyncio.sleep(0.1)


async def test_a_blocking_async_handler_is_named_within_5_seconds(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(workers=2)

    @engine.task(name="images.resize")
    async def resize() -> None:
        time.sleep(0.2)  # noqa: ASYNC251 - blocking the event loop is what this test is about

    @engine.task(name="mail.send")
    async def send() -> None:
        await asyncio.sleep(0.01)

    async with engine:
        t0 = time.monotonic()
        load = asyncio.create_task(produce(engine, "images.resize", 3))
        await engine.enqueue_many([("mail.send", None)] * 5)
        try:
            f = await finding(engine, "loop_blocked", 5.0)
        finally:
            load.cancel()
        assert time.monotonic() - t0 < 5.0
    assert f.title == "images.resize blocks the event loop"
    assert re.search(r"held the loop for 2\d\d ms in one step", f.evidence), f.evidence
    assert "mail.send" not in f.title


async def test_saturation_advice_names_a_count_and_applying_it_drains_the_backlog(
    make_engine: EngineFactory,
) -> None:
    # Given 2 workers, 0.1 s tasks (capacity 20/s) and 60 arrivals a second
    engine = make_engine(workers=2)

    @engine.task(name="work")
    async def work() -> None:
        await asyncio.sleep(0.1)

    async with engine:
        load = asyncio.create_task(produce(engine, "work", 60))
        try:
            f = await finding(engine, "saturated", 15.0)
            # Then the advice is Little's law: 60/s × 0.1 s ÷ 80 % ≈ 8 workers (or more)
            assert f.action is not None and f.action[0] == "set_workers"
            advised = f.action[1]["n"]
            assert 7 <= advised <= 40, f.suggestion
            assert "Add workers" in f.suggestion and "Little's law" in f.suggestion
            before = engine.snapshot().queued
            # When the advice is applied, the backlog shrinks under the same load
            assert await engine.apply_action(f.action) == f"workers 2 → {advised}"
            await asyncio.sleep(3)
            assert engine.snapshot().queued < before
        finally:
            load.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await load


async def test_half_failing_handler_is_a_retry_storm_with_its_top_error(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(workers=4)
    calls = 0

    @engine.task(name="images.upload", queue="uploads", retries=1, retry=RetryPolicy.fixed(0))
    async def upload() -> None:
        nonlocal calls
        calls += 1
        if calls % 2:
            raise ConnectionError("storage returned 503 Service Unavailable")

    async with engine:
        await engine.enqueue_many([("images.upload", None)] * 30)
        f = await finding(engine, "retry_storm", 10.0)
    assert f.title == "Retry storm in images.upload" and f.severity == "critical"
    assert "ConnectionError: storage returned 503 Service Unavailable" in f.evidence
    assert f.action == ("pause", {"queue": "uploads"})


async def test_metrics_resources_and_series_are_in_the_snapshot(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(workers=2)

    @engine.task(name="cpu", executor="thread")
    def cpu() -> int:
        return sum(i * i for i in range(200_000))

    @engine.task(name="wait")
    async def wait() -> None:
        await asyncio.sleep(0.05)

    async with engine:
        ids = await engine.enqueue_many([("cpu", None)] * 5 + [("wait", None)] * 5)
        for tid in ids:
            await engine.wait(tid, timeout=10)
        async with engine.events(kinds=[EventKind.FINDING]):
            await asyncio.sleep(2.2)  # two monitor ticks
        snap = engine.snapshot()
    assert snap.resources is not None and snap.resources.rss > 10 * 2**20
    assert snap.resources.threads >= 2 and snap.resources.open_fds > 0
    assert snap.metrics is not None
    cpu_stats, wait_stats = snap.metrics.handlers["cpu"], snap.metrics.handlers["wait"]
    assert cpu_stats.runs == 5 and cpu_stats.successes == 5
    # CPU-bound against mostly waiting: on a busy machine the CPU-bound one also waits
    # for a core, so its ratio is compared with the other's, not with a fixed 0.5
    assert cpu_stats.cpu_ratio is not None and wait_stats.cpu_ratio is not None
    assert wait_stats.cpu_ratio < 0.3 and cpu_stats.cpu_ratio > max(0.1, 3 * wait_stats.cpu_ratio)
    assert wait_stats.run_p50 is not None and 0.04 < wait_stats.run_p50 < 0.5
    assert abs(cpu_stats.impact + wait_stats.impact - 1.0) < 1e-9
    assert len(snap.metrics.series["done"]) >= 2 and sum(snap.metrics.series["done"]) == 10
    assert len(snap.resource_series["rss"]) >= 2


class ScriptedSampler:
    """Resources on cue: the test sets ``cpu``."""

    def __init__(self) -> None:
        self.cpu = 20.0

    def sample(self, children: Sequence[int]) -> ResourceSample:
        return ResourceSample(
            time.time(), self.cpu, self.cpu, (self.cpu, self.cpu), 50 * 2**20, 30.0
        )


async def test_autoscaler_follows_load_and_holds_back_under_cpu_pressure(
    make_engine: EngineFactory,
) -> None:
    sampler = ScriptedSampler()
    engine = make_engine(
        workers=2,
        autoscale=True,
        min_workers=2,
        max_workers=40,
        scale_interval=1.0,
        cooldown=1.0,
        resource_sampler=sampler,
    )

    @engine.task(name="work")
    async def work() -> None:
        await asyncio.sleep(0.1)

    async with engine:
        decisions = engine.events(kinds=[EventKind.AUTOSCALED])
        load = asyncio.create_task(produce(engine, "work", 80))
        try:
            async with asyncio.timeout(15):
                while engine.worker_count <= 4:
                    event = await decisions.get()
            assert "scaling up" in event.message
            sampler.cpu = 95.0  # a CPU spike: no more workers, a quarter shed
            async with asyncio.timeout(10):
                while "held back by CPU 95 % > 85 %" not in event.message:
                    event = await decisions.get()
            assert engine.snapshot().autoscale is not None
        finally:
            load.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await load
    assert 2 <= engine.worker_count <= 40


async def test_apply_action_runs_only_operator_commands(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=1)
    async with engine:
        assert await engine.apply_action(("pause", {"queue": "emails"})) == "queue emails paused"
        assert "emails" in engine.snapshot().paused_queues
        assert await engine.apply_action(("resume", {"queue": "emails"})) == "queue emails resumed"
        assert (
            await engine.apply_action(("resume", {"queue": "emails"}))
            == "queue emails was already resumed"
        )
        text = await engine.apply_action(("update_settings", {"autoscale": True}))
        assert text == "settings: autoscale=True" and engine.settings.autoscale
        with pytest.raises(ValueError, match="unknown action 'drop_table'; allowed: set_workers"):
            await engine.apply_action(("drop_table", {}))
