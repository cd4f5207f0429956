"""Why waiting: ``engine.diagnose.why(id)`` names what holds a task back, each reason
set up for real (a pause, a limit, a busy worker, a workflow step …) and read back
from the store and the node rows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from engine import Engine, Signature, TaskState, WhyWaiting, chain

from .conftest import BOTH_BACKENDS, FAST, until


@asynccontextmanager
async def busy_engine(
    path: str | Path, workers: int = 1, **options: Any
) -> AsyncIterator[tuple[Engine, asyncio.Event, asyncio.Event]]:
    """An engine whose ``block`` tasks run until ``gate`` is set (``started`` is set
    when one runs), and whose ``quick`` tasks finish at once."""
    engine = Engine(path, workers=workers, name="n1", **{**FAST, "prefetch": 0, **options})
    gate, started = asyncio.Event(), asyncio.Event()

    @engine.task(name="block", queue="work")
    async def block() -> None:
        started.set()
        await gate.wait()

    @engine.task(name="quick", queue="work")
    async def quick() -> None:
        return None

    @engine.task(name="take", queue="work")
    async def take(value: Any = None) -> None:
        return None

    @engine.task(name="boom", queue="work")
    async def boom() -> None:
        raise ValueError("no")

    async with engine:
        try:
            yield engine, gate, started
        finally:
            gate.set()


async def why(engine: Engine, task_id: str) -> WhyWaiting:
    return await engine.diagnose.why(task_id)


async def test_not_due_until_its_time(db_path: Path) -> None:
    async with busy_engine(db_path) as (engine, _, _):
        tid = await engine.enqueue("quick", delay=3600)
        answer = await why(engine, tid)
    assert answer.code == "not_due" and answer.waiting
    assert answer.text.startswith("not due until ") and "(in 60 min)" in answer.text
    assert 3590 < answer.details["in_seconds"] <= 3600


@BOTH_BACKENDS
async def test_workflow_step_waits_for_the_earlier_step(store: str | Path) -> None:
    async with busy_engine(store, workers=2) as (engine, _, started):
        flow = await engine.enqueue_workflow(chain(Signature("block"), Signature("take")))
        await asyncio.wait_for(started.wait(), 10)
        first, second = (step.task_id for step in flow.steps)
        answer = await why(engine, second)
    assert answer.code == "workflow"
    assert answer.text == (f"waiting for an earlier step of workflow {flow.id}: #{first} (running)")
    assert answer.details["waiting_for"] == first


async def test_everything_paused_says_who_and_why(db_path: Path) -> None:
    async with busy_engine(db_path) as (engine, _, _):
        await engine.pause_all(note="INC-7 database failover")
        tid = await engine.enqueue("quick")
        answer = await why(engine, tid)
    assert answer.code == "all_paused"
    who = engine.audit.actor.who
    assert answer.text.startswith(f"everything is paused by {who} ")
    assert answer.text.endswith("ago: INC-7 database failover")


@BOTH_BACKENDS
async def test_queue_paused_says_by_whom(store: str | Path) -> None:
    async with busy_engine(store) as (engine, _, _):
        await engine.pause("work")
        tid = await engine.enqueue("quick")
        answer = await why(engine, tid)
    assert answer.code == "queue_paused"
    assert answer.text.startswith(f"queue work is paused by {engine.audit.actor.who} ")
    assert answer.details["by"] == engine.audit.actor.who


async def test_no_alive_node(db_path: Path) -> None:
    async with Engine(db_path, workers=0, strict_handlers=False).client() as engine:
        tid = await engine.enqueue("anything.x")
        answer = await why(engine, tid)
    assert (answer.code, answer.text) == ("no_node", "no alive node works on this store")


async def test_no_node_serves_the_handler(db_path: Path) -> None:
    async with busy_engine(db_path, strict_handlers=False) as (engine, _, _):
        tid = await engine.enqueue("images.resize")
        answer = await why(engine, tid)
    assert answer.code == "unserved"
    assert answer.text == "no alive node with workers runs handler images.resize (1 alive node)"


async def test_concurrency_limit(db_path: Path) -> None:
    async with busy_engine(db_path, workers=2, queue_concurrency={"work": 1}) as (
        engine,
        _,
        started,
    ):
        await engine.enqueue("block")
        await asyncio.wait_for(started.wait(), 10)
        tid = await engine.enqueue("quick")
        answer = await why(engine, tid)
    assert answer.code == "concurrency"
    assert answer.text == "concurrency limit of queue work: 1 of 1 running"


@BOTH_BACKENDS
async def test_rate_limit_says_when_the_next_token_comes(store: str | Path) -> None:
    async with busy_engine(store, workers=2, queue_rate_limits={"work": "1/m"}) as (
        engine,
        _,
        _,
    ):
        first = await engine.enqueue("quick")
        await engine.wait(first, timeout=10)
        tid = await engine.enqueue("quick")
        answer = await why(engine, tid)
    assert answer.code == "rate_limit"
    assert answer.text.startswith("rate limit 1/m of queue work: next token in ")
    assert 50 < answer.details["next_token_in"] <= 60


async def test_no_free_worker_gives_position_and_estimate(db_path: Path) -> None:
    async with busy_engine(db_path) as (engine, _, started):
        await engine.enqueue("block")
        await asyncio.wait_for(started.wait(), 10)
        second = await engine.enqueue("quick")
        third = await engine.enqueue("quick")
        answer = await why(engine, third)
        ahead = await why(engine, second)
    assert answer.code == "no_free_worker"
    assert answer.text.startswith("no free worker (1 of 1 busy): position 2 in queue work, ")
    assert answer.details["position"] == 2 and ahead.details["position"] == 1


@BOTH_BACKENDS
async def test_held_in_the_ready_buffer_of_a_node(store: str | Path) -> None:
    async with busy_engine(store, prefetch=10) as (engine, _, started):
        ids = await engine.enqueue_many([("block", {}), ("quick", {}), ("quick", {})])
        await asyncio.wait_for(started.wait(), 10)
        await until(lambda: engine.snapshot().buffered == 2, what="two held")
        answer = await why(engine, ids[2])
        assert (await engine.get(ids[2])).state is TaskState.RUNNING
        # another process reads it from the node's heartbeat
        async with Engine(store, workers=0, name="op", **FAST).client() as other:
            for _ in range(100):
                seen = await why(other, ids[2])
                if seen.code == "buffered":
                    break
                await asyncio.sleep(0.1)
    assert answer.code == "buffered"
    assert answer.text.startswith("held in the ready buffer of node n1: claimed")
    assert seen.code == "buffered" and seen.details["node"] == "n1"


@BOTH_BACKENDS
async def test_unique_key_held_by_another_task(store: str | Path) -> None:
    async with busy_engine(store, workers=2) as (engine, _, started):
        failed = await engine.enqueue("boom", unique_key="report:7")
        await engine.wait(failed, timeout=10)
        holder = await engine.enqueue("block", unique_key="report:7")
        await asyncio.wait_for(started.wait(), 10)
        answer = await why(engine, failed)
    assert answer.code == "unique_key" and not answer.waiting
    assert answer.text == (
        f"failed; a retry would wait: its unique key 'report:7' is held by #{holder} (running)"
    )


async def test_running_and_finished_are_not_waiting(db_path: Path) -> None:
    async with busy_engine(db_path) as (engine, gate, started):
        tid = await engine.enqueue("block")
        await asyncio.wait_for(started.wait(), 10)
        running = await why(engine, tid)
        gate.set()
        await engine.wait(tid, timeout=10)
        done = await why(engine, tid)
    assert running.code == "running" and not running.waiting
    assert (done.code, done.text) == ("finished", "succeeded: not waiting")


async def test_unknown_task(db_path: Path) -> None:
    async with busy_engine(db_path) as (engine, _, _):
        with pytest.raises(LookupError, match="no task with id '999'"):
            await why(engine, "999")
