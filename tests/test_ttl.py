"""Result TTL: finished tasks are purged after their TTL and ``on_expire`` hears of it."""

from __future__ import annotations

import asyncio

from engine import EventKind, TaskState
from engine.store.base import Expired

from .conftest import EngineFactory


async def test_results_expire_and_the_hook_is_called(make_engine: EngineFactory) -> None:
    expired: list[Expired] = []
    all_three = asyncio.Event()

    async def on_expire(batch: list[Expired]) -> None:
        expired.extend(batch)
        if len(expired) >= 3:
            all_three.set()

    engine = make_engine(workers=2, result_ttl=0.3, failed_ttl=600, on_expire=on_expire)

    @engine.task(name="ok")
    async def ok() -> str:
        return "kept for a while"

    @engine.task(name="bad", retries=0)
    async def bad() -> None:
        raise RuntimeError("kept longer")

    async with engine:
        sub = engine.events(kinds=[EventKind.EXPIRED])
        good = await engine.enqueue_many([("ok", None)] * 3)
        failed = await engine.enqueue("bad")
        await engine.drain(timeout=5)
        assert (await engine.get(good[0])).result == "kept for a while"
        await asyncio.wait_for(sub.get(), 5)
        await asyncio.wait_for(all_three.wait(), 5)
        # succeeded tasks are gone; the failed one (longer TTL) stays
        for tid in good:
            try:
                await engine.get(tid)
                raise AssertionError(f"task {tid} should have expired")
            except LookupError:
                pass
        assert (await engine.get(failed)).state == TaskState.FAILED
        counts = engine.snapshot().counts
    assert sorted(e.id for e in expired) == sorted(good)
    assert {e.state for e in expired} == {TaskState.SUCCEEDED}
    assert counts[TaskState.SUCCEEDED] == 0 and counts[TaskState.FAILED] == 1


async def test_a_failing_hook_is_reported_not_fatal(make_engine: EngineFactory) -> None:
    def on_expire(batch: list[Expired]) -> None:
        raise ValueError("hook bug")

    engine = make_engine(workers=1, result_ttl=0.0, on_expire=on_expire)

    @engine.task(name="ok")
    async def ok() -> None: ...

    async with engine:
        sub = engine.events(kinds=[EventKind.HOOK_ERROR])
        await engine.enqueue("ok")
        event = await asyncio.wait_for(sub.get(), 5)
        assert "on_expire failed: hook bug" in event.message
        assert engine.running


async def test_purge_removes_finished_tasks_on_request(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=1)

    @engine.task(name="bad", retries=0, queue="q")
    async def bad() -> None:
        raise RuntimeError("x")

    async with engine:
        ids = await engine.enqueue_many([("bad", None)] * 4)
        await engine.drain(timeout=5)
        assert await engine.purge("failed", ids=ids[:1]) == 1
        assert await engine.purge(TaskState.FAILED, queue="q") == 3
        assert engine.snapshot().counts[TaskState.FAILED] == 0
