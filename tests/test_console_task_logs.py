"""The task detail's Logs view (key ``l``): a task's log lines on screen, following a
running task live."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from console.app import ConsoleApp
from console.screens.task_detail import TaskDetailScreen
from engine import TaskState, current_task

from . import log_handlers as lh
from .console_helpers import build_engine, screen_text, settle, started, until


@pytest.mark.parametrize("executor", ["async", "thread", "process"])
async def test_logs_view_shows_what_each_executor_logged(db_path: Path, executor: str) -> None:
    # Given a finished task whose handler logged three lines, on each executor
    engine = build_engine(db_path, workers=1, progress_interval=0.05)
    fn = lh.three_lines_async if executor == "async" else lh.three_lines
    engine.task(name="images.convert", executor=executor)(fn)
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        task_id = await engine.enqueue("images.convert", {"name": "cat.png"})
        assert (await engine.wait(task_id, timeout=20)).state == TaskState.SUCCEEDED
        # When its detail is opened: the detail says it has lines; l shows them
        await app.push_screen(TaskDetailScreen(engine, task_id))
        await until(pilot, lambda: "3 lines · press l" in screen_text(app))
        await pilot.press("l")
        await settle(pilot)
        shown = screen_text(app)
    # Then the three lines are on screen, with attempt, level and logger
    assert "#1 INFO     images.resize: resizing cat.png" in shown
    assert "#1 WARNING  images.resize: cat.png is large" in shown
    assert "#1 ERROR    images.convert: done with cat.png" in shown


async def test_logs_view_follows_a_running_task(db_path: Path) -> None:
    engine = build_engine(db_path, workers=1, progress_interval=0.05)
    gate = asyncio.Event()

    @engine.task(name="videos.encode", queue="images")
    async def encode(n: int) -> int:
        current_task().log("started encoding")
        await gate.wait()
        current_task().log("half way", level="warning")
        return n

    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        task_id = await engine.enqueue("videos.encode", {"n": 1})
        await app.push_screen(TaskDetailScreen(engine, task_id))
        await pilot.press("l")
        # Given the Logs view of a running task: its first line, and that it follows
        await until(pilot, lambda: "started encoding" in screen_text(app), timeout=10)
        assert "following: new lines appear" in screen_text(app)
        assert "half way" not in screen_text(app)
        # When it logs again and finishes, the new line appears without a key press
        gate.set()
        await until(pilot, lambda: "half way" in screen_text(app), timeout=10)
        await until(pilot, lambda: "following" not in screen_text(app), timeout=10)
        # l goes back to the detail
        await pilot.press("l")
        await settle(pilot)
        assert "2 lines · press l" in screen_text(app)
