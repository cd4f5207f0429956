"""A periodic task's wait is not a backlog (issue 13, item 14): the wait-ratio rule
leaves periodic handlers out, and a task's queue wait counts only from when this
engine's workers started, so the demo at idle raises no "wait much longer than they
run" finding for a report (or anything else) queued while no engine ran."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from console.demo import register_demo
from engine import Engine, Settings
from engine.bottleneck import Inputs, slow_waits

from .conftest import FAST, until
from .test_bottleneck import handler, resources, view


def test_the_rule_leaves_periodic_handlers_out() -> None:
    # the numbers the issue saw: a 1 ms report that waited 1.86 s (1,859×)
    report = handler("images.report", wait_p95=1.859, run_p95=0.001)
    resize = handler("images.resize", wait_p95=45.0, run_p95=0.5)
    v = view(handlers={"images.report": report, "images.resize": resize})

    def found(periodic: frozenset[str]) -> list[str]:
        inputs = Inputs(v, resources(), 0.0, Settings(), 30, {}, periodic=periodic)
        return [f.title for f in slow_waits(inputs)]

    assert found(frozenset()) == [
        "images.report tasks wait much longer than they run",
        "images.resize tasks wait much longer than they run",
    ]
    assert found(frozenset({"images.report"})) == [
        "images.resize tasks wait much longer than they run"
    ]


async def test_the_demo_at_idle_after_work_queued_while_no_engine_ran(db_path: Path) -> None:
    # A producer (like a command-line client) leaves a report run and a notify queued;
    # the engine starts 30 s later (the times are moved back rather than waited for).
    producer = Engine(db_path, workers=0, **FAST)
    register_demo(producer)
    async with producer:
        await producer.enqueue("images.report", {})
        await producer.enqueue("images.notify", {"image_id": "img-1", "urls": []})
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE tasks SET created_at = created_at - 30")

    engine = Engine(db_path, workers=2, **FAST)
    register_demo(engine)
    async with engine:

        def ran() -> bool:
            metrics = engine.snapshot().metrics
            handlers = metrics.handlers if metrics is not None else {}
            return all(
                name in handlers and handlers[name].runs >= 1
                for name in ("images.report", "images.notify")
            )

        await until(ran, what="the monitor to have seen both runs")
        snap = engine.snapshot()
        waits = [f.title for f in snap.findings if f.rule == "slow_waits"]
        assert waits == [], waits
        assert snap.metrics is not None
        assert (snap.metrics.handlers["images.notify"].wait_p95 or 0) < 5.0
