"""What an operator reads and types (issue 13, item 10): help says how to move between
panels, the worker dialog refuses a negative count, a refused setting's message is
on screen, the header never shows more busy workers than workers, a succeeded task
is at 100 %, and the Events panel scrolls and keeps operator and autoscaler events in
sight however many progress lines arrive."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from textual.widgets import Input, RichLog, Static

from console.app import ConsoleApp, EngineEvents
from console.panels.events import EventsPanel
from console.screens.help import HelpScreen
from console.screens.settings import SettingsScreen
from console.screens.workers import WorkerCountScreen
from engine import Engine, Event, EventKind, current_task

from .console_helpers import build_engine, screen_text, settle, started, text_of, until


def with_slow_handlers(engine: Engine) -> tuple[asyncio.Event, asyncio.Event]:
    """``slow.wait`` runs until the second event returned is set (the first is set when
    two of them run); ``half.done`` reports 50 % progress and returns."""
    two_running, release = asyncio.Event(), asyncio.Event()
    running: list[str] = []

    @engine.task(name="slow.wait", queue="slow")
    async def wait() -> None:
        running.append(current_task().id)
        if len(running) == 2:
            two_running.set()
        await release.wait()

    @engine.task(name="half.done", queue="slow")
    async def half() -> str:
        current_task().progress(0.5, "half way")
        await asyncio.sleep(0.2)  # long enough for the progress to be saved
        return "done"

    return two_running, release


async def test_help_worker_dialog_and_settings_errors(db_path: Path) -> None:
    engine = build_engine(db_path, workers=0)
    app = ConsoleApp(engine)
    async with app.run_test(size=(100, 30)) as pilot:
        await started(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = "".join(text_of(s) for s in app.screen.query(Static))
        assert "tab" in text and "Next panel" in text and "shift+tab" in text
        await pilot.press("escape")

        await pilot.press("w")
        assert isinstance(app.screen, WorkerCountScreen)
        app.screen.query_one("#count", Input).value = ""
        await pilot.press("minus", "3", "enter")
        await settle(pilot)
        assert isinstance(app.screen, WorkerCountScreen), "-3 was taken"
        error = text_of(app.screen.query_one("#count-error"))
        assert "workers must be a whole number from 0 to 256 (max_workers); got -3" in error
        assert engine.worker_count == 0
        await pilot.press("escape")

        await pilot.press("s")
        assert isinstance(app.screen, SettingsScreen)
        # a field far down the form is wrong; the focus is at the top of the form
        app.screen.query_one("#in-webhook_timeout", Input).value = "-1"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, SettingsScreen)
        assert "must be from 0.1 to 300 s; got -1.0" in screen_text(app)
        assert app.screen.focused is app.screen.query_one("#in-webhook_timeout")


async def test_header_when_a_shrunk_pool_finishes_and_succeeded_progress(
    db_path: Path,
) -> None:
    engine = build_engine(db_path, workers=2)
    two_running, release = with_slow_handlers(engine)
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        half = await engine.enqueue("half.done", {})
        assert (await engine.wait(half, timeout=5)).progress == 0.5
        await engine.enqueue_many([("slow.wait", {}), ("slow.wait", {})])
        await asyncio.wait_for(two_running.wait(), 5)
        await engine.set_workers(1)  # as the autoscaler does: both keep running
        app.refresh_tick()
        await settle(pilot)
        header = text_of(app.query_one("#header"))
        assert "workers 2 busy / 1 (1 finishing)" in header, header
        assert "2/1" not in header
        assert "Workers · 2 busy / 1 (1 finishing)" in str(app.query_one("#workers").border_title)
        release.set()
        await pilot.press("4")  # succeeded
        app.refresh_tick()
        await settle(pilot)
        line = next(row for row in screen_text(app).splitlines() if "half.done" in row)
        assert "100%" in line and " 50%" not in line, line


async def focus_events(app: ConsoleApp) -> RichLog:
    """Tab to the (main) events log, as an operator would."""
    for _ in range(12):
        focused = app.focused
        if isinstance(focused, RichLog) and focused.id in ("events", "event-log"):
            return focused
        await app.run_action("app.focus_next")
    raise AssertionError("tab never reached the events log")


async def test_events_scroll_and_keep_operator_events_in_sight(db_path: Path) -> None:
    engine = build_engine(db_path, workers=0)
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        await engine.set_workers(1)
        now = time.time()
        panel = app.query_one(EventsPanel)
        await until(pilot, lambda: "workers 0 → 1" in "\n".join(map(str, panel.lines)))

        def progress(n: int) -> list[Event]:
            return [
                Event(EventKind.PROGRESS, now, str(i), "images.resize", "images", 1, f"{i}%")
                for i in range(n)
            ]

        async def arrive(events: list[Event]) -> None:
            """Events as the engine bridge delivers them, drawn by the next tick."""
            app.post_message(EngineEvents(events))
            await settle(pilot)
            app.refresh_tick()
            await settle(pilot)

        for _ in range(3):  # three ticks with progress lines, as under load
            await arrive(progress(30))
        assert "workers 0 → 1" in screen_text(app)  # still on screen

        log = await focus_events(app)
        await pilot.press("home")
        await settle(pilot)
        assert log.scroll_y == 0
        await arrive(progress(30))
        assert log.scroll_y == 0, "new lines pulled the reader back to the end"
        await pilot.press("end")
        await settle(pilot)
        await arrive(progress(5))
        assert log.scroll_y == log.max_scroll_y > 0  # at the end, it follows again
