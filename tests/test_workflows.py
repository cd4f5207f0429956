"""Workflows: chains (each step gets the previous result) and groups (parallel
members, then a callback with every result), stored durably with their steps."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from engine import Engine, InvalidTransition, TaskHandle, TaskState
from engine.workflow import Signature, chain, group

from .conftest import EngineFactory


def arithmetic(engine: Engine, broken: set[int] | None = None) -> TaskHandle:
    """``add(value, n)`` returns value + n; it fails (without retries) while ``n`` is
    in ``broken``."""
    broken = broken if broken is not None else set()

    @engine.task(name="add", retries=0)
    async def add(value: int, n: int) -> int:
        if n in broken:
            raise RuntimeError(f"step with n={n} is broken")
        return value + n

    return add


async def test_a_chain_passes_each_result_to_the_next_step(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=2)
    add = arithmetic(engine)
    async with engine:
        flow = await engine.enqueue_workflow(
            chain(
                add.s(value=1, n=1),
                add.s(n=10),
                add.s(n=100),
                add.s(n=1000),
                add.s(n=10000),
            )
        )
        assert flow.kind == "chain" and len(flow.task_ids) == 5
        last = await engine.wait(flow.task_ids[-1], timeout=10)
        assert last.state == TaskState.SUCCEEDED
        assert last.result == 11112
        records = [await engine.get(t) for t in flow.task_ids]
        done = await engine.workflow(flow.id)
    # Each step got the previous step's result as its open parameter
    assert [r.payload for r in records] == [
        {"value": 1, "n": 1},
        {"n": 10, "value": 2},
        {"n": 100, "value": 12},
        {"n": 1000, "value": 112},
        {"n": 10000, "value": 1112},
    ]
    assert [r.result for r in records] == [2, 12, 112, 1112, 11112]
    # … and ran strictly one after another
    for before, after in itertools.pairwise(records):
        assert before.finished_at is not None and after.started_at is not None
        assert after.started_at >= before.finished_at
    assert done.state == "succeeded"
    assert [s.index for s in done.steps] == [0, 1, 2, 3, 4]
    assert all(r.workflow_id == flow.id for r in records)


async def test_a_failed_step_stops_the_chain_and_a_retry_resumes_it(
    make_engine: EngineFactory,
) -> None:
    broken = {100}
    engine = make_engine(workers=2)
    s = arithmetic(engine, broken).s
    async with engine:
        flow = await chain(s(value=1, n=1), s(n=10), s(n=100), s(n=1000), s(n=10000)).enqueue()
        ids = flow.task_ids
        # The last step ends cancelled, because step 3 failed
        last = await engine.wait(ids[-1], timeout=10)
        assert last.state == TaskState.CANCELLED
        failed = await engine.get(ids[2])
        assert failed.state == TaskState.FAILED and "step with n=100 is broken" in (
            failed.error or ""
        )
        for task_id in ids[3:]:
            record = await engine.get(task_id)
            assert record.state == TaskState.CANCELLED
            assert record.started_at is None  # never ran
            note = record.timeline[-1].note or ""
            assert f"chain stopped: step 3 (add, task {ids[2]}) failed" in note
        assert (await engine.workflow(flow.id)).state == "failed"
        # A waiting step cannot be retried on its own: the failed one must be
        with pytest.raises(InvalidTransition, match="waits for an earlier step"):
            await engine.retry(ids[4])
        assert (await engine.get(ids[4])).state == TaskState.CANCELLED
        # Fixed and retried, the failed step runs again and the chain goes on to the end
        broken.clear()
        assert await engine.retry(ids[2]) == TaskState.FAILED
        last = await engine.wait(ids[-1], timeout=10)
        assert last.state == TaskState.SUCCEEDED and last.result == 11112
        assert (await engine.get(ids[3])).payload == {"n": 1000, "value": 112}
        done = await engine.workflow(flow.id)
    assert done.state == "succeeded"
    assert all(step.state == TaskState.SUCCEEDED for step in done.steps)


def gated(
    engine: Engine, gates: dict[int, asyncio.Event], broken: set[int]
) -> tuple[TaskHandle, TaskHandle]:
    """``member(x)`` waits for its gate, then returns 10·x (or fails while x is broken);
    ``total(results)`` receives the list of member results."""

    @engine.task(name="member", retries=0)
    async def member(x: int) -> int:
        await gates[x].wait()
        if x in broken:
            raise RuntimeError(f"member {x} is broken")
        return 10 * x

    @engine.task(name="total")
    async def total(results: list[int], label: str) -> dict[str, Any]:
        return {"label": label, "results": results, "sum": sum(results)}

    return member, total


async def test_a_group_callback_gets_the_results_in_member_order(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(workers=4)
    gates = {x: asyncio.Event() for x in (1, 2, 3)}
    member, total = gated(engine, gates, set())
    async with engine:
        flow = await engine.enqueue_workflow(
            group(member.s(x=1), member.s(x=2), member.s(x=3), callback=total.s(label="sum"))
        )
        assert flow.kind == "group" and [s.callback for s in flow.steps] == [
            False,
            False,
            False,
            True,
        ]
        members, callback = flow.task_ids[:3], flow.task_ids[3]
        # Members finish in reverse order
        for x, task_id in reversed(list(zip((1, 2, 3), members, strict=True))):
            gates[x].set()
            assert (await engine.wait(task_id, timeout=5)).state == TaskState.SUCCEEDED
        record = await engine.wait(callback, timeout=5)
    assert record.state == TaskState.SUCCEEDED
    assert record.result == {"label": "sum", "results": [10, 20, 30], "sum": 60}
    assert record.payload == {"label": "sum", "results": [10, 20, 30]}


async def test_a_failed_member_cancels_the_callback_until_it_is_retried(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(workers=4)
    gates = {x: asyncio.Event() for x in (1, 2, 3)}
    for gate in gates.values():
        gate.set()
    broken = {2}
    member, total = gated(engine, gates, broken)
    async with engine:
        flow = await engine.enqueue_workflow(
            group(member.s(x=1), member.s(x=2), member.s(x=3), callback=total.s(label="sum"))
        )
        members, callback = flow.task_ids[:3], flow.task_ids[3]
        record = await engine.wait(callback, timeout=5)
        assert record.state == TaskState.CANCELLED
        assert f"group stopped: group member 2 (member, task {members[1]}) failed" in (
            record.timeline[-1].note or ""
        )
        # The other members still ran
        states = [(await engine.wait(m, timeout=5)).state for m in members]
        assert states == [TaskState.SUCCEEDED, TaskState.FAILED, TaskState.SUCCEEDED]
        assert (await engine.workflow(flow.id)).state == "failed"
        # Retrying the failed member (now fixed) releases the callback
        broken.clear()
        await engine.retry(members[1])
        record = await engine.wait(callback, timeout=5)
        assert (await engine.workflow(flow.id)).state == "succeeded"
    assert record.state == TaskState.SUCCEEDED
    assert record.result == {"label": "sum", "results": [10, 20, 30], "sum": 60}


async def test_cancelling_a_running_step_cancels_the_waiting_rest(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(workers=1)
    entered = asyncio.Event()

    @engine.task(name="slow")
    async def slow(value: int) -> int:
        entered.set()
        await asyncio.Event().wait()  # until cancelled
        return value

    add = arithmetic(engine)
    async with engine:
        flow = await engine.enqueue_workflow(chain(add.s(value=1, n=1), slow.s(), add.s(n=5)))
        ids = flow.task_ids
        await asyncio.wait_for(entered.wait(), 5)
        assert await engine.cancel(ids[1], reason="not needed") == TaskState.RUNNING
        last = await engine.wait(ids[2], timeout=5)
        assert last.state == TaskState.CANCELLED
        assert f"chain stopped: step 2 (slow, task {ids[1]}) cancelled" in (
            last.timeline[-1].note or ""
        )
        assert (await engine.get(ids[0])).state == TaskState.SUCCEEDED
        assert (await engine.workflow(flow.id)).state == "cancelled"


async def test_cancelling_a_queued_first_step_cancels_every_step(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(workers=0)
    add = arithmetic(engine)
    async with engine:
        flow = await engine.enqueue_workflow(chain(add.s(value=1, n=1), add.s(n=2), add.s(n=3)))
        ids = flow.task_ids
        assert [s.state for s in flow.steps] == [
            TaskState.QUEUED,
            TaskState.SCHEDULED,
            TaskState.SCHEDULED,
        ]
        assert [s.waiting for s in flow.steps] == [False, True, True]
        assert await engine.cancel(ids[0]) == TaskState.QUEUED
        for task_id in ids[1:]:
            assert (await engine.wait(task_id, timeout=5)).state == TaskState.CANCELLED
        # Cancelled steps stay (with the reason), they are not deleted
        assert len(await engine.tasks(state=TaskState.CANCELLED)) == 3


async def test_a_chain_survives_a_restart_midway(make_engine: EngineFactory) -> None:
    entered = asyncio.Event()

    def handlers(engine: Engine, block: bool) -> tuple[TaskHandle, TaskHandle]:
        add = arithmetic(engine)

        @engine.task(name="double")
        async def double(value: int) -> int:
            if block:
                entered.set()
                await asyncio.Event().wait()  # the engine stops while this runs
            return 2 * value

        return add, double

    first = make_engine(workers=2)
    add, double = handlers(first, block=True)
    async with first:
        flow = await first.enqueue_workflow(chain(add.s(value=1, n=2), double.s(), add.s(n=4)))
        ids = flow.task_ids
        await asyncio.wait_for(entered.wait(), 5)
        # Stop now: step 2 is interrupted (back to queued, no attempt used), step 3 waits
        await first.stop(grace=0)
    # what the stop left behind, read before any worker can claim it again
    reader = make_engine(workers=0, strict_handlers=False)
    async with reader:
        middle = await reader.get(ids[1])
        assert middle.state == TaskState.QUEUED and middle.payload == {"value": 3}
        assert (await reader.get(ids[2])).state == TaskState.SCHEDULED
    second = make_engine(workers=2)
    handlers(second, block=False)
    async with second:
        last = await second.wait(ids[2], timeout=10)
        assert last.state == TaskState.SUCCEEDED
        assert last.result == 10  # (1 + 2) × 2 + 4
        assert last.payload == {"n": 4, "value": 6}
        assert (await second.workflow(flow.id)).state == "succeeded"


async def test_bad_workflows_are_refused_at_enqueue_naming_the_step(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(workers=0)
    add = arithmetic(engine)

    @engine.task(name="pair")
    async def pair(a: int, b: int) -> int:
        return a + b

    async with engine:
        with pytest.raises(LookupError, match=r"chain step 2 \(ad\): unknown handler 'ad'.*'add'"):
            await engine.enqueue_workflow(chain(add.s(value=1, n=1), Signature("ad", {"n": 2})))
        with pytest.raises(
            TypeError,
            match=r"chain step 3 \(add\): .*no parameter left for the previous result",
        ):
            await engine.enqueue_workflow(
                chain(add.s(value=1, n=1), add.s(n=2), add.s(value=0, n=3))
            )
        with pytest.raises(
            TypeError,
            match=r"group callback \(pair\): .*leaves 2 required ones open \(a, b\)",
        ):
            await engine.enqueue_workflow(group(add.s(value=1, n=1), callback=pair.s()))
        with pytest.raises(TypeError, match=r"chain step 1 \(add\): payload does not match"):
            await engine.enqueue_workflow(chain(add.s(value=1), add.s(n=2)))
        with pytest.raises(TypeError, match="unknown step option 'delay'"):
            add.s(n=2).set(delay=5)
        with pytest.raises(TypeError, match="unknown step option 'unique_key'"):
            chain(("add", {"value": 1, "n": 1}, {"unique_key": "k"}))
        with pytest.raises(ValueError, match="at least one step"):
            chain()
        # Nothing of the refused workflows was stored
        assert await engine.tasks() == []
        # priority and queue are the step options there are
        flow = await engine.enqueue_workflow(
            chain(add.s(value=1, n=1).set(priority=9, queue="fast"), add.s(n=2).set(priority="low"))
        )
        first, second = [await engine.get(t) for t in flow.task_ids]
    assert (first.priority, first.queue) == (9, "fast")
    assert (second.priority, second.queue) == (2, "default")


async def test_a_producer_without_the_handlers_can_enqueue_a_workflow(
    make_engine: EngineFactory,
) -> None:
    producer = make_engine(workers=0, strict_handlers=False)
    async with producer:
        flow = await producer.enqueue_workflow(
            chain(Signature("remote.fetch", {"url": "u"}), Signature("remote.store"))
        )
        stored = await producer.workflow(flow.id)
        assert [s.handler for s in stored.steps] == ["remote.fetch", "remote.store"]
    strict = make_engine(workers=0)
    async with strict:
        with pytest.raises(LookupError, match=r"chain step 1 \(remote\.fetch\): unknown handler"):
            await strict.enqueue_workflow(chain(Signature("remote.fetch", {"url": "u"})))
    # A worker that has the handlers runs it: an object result fills the open parameters
    worker = make_engine(workers=2)

    @worker.task(name="remote.fetch")
    async def fetch(url: str) -> dict[str, Any]:
        return {"body": f"<{url}>", "size": 3}

    @worker.task(name="remote.store")
    async def store(body: str, size: int) -> str:
        return f"{body}:{size}"

    async with worker:
        last = await worker.wait(flow.task_ids[-1], timeout=10)
    assert last.state == TaskState.SUCCEEDED and last.result == "<u>:3"
