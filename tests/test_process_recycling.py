"""Worker processes replaced after max_tasks_per_child tasks or over
max_memory_per_child, without losing a task; the leak and engine memory findings."""

from __future__ import annotations

import pytest

from console.panels.workers import child_line
from engine import Engine, Finding, ProcessChild, TaskState
from engine.memory_findings import engine_memory, leaking_children
from engine.pool.children import ChildRecord
from engine.resources import ChildSample, ResourceSample

from . import process_handlers as ph
from .conftest import EngineFactory, until

MB = 2**20


async def _pid(engine: Engine) -> int:
    record = await engine.wait(await engine.enqueue("pid", {"n": 0}), timeout=20)
    assert isinstance(record.result, int)
    return record.result


def _rules(engine: Engine) -> dict[str, Finding]:
    return {f.rule: f for f in engine.snapshot().findings}


async def test_a_leaking_child_is_replaced_and_the_leak_named(make_engine: EngineFactory) -> None:
    # Given a process handler that keeps 5 MB more per task and a 60 MB limit per child
    engine = make_engine(workers=1, max_memory_per_child=60 * MB)
    engine.task(name="reports.leaky", executor="process", retries=0)(ph.leaks)
    async with engine:
        # When it runs one task at a time, more than a child can hold under the limit
        pids = []
        for _ in range(14):
            record = await engine.wait(await engine.enqueue("reports.leaky"), timeout=20)
            # Then every task succeeds (none is lost or failed by a replacement)
            assert record.state == TaskState.SUCCEEDED, record.error
            pids.append(record.result)
        # and the child was replaced once it went over the limit
        assert len(set(pids)) >= 2
        assert engine.snapshot().stats["process_recycled"] >= 1
        # and the leak finding names the handler
        await until(lambda: "leak" in _rules(engine), what="the leak finding")
        assert "reports.leaky" in _rules(engine)["leak"].title
        children = engine.snapshot().process_children
        assert children and all(c.rss is None or c.rss > 0 for c in children)


async def test_children_are_recycled_every_max_tasks_per_child(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=1, max_tasks_per_child=3)
    engine.task(name="pid", executor="process")(ph.pid)
    async with engine:
        ids = [await engine.enqueue("pid", {"n": n}) for n in range(8)]
        records = [await engine.wait(i, timeout=20) for i in ids]
        shown = engine.snapshot().process_children  # the third child, two tasks in
        records.append(await engine.wait(await engine.enqueue("pid", {"n": 8}), timeout=20))
    assert [r.state for r in records] == [TaskState.SUCCEEDED] * 9
    pids = [r.result for r in records]
    # three tasks per child, then a fresh one: pids change every three tasks
    assert [len(set(pids[i : i + 3])) for i in (0, 3, 6)] == [1, 1, 1]
    assert len(set(pids)) == 3
    assert engine.snapshot().stats["process_recycled"] == 3
    assert [(c.pid, c.tasks) for c in shown if c.alive] == [(pids[6], 2)]
    # the workers panel shows each child's pid, tasks done and memory
    line = child_line(shown[0]).plain
    assert f"pid {shown[0].pid}" in line and "tasks" in line and " MB" in line


async def test_the_limit_changes_at_runtime(make_engine: EngineFactory) -> None:
    engine = make_engine(workers=1)
    engine.task(name="pid", executor="process")(ph.pid)
    async with engine:
        first = [
            (await engine.wait(await engine.enqueue("pid", {"n": n}))).result for n in range(3)
        ]
        assert len(set(first)) == 1  # 0: no limit
        await engine.update_settings(max_tasks_per_child=1)
        later = [
            (await engine.wait(await engine.enqueue("pid", {"n": n}))).result for n in range(2)
        ]
    assert len(set(later)) == 2 and first[0] not in later


def test_steady_growth_is_a_leak_and_noise_is_not() -> None:
    leaking = ProcessChild(11, 9, 90 * MB, ("a.leaks",), growth=5.0 * MB)
    flat = ProcessChild(12, 9, 40 * MB, ("b.fine",), growth=0.01 * MB)
    (found,) = leaking_children([leaking, flat], threshold=MB)
    assert found.title == "Memory leak in a.leaks" and "pid 11" in found.evidence
    assert list(leaking_children([flat], threshold=MB)) == []


def test_engine_memory_over_the_limit_names_the_top_consumers() -> None:
    sample = ResourceSample(
        at=0,
        process_cpu=0,
        system_cpu=0,
        cpu_per_core=(),
        rss=100 * MB,
        memory_percent=10,
        children=(ChildSample(21, 0, 300 * MB), ChildSample(22, 0, 50 * MB)),
    )
    children = [ProcessChild(21, 4, 300 * MB, ("images.resize",))]
    (found,) = engine_memory(sample, children, limit=400 * MB)
    assert "pid 21 (images.resize) 300 MB; the engine 100 MB; pid 22 (idle) 50 MB" in found.evidence
    assert list(engine_memory(sample, children, limit=500 * MB)) == []


def test_a_child_record_says_why_it_is_replaced() -> None:
    record = ChildRecord(7)
    for rss in (40, 45, 50, 55):
        record.finished("a.leaks", rss * MB)
    assert record.growth == pytest.approx(5 * MB)
    assert record.recycle_reason(0, 0) is None  # no limits: kept
    assert record.recycle_reason(4, 0) == "it ran 4 tasks (max_tasks_per_child 4)"
    assert record.recycle_reason(0, 50 * MB) == (
        "its memory 55 MB is over max_memory_per_child 50 MB"
    )
