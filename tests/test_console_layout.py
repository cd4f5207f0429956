"""Layout at the sizes the console promises (issue 13, item 9): columns keep a sane
width at 160 columns, worker percentages and node ids show whole at 100×30, every
footer key fits at 100 columns, and the "too small" box fits the terminal it is on
(below 80×24: from there up the compact layout works, see test_console_compact)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.widgets import Static, Tab

from console.app import ConsoleApp
from console.panels.nodes import NodesPanel
from engine import Engine, current_task

from .console_helpers import build_engine, open_failed, screen_text, settle, started, until

#: Every dashboard key and the word of its (short) label, as a user reads the footer.
DASHBOARD_KEYS = ("? Help", "e Enqueue", "c Cancel", "+-", "][", "s ", "p Pause")
MORE_KEYS = ("f Failed", "t Sched", "/ Filter", "q Quit")


def footer(app: ConsoleApp) -> str:
    return screen_text(app).splitlines()[-1]


async def test_columns_percentages_footer_and_too_small_box(db_path: Path) -> None:
    engine = build_engine(db_path, workers=1)
    release = asyncio.Event()

    @engine.task(name="images.thumbnails.generate", queue="images")
    async def thumbnail() -> None:
        current_task().progress(0.75, "writing img-00012_1280x720.jpg to the bucket")
        await release.wait()

    app = ConsoleApp(engine)
    async with app.run_test(size=(160, 50)) as pilot:
        await started(pilot)
        failed = await engine.enqueue("mail.send", {"to": "ada@example.com"})
        await engine.wait(failed, timeout=5)
        await open_failed(pilot)
        await until(pilot, lambda: "HANDLER" in screen_text(app))
        header = next(line for line in screen_text(app).splitlines() if "HANDLER" in line)
        assert header.index("QUEUE") - header.index("HANDLER") <= 41, header  # was ~90
        await pilot.resize_terminal(100, 30)
        await settle(pilot)
        for key in ("1 Failed", "r Retry", "esc Back", "? Help", "q Quit"):
            assert key in footer(app), footer(app)
        await pilot.press("escape")
        await settle(pilot)

        await engine.enqueue("images.thumbnails.generate", {})
        await until(pilot, lambda: "w1 #" in screen_text(app), timeout=10)
        app.refresh_tick()
        await settle(pilot)
        line = next(row for row in screen_text(app).splitlines() if "w1 #" in row)
        assert " 75%" in line, line  # whole, never "7…"
        for key in DASHBOARD_KEYS + MORE_KEYS:
            assert key in footer(app), (key, footer(app))
        await pilot.press("tab")  # to the bottlenecks: its key joins the footer
        await settle(pilot)
        for key in DASHBOARD_KEYS + MORE_KEYS:
            assert key in footer(app), (key, footer(app))

        await pilot.resize_terminal(79, 23)
        await settle(pilot)
        box = app.query_one("#too-small-text", Static)
        assert box.region.width <= 79 and box.region.x >= 0
        text = screen_text(app)
        assert "Taskdeck needs at least 80×24" in text
        assert "make the window larger (or press q to quit)." in text
        release.set()


async def test_node_ids_and_queue_tabs_show_whole_in_an_attached_console(db_path: Path) -> None:
    # ids as Engine makes them by default: host-pid-suffix
    names = ("ci-runner-0042-31337-beef", "ci-runner-0043-31338-cafe")
    nodes = [Engine(db_path, workers=1, name=name, poll_interval=0.05) for name in names]
    for node in nodes:
        await node.start()
    try:
        console = Engine(db_path, workers=0, strict_handlers=False, name="console")
        app = ConsoleApp(console, attach=True)
        async with app.run_test(size=(100, 30)) as pilot:
            await started(pilot)
            panel = app.query_one(NodesPanel)
            await until(pilot, lambda: panel.row_count == 2, timeout=10)
            await settle(pilot)
            text = screen_text(app)
            for name in names:
                assert name in text, text
            queue = app.query_one("#queue")  # half of 100 columns: every tab still fits
            for tab in queue.query(Tab):
                assert tab.region.right <= queue.content_region.right, (tab.label, text)
    finally:
        for node in nodes:
            await node.stop(grace=0)
