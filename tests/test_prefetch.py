"""Prefetch: tasks claimed ahead of the worker slots and held ready.

A held task is leased but unstarted. These tests hold tasks behind one busy worker
(a gated task) and check what a user relies on: a graceful stop gives them back
with their attempts unchanged; cancel, pause and a new priority — from this process
or from another client of the same store — take effect before a held task starts;
priority still orders what is not yet held; a killed process loses none of them.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from engine import Engine, TaskState
from engine.codec import Codec
from engine.store import open_store
from engine.store.base import NewTask

from .conftest import BOTH_BACKENDS, FAST, until
from .crash_harness import drain, held_by_others, ready, spawn, stop, verify


@dataclass
class Rig:
    """An engine with one worker kept busy by a gated task, and what ran, in order."""

    engine: Engine
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    busy: asyncio.Event = field(default_factory=asyncio.Event)
    ran: list[str] = field(default_factory=list)


def rig(store: str | Path, name: str = "holder", **options: Any) -> Rig:
    engine = Engine(store, workers=1, name=name, **{**FAST, "prefetch": 10, **options})
    out = Rig(engine)

    @engine.task(name="gate", queue="gates")
    async def gate() -> None:
        out.busy.set()
        await out.gate.wait()

    for queue in ("q1", "q2"):

        @engine.task(name=f"work.{queue}", queue=queue)
        async def work(label: str) -> None:
            out.ran.append(label)

    return out


async def hold(r: Rig, tasks: list[tuple[str, str, int]]) -> dict[str, str]:
    """Enqueue the gated task first in line and ``(label, queue, priority)`` tasks
    behind it, in one batch (work backed up: the pool claims ahead), and wait until
    the worker is busy and all of them are held; returns their ids by label."""
    items: list[Any] = [("gate", None, {"priority": 9})]
    items += [(f"work.{q}", {"label": label}, {"priority": p}) for label, q, p in tasks]
    ids = await r.engine.enqueue_many(items)
    await asyncio.wait_for(r.busy.wait(), 10)
    await until(lambda: r.engine.snapshot().buffered == len(tasks), what="all held")
    return {label: tid for (label, _, _), tid in zip(tasks, ids[1:], strict=True)}


@asynccontextmanager
async def other_client(store: str | Path) -> AsyncIterator[Engine]:
    """Another process's view of the store: an engine with no workers of its own."""
    async with Engine(store, workers=0, strict_handlers=False, name="operator", **FAST) as other:
        yield other


THREE = [("a", "q1", 5), ("b", "q1", 5), ("c", "q1", 5)]


# -- the store's check of held tasks ---------------------------------------------------


@BOTH_BACKENDS
async def test_a_claim_says_which_held_tasks_are_gone_or_paused(store: str | Path) -> None:
    s = open_store(store, Codec())
    await s.open()
    try:
        ids = await s.enqueue([NewTask("h", q, 5, "{}", 0) for q in ("q1", "q1", "q2", "q1")])
        a, b, c, d = (int(i) for i in ids)
        held = [t.id for t in await s.claim("me", 3, ["h"], 30.0)]
        assert held == [a, b, c]
        await s.cancel(b, "op", "x")
        await s.set_paused("q2", True)
        got = await s.claim("me", 5, ["h"], 30.0, held=held)
        assert [t.id for t in got] == [d]  # the new claim works as ever
        assert got.gone == {b} and got.paused == {c}
        nothing = await s.claim("me", 0, ["h"], 30.0, held=[a, d])  # a check alone
        assert list(nothing) == [] and nothing.gone == set() and nothing.paused == set()
    finally:
        await s.close()


# -- graceful stop ---------------------------------------------------------------------


@BOTH_BACKENDS
async def test_a_graceful_stop_gives_held_tasks_back_unstarted(store: str | Path) -> None:
    r = rig(store)
    async with r.engine:
        ids = await hold(r, THREE)
        snap = r.engine.snapshot()
        assert snap.buffered == 3 and snap.queues["q1"].buffered == 3
        report = await r.engine.stop(grace=0)
    assert report.returned == 1  # the gated task, interrupted; held ones are not "running"
    assert r.ran == []
    async with other_client(store) as other:
        for tid in ids.values():
            task = await other.get(tid)
            assert task.state == TaskState.QUEUED and task.attempts == 0
            # … as if never claimed: its claim is gone from its timeline too
            assert [e.state for e in task.timeline] == [TaskState.QUEUED]


