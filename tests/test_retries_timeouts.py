"""Retries with exact attempt counts, backoff bounds, hard and soft timeouts, executors."""

from __future__ import annotations

import asyncio
import threading
import time
from itertools import pairwise

import pytest

from engine import EventKind, RetryPolicy, TaskState, current_task

from . import process_handlers as ph
from .conftest import EngineFactory, started, until


@pytest.mark.parametrize("failures", [0, 1, 2, 3])
async def test_attempts_are_exact(make_engine: EngineFactory, failures: int) -> None:
    # Given a handler that fails `failures` times and then succeeds, with retries=3
    engine = make_engine(workers=1)
    attempts: list[int] = []

    @engine.task(name="flaky", retries=3, retry=RetryPolicy.fixed(0))
    async def flaky() -> str:
        attempts.append(current_task().attempt)
        if len(attempts) <= failures:
            raise ValueError(f"failure {len(attempts)}")
        return "ok"

    async with engine:
        record = await engine.wait(await engine.enqueue("flaky"), timeout=10)
    # Then it runs exactly failures + 1 times and succeeds
    assert record.state == TaskState.SUCCEEDED
    assert record.attempts == failures + 1 == len(attempts)
    assert attempts == list(range(1, failures + 2))


async def test_retries_n_means_n_plus_one_attempts_then_failed(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=1)

    @engine.task(name="always", retries=2, retry=RetryPolicy.fixed(0))
    async def always() -> None:
        raise KeyError("missing thing")

    async with engine:
        record = await engine.wait(await engine.enqueue("always"), timeout=10)
    assert record.state == TaskState.FAILED and record.attempts == 3 and record.max_attempts == 3
    assert "KeyError: 'missing thing'" in (record.error or "")
    assert "Traceback" in (record.error or "")
    notes = [e.note for e in record.timeline if e.note]
    assert notes[-1] == "KeyError; attempt 3/3"
    terminal = [e for e in record.timeline if e.state in (TaskState.FAILED, TaskState.SUCCEEDED)]
    assert len(terminal) == 1


async def test_only_listed_exceptions_are_retried(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=1)
    calls = {"io": 0, "bug": 0}

    @engine.task(name="io", retries=3, retry=RetryPolicy.fixed(0), retry_on=(ConnectionError,))
    async def io(kind: str) -> None:
        calls[kind] += 1
        raise ConnectionError("peer reset") if kind == "io" else ValueError("a bug")

    async with engine:
        io_rec = await engine.wait(await engine.enqueue("io", {"kind": "io"}), timeout=10)
        bug_rec = await engine.wait(await engine.enqueue("io", {"kind": "bug"}), timeout=10)
    assert (io_rec.attempts, calls["io"]) == (4, 4)
    assert (bug_rec.attempts, calls["bug"]) == (1, 1)
    assert bug_rec.timeline[-1].note == "ValueError; not retryable"


async def test_backoff_delays_stay_within_the_policy(make_engine: EngineFactory) -> None:
    policy = RetryPolicy.exponential(base=0.05, cap=0.2, jitter=True)
    engine = make_engine(workers=1)
    starts: list[float] = []

    @engine.task(name="down", retries=4, retry=policy)
    async def down() -> None:
        starts.append(time.time())
        raise TimeoutError("service down")

    async with engine:
        record = await engine.wait(await engine.enqueue("down"), timeout=10)
    failures = [e.at for e in record.timeline if e.state == TaskState.SCHEDULED]
    assert len(failures) == 4 and len(starts) == 5
    for n, (failed_at, next_start) in enumerate(zip(failures, starts[1:], strict=True), start=1):
        gap = next_start - failed_at
        assert -0.01 <= gap <= policy.bound(n) + 0.15, (n, gap)


async def test_fixed_backoff_waits_at_least_the_delay(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=1)
    starts: list[float] = []

    @engine.task(name="wait", retries=2, retry=RetryPolicy.fixed(0.15))
    async def wait() -> None:
        starts.append(time.monotonic())
        raise OSError("again")

    async with engine:
        await engine.wait(await engine.enqueue("wait"), timeout=10)
    gaps = [b - a for a, b in pairwise(starts)]
    assert all(0.15 <= g < 0.45 for g in gaps), gaps


