"""Task detail's K: the live stack of a running task, at 80×24; r takes it again."""

from __future__ import annotations

from pathlib import Path

from console.app import ConsoleApp
from console.screens.task_detail import TaskDetailScreen
from console.screens.task_stack import TaskStackScreen
from tests import stack_handlers
from tests.stack_handlers import line_of

from .console_helpers import build_engine, screen_text, settle, started, until
from .test_console_compact import assert_fits


async def test_k_in_task_detail_shows_the_live_stack_at_80x24(db_path: Path) -> None:
    # Given a console whose engine runs a thread handler waiting at a known line
    engine = build_engine(db_path, workers=1)
    engine.task(name="reports.wait", executor="thread")(stack_handlers.thread_waiter)
    stack_handlers.RELEASE.clear()
    app = ConsoleApp(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot)
        task_id = str(await engine.enqueue("reports.wait", {}))
        await until(pilot, lambda: bool(engine.snapshot().busy_workers), timeout=5)
        app.push_screen(TaskDetailScreen(engine, task_id))
        await until(pilot, lambda: "K stack" in screen_text(app))  # a running task's key
        # When K is pressed in its detail
        await pilot.press("K")
        await settle(pilot)
        # Then the stack shows the handler's function and the line it waits on, and fits
        assert isinstance(app.screen, TaskStackScreen)
        where = f"tests/stack_handlers.py:{line_of('THREAD WAITS HERE')}"
        await until(pilot, lambda: where in screen_text(app))
        text = screen_text(app)
        assert "thread_waiter" in text and "RELEASE.wait(30)" in text and "← now" in text
        assert "engine frames" in text or "engine frame" in text
        assert f"Live stack · task #{task_id} · reports.wait · thread" in text
        assert_fits(app, "live stack")
        # r takes it again; once the task has finished it says so
        stack_handlers.RELEASE.set()
        await engine.wait(task_id, timeout=5)
        await pilot.press("r")
        await settle(pilot)
        assert f"task {task_id} is not running (it is succeeded)" in screen_text(app)
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, TaskDetailScreen)
    await engine.stop(grace=0)