# -- commands from this process ------------------------------------------------------


@BOTH_BACKENDS
async def test_a_cancelled_held_task_never_starts(store: str | Path) -> None:
    r = rig(store)
    async with r.engine:
        ids = await hold(r, THREE)
        # Given back first, so it is cancelled as the queued task it was to the user
        assert await r.engine.cancel(ids["b"]) == TaskState.QUEUED
        assert r.engine.snapshot().buffered == 2
        r.gate.set()
        await r.engine.drain(timeout=10)
        assert r.ran == ["a", "c"]
        b = await r.engine.get(ids["b"])
        assert b.state == TaskState.CANCELLED and b.attempts == 0


@BOTH_BACKENDS
async def test_pausing_a_queue_gives_its_held_tasks_back(store: str | Path) -> None:
    r = rig(store)
    async with r.engine:
        ids = await hold(r, [("x1", "q1", 5), ("y1", "q2", 5), ("x2", "q1", 5)])
        await r.engine.pause("q1")
        assert r.engine.snapshot().buffered == 1  # only q2's task is still held
        r.gate.set()
        await r.engine.drain(timeout=10)  # paused queues aside
        assert r.ran == ["y1"]
        for label in ("x1", "x2"):
            task = await r.engine.get(ids[label])
            assert task.state == TaskState.QUEUED and task.attempts == 0
        await r.engine.resume("q1")
        await r.engine.drain(timeout=10)
        assert r.ran == ["y1", "x1", "x2"]


@BOTH_BACKENDS
async def test_a_new_priority_reorders_held_tasks(store: str | Path) -> None:
    r = rig(store)
    async with r.engine:
        ids = await hold(r, THREE)
        assert await r.engine.reprioritize(ids["c"], 9) == 5  # up, past a and b
        assert await r.engine.reprioritize(ids["a"], 1) == 5  # down, behind b
        r.gate.set()
        await r.engine.drain(timeout=10)
        assert r.ran == ["c", "b", "a"]
        assert [(await r.engine.get(ids[x])).attempts for x in "abc"] == [1, 1, 1]


# -- commands from another client of the same store ------------------------------------


@BOTH_BACKENDS
async def test_a_cancel_from_another_client_drops_the_held_task(store: str | Path) -> None:
    r = rig(store)
    async with r.engine, other_client(store) as other:
        ids = await hold(r, THREE)
        assert await other.cancel(ids["b"]) == TaskState.RUNNING
        await until(lambda: r.engine.snapshot().buffered == 2, what="the holder to drop it")
        r.gate.set()
        await r.engine.drain(timeout=10)
        assert r.ran == ["a", "c"]
        assert (await other.get(ids["b"])).state == TaskState.CANCELLED


@BOTH_BACKENDS
async def test_a_pause_from_another_client_gives_held_tasks_back(store: str | Path) -> None:
    r = rig(store)
    async with r.engine, other_client(store) as other:
        ids = await hold(r, [("x1", "q1", 5), ("y1", "q2", 5)])
        await other.pause("q1")
        await until(lambda: r.engine.snapshot().buffered == 1, what="the holder to give it back")
        r.gate.set()
        await r.engine.drain(timeout=10)
        assert r.ran == ["y1"]
        task = await other.get(ids["x1"])
        assert task.state == TaskState.QUEUED and task.attempts == 0


@BOTH_BACKENDS
async def test_a_new_priority_from_another_client_reorders_held_tasks(store: str | Path) -> None:
    r = rig(store)
    async with r.engine, other_client(store) as other:
        ids = await hold(r, THREE)
        # The holder is asked (a node command) and gives the task back re-prioritised
        assert await other.reprioritize(ids["c"], 9) == 5
        r.gate.set()
        await r.engine.drain(timeout=10)
        assert r.ran == ["c", "a", "b"]
        assert (await other.get(ids["c"])).priority == 9