async def test_hard_timeout_frees_the_slot_quickly(make_engine: EngineFactory) -> None:
    # Given one worker, a task that would sleep 5 s under timeout=0.2, and a task behind it
    engine = make_engine(workers=1)
    marks: dict[str, float] = {}

    @engine.task(name="stuck", timeout=0.2, retries=0)
    async def stuck() -> None:
        marks["stuck"] = time.monotonic()
        await asyncio.sleep(5)

    @engine.task(name="next")
    async def next_task() -> None:
        marks["next"] = time.monotonic()

    async with engine:
        events = engine.events(kinds=[EventKind.TIMED_OUT])
        slow = await engine.enqueue("stuck")
        after = await engine.enqueue("next", priority=0)
        await engine.wait(after, timeout=5)
        record = await engine.get(slow)
    # Then the slot is free within 0.3 s of the deadline
    assert marks["next"] - marks["stuck"] < 0.2 + 0.3
    assert record.state == TaskState.FAILED
    assert "exceeded the hard timeout of 0.2 s" in (record.error or "")
    assert events.pending() == 1


async def test_soft_timeout_fires_before_the_hard_one(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=1)

    @engine.task(name="patient", soft_timeout=0.1, timeout=2.0)
    async def patient() -> str:
        ctx = current_task()
        await ctx.soft_timeout_reached()
        assert ctx.soft_timeout_expired
        return "saved partial work"

    async with engine:
        sub = engine.events(kinds=[EventKind.SOFT_TIMEOUT, EventKind.SUCCEEDED])
        t0 = time.monotonic()
        record = await engine.wait(await engine.enqueue("patient"), timeout=5)
        took = time.monotonic() - t0
        kinds = [sub.get_nowait().kind for _ in range(2)]  # type: ignore[union-attr]
    assert record.result == "saved partial work" and 0.1 <= took < 1.0
    assert kinds == [EventKind.SOFT_TIMEOUT, EventKind.SUCCEEDED]


