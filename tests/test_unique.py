"""Unique tasks: at most one active (queued, scheduled or running) task holds a
``unique_key``; a duplicate enqueue adds nothing and returns the holder's id."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import EventKind, InvalidTransition, TaskState

from .conftest import ROOT, EngineFactory


async def test_a_duplicate_key_returns_the_holder_and_adds_nothing(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(workers=0)

    @engine.task(name="sync")
    async def sync(account: str) -> None:
        pass

    events = engine.events([EventKind.DEDUPLICATED])
    async with engine:
        first = await engine.enqueue("sync", {"account": "a"}, unique_key="sync:a")
        again = await engine.enqueue("sync", {"account": "a"}, unique_key="sync:a")
        other = await engine.enqueue("sync", {"account": "b"}, unique_key="sync:b")
        plain = await engine.enqueue("sync", {"account": "a"})
        assert first.deduplicated is False  # type: ignore[attr-defined]
        assert again == first and again.deduplicated is True  # type: ignore[attr-defined]
        assert other != first and other.deduplicated is False  # type: ignore[attr-defined]
        assert plain not in (first, other)
        page = await engine.tasks()
        assert sorted(t.id for t in page) == sorted([first, other, plain])
        assert (await engine.get(first)).unique_key == "sync:a"
        # A duplicate in a batch is the holder's id too
        batch = await engine.enqueue_many(
            [("sync", {"account": "a"}, {"unique_key": "sync:a"}), ("sync", {"account": "c"})]
        )
        assert batch[0] == first and len(await engine.tasks()) == 4
    event = events.get_nowait()
    assert event is not None and event.task_id == first
    assert "unique key 'sync:a' is held by task" in event.message


async def test_the_key_is_free_again_once_the_holder_finishes(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=1)

    @engine.task(name="sync", retries=0)
    async def sync(fail: bool = False) -> None:
        if fail:
            raise RuntimeError("sync failed")

    async with engine:
        # succeeded
        first = await engine.enqueue("sync", unique_key="k")
        assert (await engine.wait(first, timeout=5)).state == TaskState.SUCCEEDED
        second = await engine.enqueue("sync", {"fail": True}, unique_key="k")
        assert second != first and not second.deduplicated  # type: ignore[attr-defined]
        # failed
        assert (await engine.wait(second, timeout=5)).state == TaskState.FAILED
        # a delayed task holds the key while it waits …
        third = await engine.enqueue("sync", unique_key="k", delay=60)
        assert not third.deduplicated  # type: ignore[attr-defined]
        assert (await engine.get(third)).state == TaskState.SCHEDULED
        held = await engine.enqueue("sync", unique_key="k")
        assert held == third and held.deduplicated  # type: ignore[attr-defined]
        # … and cancelling it frees the key
        await engine.cancel(third)
        fourth = await engine.enqueue("sync", unique_key="k")
        assert fourth not in (first, second, third)
        assert not fourth.deduplicated  # type: ignore[attr-defined]
        assert (await engine.wait(fourth, timeout=5)).state == TaskState.SUCCEEDED


def test_four_processes_racing_on_one_key_leave_exactly_one_task(db_path: Path) -> None:
    start = time.time() + 1.5  # every producer has started its engine by then
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.unique_worker",
                str(db_path),
                "nightly",
                "50",
                str(start),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    results = [pair for out, _ in outputs for pair in json.loads(out.splitlines()[-1])]
    assert len(results) == 200
    ids = {task_id for task_id, _ in results}
    # Every call got the same id back; exactly one of them added the task
    assert len(ids) == 1, ids
    assert sum(1 for _, deduplicated in results if not deduplicated) == 1
    asyncio.run(_run_and_reuse(db_path, ids.pop()))


async def _run_and_reuse(db_path: Path, task_id: str) -> None:
    from engine import Engine

    engine = Engine(db_path, workers=1, poll_interval=0.05)

    @engine.task(name="race.job")
    async def job(n: int) -> int:
        return n

    async with engine:
        page = await engine.tasks(handler="race.job")
        assert [t.id for t in page] == [task_id]
        assert (await engine.wait(task_id, timeout=5)).state == TaskState.SUCCEEDED
        # Once it has finished, the key can be used again
        again = await engine.enqueue("race.job", {"n": 1}, unique_key="nightly")
        assert again != task_id and not again.deduplicated  # type: ignore[attr-defined]
        assert (await engine.wait(again, timeout=5)).state == TaskState.SUCCEEDED


async def test_retrying_a_task_whose_key_is_taken_says_why(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=1)

    @engine.task(name="sync", retries=0)
    async def sync(fail: bool = False) -> None:
        if fail:
            raise RuntimeError("sync failed")

    async with engine:
        failed = await engine.enqueue("sync", {"fail": True}, unique_key="k")
        assert (await engine.wait(failed, timeout=5)).state == TaskState.FAILED
        await engine.pause("held")
        holder = await engine.enqueue("sync", unique_key="k", queue="held")  # holds the key
        with pytest.raises(
            InvalidTransition,
            match=f"task {failed} cannot be retried: its unique key 'k' is held by task "
            f"{holder}, which is queued",
        ):
            await engine.retry(failed)
        assert (await engine.get(failed)).state == TaskState.FAILED
        # A bulk retry leaves it failed and retries the others
        other = await engine.enqueue("sync", {"fail": True}, unique_key="other")
        assert (await engine.wait(other, timeout=5)).state == TaskState.FAILED
        assert await engine.retry_all() == 1
        assert (await engine.get(failed)).state == TaskState.FAILED
        record = await engine.wait(other, timeout=5)
        assert record.state == TaskState.FAILED and record.attempts == 2  # it ran again
        # Once the holder has finished, the retry goes through
        await engine.resume("held")
        assert (await engine.wait(holder, timeout=5)).state == TaskState.SUCCEEDED
        assert await engine.retry(failed) == TaskState.FAILED
        record = await engine.wait(failed, timeout=5)
        assert record.state == TaskState.FAILED and record.attempts == 2


async def test_a_bulk_retry_requeues_one_task_per_key(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=1)

    @engine.task(name="sync", retries=0)
    async def sync(n: int) -> None:
        raise RuntimeError("down")

    async with engine:
        first = await engine.enqueue("sync", {"n": 1}, unique_key="k")
        assert (await engine.wait(first, timeout=5)).state == TaskState.FAILED
        second = await engine.enqueue("sync", {"n": 2}, unique_key="k")
        assert (await engine.wait(second, timeout=5)).state == TaskState.FAILED
        await engine.pause("default")
        # Both failed with the same key: only one of them can be active again
        assert await engine.retry_all() == 1
        states = sorted([(await engine.get(t)).state for t in (first, second)])
        assert states == [TaskState.FAILED, TaskState.QUEUED]
