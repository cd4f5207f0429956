"""Bulk operations (``engine.ops``): each action on ids and on a filter, on both
backends; the result says what changed and what was skipped and why; an empty match
changes nothing; abort stops midway with a partial result; a stopped engine leaves
its operation interrupted; 50,000 tasks reprioritized: every match changes, no other."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from engine import Engine, InvalidTransition, TaskState

from .conftest import BOTH_BACKENDS, FAST
from .console_helpers import bulk_queue


def make(store: str | Path, workers: int = 0) -> Engine:
    return Engine(store, workers=workers, strict_handlers=False, **FAST)


@BOTH_BACKENDS
async def test_each_action_changes_what_matches_and_says_why_it_skipped(
    store: str | Path,
) -> None:
    engine = make(store)
    async with engine:
        a = [await engine.enqueue("a.job", {"i": i}, queue="qa", priority=3) for i in range(5)]
        b = [await engine.enqueue("b.job", {"i": i}, queue="qb", priority=3) for i in range(3)]
        await engine.cancel(a[0])

        op = await engine.ops.start("reprioritize", handler="a.job", priority=7)
        assert op.total == 5 and op.action == "reprioritize"
        op = await engine.ops.wait(op.id, timeout=10)
        assert (op.state, op.done, op.changed, op.skipped) == ("done", 5, 4, 1)
        assert op.reasons == {"cancelled: only queued or scheduled tasks change priority": 1}
        assert [(await engine.get(t)).priority for t in a[1:]] == [7] * 4
        assert [(await engine.get(t)).priority for t in b] == [3] * 3
        line = (await engine.get(a[1])).timeline[-1]
        assert line.note is not None and "priority 3 → 7" in line.note
        assert f"bulk operation {op.id}" in line.note

        moved = await engine.ops.wait((await engine.ops.start("move", ids=b[:2], to_queue="qa")).id)
        assert (moved.changed, moved.skipped) == (2, 0)
        assert [(await engine.get(t)).queue for t in b] == ["qa", "qa", "qb"]
        counts = await engine.counts("qa")
        assert counts[TaskState.QUEUED] == 6 and counts[TaskState.CANCELLED] == 1

        retried = await engine.ops.wait(
            (await engine.ops.start("set-retries", queue="qa", state="queued", retries=9)).id
        )
        assert retried.changed == 6
        assert (await engine.get(a[1])).max_retries == 9

        cancel = await engine.ops.wait((await engine.ops.start("cancel", queue="qa")).id)
        assert (cancel.changed, cancel.reasons) == (6, {"already cancelled": 1})
        assert (await engine.counts("qa"))[TaskState.CANCELLED] == 7

        again = await engine.ops.wait((await engine.ops.start("retry", ids=a[:2])).id)
        assert again.changed == 2
        assert (await engine.get(a[0])).state == TaskState.QUEUED

        purge = await engine.ops.wait(
            (await engine.ops.start("purge", ids=[*a, "999999"], note="INC-7")).id
        )
        assert purge.changed == 3  # a[2:] are cancelled; a[:2] queued; 999999 missing
        assert purge.reasons == {
            "queued: only finished tasks are purged": 2,
            "no such task": 1,
        }
        assert purge.note == "INC-7"
        assert (await engine.counts("qa"))[TaskState.CANCELLED] == 2  # b[:2]

        listed = await engine.ops.list()
        assert [o.id for o in listed] == sorted((o.id for o in listed), reverse=True)
        assert [o.action for o in listed[:2]] == ["purge", "retry"]
        trail = await engine.audit.entries(action="bulk_purge")
        assert [e.outcome.split(":")[0] for e in trail] == ["done", f"operation {purge.id}"]
        assert trail[0].note == "INC-7"


@BOTH_BACKENDS
async def test_an_empty_match_says_0_and_changes_nothing(store: str | Path) -> None:
    engine = make(store)
    async with engine:
        task = await engine.enqueue("a.job", {}, priority=2)
        dry = await engine.ops.start("reprioritize", handler="nobody", priority=9, dry_run=True)
        assert (dry.state, dry.total, dry.changed) == ("dry run", 0, 0)
        op = await engine.ops.wait(
            (await engine.ops.start("reprioritize", handler="nobody", priority=9)).id
        )
        assert (op.state, op.total, op.done, op.changed, op.skipped) == ("done", 0, 0, 0, 0)
        assert op.summary() == "0 changed, 0 skipped"
        assert (await engine.get(task)).priority == 2


async def test_a_dry_run_counts_without_changing(db_path: Path) -> None:
    engine = make(db_path)
    async with engine:
        ids = [await engine.enqueue("a.job", {}, priority=i % 2) for i in range(6)]
        await engine.cancel(ids[0])
        dry = await engine.ops.start("reprioritize", handler="a.job", priority=1, dry_run=True)
        assert (dry.total, dry.changed, dry.skipped) == (6, 2, 4)
        assert dry.summary() == (
            "2 would change, 4 skipped (3 already priority 1, "
            "1 cancelled: only queued or scheduled tasks change priority)"
        )
        assert [(await engine.get(t)).priority for t in ids] == [i % 2 for i in range(6)]
        assert await engine.ops.list() == []


@BOTH_BACKENDS
async def test_abort_midway_keeps_a_partial_result(store: str | Path) -> None:
    engine = make(store)
    async with engine:
        await engine.enqueue_many([("a.job", {"i": i}) for i in range(3000)])
        engine.ops.batch_size = 10  # 300 transactions
        op = await engine.ops.start("reprioritize", state="queued", priority=9)
        while (await engine.ops.get(op.id)).done < 10:  # the first batch is in
            pass
        aborted = await engine.ops.abort(op.id)
        assert aborted.state == "aborted"
        assert 10 <= aborted.done < 3000 and aborted.changed == aborted.done
        assert aborted.summary() == f"{aborted.changed:,} changed, 0 skipped"
        page = await engine.tasks(state="queued", limit=10_000)
        assert sum(t.priority == 9 for t in page) == aborted.changed
        again = await engine.ops.abort(op.id)  # finished: unchanged
        assert again.state == "aborted" and again.done == aborted.done


async def test_a_stopped_engine_leaves_its_operation_interrupted(db_path: Path) -> None:
    engine = Engine(db_path, workers=0, strict_handlers=False, name="node-a", **FAST)
    async with engine:
        await engine.enqueue_many([("a.job", {"i": i}) for i in range(30)])
        engine.ops.batch_size = 5
        op = await engine.ops.start("reprioritize", state="queued", priority=8)
    with sqlite3.connect(db_path) as conn:
        state = conn.execute("SELECT state FROM operations").fetchone()[0]
    assert state in ("interrupted", "done")
    # the same node started again resumes it to the end
    again = Engine(db_path, workers=0, strict_handlers=False, name="node-a", **FAST)
    async with again:
        finished = await again.ops.wait(op.id, timeout=10)
        assert (finished.state, finished.done, finished.changed) == ("done", 30, 30)


async def test_bad_input_is_refused_with_the_rule(db_path: Path) -> None:
    engine = make(db_path)
    async with engine:
        with pytest.raises(ValueError, match="unknown bulk action 'explode'; use one of cancel"):
            await engine.ops.start("explode")
        with pytest.raises(TypeError, match="reprioritize needs priority="):
            await engine.ops.start("reprioritize", state="queued")
        with pytest.raises(TypeError, match="cancel takes no priority argument"):
            await engine.ops.start("cancel", priority=3)
        with pytest.raises(TypeError, match="give ids or a filter"):
            await engine.ops.start("cancel", ids=["1"], queue="q")
        with pytest.raises(ValueError, match="unknown task state 'stuck'"):
            await engine.ops.start("cancel", state="stuck")
        with pytest.raises(LookupError, match="no bulk operation with id '42'"):
            await engine.ops.get(42)
        with pytest.raises(LookupError, match="no bulk operation with id 'x'"):
            await engine.ops.abort("x")


async def test_running_and_workflow_tasks_go_one_by_one(db_path: Path) -> None:
    engine = Engine(db_path, workers=1, **FAST)
    gate, began = asyncio.Event(), asyncio.Event()

    @engine.task(name="slow")
    async def slow() -> None:
        began.set()
        await gate.wait()

    async with engine:
        running = await engine.enqueue("slow", {})
        queued = await engine.enqueue("slow", {})
        await asyncio.wait_for(began.wait(), 10)
        keyed = await engine.enqueue("slow", {}, unique_key="k", delay=60)
        op = await engine.ops.wait((await engine.ops.start("cancel", handler="slow")).id)
        assert (op.changed, op.skipped) == (3, 0)
        states = [(await engine.get(t)).state for t in (running, queued, keyed)]
        assert states == [TaskState.CANCELLED] * 3
        gate.set()
        twin = await engine.enqueue("slow", {}, unique_key="k", delay=60)
        op = await engine.ops.wait((await engine.ops.start("retry", ids=[keyed, running])).id)
        assert op.changed == 1
        assert op.reasons == {"its unique key is held by an active task": 1}
        assert (await engine.get(twin)).state == TaskState.SCHEDULED


async def test_fifty_thousand_reprioritized_every_match_and_no_other(db_path: Path) -> None:
    async with make(db_path):  # the schema
        pass
    bulk_queue(db_path, 50_000, handler="images.resize", queue="images")
    bulk_queue(db_path, 5_000, handler="images.crop", queue="images")
    engine = make(db_path)
    async with engine:
        op = await engine.ops.start(
            "reprioritize", handler="images.resize", state="queued", priority=9
        )
        assert op.total == 50_000
        op = await engine.ops.wait(op.id, timeout=120)
        assert op.state == "done" and op.done == 50_000
        assert op.changed + op.reasons.get("already priority 9", 0) == 50_000
    with sqlite3.connect(db_path) as conn:
        rows = dict(
            conn.execute("SELECT handler, SUM(priority = 9) FROM tasks GROUP BY handler").fetchall()
        )
    assert rows["images.resize"] == 50_000
    assert rows["images.crop"] == 500  # untouched: i % 10 == 9 as inserted


def test_invalid_transition_is_exported() -> None:
    assert issubclass(InvalidTransition, Exception)


async def test_an_operation_whose_process_died_is_marked_interrupted_or_aborted(
    db_path: Path,
) -> None:
    engine = make(db_path)
    async with engine:
        await engine.enqueue("a.job", {})
        first = await engine.ops.wait((await engine.ops.start("cancel", state="queued")).id)
        second = await engine.ops.wait((await engine.ops.start("retry", state="cancelled")).id)
    with sqlite3.connect(db_path) as conn:  # as a process killed mid-way leaves them
        conn.execute("UPDATE operations SET state = 'running', owner = 'gone-1', beat_at = 0")
    again = make(db_path)
    async with again:
        found = await again.ops.get(first.id)
        assert (found.state, found.error) == ("interrupted", "its runner stopped before the end")
        with sqlite3.connect(db_path) as conn:
            conn.execute("UPDATE operations SET state = 'running' WHERE id = ?", (second.id,))
        stopped = await again.ops.abort(second.id)
        assert (stopped.state, stopped.error) == ("aborted", "its runner had stopped")


@BOTH_BACKENDS
async def test_a_query_selects_the_tasks(store: str | Path) -> None:
    engine = make(store)
    async with engine:
        ids = await engine.enqueue_many([("a.job", {"i": i}) for i in range(30)])
        await engine.enqueue_many([("b.job", {"i": i}) for i in range(5)])
        where = "handler=a.job AND payload.i>=20"
        dry = await engine.ops.start("reprioritize", where=where, priority=8, dry_run=True)
        assert (dry.total, dry.changed) == (10, 10)
        op = await engine.ops.wait(
            (await engine.ops.start("reprioritize", where=where, priority=8)).id, timeout=10
        )
        assert (op.total, op.changed, op.target) == (10, 10, where)
        assert [(await engine.get(t)).priority == 8 for t in ids] == [i >= 20 for i in range(30)]
        with pytest.raises(ValueError, match="at 18: expected a term after AND"):
            await engine.ops.start("cancel", where="handler=a.job AND")
        with pytest.raises(TypeError, match="give ids or a filter"):
            await engine.ops.start("cancel", ids=ids[:1], where="state=queued")


@BOTH_BACKENDS
async def test_a_priority_step_raises_or_lowers_each_task_within_the_range(
    store: str | Path,
) -> None:
    engine = make(store)
    async with engine:
        ids = [await engine.enqueue("a.job", {"i": p}, priority=p) for p in (0, 4, 8, 9)]
        started = await engine.ops.start("reprioritize", ids=ids, priority="+1")
        up = await engine.ops.wait(started.id)
        assert up.title == "reprioritize → +1"
        assert (up.changed, up.reasons) == (3, {"already priority 9": 1})
        assert [(await engine.get(t)).priority for t in ids] == [1, 5, 9, 9]
        line = (await engine.get(ids[1])).timeline[-1]
        assert line.note is not None and "priority 4 → 5" in line.note
        down = await engine.ops.wait(
            (await engine.ops.start("reprioritize", handler="a.job", priority="-3")).id
        )
        assert down.changed == 4
        assert [(await engine.get(t)).priority for t in ids] == [0, 2, 6, 6]
        dry = await engine.ops.start("reprioritize", ids=ids[:1], priority="-1", dry_run=True)
        assert (dry.changed, dry.reasons) == (0, {"already priority 0": 1})
        for bad in ("+0", "+10", "+x", "-"):
            rule = "a priority step must be \\+N or -N with N from 1 to 9"
            with pytest.raises(ValueError, match=rule):
                await engine.ops.start("reprioritize", ids=ids, priority=bad)