async def test_thread_timeout_keeps_capacity_and_counts_the_leak(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(workers=1)
    release = threading.Event()

    @engine.task(name="hang", timeout=0.2, retries=0)
    def hang() -> None:
        release.wait(10)

    @engine.task(name="after")
    def after() -> str:
        return "ran"

    async with engine:
        t0 = time.monotonic()
        hung = await engine.enqueue("hang")
        nxt = await engine.enqueue("after", priority=0)
        assert (await engine.wait(nxt, timeout=5)).result == "ran"
        assert time.monotonic() - t0 < 0.2 + 0.3 + 0.2
        assert (await engine.get(hung)).state == TaskState.FAILED
        stats = engine.snapshot().stats
        assert stats["leaked_threads"] == 1 and stats["leaked_threads_total"] == 1
        release.set()
        await until(lambda: engine.snapshot().stats["leaked_threads"] == 0, what="the thread")
        assert (await engine.get(hung)).state == TaskState.FAILED  # the late return changed nothing


async def test_result_that_is_not_json_fails_without_retry(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=1)

    @engine.task(name="bad_result", retries=3)
    async def bad_result() -> object:
        return {"rows": [1, {2, 3}]}

    async with engine:
        record = await engine.wait(await engine.enqueue("bad_result"), timeout=5)
    assert record.state == TaskState.FAILED and record.attempts == 1
    assert "result is not JSON-serialisable at $.rows[1]: set" in (record.error or "")
    assert "not retried" in (record.error or "")


async def test_handler_raising_system_exit_does_not_stop_the_engine(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(workers=1)

    @engine.task(name="exits", retries=0)
    async def exits() -> None:
        raise SystemExit(2)

    @engine.task(name="interrupts", retries=0)
    def interrupts() -> None:
        raise KeyboardInterrupt

    async with engine:
        a = await engine.wait(await engine.enqueue("exits"), timeout=5)
        b = await engine.wait(await engine.enqueue("interrupts"), timeout=5)
        assert engine.running
    assert a.state == b.state == TaskState.FAILED
    assert "SystemExit" in (a.error or "") and "KeyboardInterrupt" in (b.error or "")


# -- process executor --------------------------------------------------------------


async def test_process_executor_runs_reports_progress_and_retries(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(workers=2, progress_interval=0.05)
    square = engine.task(name="square", executor="process")(ph.cpu_square)
    engine.task(
        name="flaky",
        executor="process",
        retries=3,
        retry=RetryPolicy.fixed(0),
        retry_on=(ConnectionError,),
    )(ph.fails_until)
    engine.task(name="async_proc", executor="process")(ph.async_in_process)

    async with engine:
        sub = engine.events(kinds=[EventKind.PROGRESS])
        tid = await square.enqueue({"n": 12})
        progress = await asyncio.wait_for(sub.get(), 20)
        record = await engine.wait(tid, timeout=20)
        flaky = await engine.wait(await engine.enqueue("flaky", {"attempt_ok": 3}), timeout=20)
        plus = await engine.wait(await engine.enqueue("async_proc", {"x": 1}), timeout=20)
    assert record.result["square"] == 144 and record.result["attempt"] == 1
    assert record.result["pid"] != __import__("os").getpid()
    assert progress.task_id == tid and "halfway" in progress.message
    assert flaky.state == TaskState.SUCCEEDED and flaky.result == 3 and flaky.attempts == 3
    assert plus.result == 2


async def test_process_timeout_kills_the_child_and_soft_timeout_reaches_it(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(workers=1)
    engine.task(name="sleepy", executor="process", timeout=1.5, retries=0)(ph.sleepy)
    engine.task(name="soft", executor="process", soft_timeout=0.3, timeout=5)(
        ph.waits_for_soft_timeout
    )
    engine.task(name="dies", executor="process", retries=1, retry=RetryPolicy.fixed(0))(ph.dies)
    engine.task(name="set", executor="process", retries=2)(ph.returns_a_set)

    async with engine:
        soft = await engine.wait(await engine.enqueue("soft"), timeout=20)
        t0 = time.monotonic()
        slow = await engine.wait(await engine.enqueue("sleepy", {"seconds": 30}), timeout=20)
        assert time.monotonic() - t0 < 1.5 + 2.0
        died = await engine.wait(await engine.enqueue("dies"), timeout=20)
        bad = await engine.wait(await engine.enqueue("set"), timeout=20)
        assert engine.running
    assert soft.result == "wrapped up after soft timeout"
    assert slow.state == TaskState.FAILED and "hard timeout of 1.5 s" in (slow.error or "")
    assert died.state == TaskState.FAILED and died.attempts == 2
    assert "exited with code 3" in (died.error or "")
    assert bad.state == TaskState.FAILED and bad.attempts == 1
    assert "not JSON-serialisable at $: set" in (bad.error or "")


async def test_cancel_a_running_process_task_stops_it(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=1)
    engine.task(name="sleepy", executor="process")(ph.sleepy)
    async with engine:
        sub = engine.events(kinds=[EventKind.STARTED])
        tid = await engine.enqueue("sleepy", {"seconds": 30})
        await started(sub)
        await until(lambda: engine.snapshot().stats["process_children"] == 1, what="a child")
        t0 = time.monotonic()
        await engine.cancel(tid)
        record = await engine.wait(tid, timeout=5)
        await until(lambda: engine.snapshot().busy_workers == 0, what="the slot to free")
        assert time.monotonic() - t0 < 2
        assert engine.snapshot().busy_workers == 0
    assert record.state == TaskState.CANCELLED


async def test_a_result_over_the_size_limit_fails_without_retry(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=1, max_payload_bytes=1000)

    @engine.task(name="big", retries=3)
    async def big() -> str:
        return "x" * 5000

    async with engine:
        record = await engine.wait(await engine.enqueue("big"), timeout=5)
    assert record.state == TaskState.FAILED and record.attempts == 1
    assert "the result is 5,002 bytes as JSON; the limit is 1,000 bytes" in (record.error or "")
