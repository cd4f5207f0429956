"""The failed-tasks screen (issue 13, item 8): escape after a task detail goes back at
once, and the empty table names the tab that is shown."""

from __future__ import annotations

from pathlib import Path

from console.app import ConsoleApp
from console.screens.failed import FailedScreen
from console.screens.task_detail import TaskDetailScreen

from .console_helpers import build_engine, open_failed, screen_text, settle, started


async def test_escape_after_a_task_detail_and_the_empty_message_of_each_tab(
    db_path: Path,
) -> None:
    engine = build_engine(db_path, workers=1)
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await open_failed(pilot)
        assert "no failed tasks" in screen_text(app)
        await pilot.press("2")
        await settle(pilot)
        assert "no cancelled tasks" in screen_text(app)
        await pilot.press("1")
        await settle(pilot)
        text = screen_text(app)
        assert "no failed tasks" in text and "no cancelled tasks" not in text

        tid = await engine.enqueue("mail.send", {"to": "ada@example.com"})
        await engine.wait(tid, timeout=5)
        app.screen.refresh_view()
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, TaskDetailScreen)
        assert sum(isinstance(s, TaskDetailScreen) for s in app.screen_stack) == 1
        await pilot.press("escape")  # closes the detail
        await settle(pilot)
        assert isinstance(app.screen, FailedScreen)
        await pilot.press("escape")  # the very next escape leaves the failed screen
        await settle(pilot)
        assert app.screen is app.dashboard
