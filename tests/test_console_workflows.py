"""Task detail of a workflow step: the chain or group with every step's state, the keys
that move between steps, and what a failed middle step does to the steps after it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from console.app import ConsoleApp
from console.panels.task_table import TaskTable, age_text
from console.screens.task_detail import TaskDetailScreen
from engine import Engine, TaskState
from engine.workflow import chain, group

from .console_helpers import build_engine, settle, started, text_of, toasts


def etl_engine(path: Path, workers: int, broken: dict[str, bool] | None = None) -> Engine:
    """build_engine's handlers plus a three-step ETL; transform fails while
    ``broken["yes"]`` (always, without ``broken``)."""
    engine = build_engine(path, workers=workers)
    broken = {"yes": True} if broken is None else broken

    @engine.task(name="etl.extract")
    async def extract(source: str) -> dict[str, Any]:
        return {"rows": 3, "table": source}

    @engine.task(name="etl.transform", retries=0)
    async def transform(rows: int, table: str) -> int:
        if broken["yes"]:
            raise ValueError(f"row 2 of {table} has no id")
        return rows * 2

    @engine.task(name="etl.load")
    async def load(count: int) -> str:
        return f"loaded {count}"

    @engine.task(name="etl.total")
    async def total(counts: list[int]) -> int:
        return sum(counts)

    return engine


def shown(app: ConsoleApp) -> TaskDetailScreen:
    assert isinstance(app.screen, TaskDetailScreen), app.screen
    return app.screen


def detail(app: ConsoleApp) -> str:
    return text_of(shown(app).query_one("#detail"))


def step_row(text: str, step: int) -> str:
    """The workflow table's row for ``step`` (1-based), squeezed to single spaces."""
    for line in text.splitlines():
        if re.match(rf"^\s*(▶\s+)?{step}\s+#\d+\s", line):
            return " ".join(line.split())
    raise AssertionError(f"no row for step {step} in:\n{text}")


async def test_a_waiting_step_shows_its_chain_and_the_step_keys_move(db_path: Path) -> None:
    engine = etl_engine(db_path, workers=0)
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        flow = await engine.enqueue_workflow(
            chain(("etl.extract", {"source": "users"}), "etl.transform", "etl.load")
        )
        first, second, third = flow.task_ids
        await pilot.press("2")  # the scheduled tab: the two waiting steps
        app.refresh_tick()
        await settle(pilot)
        table = app.query_one("#queue TaskTable", TaskTable)
        assert table.total == 2 and table.selected is not None
        assert age_text(table.selected, app.now()) == "waiting"
        app.push_screen(TaskDetailScreen(engine, second))
        await settle(pilot)
        text = detail(app)
        assert f"chain {flow.id} · running · 3 steps" in text
        assert f"workflow chain {flow.id}, step 2 of 3" in " ".join(text.split())
        assert "due when the steps before it have succeeded" in " ".join(text.split())
        assert step_row(text, 1) == f"1 #{first} etl.extract queued"
        assert step_row(text, 2) == f"▶ 2 #{second} etl.transform scheduled waiting ← this task"
        assert step_row(text, 3) == f"3 #{third} etl.load scheduled waiting"
        keys = text_of(app.screen.query_one("#detail-keys"))
        assert "[ / ] previous / next step" in keys
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert shown(app).task_id == third
        assert step_row(detail(app), 3).startswith(f"▶ 3 #{third} etl.load")
        await pilot.press("right_square_bracket")  # the last step: a toast says so
        await settle(pilot)
        assert f"task #{third} is the last step of chain {flow.id}" in toasts(app)
        await pilot.press("left_square_bracket", "left_square_bracket")
        await settle(pilot)
        assert shown(app).task_id == first
        assert "Task #" + first in text_of(app.screen.query_one("#detail-title"))
        await pilot.press("escape")
        # a task on its own has no workflow section and no steps to move between
        single = await engine.enqueue("images.resize", {"job_id": "alone"})
        app.push_screen(TaskDetailScreen(engine, single))
        await settle(pilot)
        assert "Workflow" not in detail(app)
        await pilot.press("left_square_bracket")
        await settle(pilot)
        assert f"task #{single} is not a step of a chain or group" in " ".join(toasts(app))


async def test_a_failed_middle_step_cancels_the_rest_and_retry_resumes(db_path: Path) -> None:
    broken = {"yes": True}
    engine = etl_engine(db_path, workers=1, broken=broken)
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        flow = await engine.enqueue_workflow(
            chain(("etl.extract", {"source": "users"}), "etl.transform", "etl.load")
        )
        first, second, third = flow.task_ids
        assert (await engine.wait(second, timeout=10)).state == TaskState.FAILED
        app.push_screen(TaskDetailScreen(engine, second))
        await settle(pilot)
        text = detail(app)
        assert f"chain {flow.id} · failed" in text
        assert step_row(text, 1).startswith(f"1 #{first} etl.extract succeeded")
        assert step_row(text, 2).startswith(f"▶ 2 #{second} etl.transform failed")
        assert step_row(text, 3) == f"3 #{third} etl.load cancelled never ran"
        assert "ValueError: row 2 of users has no id" in text
        # retried (and fixed), the chain goes on: the cancelled step waits again and runs
        broken["yes"] = False
        await pilot.press("r")
        await settle(pilot)
        assert (await engine.wait(third, timeout=10)).result == "loaded 6"
        shown(app).load()
        await settle(pilot)
        text = detail(app)
        assert f"chain {flow.id} · succeeded" in text
        assert step_row(text, 3).startswith(f"3 #{third} etl.load succeeded")


async def test_a_group_callback_is_marked(db_path: Path) -> None:
    engine = etl_engine(db_path, workers=0)
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        flow = await engine.enqueue_workflow(
            group(("etl.load", {"count": 1}), ("etl.load", {"count": 2}), callback="etl.total")
        )
        app.push_screen(TaskDetailScreen(engine, flow.task_ids[0]))
        await settle(pilot)
        text = detail(app)
        assert f"group {flow.id} · running · 3 steps" in text
        assert step_row(text, 2) == f"2 #{flow.task_ids[1]} etl.load queued"
        assert step_row(text, 3) == f"3 #{flow.task_ids[2]} etl.total scheduled callback, waiting"