@BOTH_BACKENDS
async def test_a_started_task_refuses_a_new_priority_from_another_client(
    store: str | Path,
) -> None:
    r = rig(store)
    async with r.engine, other_client(store) as other:
        await r.engine.enqueue("gate")
        await asyncio.wait_for(r.busy.wait(), 10)
        [gate] = await other.tasks("running")  # started, not held
        with pytest.raises(ValueError, match="only queued or scheduled tasks can change"):
            await other.reprioritize(gate.id, 9)
        r.gate.set()


@BOTH_BACKENDS
async def test_with_no_grace_window_commands_just_before_the_start_hold(
    store: str | Path,
) -> None:
    """prefetch_ttl=0: every start from the buffer waits for a claim that confirms it,
    so a cancel or pause committed the moment before the worker frees still holds."""
    r = rig(store, prefetch_ttl=0.0)
    async with r.engine, other_client(store) as other:
        ids = await hold(r, [("a", "q1", 5), ("x", "q2", 5), ("b", "q1", 5)])
        await other.cancel(ids["b"])
        await other.pause("q2")
        r.gate.set()  # at once: the holder has not heard of either command
        await until(lambda: r.ran == ["a"], what="a to run")
        await r.engine.drain(timeout=10)
        assert r.ran == ["a"]
        assert (await other.get(ids["b"])).state == TaskState.CANCELLED
        x = await other.get(ids["x"])
        assert x.state == TaskState.QUEUED and x.attempts == 0


# -- ordering and batching --------------------------------------------------------------


@BOTH_BACKENDS
async def test_priority_orders_what_is_not_yet_held(store: str | Path) -> None:
    r = rig(store, prefetch=2)
    async with r.engine:
        items: list[Any] = [("gate", None, {"priority": 9})]
        items += [("work.q1", {"label": f"l{i}"}, {"priority": 1}) for i in range(1, 6)]
        await r.engine.enqueue_many(items)
        await asyncio.wait_for(r.busy.wait(), 10)
        await until(lambda: r.engine.snapshot().buffered == 2, what="two held")
        await r.engine.enqueue("work.q1", {"label": "high"}, priority=9)
        r.gate.set()
        await r.engine.drain(timeout=10)
    # Then the high-priority task overtakes every low one that was not yet held
    assert sorted(r.ran) == sorted(["high", "l1", "l2", "l3", "l4", "l5"])
    assert r.ran.index("high") < min(r.ran.index(x) for x in ("l3", "l4", "l5"))


@BOTH_BACKENDS
async def test_a_small_pool_claims_in_batches(store: str | Path) -> None:
    engine = Engine(store, workers=2, **FAST)

    @engine.task(name="noop")
    async def noop(n: int) -> None:
        return None

    async with engine:
        await engine.enqueue_many([("noop", {"n": n}) for n in range(600)])
        await engine.drain(timeout=30)
        stats = engine.snapshot().stats
    assert stats["claimed"] >= 600
    assert stats["claimed"] / stats["claim_batches"] > 10  # not one claim per two tasks
    assert stats["completions"] >= 600 and stats["completion_writes"] >= 1


# -- a crash -------------------------------------------------------------------------


async def test_a_killed_process_with_a_full_buffer_loses_nothing(tmp_path: Path) -> None:
    db, ledger = tmp_path / "held.db", tmp_path / "ledger.txt"
    total = 1500
    proc = spawn(db, ledger, "node-0")
    await ready(proc)
    async with Engine(db, workers=0, strict_handlers=False, name="producer") as producer:
        ids = await producer.enqueue_many([("work", {"n": n}) for n in range(total)])
    # 8 workers: more than 8 tasks leased means a full-ish buffer of held ones
    await until(lambda: held_by_others(db, "nobody") > 40, timeout=30, what="a full buffer")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    again = spawn(db, ledger, "node-1")
    await drain(db, total, timeout=90)
    await ready(again)
    assert stop(again) == 0
    summary = await verify(db, ledger, ids, list(range(total)))
    assert summary["lost"] == 0 and summary["left_running"] == 0
