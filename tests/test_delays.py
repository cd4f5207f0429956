"""Delayed tasks: ``delay=`` seconds and ``run_at=`` an aware datetime.

A delayed task waits as ``scheduled`` and starts within 50 ms of its due time at
low load (the issue's acceptance), because the promoter sleeps until the next due
time instead of polling: even with ``poll_interval=60`` it is on time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest

from engine import TaskState

from .conftest import EngineFactory

LATENESS_LIMIT = 0.05  # seconds after the due time a delayed task may start


async def test_delayed_tasks_start_within_50_ms_of_their_due_time(
    make_engine: EngineFactory,
) -> None:
    # poll_interval=60: only the promoter's own timer can start these on time
    engine = make_engine(workers=2, poll_interval=60.0)
    began: dict[str, float] = {}

    @engine.task(name="ping")
    async def ping(label: str) -> None:
        began[label] = time.time()

    async with engine:
        ids: dict[str, str] = {}
        for i, seconds in enumerate((0.3, 0.45, 0.6, 0.75, 0.9)):
            ids[f"delay-{i}"] = await engine.enqueue("ping", {"label": f"delay-{i}"}, delay=seconds)
        # While waiting they are scheduled, with their due time
        for task_id in ids.values():
            record = await engine.get(task_id)
            assert record.state == TaskState.SCHEDULED
            assert record.run_at is not None and record.run_at > time.time()
        records = [await engine.wait(task_id, timeout=5) for task_id in ids.values()]
    lateness = {}
    for label, record in zip(ids, records, strict=True):
        assert record.state == TaskState.SUCCEEDED
        assert record.run_at is not None
        lateness[label] = began[label] - record.run_at
    # Never early, never more than 50 ms late
    assert all(0 <= late < LATENESS_LIMIT for late in lateness.values()), lateness
    # Each went scheduled → queued → running
    states = [e.state for e in records[0].timeline]
    assert states[:3] == [TaskState.SCHEDULED, TaskState.QUEUED, TaskState.RUNNING]


async def test_run_at_datetimes_in_any_zone_start_on_time(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=2, poll_interval=60.0)
    began: dict[int, float] = {}

    @engine.task(name="ping")
    async def ping(n: int) -> None:
        began[n] = time.time()

    zones = [
        dt.UTC,
        dt.timezone(dt.timedelta(hours=5, minutes=30)),
        dt.timezone(-dt.timedelta(hours=8)),
    ]
    async with engine:
        base = dt.datetime.now(dt.UTC)
        due = {
            n: (base + dt.timedelta(seconds=0.3 + 0.15 * n)).astimezone(zones[n % len(zones)])
            for n in range(5)
        }
        ids = {n: await engine.enqueue("ping", {"n": n}, run_at=at) for n, at in due.items()}
        for n, task_id in ids.items():
            record = await engine.get(task_id)
            assert record.state == TaskState.SCHEDULED
            assert record.run_at == pytest.approx(due[n].timestamp())
        for task_id in ids.values():
            assert (await engine.wait(task_id, timeout=5)).state == TaskState.SUCCEEDED
    lateness = {n: began[n] - at.timestamp() for n, at in due.items()}
    assert all(0 <= late < LATENESS_LIMIT for late in lateness.values()), lateness
    # They ran in due order
    assert sorted(began, key=began.__getitem__) == sorted(due, key=lambda n: due[n])


async def test_a_sooner_task_wakes_the_timer_set_for_a_later_one(
    make_engine: EngineFactory,
) -> None:
    # Given a task due in 30 s (the promoter sleeps until then) …
    engine = make_engine(workers=1, poll_interval=60.0)
    began: dict[str, float] = {}

    @engine.task(name="ping")
    async def ping(label: str) -> None:
        began[label] = time.time()

    async with engine:
        later = await engine.enqueue("ping", {"label": "later"}, delay=30)
        await asyncio.sleep(0)  # let the promoter go to sleep for the 30 s
        # … a task due sooner is still promoted on time
        sooner = await engine.enqueue("ping", {"label": "sooner"}, delay=0.2)
        record = await engine.wait(sooner, timeout=5)
        assert record.run_at is not None
        assert 0 <= began["sooner"] - record.run_at < LATENESS_LIMIT
        assert (await engine.get(later)).state == TaskState.SCHEDULED


async def test_naive_datetime_is_refused_and_nothing_is_enqueued(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(workers=0)

    @engine.task(name="ping")
    async def ping() -> None:
        pass

    async with engine:
        naive = dt.datetime.now() + dt.timedelta(minutes=5)
        with pytest.raises(ValueError, match="timezone-aware"):
            await engine.enqueue("ping", run_at=naive)
        with pytest.raises(TypeError, match="timezone-aware datetime"):
            await engine.enqueue("ping", run_at=time.time() + 60)
        with pytest.raises(TypeError, match="not both"):
            await engine.enqueue("ping", delay=1, run_at=dt.datetime.now(dt.UTC))
        for bad in (-1, float("nan"), float("inf")):
            with pytest.raises(ValueError, match="delay"):
                await engine.enqueue("ping", delay=bad)
        assert await engine.tasks() == []


async def test_run_at_in_the_past_runs_at_once(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=1, poll_interval=60.0)

    @engine.task(name="ping")
    async def ping() -> str:
        return "ran"

    async with engine:
        past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
        t0 = time.time()
        task_id = await engine.enqueue("ping", run_at=past)
        record = await engine.wait(task_id, timeout=5)
        assert record.state == TaskState.SUCCEEDED and record.result == "ran"
        assert record.started_at is not None and record.started_at - t0 < LATENESS_LIMIT
        # It was never scheduled: it went straight to the queue
        assert TaskState.SCHEDULED not in [e.state for e in record.timeline]
