"""Helpers for console tests: a small engine, waiting for the app to settle, toasts."""

from __future__ import annotations

import contextlib
import io
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from textual.app import App
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Static
from textual.worker import WorkerCancelled

from console.app import ConsoleApp
from console.screens.failed import FailedScreen
from engine import Engine

LONG_RUNNING = frozenset({"events"})


def build_engine(path: Path, workers: int = 0, **settings: Any) -> Engine:
    engine = Engine(path, workers=workers, name="node-1", poll_interval=0.05, **settings)

    @engine.task(name="images.resize", queue="images")
    async def resize(job_id: str, width: int = 640) -> dict[str, Any]:
        return {"job_id": job_id, "width": width}

    @engine.task(name="mail.send", queue="emails", retries=0)
    async def send(to: str) -> None:
        raise ConnectionError(f"smtp refused {to}")

    @engine.task(name="reports.build", queue="reports", executor="thread")
    def build(day: str) -> str:
        return f"report for {day}"

    return engine


async def settle(pilot: Pilot[Any]) -> None:
    """Wait until every short-lived worker of the app (fetches, actions) is done."""
    app = pilot.app
    for _ in range(50):
        pending = [w for w in app.workers if w.group not in LONG_RUNNING and not w.is_finished]
        if not pending:
            break
        for worker in pending:
            with contextlib.suppress(WorkerCancelled):  # replaced by a newer exclusive one
                await worker.wait()
    await pilot.pause()


async def started(pilot: Pilot[ConsoleApp]) -> None:
    """Wait until the app has started its engine and shown a first refresh."""
    app = pilot.app
    await settle(pilot)
    assert app.engine.running
    app.refresh_tick()
    await settle(pilot)


def text_of(widget: Widget, width: int = 200) -> str:
    """What a Static (or any widget) shows, as plain text."""
    content = widget.content if isinstance(widget, Static) else widget.render()
    console = Console(file=io.StringIO(), width=width, record=True, color_system=None)
    console.print(content)
    return console.export_text()


def toasts(app: ConsoleApp) -> list[str]:
    """The notifications shown so far (Textual keeps them on a private attribute)."""
    return [str(n.message) for n in app._notifications]


def bulk_queue(
    path: Path, count: int, handler: str = "images.resize", queue: str = "images"
) -> None:
    """Insert ``count`` queued tasks straight into a store file, fast (tests and benches).

    Fills the table with a recursive CTE and sets the count row to match.
    """
    conn = sqlite3.connect(path)
    conn.execute("BEGIN")
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
        "INSERT INTO tasks (handler, queue, priority, state, max_retries, retries, payload, "
        "created_at) SELECT ?, ?, i % 10, 'queued', 3, 3, "
        "'{\"job_id\":\"j' || i || '\"}', 1700000000.0 + i FROM n",
        (count, handler, queue),
    )
    conn.execute(
        "INSERT INTO task_counts (queue, state, n) VALUES (?, 'queued', ?) "
        "ON CONFLICT(queue, state) DO UPDATE SET n = n + excluded.n",
        (queue, count),
    )
    conn.execute("COMMIT")
    conn.close()


def screen_text(app: App[Any]) -> str:
    """What the terminal shows now, as plain text lines (the screen as last painted: a
    widget that was not repainted shows its old content, as a user would see it)."""
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        record=True,
        color_system=None,
        legacy_windows=False,
        safe_box=False,
    )
    update = app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    console.print(update)
    return console.export_text()


async def until(pilot: Pilot[Any], condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Let the app run until ``condition()`` holds (its timers and workers go on), or
    fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout:g} s")
        await pilot.pause(0.02)


async def open_failed(pilot: Pilot[ConsoleApp]) -> FailedScreen:
    """Press ``f`` on the dashboard: the Failed screen, settled."""
    await pilot.press("f")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, FailedScreen)
    return screen
