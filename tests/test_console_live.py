"""The dashboard stays live under every dialog (issue 13, item 5): while help, the
enqueue form, settings, a task detail, the quit dialog or the worker dialog is open,
the panels around it keep showing what the engine does, on the refresh timer. A full
screen (failed tasks) refreshes its own content, also under a task detail."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import OptionList, Tab

from console.app import ConsoleApp
from console.screens.enqueue import EnqueueScreen
from console.screens.help import HelpScreen
from console.screens.queues import QueuesScreen
from console.screens.quit import QuitScreen
from console.screens.settings import SettingsScreen
from console.screens.task_detail import TaskDetailScreen
from console.screens.workers import WorkerCountScreen

from .console_helpers import build_engine, open_failed, settle, started, text_of, until


async def test_panels_keep_updating_under_each_dialog(db_path: Path) -> None:
    engine = build_engine(db_path, workers=0)
    app = ConsoleApp(engine, refresh_hz=10)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await engine.enqueue("images.resize", {"job_id": "first"})
        queued = app.dashboard.query_one("#tab-queued", Tab)
        header = app.dashboard.query_one("#header")
        await until(pilot, lambda: "Queued 1" in str(queued.label))
        dialogs = {
            "question_mark": HelpScreen,
            "e": EnqueueScreen,
            "s": SettingsScreen,
            "enter": TaskDetailScreen,
            "q": QuitScreen,
            "w": WorkerCountScreen,
            "p": QueuesScreen,
        }
        for n, (key, kind) in enumerate(dialogs.items(), start=2):
            await pilot.press(key)
            await settle(pilot)
            assert isinstance(app.screen, kind), (key, app.screen)
            # the engine changes while the dialog is open: a task arrives, a queue is
            # paused or resumed (by another client, say)
            await engine.enqueue("images.resize", {"job_id": f"j{n}"})
            paused = n % 2 == 0
            await (engine.pause if paused else engine.resume)("images")
            await until(pilot, lambda n=n: f"Queued {n}" in str(queued.label))
            await until(pilot, lambda p=paused: ("paused: images" in text_of(header)) == p)
            assert isinstance(app.screen, kind)  # still open: it was updated underneath
            if isinstance(app.screen, QueuesScreen):  # its own numbers are live too
                dialog = app.screen
                await until(pilot, lambda d=dialog, n=n: f"images {n} queued" in lines(d))
            await pilot.press("escape")
            await settle(pilot)
            assert app.screen is app.dashboard


def lines(dialog: QueuesScreen) -> str:
    """The queues dialog's lines, with runs of spaces as one."""
    options = dialog.query_one(OptionList)
    prompts = (str(options.get_option_at_index(i).prompt) for i in range(options.option_count))
    return "\n".join(" ".join(prompt.split()) for prompt in prompts)


async def test_failed_screen_stays_live_under_a_task_detail(db_path: Path) -> None:
    engine = build_engine(db_path, workers=1)
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        first = await engine.enqueue("mail.send", {"to": "a@example.com"})
        await engine.wait(first, timeout=5)
        await open_failed(pilot)
        failed = app.screen
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, TaskDetailScreen)
        second = await engine.enqueue("mail.send", {"to": "b@example.com"})
        await engine.wait(second, timeout=5)
        summary = failed.query_one("#failed-summary")
        await until(pilot, lambda: "2 failed" in text_of(summary))
