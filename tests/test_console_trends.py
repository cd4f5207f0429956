"""The Trends screen (T): the history as charts, switched by span, handler and queue."""

from __future__ import annotations

import time
from pathlib import Path

from console.app import ConsoleApp
from console.history_seed import HANDLERS, seed_history
from console.panels.throughput import ThroughputPanel
from console.screens.trends import TrendsScreen

from .console_helpers import build_engine, screen_text, settle, started, text_of, until


async def test_trends_switch_span_handler_and_queue_and_fit_at_80x24(db_path: Path) -> None:
    # Given a store with a day of history for the demo's handlers
    await seed_history(db_path, time.time(), hours=3)
    engine = build_engine(db_path)
    app = ConsoleApp(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot)
        # When T opens the trends
        await pilot.press("T")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TrendsScreen)
        await until(pilot, lambda: screen.loaded)
        # Then it shows the last 24 hours per hour, every chart, for everything
        text = screen_text(app)
        assert "last 24 h per hour · all handlers · all queues" in text
        for title in ("Throughput", "Success rate", "Wait p95", "Run p95", "Backlog"):
            assert title in text
        assert sum(p.runs for p in screen.points) > 0
        # 1 switches to the last hour per minute; h to the first handler; u to a queue
        await pilot.press("1")
        await until(pilot, lambda: len(screen.points) == 61)
        await pilot.press("h")
        first = sorted(HANDLERS)[0]
        await until(pilot, lambda: f"· {first} ·" in screen_text(app))
        assert screen.handler == first and screen.handlers == sorted(HANDLERS)
        await pilot.press("H")
        await until(pilot, lambda: "all handlers" in screen_text(app))
        await pilot.press("u")
        await until(pilot, lambda: screen.queue == "downloads")
        await until(pilot, lambda: "· downloads ·" in screen_text(app))
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is app.dashboard
    await engine.stop(grace=0)


async def test_an_empty_history_says_how_it_fills(db_path: Path) -> None:
    engine = build_engine(db_path)
    app = ConsoleApp(engine)
    async with app.run_test(size=(100, 30)) as pilot:
        await started(pilot)
        await pilot.press("T")
        await settle(pilot)
        await until(pilot, lambda: "No history yet" in screen_text(app))
    await engine.stop(grace=0)


async def test_h_shows_the_last_hour_in_the_throughput_chart_and_back(db_path: Path) -> None:
    await seed_history(db_path, time.time(), hours=1)
    engine = build_engine(db_path)
    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        panel = app.dashboard.query_one(ThroughputPanel)
        await pilot.press("h")
        await until(pilot, lambda: sum(p.successes for p in panel.hour) > 0)
        await until(pilot, lambda: "last hour" in str(panel.border_title))

        # the chart's columns: minutes, up to now (the app's tick repaints the panel)
        def drawn() -> bool:
            app.refresh_tick()
            return any(c in text_of(panel).split("└")[0] for c in "▁▂▃▄▅▆▇█")

        await until(pilot, drawn)
        assert "m" in text_of(panel).split("└")[1].split("now")[0] and "/min" in text_of(panel)
        await pilot.press("h")

        def live() -> bool:
            app.refresh_tick()
            return "last hour" not in str(panel.border_title) and "/s" in text_of(panel)

        await until(pilot, live)
    await engine.stop(grace=0)
